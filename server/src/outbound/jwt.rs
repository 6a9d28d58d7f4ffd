//! The signed tokens push providers want, with `ring`: RS256 for Google's OAuth service-account
//! grant (FCM) and ES256 for Apple's provider tokens (APNs), from the PEM private keys the
//! providers hand out (PKCS#8 both: Google's `private_key`, Apple's `.p8` file).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};

/// A private key that signs JWTs.
pub enum SigningKey {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
}

impl SigningKey {
    /// An RSA key from a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn rs256(pem: &str) -> Result<Self, String> {
        let der = pem_der(pem)?;
        RsaKeyPair::from_pkcs8(&der)
            .map(Self::Rs256)
            .map_err(|e| format!("not an RSA PKCS#8 private key: {e}"))
    }

    /// A P-256 key from a PKCS#8 PEM (Apple's `.p8`).
    pub fn es256(pem: &str) -> Result<Self, String> {
        let der = pem_der(pem)?;
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
            .map(Self::Es256)
            .map_err(|e| format!("not a P-256 PKCS#8 private key: {e}"))
    }

    fn algorithm(&self) -> &'static str {
        match self {
            Self::Rs256(_) => "RS256",
            Self::Es256(_) => "ES256",
        }
    }

    /// `header.claims.signature`, each part base64url without padding; `kid` names the key to
    /// the provider when it asks for it (APNs).
    pub fn sign(&self, kid: Option<&str>, claims: &serde_json::Value) -> Result<String, String> {
        let mut header = serde_json::json!({"alg": self.algorithm(), "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = kid.into();
        }
        let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", part(&header), part(claims));
        let rng = SystemRandom::new();
        let signature = match self {
            Self::Rs256(key) => {
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut out)
                    .map_err(|_| "RSA signing failed".to_string())?;
                out
            }
            Self::Es256(key) => key
                .sign(&rng, input.as_bytes())
                .map_err(|_| "ECDSA signing failed".to_string())?
                .as_ref()
                .to_vec(),
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The DER inside a PEM's `-----BEGIN …-----` armour.
fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    if body.is_empty() || !pem.contains("-----BEGIN") {
        return Err("not a PEM file".into());
    }
    STANDARD
        .decode(body)
        .map_err(|e| format!("the PEM's base64: {e}"))
}

/// Seconds since the Unix epoch, as JWT claims count.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, KeyPair, UnparsedPublicKey};

    #[test]
    fn es256_tokens_verify_with_the_public_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        let key = SigningKey::es256(&pem).unwrap();
        let SigningKey::Es256(pair) = &key else {
            unreachable!()
        };
        let public = pair.public_key().as_ref().to_vec();
        let token = key
            .sign(
                Some("KEY123"),
                &serde_json::json!({"iss": "TEAM", "iat": 1}),
            )
            .unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            (header["alg"].as_str(), header["kid"].as_str()),
            (Some("ES256"), Some("KEY123"))
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public)
            .verify(signed.as_bytes(), &signature)
            .expect("the signature verifies");
    }

    #[test]
    fn keys_that_are_not_pem_or_of_the_wrong_kind_are_refused() {
        assert!(SigningKey::rs256("hello").is_err());
        assert!(
            SigningKey::es256("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----")
                .is_err()
        );
        let rng = SystemRandom::new();
        let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
            STANDARD.encode(ec.as_ref())
        );
        assert!(
            SigningKey::rs256(&pem).is_err(),
            "an EC key is not an RSA key"
        );
    }
}
