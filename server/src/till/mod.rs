//! A till that keeps working when its link to the server is down: the reference a till vendor can
//! copy (`loyalty till --store FILE` runs it). It caches device keys and card status from the key
//! feed (`refresh`), scans online when it can and checks codes itself when it cannot
//! (`loyalty_core::offline::check_code`, remembering the codes it saw), queues what it sold
//! offline under idempotency keys, and posts the queue in order when the link returns (`flush`):
//! a flush repeated, or interrupted and run again, posts each sale once.
//!
//! Online first: a scan or posting goes to the server, and only a server out of reach (no
//! connection, a timeout, `503`) sends the till offline. While anything is queued, refunds queue
//! too, so a refund never reaches the server before the purchase it names.

pub mod store;

use std::path::Path;
use std::sync::Arc;

use loyalty_core::api::offline::OfflinePurchaseRequest;
use loyalty_core::api::{PostingResponse, PurchaseRequest, RefundRequest, ScanResponse};
use loyalty_core::calendar::DAY_MS;
use loyalty_core::checkout_code::{ParsedCode, format_card_number};
use loyalty_core::offline::{OfflineRefusal, OfflineTrust, check_code};
use loyalty_core::{Clock, SystemClock};

use crate::client::{OperatorError, TillClient};
use store::{OfflineSession, QueuedKind, StoreError, TillStore};

/// How offline sessions' ids begin (`ids::new_record_id("off")`): never the server's `chk_…`.
const OFFLINE_SESSION: &str = "off_";

#[derive(Debug, thiserror::Error)]
pub enum TillError {
    /// Refused by the till itself (offline) under the server's error code.
    #[error("refused offline ({}): {}", .0.code, .0.message)]
    Offline(OfflineRefusal),
    #[error(transparent)]
    Server(#[from] OperatorError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TillError {
    /// The error code, whoever refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            TillError::Offline(r) => Some(r.code),
            TillError::Server(e) => e.code(),
            TillError::Store(_) => None,
        }
    }
}

fn offline_refusal(code: &'static str, message: impl Into<String>) -> TillError {
    TillError::Offline(OfflineRefusal {
        code,
        message: message.into(),
    })
}

/// Whether an error means "the server is out of reach" rather than "the server said no".
pub fn unreachable(e: &OperatorError) -> bool {
    match e {
        OperatorError::Unreachable { .. } => true,
        OperatorError::Refused { status, .. } => *status == 503,
        OperatorError::BadAnswer(_) => false,
    }
}

/// A scan's result.
#[derive(Debug, Clone)]
pub enum Scan {
    Online(ScanResponse),
    Offline {
        session_id: String,
        card_number: String,
        trust: OfflineTrust,
        /// Points the member may still redeem at this till today, offline.
        may_redeem: i64,
    },
}

/// A posting's result.
#[derive(Debug, Clone)]
pub enum Posted {
    Online(PostingResponse),
    /// Queued for the next flush, under this idempotency key.
    Queued {
        idempotency_key: String,
    },
}

/// What a flush did.
#[derive(Debug, Default)]
pub struct FlushReport {
    pub posted: Vec<(String, PostingResponse)>,
    /// Refused by the server (not retried): key, error code, message.
    pub refused: Vec<(String, String, String)>,
    /// Still queued: the server went out of reach during the flush.
    pub left: usize,
}

pub struct OfflineTill {
    pub store: TillStore,
    client: TillClient,
    /// The till's own clock; server time is it plus the offset measured at the last refresh.
    clock: Arc<dyn Clock>,
}

impl OfflineTill {
    /// Opens (or creates) the till's store at `path`, on the machine's clock.
    pub fn open(path: &Path, client: TillClient) -> Result<Self, TillError> {
        Self::open_with_clock(path, client, Arc::new(SystemClock))
    }

    pub fn open_with_clock(
        path: &Path,
        client: TillClient,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, TillError> {
        Ok(Self {
            store: TillStore::open(path)?,
            client,
            clock,
        })
    }

    /// Server time as this till knows it: its clock plus the offset measured at the last refresh.
    fn now_ms(&self) -> Result<i64, TillError> {
        Ok(self.clock.now_ms() + self.store.cache_state()?.offset_ms)
    }

    /// Fetches the key feed from the cached cursor until it is complete; returns the changes read.
    pub async fn refresh(&mut self) -> Result<usize, TillError> {
        let mut changes = 0;
        loop {
            let cursor = self.store.cache_state()?.cursor;
            let feed = self.client.keys(cursor, None).await?;
            changes += feed.keys.len() + feed.cards.len();
            self.store.apply_feed(&feed, self.clock.now_ms())?;
            if !feed.more {
                return Ok(changes);
            }
        }
    }

    /// Scans online, or offline when the server is out of reach.
    pub async fn scan(&mut self, text: &str) -> Result<Scan, TillError> {
        match self.client.scan(text).await {
            Ok(answer) => {
                // Remembered so that the same code is refused here if the link drops.
                if let Ok(parsed) = ParsedCode::parse(text) {
                    let now = self.now_ms()?;
                    self.store
                        .see_code(parsed.code_id(), now + 90_000, now, None)?;
                }
                Ok(Scan::Online(answer))
            }
            Err(e) if unreachable(&e) => self.scan_offline(text),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a code against the cache (`loyalty_core::offline::check_code`) and opens a session.
    pub fn scan_offline(&mut self, text: &str) -> Result<Scan, TillError> {
        let now = self.now_ms()?;
        let cache = self.store.cache_state()?;
        let parsed = ParsedCode::parse(text)
            .map_err(|e| offline_refusal(loyalty_core::offline::refusal_code(&e), e.to_string()))?;
        let card_number = format_card_number(parsed.card_number);
        let keys = self.store.keys_for(&card_number, parsed.key_id)?;
        let blocked = self.store.card_blocked(&card_number)?;
        let refreshed = cache.refreshed_at_ms.unwrap_or(i64::MIN / 2);
        let check = check_code(text, now, &keys, blocked, refreshed, &cache.policy)
            .map_err(TillError::Offline)?;
        let session = OfflineSession {
            session_id: loyalty_core::ids::new_record_id("off"),
            code: text.trim().to_string(),
            card_number: card_number.clone(),
            trust: check.trust,
            scanned_at_ms: now,
        };
        if !self
            .store
            .see_code(check.code_id, check.forget_after_ms, now, Some(&session))?
        {
            return Err(offline_refusal(
                "code_replayed",
                "this till saw this code already: ask for the current one",
            ));
        }
        let may_redeem = self.may_redeem(&session, now)?;
        Ok(Scan::Offline {
            session_id: session.session_id,
            card_number,
            trust: check.trust,
            may_redeem,
        })
    }

    /// What the member may still redeem offline at this till today.
    fn may_redeem(&self, session: &OfflineSession, now: i64) -> Result<i64, TillError> {
        if session.trust != OfflineTrust::Verified {
            return Ok(0);
        }
        let allowance = self.store.cache_state()?.policy.redeem_points_per_day;
        let used = self
            .store
            .redeemed_on(&session.card_number, now.div_euclid(DAY_MS))?;
        Ok((allowance - used).max(0))
    }

    /// Posts a purchase: queued if its session was opened offline, else online.
    pub async fn purchase(&mut self, request: PurchaseRequest) -> Result<Posted, TillError> {
        if !request.session_id.starts_with(OFFLINE_SESSION) {
            return Ok(Posted::Online(self.client.purchase(&request).await?));
        }
        let session = self.store.session(&request.session_id)?.ok_or_else(|| {
            offline_refusal("session_not_found", "no such offline session at this till")
        })?;
        let cache = self.store.cache_state()?;
        let redeem_points = match request.redeem_minor {
            0 => request.redeem_points,
            minor => cache.redemption.points_for(minor),
        };
        let may = self.may_redeem(&session, session.scanned_at_ms)?;
        if redeem_points > may {
            return Err(offline_refusal(
                "insufficient_points",
                format!("offline, this member may redeem at most {may} more points today"),
            ));
        }
        let key = request.idempotency_key.clone();
        let offline = OfflinePurchaseRequest {
            code: session.code.clone(),
            scanned_at_ms: session.scanned_at_ms,
            idempotency_key: request.idempotency_key,
            receipt_id: request.receipt_id,
            total_minor: request.total_minor,
            lines: request.lines,
            redeem_points,
        };
        let body = json(&offline)?;
        let day = session.scanned_at_ms.div_euclid(DAY_MS);
        let redeemed = Some((session.card_number.as_str(), day, offline.redeem_points));
        self.store
            .enqueue(QueuedKind::Purchase, &key, &body, redeemed)?;
        Ok(Posted::Queued {
            idempotency_key: key,
        })
    }

    /// Posts a refund online, or queues it when the server is out of reach or anything is queued
    /// (it may name a queued purchase, which must reach the server first).
    pub async fn refund(&mut self, request: RefundRequest) -> Result<Posted, TillError> {
        if self.store.queued()?.is_empty() {
            match self.client.refund(&request).await {
                Ok(answer) => return Ok(Posted::Online(answer)),
                Err(e) if unreachable(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let key = request.idempotency_key.clone();
        self.store
            .enqueue(QueuedKind::Refund, &key, &json(&request)?, None)?;
        Ok(Posted::Queued {
            idempotency_key: key,
        })
    }

    /// Posts everything queued, in order. An answer settles its posting (posted, or refused for
    /// good); the server going out of reach stops the flush, leaving the rest for the next one.
    pub async fn flush(&mut self) -> Result<FlushReport, TillError> {
        let mut report = FlushReport::default();
        let queued = self.store.queued()?;
        let total = queued.len();
        for (done, item) in queued.into_iter().enumerate() {
            let answer = match item.kind {
                QueuedKind::Purchase => {
                    let request: OfflinePurchaseRequest = parse(&item.body)?;
                    self.client.offline_purchase(&request).await
                }
                QueuedKind::Refund => {
                    let request: RefundRequest = parse(&item.body)?;
                    self.client.refund(&request).await
                }
            };
            match answer {
                Ok(posting) => {
                    self.store.settle(item.seq, true, &json(&posting)?)?;
                    report.posted.push((item.idempotency_key, posting));
                }
                Err(e) if unreachable(&e) => {
                    report.left = total - done;
                    return Ok(report);
                }
                Err(OperatorError::Refused { code, message, .. }) => {
                    self.store.settle(item.seq, false, &code)?;
                    report.refused.push((item.idempotency_key, code, message));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(report)
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, TillError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()).into())
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, TillError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("queued body: {e}")).into())
}
