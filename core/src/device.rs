//! [`Device`]: the one object an app drives. It owns the local store and the in-memory documents,
//! answers every read from them (so the app works offline), validates and records the member's
//! actions, and syncs with the server when asked.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit};
use serde::Serialize;

use crate::api::{self, EnrollRequest, EnrollResponse};
use crate::budget;
use crate::card::{self, Card};
use crate::checkout_code::{self, CheckoutCode, SigningKey, generate_key_pair};
use crate::clock::{Clock, SystemClock};
use crate::document::{DocKind, Writer};
use crate::error::Error;
use crate::inbox::{self, MessageView};
use crate::member::{self, MemberState};
use crate::offers::{self, OfferState, OfferView};
use crate::protocol::{self, Rejection, SyncRequest, SyncResponse, codes};
use crate::requests::{self, RequestView};
use crate::secrets::{SIGNING_KEY, SecretStore};
use crate::store::{Credentials, Store};
use crate::sync::{self as algo, DeviceOutcome, MAX_ROUNDS};

const CLOCK_OFFSET_KEY: &str = "clock_offset_ms";
/// A learned clock offset is stored again only when it moved by at least this much.
const CLOCK_PERSIST_THRESHOLD_MS: i64 = 250;
/// Reads of the checkout key from the secret store before [`Device::checkout_code`] gives up: a
/// read is only retried when a reset or an enrollment overtook it, which a person does not do
/// several times within one read.
const KEY_READ_ATTEMPTS: usize = 3;

/// What one call to [`Device::sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// HTTP round trips.
    pub round_trips: usize,
    /// Request and response body bytes.
    pub bytes_sent: usize,
    pub bytes_received: usize,
    /// Documents whose content changed on this device.
    pub changed: Vec<DocKind>,
    /// Documents the server refused data for, with its reason.
    pub rejected: Vec<(DocKind, Rejection)>,
    /// Documents the server had started afresh (a new epoch), which this sync replaced.
    pub new_epochs: Vec<DocKind>,
}

struct Inner {
    store: Store,
    docs: Vec<AutoCommit>,
    /// The epoch of each document's copy, by [`DocKind::index`].
    epochs: Vec<u64>,
    credentials: Option<Credentials>,
    clock_offset_ms: i64,
    /// The checkout key, parsed once: a code then costs one signature, not a read of the secret
    /// store and a key parse. Set by enrollment or read on first use; emptied by a reset, so it
    /// never outlives the enrollment it belongs to. A key read from the secret store is only
    /// installed if `key_epoch` has not moved meanwhile (see [`Device::checkout_code`]).
    signing_key: Option<SigningKey>,
    /// Moves on at every reset and enrollment. A key read while either ran may be the old one.
    key_epoch: u64,
}

impl Inner {
    fn doc(&mut self, kind: DocKind) -> &mut AutoCommit {
        &mut self.docs[kind.index()]
    }
}

pub struct Device {
    inner: Mutex<Inner>,
    /// Serialises syncs: two at once would fight over the same sync states.
    sync_lock: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// The host's secret store; `None` keeps secrets in the store file.
    secrets: Option<Arc<dyn SecretStore>>,
    /// Told which documents changed after every sync that changed something.
    changes: tokio::sync::broadcast::Sender<Vec<DocKind>>,
}

impl Device {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with_clock(path, Arc::new(SystemClock))
    }

    pub fn open_with_clock(path: impl AsRef<Path>, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        Self::open_with(path, clock, None)
    }

    /// Opens with the host's clock and secret store (`None`: secrets stay in the store file).
    pub fn open_with(
        path: impl AsRef<Path>,
        clock: Arc<dyn Clock>,
        secrets: Option<Arc<dyn SecretStore>>,
    ) -> Result<Self, Error> {
        let store = Store::open(path)?;
        // A fresh actor per open: two processes that open the same file can never reuse one actor's
        // sequence numbers.
        let actor = ActorId::random();
        let mut docs = Vec::with_capacity(DocKind::ALL.len());
        let mut epochs = Vec::with_capacity(DocKind::ALL.len());
        for kind in DocKind::ALL {
            let mut doc = store.load_doc(kind)?;
            doc.set_actor(actor.clone());
            docs.push(doc);
            epochs.push(store.epoch(kind)?);
        }
        let credentials = store.credentials()?;
        let clock_offset_ms = store
            .setting(CLOCK_OFFSET_KEY)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            // Well under the server's 10 s idle limit: a pooled connection is never reused just
            // as the server closes it (docs/protocol.md, "Timeouts and load").
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Offline(e.to_string()))?;
        Ok(Self {
            inner: Mutex::new(Inner {
                store,
                docs,
                epochs,
                credentials,
                clock_offset_ms,
                signing_key: None,
                key_epoch: 0,
            }),
            sync_lock: tokio::sync::Mutex::new(()),
            http,
            clock,
            secrets,
            changes: tokio::sync::broadcast::channel(64).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the documents half-written (every write is
        // committed or rolled back before the lock is released), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn credentials(&self) -> Option<Credentials> {
        self.lock().credentials.clone()
    }

    pub fn is_enrolled(&self) -> bool {
        self.lock().credentials.is_some()
    }

    /// The server's time as this device best knows it (its clock corrected at the last sync).
    pub fn server_now_ms(&self) -> i64 {
        self.clock.now_ms() + self.lock().clock_offset_ms
    }

    /// Points an enrolled device at `server_url` for as long as this `Device` is open: the server
    /// address the app is configured with wins over the one it enrolled with (a moved host, a
    /// staging build). The mobile bindings call this when an app opens its store with a URL.
    /// Nothing is stored, so reopening without it goes back to the enrollment URL. Before
    /// enrollment it does nothing: [`Device::enroll`] takes the URL then.
    pub fn use_server_url(&self, server_url: &str) {
        let server_url = server_url.trim_end_matches('/');
        if let Some(credentials) = self.lock().credentials.as_mut() {
            credentials.server_url = server_url.to_string();
        }
    }

    /// Enrolls this device with an activation code from the operator. Does not sync: call
    /// [`Device::sync`] next.
    pub async fn enroll(
        &self,
        server_url: &str,
        activation_code: &str,
        device_name: &str,
    ) -> Result<(), Error> {
        if let Some(c) = self.credentials() {
            return Err(Error::AlreadyEnrolled {
                member_id: c.member_id,
            });
        }
        let server_url = server_url.trim_end_matches('/').to_string();
        // The key is kept before the server hears of it: a key the server knows but the device lost
        // would make an enrolled device that can never show a code.
        let key = generate_key_pair().map_err(|e| Error::CheckoutKey(e.to_string()))?;
        self.put_secret(SIGNING_KEY, key.pkcs8())?;
        let body = EnrollRequest {
            activation_code: activation_code.to_string(),
            device_name: device_name.to_string(),
            public_key: crate::ids::hex(&key.public_key()),
        };
        let sent_at = self.clock.now_ms();
        let response = self
            .http
            .post(format!("{server_url}{}", api::paths::ENROLL))
            .json(&body)
            .send()
            .await
            .map_err(offline)?;
        let response = check_status(response).await?;
        let enrolled: EnrollResponse = response
            .json()
            .await
            .map_err(|e| Error::Protocol(protocol::ProtocolError::BadSyncMessage(e.to_string())))?;
        let credentials = Credentials {
            server_url,
            member_id: enrolled.member_id,
            card_number: enrolled.card_number,
            device_id: enrolled.device_id,
            device_secret: enrolled.device_secret,
            device_name: device_name.to_string(),
        };
        let mut inner = self.lock();
        inner.store.set_credentials(&credentials)?;
        inner.credentials = Some(credentials);
        inner.signing_key = Some(key);
        inner.key_epoch += 1;
        self.learn_clock(&mut inner, sent_at, enrolled.server_time_ms)?;
        tracing::info!("device enrolled");
        Ok(())
    }

    /// Signs this device out: forgets the member's documents, the sync states, the credentials,
    /// the learned clock and the checkout key (from the host's secret store too), so the store is
    /// as new and [`Device::enroll`] works again — the way back for a revoked device ("ask the
    /// member to enroll again") and for a phone handed on. Local only: the server is not told
    /// (a revoked device cannot be heard anyway); an operator revokes a device that is gone.
    /// Member edits not yet synced are lost with the rest, so sync first when the server still
    /// accepts the device. Waits for a sync under way, then stops any later one from writing.
    pub async fn reset(&self) -> Result<(), Error> {
        let _no_sync_meanwhile = self.sync_lock.lock().await;
        self.wipe_local()?;
        // After the store: a crash in between leaves a key nobody uses, which the next
        // enrollment replaces; the reverse order could leave credentials without their key.
        if let Some(host) = &self.secrets {
            host.delete(SIGNING_KEY)?;
        }
        tracing::info!("device reset");
        // The app shows new (empty) documents: tell it, as after a sync.
        let _ = self.changes.send(DocKind::ALL.to_vec());
        Ok(())
    }

    /// The store and the in-memory state back to a new device's.
    fn wipe_local(&self) -> Result<(), Error> {
        let mut inner = self.lock();
        inner.store.wipe()?;
        // A new actor: the old one's changes may live on in the server's copy of the member
        // document, and reusing its sequence numbers for other changes would corrupt it.
        let actor = ActorId::random();
        let mut docs = Vec::with_capacity(DocKind::ALL.len());
        for kind in DocKind::ALL {
            let mut doc = inner.store.load_doc(kind)?;
            doc.set_actor(actor.clone());
            docs.push(doc);
        }
        inner.docs = docs;
        // The wiped store is at epoch 0 for every document; so is what the next sync claims.
        inner.epochs = vec![0; DocKind::ALL.len()];
        inner.credentials = None;
        inner.signing_key = None;
        inner.key_epoch += 1;
        inner.clock_offset_ms = 0;
        Ok(())
    }

    fn learn_clock(
        &self,
        inner: &mut Inner,
        sent_at: i64,
        server_time_ms: i64,
    ) -> Result<(), Error> {
        // The server stamped its answer somewhere between sending and receiving; the midpoint is
        // the best guess and is within half a round trip of the truth.
        let local = (sent_at + self.clock.now_ms()) / 2;
        let offset = server_time_ms - local;
        // Persist only a real change: a jitter of a few milliseconds is not worth a disk write on
        // every sync round.
        if (offset - inner.clock_offset_ms).abs() >= CLOCK_PERSIST_THRESHOLD_MS {
            inner
                .store
                .set_setting(CLOCK_OFFSET_KEY, &offset.to_string())?;
        }
        inner.clock_offset_ms = offset;
        Ok(())
    }

    /// Syncs every document with the server until both sides agree or the server refuses one.
    pub async fn sync(&self) -> Result<SyncReport, Error> {
        let _one_at_a_time = self.sync_lock.lock().await;
        let credentials = self.credentials().ok_or(Error::NotEnrolled)?;
        let url = format!(
            "{}{}",
            credentials.server_url,
            protocol::sync_path(&credentials.member_id)
        );
        let auth = api::device_authorization(&credentials.device_id, &credentials.device_secret);
        let mut states = {
            let inner = self.lock();
            DocKind::ALL
                .iter()
                .map(|&k| inner.store.sync_state(k))
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut pending: Vec<DocKind> = DocKind::ALL.to_vec();
        let mut report = SyncReport::default();
        let mut first_round = true;
        while !pending.is_empty() {
            if report.round_trips == MAX_ROUNDS {
                return Err(Error::SyncDidNotSettle(MAX_ROUNDS));
            }
            let request = {
                let mut inner = self.lock();
                let entries = pending
                    .iter()
                    .map(|&k| {
                        let epoch = inner.epochs[k.index()];
                        algo::device_entry(
                            k,
                            epoch,
                            inner.doc(k),
                            &mut states[k.index()],
                            first_round,
                        )
                    })
                    .collect();
                SyncRequest { entries }.encode()
            };
            first_round = false;
            report.round_trips += 1;
            report.bytes_sent += request.len();
            let sent_at = self.clock.now_ms();
            let response = self
                .http
                .post(&url)
                .header(reqwest::header::AUTHORIZATION, &auth)
                .header(reqwest::header::CONTENT_TYPE, protocol::CONTENT_TYPE)
                .body(request)
                .send()
                .await
                .map_err(offline)?;
            let body = check_status(response)
                .await?
                .bytes()
                .await
                .map_err(offline)?;
            report.bytes_received += body.len();
            let response = SyncResponse::decode(&body)?;
            let mut inner = self.lock();
            self.learn_clock(&mut inner, sent_at, response.server_time_ms)?;
            pending = self.take_response(&mut inner, response, &mut states, &mut report)?;
        }
        tracing::info!(round_trips = report.round_trips, changed = ?report.changed, "sync finished");
        if !report.changed.is_empty() {
            // Nobody listening is fine.
            let _ = self.changes.send(report.changed.clone());
        }
        Ok(report)
    }

    /// Changes brought by syncs: each message lists the documents one sync changed. For the app's
    /// UI to refresh what it shows.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Vec<DocKind>> {
        self.changes.subscribe()
    }

    /// Keeps this device live while the app is open: waits on the server's change feed and syncs
    /// as soon as the member's documents change (a purchase at the till, a new offer), so the
    /// phone shows it within a round trip. Runs until the future is dropped; rides out the server
    /// being unreachable, overloaded (`503`) or rate-limiting (`429`) with a growing pause. Ends
    /// with the server's `poll_superseded` when newer polls of this device took its place (a
    /// second `watch` of the same device: the newer ones keep watching).
    pub async fn watch(&self) -> Result<(), Error> {
        let mut since = 0u64;
        let mut pause = Duration::from_millis(250);
        loop {
            match self.wait_for_change(since).await {
                Ok(answer) => {
                    pause = Duration::from_millis(250);
                    since = answer.seq;
                    if answer.changed {
                        self.sync().await?;
                    }
                }
                Err(
                    Error::Offline(_)
                    | Error::Server {
                        status: 429 | 503, ..
                    },
                ) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sets the member's till PIN (4 to 8 digits, `crate::card_trust::check_pin`), with which a
    /// till that knows the member by card number alone may let them redeem points. Needs the
    /// server: a PIN is never kept on the phone.
    pub async fn set_pin(&self, pin: &str) -> Result<(), Error> {
        crate::card_trust::check_pin(pin).map_err(|e| Error::InvalidInput(e.0.to_string()))?;
        let entry = api::PinEntry {
            pin: pin.to_string(),
        };
        self.send_json(reqwest::Method::PUT, api::paths::member_pin, &entry)
            .await?;
        Ok(())
    }

    /// Links a plastic card (its 16 digits, as printed) to the member: a till that scans it knows
    /// them, as by the card number the programme gave them. Needs the server.
    pub async fn link_card(&self, card_number: &str) -> Result<Vec<api::LinkedCard>, Error> {
        let body = api::LinkCard {
            card_number: card_number.to_string(),
        };
        self.send_json(reqwest::Method::POST, api::paths::member_cards, &body)
            .await?
            .json()
            .await
            .map_err(|e| Error::Protocol(protocol::ProtocolError::BadSyncMessage(e.to_string())))
    }

    /// Sends `body` as JSON to the member's route `path` with the device's credentials; a refusal
    /// is the server's error.
    async fn send_json(
        &self,
        method: reqwest::Method,
        path: fn(&str) -> String,
        body: &impl serde::Serialize,
    ) -> Result<reqwest::Response, Error> {
        let credentials = self.credentials().ok_or(Error::NotEnrolled)?;
        let url = format!("{}{}", credentials.server_url, path(&credentials.member_id));
        let response = self
            .http
            .request(method, url)
            .header(
                reqwest::header::AUTHORIZATION,
                api::device_authorization(&credentials.device_id, &credentials.device_secret),
            )
            .json(body)
            .send()
            .await
            .map_err(offline)?;
        check_status(response).await
    }

    async fn wait_for_change(&self, since: u64) -> Result<api::ChangesResponse, Error> {
        let credentials = self.credentials().ok_or(Error::NotEnrolled)?;
        let url = format!(
            "{}{}?since={since}&wait_s=25",
            credentials.server_url,
            api::paths::member_changes(&credentials.member_id)
        );
        let response = self
            .http
            .get(url)
            .header(
                reqwest::header::AUTHORIZATION,
                api::device_authorization(&credentials.device_id, &credentials.device_secret),
            )
            .timeout(Duration::from_secs(40))
            .send()
            .await
            .map_err(offline)?;
        check_status(response)
            .await?
            .json()
            .await
            .map_err(|e| Error::Protocol(protocol::ProtocolError::BadSyncMessage(e.to_string())))
    }

    /// Applies one response, persisting each document it touched, and returns the documents that
    /// still need another round.
    fn take_response(
        &self,
        inner: &mut Inner,
        response: SyncResponse,
        states: &mut [automerge::sync::State],
        report: &mut SyncReport,
    ) -> Result<Vec<DocKind>, Error> {
        let mut pending = Vec::new();
        for entry in response.entries {
            let kind = entry.doc;
            let state = &mut states[kind.index()];
            if let protocol::Reply::NewEpoch(save) = &entry.reply {
                self.take_new_epoch(inner, kind, entry.epoch, save, state)?;
                report.new_epochs.push(kind);
                if !report.changed.contains(&kind) {
                    report.changed.push(kind);
                }
                let heads = inner.doc(kind).get_heads();
                if crate::document::heads_digest(&heads) != entry.digest {
                    // Carried-over actions to send, or more to fetch.
                    pending.push(kind);
                }
                continue;
            }
            let before = inner.doc(kind).get_heads();
            let shared_before = state.shared_heads.clone();
            let outcome =
                algo::device_take_reply(kind, inner.doc(kind), state, entry.reply, entry.digest)?;
            let doc_changed = inner.doc(kind).get_heads() != before;
            if doc_changed && !report.changed.contains(&kind) {
                report.changed.push(kind);
            }
            match outcome {
                DeviceOutcome::Settled => {}
                DeviceOutcome::Continue => pending.push(kind),
                DeviceOutcome::Rejected(rejection) => {
                    tracing::warn!(doc = %kind, code = %rejection.code, "server refused a document");
                    let retry = self.recover_from_rejection(inner, kind, &rejection, state)?;
                    report.rejected.push((kind, rejection));
                    if retry {
                        pending.push(kind);
                    }
                    continue;
                }
            }
            // "Nothing changed" writes nothing: only the persisted parts count.
            if doc_changed || state.shared_heads != shared_before {
                let Inner { store, docs, .. } = inner;
                store.save(kind, &mut docs[kind.index()], Some(state))?;
            }
        }
        Ok(pending)
    }

    /// Replaces a document by the new epoch the server sent, carrying over the member's actions
    /// it had not acknowledged (`algo::device_take_epoch`), and stores it with its epoch.
    fn take_new_epoch(
        &self,
        inner: &mut Inner,
        kind: DocKind,
        epoch: u64,
        save: &[u8],
        state: &mut automerge::sync::State,
    ) -> Result<(), Error> {
        // `inner` is locked already: server time from its offset directly.
        let now = self.clock.now_ms() + inner.clock_offset_ms;
        let (mut doc, fresh) = algo::device_take_epoch(kind, inner.doc(kind), state, save, now)?;
        inner.store.replace_doc(kind, &mut doc, epoch, &fresh)?;
        tracing::info!(doc = %kind, epoch, "took a new epoch of a document");
        inner.docs[kind.index()] = doc;
        inner.epochs[kind.index()] = epoch;
        *state = fresh;
        Ok(())
    }

    /// A server document the device somehow changed is replaced by the server's copy: the server is
    /// its only writer, so nothing of the member's is lost. A refused member document is kept as it
    /// is, because it holds the member's own work; the app reports the rejection.
    fn recover_from_rejection(
        &self,
        inner: &mut Inner,
        kind: DocKind,
        rejection: &Rejection,
        state: &mut automerge::sync::State,
    ) -> Result<bool, Error> {
        if kind.writer() != Writer::Server || rejection.code != codes::READ_ONLY_DOCUMENT {
            return Ok(false);
        }
        inner.store.reset_doc(kind)?;
        let actor = inner.doc(kind).get_actor().clone();
        let mut fresh = inner.store.load_doc(kind)?;
        fresh.set_actor(actor);
        inner.docs[kind.index()] = fresh;
        *state = automerge::sync::State::new();
        Ok(true)
    }

    fn put_secret(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        match &self.secrets {
            Some(host) => Ok(host.put(name, value)?),
            None => Ok(self.lock().store.set_secret(name, value)?),
        }
    }

    fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        match &self.secrets {
            Some(host) => Ok(host.get(name)?),
            None => Ok(self.lock().store.secret(name)?),
        }
    }

    /// The checkout code to show now: made offline, on server time, valid until `expires_at_ms`.
    /// The key is read from the secret store and parsed once, then kept in memory until a reset;
    /// a reset or re-enrollment that overtakes a read discards what the read returned, so a key
    /// the device no longer holds never signs a code.
    pub fn checkout_code(&self) -> Result<CheckoutCode, Error> {
        for _ in 0..KEY_READ_ATTEMPTS {
            let epoch = {
                let inner = self.lock();
                if inner.credentials.is_none() {
                    return Err(Error::NotEnrolled);
                }
                if inner.signing_key.is_some() {
                    return self.make_code(&inner);
                }
                inner.key_epoch
            };
            // Read outside the lock: the host's store (Keychain, Keystore) may be slow, and the
            // app's other calls should not wait for it.
            let key = self.read_signing_key()?;
            let mut inner = self.lock();
            if inner.key_epoch == epoch {
                inner.signing_key = Some(key);
                return self.make_code(&inner);
            }
            // A reset (and maybe a new enrollment) ran while the key was read: it may be the old
            // key, which must never sign again. Drop it and look again.
        }
        Err(Error::CheckoutKey(
            "the device was reset or enrolled while its key was being read; try again".into(),
        ))
    }

    fn read_signing_key(&self) -> Result<SigningKey, Error> {
        let pkcs8 = self.get_secret(SIGNING_KEY)?.ok_or_else(|| {
            Error::CheckoutKey("the signing key is missing from the secret store".into())
        })?;
        SigningKey::from_pkcs8(&pkcs8).map_err(|e| Error::CheckoutKey(e.to_string()))
    }

    /// The code from the cached key and the credentials, read under one lock so the card number,
    /// the key and the clock all belong to the same enrollment.
    fn make_code(&self, inner: &Inner) -> Result<CheckoutCode, Error> {
        let credentials = inner.credentials.as_ref().ok_or(Error::NotEnrolled)?;
        let key = inner
            .signing_key
            .as_ref()
            .ok_or_else(|| Error::CheckoutKey("the signing key is missing".into()))?;
        let card_number = checkout_code::card_number_to_u64(&credentials.card_number)
            .map_err(|e| Error::CheckoutKey(format!("card number: {e}")))?;
        let now = self.clock.now_ms() + inner.clock_offset_ms;
        Ok(CheckoutCode::make(key, card_number, now))
    }

    pub fn card(&self) -> Result<Option<Card>, Error> {
        Ok(card::read(self.lock().doc(DocKind::Card))?)
    }

    pub fn member_state(&self) -> Result<MemberState, Error> {
        Ok(member::read(self.lock().doc(DocKind::Member))?)
    }

    /// The member's offers as they stand now (server time), with their activation.
    pub fn offers(&self) -> Result<Vec<OfferView>, Error> {
        let now = self.server_now_ms();
        let mut inner = self.lock();
        let member = member::read(inner.doc(DocKind::Member))?;
        let offers = offers::read_all(inner.doc(DocKind::Offers))?;
        Ok(offers
            .into_iter()
            .map(|o| OfferView::new(o, &member, now))
            .collect())
    }

    /// The member's messages, newest first, with their read and archived marks.
    pub fn messages(&self) -> Result<Vec<MessageView>, Error> {
        let mut inner = self.lock();
        let member = member::read(inner.doc(DocKind::Member))?;
        let messages = inbox::read_all(inner.doc(DocKind::Inbox))?;
        Ok(messages
            .into_iter()
            .map(|m| MessageView::new(m, &member))
            .collect())
    }

    /// Activates ("clips") an offer. Works offline; reaches the server at the next sync.
    pub fn activate_offer(&self, offer_id: &str) -> Result<(), Error> {
        let now = self.server_now_ms();
        let view = {
            let mut inner = self.lock();
            let offer = offers::get(inner.doc(DocKind::Offers), offer_id)?
                .ok_or_else(|| Error::InvalidInput(format!("there is no offer `{offer_id}`")))?;
            let member = member::read(inner.doc(DocKind::Member))?;
            OfferView::new(offer, &member, now)
        };
        match view.state {
            OfferState::Expired => {
                return Err(Error::InvalidInput(format!(
                    "offer `{offer_id}` has expired"
                )));
            }
            _ if view.activated_at_ms.is_some() => return Ok(()),
            _ => {}
        }
        let device = self
            .credentials()
            .map(|c| c.device_name)
            .unwrap_or_default();
        self.edit_member(|doc, now| member::activate(doc, offer_id, &device, now))
    }

    pub fn mark_read(&self, message_id: &str) -> Result<(), Error> {
        self.mark_message("read", message_id)
    }

    pub fn archive(&self, message_id: &str) -> Result<(), Error> {
        self.mark_message("archived", message_id)
    }

    fn mark_message(&self, list: &str, message_id: &str) -> Result<(), Error> {
        if !inbox::contains(self.lock().doc(DocKind::Inbox), message_id)? {
            return Err(Error::InvalidInput(format!(
                "there is no message `{message_id}`"
            )));
        }
        self.edit_member(|doc, now| member::mark(doc, list, message_id, now))
    }

    pub fn set_preference(&self, key: &str, value: &str) -> Result<(), Error> {
        self.edit_member(|doc, _| member::set_preference(doc, key, value))
    }

    pub fn set_consent(&self, channel: &str, granted: bool) -> Result<(), Error> {
        if !member::CONSENT_CHANNELS.contains(&channel) {
            return Err(Error::InvalidInput(format!(
                "consent channel must be one of {}",
                member::CONSENT_CHANNELS.join(", ")
            )));
        }
        self.edit_member(|doc, now| member::set_consent(doc, channel, granted, now))
    }

    /// Opens a question or complaint (`kind`: `question` or `complaint`). Works offline: it is
    /// recorded at once and reaches the operators at the next sync. Returns the request's id.
    pub fn open_request(&self, kind: &str, subject: &str, body: &str) -> Result<String, Error> {
        if !member::REQUEST_KINDS.contains(&kind) {
            return Err(Error::InvalidInput(format!(
                "request kind must be one of {}",
                member::REQUEST_KINDS.join(", ")
            )));
        }
        // Random, so two devices opening requests offline never pick the same id.
        let id = crate::ids::new_record_id("req");
        self.edit_member(|doc, now| member::open_request(doc, &id, kind, subject, body, now))?;
        Ok(id)
    }

    /// Adds the member's follow-up to one of their requests. Works offline, like opening one.
    pub fn add_followup(&self, request_id: &str, body: &str) -> Result<(), Error> {
        let view = self
            .requests()?
            .into_iter()
            .find(|r| r.id == request_id)
            .ok_or_else(|| Error::InvalidInput(format!("there is no request `{request_id}`")))?;
        if view.status == "closed" {
            return Err(Error::InvalidInput(format!(
                "request `{request_id}` is closed; open a new one"
            )));
        }
        let followup_id = crate::ids::new_record_id("fu");
        self.edit_member(|doc, now| member::add_followup(doc, request_id, &followup_id, body, now))
    }

    /// The member's requests as threads (their text, follow-ups, the programme's replies and the
    /// status), the most recently active first.
    pub fn requests(&self) -> Result<Vec<RequestView>, Error> {
        let mut inner = self.lock();
        let member = member::read(inner.doc(DocKind::Member))?;
        let threads = inbox::read_threads(inner.doc(DocKind::Inbox))?;
        Ok(requests::views(&member, &threads))
    }

    /// Applies `edit` to the member document, keeps it only if the result passes the same
    /// validation and history limits the server will check, and stores it before returning.
    fn edit_member(
        &self,
        edit: impl FnOnce(&mut AutoCommit, i64) -> Result<(), automerge::AutomergeError>,
    ) -> Result<(), Error> {
        use automerge::ReadDoc;
        use automerge::transaction::Transactable;
        let now = self.server_now_ms();
        let mut inner = self.lock();
        let doc = inner.doc(DocKind::Member);
        if let Err(e) = edit(doc, now) {
            doc.rollback();
            return Err(Error::automerge(DocKind::Member, e));
        }
        if let Err(e) = member::read(doc) {
            doc.rollback();
            return Err(Error::InvalidInput(e.to_string()));
        }
        // Counted generously (the pending operations may already be in the statistics): the
        // device must never commit what the server would refuse.
        let stats = doc.stats();
        let pending = doc.pending_ops() as u64;
        if pending > 0
            && let Err(e) = budget::check_history(stats.num_ops + pending, stats.num_changes + 1)
        {
            doc.rollback();
            return Err(Error::HistoryTooLong(e));
        }
        doc.commit_with(CommitOptions::default().with_time(now / 1000));
        let Inner { store, docs, .. } = &mut *inner;
        store.save(DocKind::Member, &mut docs[DocKind::Member.index()], None)?;
        Ok(())
    }

    /// Test and tooling hook: runs `f` on the raw document, committing and storing the result
    /// without validation. This is how tests play a misbehaving client.
    #[doc(hidden)]
    pub fn tamper(&self, kind: DocKind, f: impl FnOnce(&mut AutoCommit)) -> Result<(), Error> {
        let mut inner = self.lock();
        f(inner.doc(kind));
        inner.doc(kind).commit();
        let Inner { store, docs, .. } = &mut *inner;
        store.save(kind, &mut docs[kind.index()], None)?;
        Ok(())
    }

    /// The heads of one document, for tests and diagnostics.
    pub fn heads(&self, kind: DocKind) -> Vec<automerge::ChangeHash> {
        self.lock().doc(kind).get_heads()
    }
}

fn offline(e: reqwest::Error) -> Error {
    Error::Offline(crate::error::transport_reason(&e))
}

/// Turns a non-success answer into [`Error::Server`] with the server's own code and message.
async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    let api::ErrorDetail { code, message } = api::ErrorDetail::from_body(&body);
    Err(Error::Server {
        status: status.as_u16(),
        code,
        message,
    })
}
