//! # loyalty-ffi
//!
//! The UniFFI surface over `loyalty-core`: the only API Kotlin and Swift developers see. This crate
//! only adapts types and errors; all behaviour lives in the core's [`loyalty_core::Device`].
//!
//! - [`LoyaltyClient`]: one object per member store, opened on a database path and a server URL,
//!   with the host's [`SecretStore`] and an optional [`ChangeListener`] (both foreign traits).
//! - Every method that can touch the network or the disk is `async` (Kotlin `suspend`, Swift
//!   `async`); disk work runs on tokio's blocking pool, so no caller thread is held.
//! - Every failure is one [`LoyaltyError`]; nothing panics across the boundary.
//!
//! The generated Kotlin and Swift, and the small idiomatic layers over them, live in `android/`
//! and `ios/`; `scripts/mobile-tests.sh` generates them from this very library and tests them.

mod convert;
mod error;
mod reasons;

use std::collections::HashMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use loyalty_core::Device;
use loyalty_core::clock::SystemClock;
use loyalty_core::secrets::{SecretStore as CoreSecretStore, SecretStoreError as CoreSecretError};
use tokio::sync::broadcast::error::RecvError;

pub use convert::*;
pub use error::{LoyaltyError, SecretStoreError};
pub use reasons::*;

uniffi::setup_scaffolding!();

/// The version of the core this library was built from.
#[uniffi::export]
pub fn core_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Where the host keeps secrets: the Android Keystore (an encrypted store keyed by it), the iOS
/// Keychain. The core keeps its checkout signing key here, never in the database file. Throwing
/// [`SecretStoreError`] (or any other exception) reaches the app as [`LoyaltyError::Storage`].
#[uniffi::export(with_foreign)]
pub trait SecretStore: Send + Sync {
    fn get(&self, name: String) -> Result<Option<Vec<u8>>, SecretStoreError>;
    fn put(&self, name: String, value: Vec<u8>) -> Result<(), SecretStoreError>;
    fn delete(&self, name: String) -> Result<(), SecretStoreError>;
}

/// Told which documents a sync changed, so the UI can refresh. Called on a background thread,
/// one call at a time, in order; do not block in it.
#[uniffi::export(with_foreign)]
pub trait ChangeListener: Send + Sync {
    fn on_change(&self, documents: Vec<Document>);
}

/// The core's view of the host's secret store.
struct HostSecrets(Arc<dyn SecretStore>);

impl CoreSecretStore for HostSecrets {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, CoreSecretError> {
        self.0
            .get(name.to_string())
            .map_err(|e| CoreSecretError(e.to_string()))
    }
    fn put(&self, name: &str, value: &[u8]) -> Result<(), CoreSecretError> {
        self.0
            .put(name.to_string(), value.to_vec())
            .map_err(|e| CoreSecretError(e.to_string()))
    }
    fn delete(&self, name: &str) -> Result<(), CoreSecretError> {
        self.0
            .delete(name.to_string())
            .map_err(|e| CoreSecretError(e.to_string()))
    }
}

/// One member's loyalty data on this device: card, offers, inbox, requests, preferences, checkout
/// code.
/// Every read is answered from the local store (works offline); actions are recorded locally at
/// once and reach the server at the next [`LoyaltyClient::sync`]. Safe to share between threads
/// and to call concurrently.
#[derive(uniffi::Object)]
pub struct LoyaltyClient {
    device: Arc<Device>,
    server_url: String,
    /// The background watch, if started.
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for LoyaltyClient {
    fn drop(&mut self) {
        self.stop_watching();
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl LoyaltyClient {
    /// Opens (or creates) the member store at `database_path`; talks to `server_url`. A
    /// `listener` is told after every sync that changed something.
    #[uniffi::constructor]
    pub fn new(
        database_path: String,
        server_url: String,
        secret_store: Arc<dyn SecretStore>,
        listener: Option<Arc<dyn ChangeListener>>,
    ) -> Result<Arc<Self>, LoyaltyError> {
        if !(server_url.starts_with("http://") || server_url.starts_with("https://")) {
            return Err(LoyaltyError::InvalidInput {
                detail: format!("the server URL must start with http:// or https://: {server_url}"),
            });
        }
        let secrets: Arc<dyn CoreSecretStore> = Arc::new(HostSecrets(secret_store));
        let device = Arc::new(Device::open_with(
            &database_path,
            Arc::new(SystemClock),
            Some(secrets),
        )?);
        device.use_server_url(&server_url);
        if let Some(listener) = listener {
            forward_changes(&device, listener)?;
        }
        Ok(Arc::new(Self {
            device,
            server_url,
            watcher: Mutex::new(None),
        }))
    }

    /// Enrolls this device with the activation code the member got from the retailer. Does not
    /// sync: call [`LoyaltyClient::sync`] next.
    pub async fn enroll(
        &self,
        activation_code: String,
        device_name: String,
    ) -> Result<Enrollment, LoyaltyError> {
        let url = self.server_url.clone();
        self.spawn(move |d| async move { d.enroll(&url, &activation_code, &device_name).await })
            .await?;
        self.enrollment().ok_or(LoyaltyError::NotEnrolled)
    }

    /// Signs this device out: stops watching, then wipes the member's documents, the
    /// credentials and the checkout key (deleted from the [`SecretStore`] too), so the store is
    /// as new and [`LoyaltyClient::enroll`] works again with a new activation code. The way back
    /// when the server refuses the device (`Unauthorized`: revoked) and the "sign out" of an app.
    /// Local only (the server is not told); changes not yet synced are lost, so sync first if
    /// the server still accepts the device. The listener hears that every document changed.
    pub async fn reset(&self) -> Result<(), LoyaltyError> {
        self.stop_watching();
        self.spawn(|d| async move { d.reset().await }).await
    }

    /// Who this device is enrolled as; `None` before [`LoyaltyClient::enroll`].
    pub fn enrollment(&self) -> Option<Enrollment> {
        self.device.credentials().map(Enrollment::from)
    }

    pub fn is_enrolled(&self) -> bool {
        self.device.is_enrolled()
    }

    /// Sends this device's changes and fetches the server's, until both agree.
    pub async fn sync(&self) -> Result<SyncReport, LoyaltyError> {
        Ok(self.spawn(|d| async move { d.sync().await }).await?.into())
    }

    /// Keeps the data live while the app shows it, until [`LoyaltyClient::stop_watching`]: in
    /// the background, waits on the server's change feed and syncs as soon as something changes
    /// (a purchase at the till, a new offer), so the listener hears of it within a round trip.
    /// Rides out the network coming and going; stops by itself only if the server refuses the
    /// device (the next `sync` reports why). Calling it again while watching does nothing.
    pub async fn start_watching(&self) -> Result<(), LoyaltyError> {
        if !self.device.is_enrolled() {
            return Err(LoyaltyError::NotEnrolled);
        }
        let mut watcher = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if watcher.as_ref().is_some_and(|w| !w.is_finished()) {
            return Ok(());
        }
        let device = Arc::clone(&self.device);
        *watcher = Some(tokio::spawn(async move {
            if let Err(e) = device.watch().await {
                tracing::warn!(error = %e, "watching stopped");
            }
        }));
        Ok(())
    }

    /// Stops [`LoyaltyClient::start_watching`]'s background work (a sync under way is cut off
    /// like a dropped connection; nothing acknowledged is lost). Closing the client stops it too.
    pub fn stop_watching(&self) {
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(w) = watcher {
            w.abort();
        }
    }

    /// Whether the background watch started by [`LoyaltyClient::start_watching`] is running.
    pub fn is_watching(&self) -> bool {
        self.watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|w| !w.is_finished())
    }

    /// The server's time as this device best knows it, in milliseconds since the epoch.
    pub fn server_now_ms(&self) -> i64 {
        self.device.server_now_ms()
    }

    /// The card (number, status, tier, balance, recent ledger); `None` before the first sync.
    pub async fn card(&self) -> Result<Option<Card>, LoyaltyError> {
        Ok(self.blocking(|d| d.card()).await?.map(Card::from))
    }

    /// The points balance; 0 before the first sync.
    pub async fn balance(&self) -> Result<i64, LoyaltyError> {
        Ok(self.card().await?.map(|c| c.balance).unwrap_or(0))
    }

    /// Recent ledger entries (earned, spent, expired points), as the card holds them.
    pub async fn ledger(&self) -> Result<Vec<LedgerEntry>, LoyaltyError> {
        Ok(self.card().await?.map(|c| c.ledger).unwrap_or_default())
    }

    /// The member's offers, as they stand now on server time, keeping those `filter` selects.
    pub async fn offers(&self, filter: OfferFilter) -> Result<Vec<Offer>, LoyaltyError> {
        let all = self.blocking(|d| d.offers()).await?;
        Ok(all
            .into_iter()
            .map(Offer::from)
            .filter(|o| filter.keeps(o))
            .collect())
    }

    /// Activates ("clips") an offer. Works offline; reaches the server at the next sync.
    pub async fn activate_offer(&self, offer_id: String) -> Result<(), LoyaltyError> {
        self.blocking(move |d| d.activate_offer(&offer_id)).await
    }

    /// The member's messages, newest first, keeping those `filter` selects.
    pub async fn messages(&self, filter: MessageFilter) -> Result<Vec<Message>, LoyaltyError> {
        let all = self.blocking(|d| d.messages()).await?;
        Ok(all
            .into_iter()
            .map(Message::from)
            .filter(|m| filter.keeps(m))
            .collect())
    }

    pub async fn mark_read(&self, message_id: String) -> Result<(), LoyaltyError> {
        self.blocking(move |d| d.mark_read(&message_id)).await
    }

    pub async fn archive(&self, message_id: String) -> Result<(), LoyaltyError> {
        self.blocking(move |d| d.archive(&message_id)).await
    }

    /// The member's preferences (name → value).
    pub async fn preferences(&self) -> Result<HashMap<String, String>, LoyaltyError> {
        let state = self.blocking(|d| d.member_state()).await?;
        Ok(state.preferences.into_iter().collect())
    }

    pub async fn set_preference(&self, name: String, value: String) -> Result<(), LoyaltyError> {
        self.blocking(move |d| d.set_preference(&name, &value))
            .await
    }

    /// The member's consents, one per channel they have answered for.
    pub async fn consents(&self) -> Result<Vec<Consent>, LoyaltyError> {
        let state = self.blocking(|d| d.member_state()).await?;
        Ok(state
            .consents
            .into_iter()
            .filter_map(|(channel, c)| {
                ConsentChannel::parse(&channel).map(|channel| Consent {
                    channel,
                    granted: c.granted,
                    at_ms: c.at_ms,
                })
            })
            .collect())
    }

    pub async fn set_consent(
        &self,
        channel: ConsentChannel,
        granted: bool,
    ) -> Result<(), LoyaltyError> {
        self.blocking(move |d| d.set_consent(channel.as_str(), granted))
            .await
    }

    /// Opens a question or complaint to the retailer. Works offline: recorded at once, sent at
    /// the next sync. Returns the request's id.
    pub async fn open_request(
        &self,
        kind: RequestKind,
        subject: String,
        body: String,
    ) -> Result<String, LoyaltyError> {
        self.blocking(move |d| d.open_request(kind.as_str(), &subject, &body))
            .await
    }

    /// Adds the member's follow-up to one of their requests (not a closed one). Works offline.
    pub async fn add_followup(&self, request_id: String, body: String) -> Result<(), LoyaltyError> {
        self.blocking(move |d| d.add_followup(&request_id, &body))
            .await
    }

    /// The member's requests with the retailer's replies and their status, the most recently
    /// active first.
    pub async fn requests(&self) -> Result<Vec<MemberRequest>, LoyaltyError> {
        let all = self.blocking(|d| d.requests()).await?;
        Ok(all.into_iter().map(MemberRequest::from).collect())
    }

    /// The code to show at the till now, made offline: its text, its QR modules and when to show
    /// the next one.
    /// Sets the member's till PIN: 4 to 8 digits, not one digit repeated nor a run of consecutive
    /// digits (`InvalidInput` otherwise). With it, a till that has only the member's card number
    /// (a printed or plastic card) may let them pay with points. Needs the network; the PIN is never
    /// kept on the phone.
    pub async fn set_pin(&self, pin: String) -> Result<(), LoyaltyError> {
        self.spawn(move |d| async move { d.set_pin(&pin).await })
            .await
    }

    /// Links a plastic card (its 16 digits, as printed) to the member, so a till that scans it
    /// knows them; answers the member's linked cards. Linking it again changes nothing; a card
    /// another member holds or one reported lost is `ServerRejected` with code `card_taken`.
    pub async fn link_card(&self, card_number: String) -> Result<Vec<LinkedCard>, LoyaltyError> {
        let cards = self
            .spawn(move |d| async move { d.link_card(&card_number).await })
            .await?;
        Ok(cards.into_iter().map(LinkedCard::from).collect())
    }

    pub async fn checkout_code(&self) -> Result<CheckoutCode, LoyaltyError> {
        let code = self.blocking(|d| d.checkout_code()).await?;
        CheckoutCode::try_from(code)
    }
}

impl LoyaltyClient {
    /// Runs the core's async work as a task on the library's runtime, not in the caller's poll:
    /// UniFFI polls a future on the thread that awaits it (maybe the app's main thread), and a
    /// sync applies documents and writes SQLite between its network round trips. A caller that
    /// stops waiting (a cancelled coroutine) does not stop the task: an enrollment or a sync
    /// under way finishes, so the server and the device never disagree about what happened.
    async fn spawn<T, F, Fut>(&self, f: F) -> Result<T, LoyaltyError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Device>) -> Fut,
        Fut: Future<Output = Result<T, loyalty_core::Error>> + Send + 'static,
    {
        match tokio::spawn(f(Arc::clone(&self.device))).await {
            Ok(result) => Ok(result?),
            Err(e) => Err(LoyaltyError::Storage {
                detail: format!("internal failure: {e}"),
            }),
        }
    }

    /// Runs `f` on tokio's blocking pool: the store's SQLite writes (fsync'd) and the host's
    /// secret store may take a while, and must not hold up the runtime's workers.
    async fn blocking<T, F>(&self, f: F) -> Result<T, LoyaltyError>
    where
        T: Send + 'static,
        F: FnOnce(&Device) -> Result<T, loyalty_core::Error> + Send + 'static,
    {
        let device = Arc::clone(&self.device);
        match tokio::task::spawn_blocking(move || f(&device)).await {
            Ok(result) => Ok(result?),
            // A panic in the core stays on this side: the app gets an error, never a crash.
            Err(e) => Err(LoyaltyError::Storage {
                detail: format!("internal failure: {e}"),
            }),
        }
    }
}

/// Forwards the core's change notifications to the host's listener on a thread of their own,
/// which ends when the device is dropped (its sender closes the channel).
fn forward_changes(device: &Device, listener: Arc<dyn ChangeListener>) -> Result<(), LoyaltyError> {
    let mut changes = device.subscribe();
    std::thread::Builder::new()
        .name("loyalty-changes".into())
        .spawn(move || {
            loop {
                let kinds = match changes.blocking_recv() {
                    Ok(kinds) => kinds,
                    // Missed notifications: the app re-reads everything anyway, so say "all".
                    Err(RecvError::Lagged(_)) => loyalty_core::DocKind::ALL.to_vec(),
                    Err(RecvError::Closed) => return,
                };
                let documents = kinds.into_iter().map(Document::from).collect();
                // A listener that throws must not take the thread (or the app) down with it.
                if catch_unwind(AssertUnwindSafe(|| listener.on_change(documents))).is_err() {
                    tracing::warn!("the change listener failed");
                }
            }
        })
        .map(|_| ())
        .map_err(|e| LoyaltyError::Storage {
            detail: format!("cannot start the change thread: {e}"),
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_the_workspace_version() {
        assert_eq!(super::core_version(), "0.1.0");
    }
}
