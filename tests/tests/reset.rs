//! A phone the server no longer accepts (revoked, or reset by its owner) signs out and enrolls
//! again, as the mobile docs advise: the store's documents and credentials and the checkout key in
//! the host's secret store are wiped, and a new activation code brings the member's data back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use loyalty_core::secrets::{SIGNING_KEY, SecretStore, SecretStoreError};
use loyalty_core::{Device, Error, SystemClock};
use loyalty_tests::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The platform secret store stand-in (the Keychain, the Keystore).
#[derive(Default)]
struct MapSecrets(Mutex<HashMap<String, Vec<u8>>>);

impl MapSecrets {
    fn key(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(SIGNING_KEY).cloned()
    }
}

impl SecretStore for MapSecrets {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SecretStoreError> {
        Ok(self.0.lock().unwrap().get(name).cloned())
    }
    fn put(&self, name: &str, value: &[u8]) -> Result<(), SecretStoreError> {
        self.0.lock().unwrap().insert(name.into(), value.to_vec());
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<(), SecretStoreError> {
        self.0.lock().unwrap().remove(name);
        Ok(())
    }
}

#[test]
fn a_revoked_phone_resets_enrolls_again_and_has_its_balance_back() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let op = server.operator();
        let till = server.till("till-1");
        let secrets = Arc::new(MapSecrets::default());
        let path = dir.path().join("phone.db");
        let open = || Device::open_with(&path, Arc::new(SystemClock), Some(secrets.clone()));
        let phone = open().unwrap();
        let member = op.create_member(None).await.unwrap();
        phone
            .enroll(&server.url, &member.activation_code, "phone")
            .await
            .unwrap();
        let session = till
            .scan(&phone.checkout_code().unwrap().text)
            .await
            .unwrap()
            .session_id;
        till.purchase(&purchase(&session, "p-1", 4_250, 0))
            .await
            .unwrap();
        phone.sync().await.unwrap();
        let balance = phone.card().unwrap().unwrap().balance;
        assert!(balance > 0);
        let old_key = secrets.key().expect("the key lives in the host's store");
        let old_device = phone.credentials().unwrap().device_id;

        // The operator revokes the phone: it is refused, and cannot simply enroll again.
        op.revoke_device(&old_device).await.unwrap();
        let refused = phone.sync().await.unwrap_err();
        assert!(
            matches!(
                refused,
                Error::Server {
                    status: 401 | 403,
                    ..
                }
            ),
            "{refused}"
        );
        let code = op.activation_code(&member.member_id).await.unwrap();
        assert!(matches!(
            phone
                .enroll(&server.url, &code.activation_code, "phone")
                .await,
            Err(Error::AlreadyEnrolled { .. })
        ));

        // Reset: nothing of the member is left, on disk or in the secret store.
        phone.set_preference("language", "fr").unwrap();
        let mut changes = phone.subscribe();
        phone.reset().await.unwrap();
        assert_eq!(
            changes.try_recv().unwrap().len(),
            4,
            "the app is told to redraw"
        );
        assert!(!phone.is_enrolled());
        assert_eq!(secrets.key(), None);
        assert_eq!(phone.card().unwrap(), None);
        assert!(phone.offers().unwrap().is_empty());
        assert!(phone.member_state().unwrap().preferences.is_empty());
        assert!(matches!(phone.sync().await, Err(Error::NotEnrolled)));
        assert!(matches!(phone.checkout_code(), Err(Error::NotEnrolled)));
        drop(phone);
        let phone = open().unwrap();
        assert!(!phone.is_enrolled(), "the reset is on disk");

        // Enrolled again with a new code and a new key: the balance is back after one sync.
        phone
            .enroll(&server.url, &code.activation_code, "phone")
            .await
            .unwrap();
        phone.sync().await.unwrap();
        assert_eq!(phone.card().unwrap().unwrap().balance, balance);
        assert_eq!(phone.credentials().unwrap().member_id, member.member_id);
        assert_ne!(phone.credentials().unwrap().device_id, old_device);
        assert_ne!(secrets.key().unwrap(), old_key);
        // Its codes work at the till; member edits reach the server as before.
        till.scan(&phone.checkout_code().unwrap().text)
            .await
            .unwrap();
        phone.set_preference("language", "de").unwrap();
        phone.sync().await.unwrap();
        let seen = op.member(&member.member_id).await.unwrap().member;
        assert_eq!(
            seen.preferences.get("language").map(String::as_str),
            Some("de")
        );
    });
}

#[test]
fn a_reset_of_a_store_without_a_host_secret_store_forgets_the_key_too() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let path = dir.path().join("phone.db");
        let (_, phone) = member_with_device(&server.url, &server.operator(), &path).await;
        phone.checkout_code().unwrap();
        phone.reset().await.unwrap();
        drop(phone);
        let store = loyalty_core::store::Store::open(&path).unwrap();
        assert_eq!(store.secret(SIGNING_KEY).unwrap(), None);
        assert_eq!(store.credentials().unwrap(), None);
        // Resetting an empty store is fine too.
        Device::open(&path).unwrap().reset().await.unwrap();
    });
}
