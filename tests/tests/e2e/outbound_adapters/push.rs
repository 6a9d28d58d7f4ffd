//! Push through FCM HTTP v1 and APNs, each to a real HTTP receiver on loopback that checks the
//! provider token's signature, chosen by the token's platform.

use super::*;

// ---- push: FCM HTTP v1 and APNs --------------------------------------------------------------

/// Splits a JWT and checks its signature with `verify(signed_part, signature)`; the claims, or
/// `None` when it does not verify.
fn jwt_claims(
    token: &str,
    verify: impl Fn(&[u8], &[u8]) -> bool,
) -> Option<(serde_json::Value, serde_json::Value)> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    let signature = b64.decode(s).ok()?;
    if !verify(format!("{h}.{c}").as_bytes(), &signature) {
        return None;
    }
    let json = |p: &str| serde_json::from_slice(&b64.decode(p).ok()?).ok();
    Some((json(h)?, json(c)?))
}

/// What the push receivers saw: (platform, device token, title) per accepted push, and every
/// credential that did not verify.
#[derive(Clone, Default)]
struct PushLog {
    accepted: Arc<Mutex<Vec<(String, String, String)>>>,
    token_grants: Arc<Mutex<usize>>,
    refused_credentials: Arc<Mutex<Vec<String>>>,
}

/// A loopback stand-in for Google's token endpoint and FCM's `messages:send`, checking the grant's
/// RS256 signature with the service account's public key (PKCS#1 DER).
async fn fcm_receiver(public_key: Vec<u8>, log: PushLog) -> String {
    use axum::extract::Path as UrlPath;
    use axum::routing::post;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let audience = format!("{base}/token");
    let (grant_log, send_log) = (log.clone(), log);
    let app = axum::Router::new()
        .route(
            "/token",
            post(move |body: String| {
                let (key, log, audience) = (public_key.clone(), grant_log.clone(), audience.clone());
                async move {
                    let assertion = body.split('&').find_map(|kv| kv.strip_prefix("assertion=")).unwrap_or("");
                    let verify = |m: &[u8], s: &[u8]| {
                        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &key)
                            .verify(m, s)
                            .is_ok()
                    };
                    let good = body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
                        && jwt_claims(assertion, verify).is_some_and(|(h, c)| {
                            h["alg"] == "RS256"
                                && c["iss"] == "push@proj-1.iam.gserviceaccount.com"
                                && c["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
                                && c["aud"] == audience.as_str()
                        });
                    if !good {
                        log.refused_credentials.lock().unwrap().push("token grant".into());
                        return (StatusCode::BAD_REQUEST, r#"{"error":"invalid_grant"}"#.to_string());
                    }
                    *log.token_grants.lock().unwrap() += 1;
                    (StatusCode::OK, r#"{"access_token":"at-1","expires_in":3599,"token_type":"Bearer"}"#.into())
                }
            }),
        )
        .route(
            "/v1/projects/{project}/messages:send",
            post(move |UrlPath(project): UrlPath<String>, headers: HeaderMap, body: String| {
                let log = send_log.clone();
                async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer at-1")
                        || project != "proj-1"
                    {
                        log.refused_credentials.lock().unwrap().push("fcm send".into());
                        return (StatusCode::UNAUTHORIZED, r#"{"error":{"status":"UNAUTHENTICATED"}}"#.to_string());
                    }
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let token = v["message"]["token"].as_str().unwrap_or("").to_string();
                    if token == "fcm-gone" {
                        return (
                            StatusCode::NOT_FOUND,
                            r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",
                               "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#
                                .to_string(),
                        );
                    }
                    let title = v["message"]["notification"]["title"].as_str().unwrap_or("").to_string();
                    let mut accepted = log.accepted.lock().unwrap();
                    accepted.push(("fcm".into(), token, title));
                    (StatusCode::OK, format!(r#"{{"name":"projects/proj-1/messages/{}"}}"#, accepted.len()))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// A loopback HTTP/2 stand-in for APNs, checking the ES256 provider token with the key's public
/// point, the topic and the push type.
async fn apns_receiver(public_point: Vec<u8>, log: PushLog) -> String {
    use axum::extract::Path as UrlPath;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/3/device/{token}",
        axum::routing::post(
            move |UrlPath(token): UrlPath<String>,
                  version: axum::http::Version,
                  headers: HeaderMap,
                  body: String| {
                let (key, log) = (public_point.clone(), log.clone());
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string()
                    };
                    let bearer = header("authorization");
                    let verify = |m: &[u8], s: &[u8]| {
                        ring::signature::UnparsedPublicKey::new(
                            &ring::signature::ECDSA_P256_SHA256_FIXED,
                            &key,
                        )
                        .verify(m, s)
                        .is_ok()
                    };
                    let good = version == axum::http::Version::HTTP_2
                        && header("apns-topic") == "com.shop.app"
                        && header("apns-push-type") == "alert"
                        && jwt_claims(
                            bearer
                                .strip_prefix("Bearer ")
                                .or(bearer.strip_prefix("bearer "))
                                .unwrap_or(""),
                            verify,
                        )
                        .is_some_and(|(h, c)| {
                            h["alg"] == "ES256"
                                && h["kid"] == "KEY1234567"
                                && c["iss"] == "TEAM123456"
                        });
                    let mut reply = axum::http::HeaderMap::new();
                    if !good {
                        log.refused_credentials
                            .lock()
                            .unwrap()
                            .push(format!("apns {version:?}"));
                        return (
                            StatusCode::FORBIDDEN,
                            reply,
                            r#"{"reason":"InvalidProviderToken"}"#.to_string(),
                        );
                    }
                    if token == "0bad" {
                        return (
                            StatusCode::BAD_REQUEST,
                            reply,
                            r#"{"reason":"BadDeviceToken"}"#.to_string(),
                        );
                    }
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    let title = v["aps"]["alert"]["title"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let mut accepted = log.accepted.lock().unwrap();
                    accepted.push(("apns".into(), token, title));
                    reply.insert(
                        "apns-id",
                        format!("apns-{}", accepted.len()).parse().unwrap(),
                    );
                    (StatusCode::OK, reply, String::new())
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// An RSA service account key (PKCS#8 PEM, PKCS#1 public DER) and an APNs `.p8` key (PKCS#8 PEM,
/// uncompressed public point), made by `openssl`.
fn push_keys(dir: &Path) -> (String, Vec<u8>, PathBuf, Vec<u8>) {
    let run = |args: &[&str]| openssl(dir, args);
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "sa.pem",
    ]);
    run(&[
        "rsa",
        "-in",
        "sa.pem",
        "-RSAPublicKey_out",
        "-outform",
        "DER",
        "-out",
        "sa.pub.der",
    ]);
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "apns.p8",
    ]);
    run(&[
        "pkey",
        "-in",
        "apns.p8",
        "-pubout",
        "-outform",
        "DER",
        "-out",
        "apns.pub.der",
    ]);
    let spki = std::fs::read(dir.join("apns.pub.der")).unwrap();
    (
        std::fs::read_to_string(dir.join("sa.pem")).unwrap(),
        std::fs::read(dir.join("sa.pub.der")).unwrap(),
        dir.join("apns.p8"),
        spki[spki.len() - 65..].to_vec(),
    )
}

#[test]
fn push_goes_to_fcm_and_to_apns_by_the_tokens_platform() {
    use loyalty_server::outbound::apns::ApnsSettings;
    use loyalty_server::outbound::fcm::FcmSettings;
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (sa_pem, sa_public, p8, apns_public) = push_keys(dir.path());
        let log = PushLog::default();
        let fcm_base = fcm_receiver(sa_public, log.clone()).await;
        let apns_base = apns_receiver(apns_public, log.clone()).await;
        let account = serde_json::json!({
            "type": "service_account", "project_id": "proj-1",
            "client_email": "push@proj-1.iam.gserviceaccount.com",
            "private_key": sa_pem, "token_uri": format!("{fcm_base}/token"),
        });
        let account_file = dir.path().join("service-account.json");
        std::fs::write(&account_file, account.to_string()).unwrap();
        let settings = OutboundSettings {
            fcm: Some(FcmSettings {
                service_account: account_file,
                endpoint: fcm_base,
            }),
            apns: Some(ApnsSettings {
                key_file: p8,
                key_id: "KEY1234567".into(),
                team_id: "TEAM123456".into(),
                topic: "com.shop.app".into(),
                endpoint: apns_base,
            }),
            ..Default::default()
        };
        assert_eq!(
            settings.via(loyalty_server::outbound::OutboundChannel::Push),
            Via::Platform
        );
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let server = server_with(dir.path(), clock, &settings).await;
        let op = server.operator();
        let (anna, _) = member(&server, dir.path(), "anna", "push", "fcm:tok-anna").await;
        let (ben, _) = member(&server, dir.path(), "ben", "push", "fcm-gone").await;
        let (cleo, _) = member(&server, dir.path(), "cleo", "push", "apns:00aa11ff").await;
        let (dan, _) = member(&server, dir.path(), "dan", "push", "apns:0bad").await;

        op.send_message(&send("ready", "push", &[&anna, &ben, &cleo, &dan]))
            .await
            .unwrap();
        let list = settled(&op, "ready").await;
        let state = |m: &str| {
            let d = of(&list, m);
            (
                d.status.clone(),
                d.reason.clone().unwrap_or_default(),
                d.detail.clone().unwrap_or_default(),
            )
        };
        assert_eq!(state(&anna).0, "handed_over", "{list:?}");
        assert!(
            state(&anna).2.starts_with("projects/proj-1/messages/"),
            "{list:?}"
        );
        assert_eq!(
            (state(&cleo).0, state(&cleo).2.starts_with("apns-")),
            ("handed_over".into(), true),
            "{:?}",
            state(&cleo)
        );
        for gone in [&ben, &dan] {
            assert_eq!(
                (state(gone).0, state(gone).1),
                ("failed".into(), "bad_address".into()),
                "{list:?}"
            );
        }
        assert!(state(&ben).2.contains("UNREGISTERED") && state(&dan).2.contains("BadDeviceToken"));

        let mut accepted = log.accepted.lock().unwrap().clone();
        accepted.sort();
        let title = "Subject of ready".to_string();
        assert_eq!(
            accepted,
            [
                ("apns".to_string(), "00aa11ff".to_string(), title.clone()),
                ("fcm".to_string(), "tok-anna".to_string(), title),
            ]
        );
        assert!(log.refused_credentials.lock().unwrap().is_empty());
        assert_eq!(
            *log.token_grants.lock().unwrap(),
            1,
            "the access token is kept, not fetched per push"
        );
        server.stop().await;
    });
}
