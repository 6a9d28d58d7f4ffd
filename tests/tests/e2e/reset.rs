//! A phone the server no longer accepts (revoked, or reset by its owner) signs out and enrolls
//! again, as the mobile docs advise: the store's documents and credentials and the checkout key in
//! the host's secret store are wiped, and a new activation code brings the member's data back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use loyalty_core::checkout_code::{ParsedCode, SigningKey};
use loyalty_core::secrets::{SIGNING_KEY, SecretStore, SecretStoreError};
use loyalty_core::{Device, Error, SystemClock};
use loyalty_tests::*;

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

/// Whether the key stored as `pkcs8` signed the code `text`.
fn signed_by(text: &str, pkcs8: &[u8]) -> bool {
    let key = SigningKey::from_pkcs8(pkcs8).unwrap();
    let parsed = ParsedCode::parse(text).unwrap();
    parsed.key_id == key.key_id() && parsed.verify_signature(&key.public_key()).is_ok()
}

#[test]
fn the_cached_checkout_key_signs_until_a_reset_and_the_new_key_after_enrolling_again() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let op = server.operator();
        let till = server.till("till-1");
        let secrets = Arc::new(MapSecrets::default());
        let path = dir.path().join("phone.db");
        let open = || Device::open_with(&path, Arc::new(SystemClock), Some(secrets.clone()));
        let member = op.create_member(None).await.unwrap();
        open()
            .unwrap()
            .enroll(&server.url, &member.activation_code, "phone")
            .await
            .unwrap();
        let old_key = secrets.key().unwrap();

        // Reopened: the first code reads the key from the host's store, later ones use it from
        // memory (the host's copy is taken away behind the device's back to show it).
        let phone = open().unwrap();
        let first = phone.checkout_code().unwrap();
        assert!(signed_by(&first.text, &old_key));
        till.scan(&first.text).await.unwrap();
        secrets.delete(SIGNING_KEY).unwrap();
        assert!(signed_by(&phone.checkout_code().unwrap().text, &old_key));
        secrets.put(SIGNING_KEY, &old_key).unwrap();

        // A reset forgets the cached key with the rest: no code until the phone enrolls again.
        phone.reset().await.unwrap();
        assert!(matches!(phone.checkout_code(), Err(Error::NotEnrolled)));
        let again = op.activation_code(&member.member_id).await.unwrap();
        phone
            .enroll(&server.url, &again.activation_code, "phone")
            .await
            .unwrap();
        let new_key = secrets.key().unwrap();
        assert_ne!(new_key, old_key);
        for _ in 0..3 {
            let code = phone.checkout_code().unwrap();
            assert!(signed_by(&code.text, &new_key), "the new key signs");
            assert!(!signed_by(&code.text, &old_key), "the old key never again");
        }
        let scan = till
            .scan(&phone.checkout_code().unwrap().text)
            .await
            .unwrap();
        assert_eq!(scan.member_id, member.member_id);
        // Reopened after the new enrollment, the key comes from the store: still the new one.
        drop(phone);
        let phone = open().unwrap();
        assert!(signed_by(&phone.checkout_code().unwrap().text, &new_key));
    });
}

/// A host secret store whose next read, once armed, takes the stored value and then waits for the
/// test to let it return: a slow Keychain read that a reset and a new enrollment overtake.
struct HeldSecrets {
    map: MapSecrets,
    armed: AtomicBool,
    reached: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl SecretStore for HeldSecrets {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SecretStoreError> {
        let value = self.map.get(name)?;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.lock().unwrap().send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
        }
        Ok(value)
    }
    fn put(&self, name: &str, value: &[u8]) -> Result<(), SecretStoreError> {
        self.map.put(name, value)
    }
    fn delete(&self, name: &str) -> Result<(), SecretStoreError> {
        self.map.delete(name)
    }
}

#[test]
fn a_key_read_that_a_reset_and_a_new_enrollment_overtake_never_signs() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(dir.path()).await;
        let op = server.operator();
        let (reached_tx, reached) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let secrets = Arc::new(HeldSecrets {
            map: MapSecrets::default(),
            armed: AtomicBool::new(false),
            reached: Mutex::new(reached_tx),
            release: Mutex::new(release_rx),
        });
        let path = dir.path().join("phone.db");
        let member = op.create_member(None).await.unwrap();
        let open = || Device::open_with(&path, Arc::new(SystemClock), Some(secrets.clone()));
        open()
            .unwrap()
            .enroll(&server.url, &member.activation_code, "phone")
            .await
            .unwrap();
        let old_key = secrets.map.key().unwrap();
        // Reopened, so the next code has to read the key.
        let phone = Arc::new(open().unwrap());

        secrets.armed.store(true, Ordering::SeqCst);
        let reader = {
            let phone = phone.clone();
            std::thread::spawn(move || phone.checkout_code())
        };
        // The read has the old key in hand; now the owner resets and enrolls again.
        reached.recv().unwrap();
        phone.reset().await.unwrap();
        let again = op.activation_code(&member.member_id).await.unwrap();
        phone
            .enroll(&server.url, &again.activation_code, "phone")
            .await
            .unwrap();
        let new_key = secrets.map.key().unwrap();
        assert_ne!(new_key, old_key);
        release.send(()).unwrap();

        // The overtaken read's code, and every later one, comes from the new key.
        let overtaken = reader.join().unwrap().unwrap();
        assert!(signed_by(&overtaken.text, &new_key));
        assert!(!signed_by(&overtaken.text, &old_key));
        let next = phone.checkout_code().unwrap();
        assert!(signed_by(&next.text, &new_key));
        server.till("till-1").scan(&next.text).await.unwrap();
    });
}
