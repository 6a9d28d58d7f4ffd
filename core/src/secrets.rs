//! Where the device keeps its secrets (the checkout signing key). The host app implements
//! [`SecretStore`] over the platform's own store — the iOS Keychain, the Android Keystore — so the
//! private key never sits in the app's database. Without one, the key is kept in the device's store
//! file and marked as such: acceptable for the terminal program and tests, not for a shipped app.

/// A failure of the host's secret store, in its own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the secret store failed: {0}")]
pub struct SecretStoreError(pub String);

/// Named secrets kept by the host platform.
pub trait SecretStore: Send + Sync {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SecretStoreError>;
    fn put(&self, name: &str, value: &[u8]) -> Result<(), SecretStoreError>;
    fn delete(&self, name: &str) -> Result<(), SecretStoreError>;
}

/// The name under which the checkout signing key (PKCS#8) is kept.
pub const SIGNING_KEY: &str = "loyalty.checkout_signing_key";
