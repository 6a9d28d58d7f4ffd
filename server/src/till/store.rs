//! The offline till's file: the key cache it refreshes from the key feed, the codes it saw, the
//! sessions it opened offline, what each card redeemed offline today, and the queue of postings
//! waiting for the link. One SQLite file, each change one transaction, so a till that loses power
//! mid-sale keeps a consistent queue.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use loyalty_core::api::offline::KeyFeed;
use loyalty_core::offline::{CachedKey, OfflinePolicy, OfflineTrust};
use loyalty_core::redemption::RedemptionPolicy;
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

/// "LYTL": marks the file as a till's store, so the till never opens the server's database.
const APPLICATION_ID: i32 = 0x4C59_544C;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE keys (
    card_number TEXT NOT NULL,
    key_id INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    revoked INTEGER NOT NULL,
    PRIMARY KEY (card_number, key_id, public_key)
);
CREATE TABLE cards (card_number TEXT PRIMARY KEY, blocked INTEGER NOT NULL);
CREATE TABLE seen (code_id BLOB PRIMARY KEY, forget_after INTEGER NOT NULL);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    card_number TEXT NOT NULL,
    trust TEXT NOT NULL,
    scanned_at INTEGER NOT NULL
);
CREATE TABLE redeemed (
    card_number TEXT NOT NULL,
    day INTEGER NOT NULL,
    points INTEGER NOT NULL,
    PRIMARY KEY (card_number, day)
);
CREATE TABLE queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    answer TEXT
);
";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Open(#[from] loyalty_core::store::StoreError),
    #[error("the till's store failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the till's store holds a value it cannot read: {0}")]
    Corrupt(String),
}

/// What the cache knows of the server, from its last refresh.
#[derive(Debug, Clone)]
pub struct CacheState {
    pub cursor: u64,
    /// Server time of the last complete refresh, if any.
    pub refreshed_at_ms: Option<i64>,
    /// Server clock minus this till's clock, as measured at the last refresh.
    pub offset_ms: i64,
    pub policy: OfflinePolicy,
    pub redemption: RedemptionPolicy,
}

/// A checkout session the till opened offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineSession {
    pub session_id: String,
    pub code: String,
    pub card_number: String,
    pub trust: OfflineTrust,
    pub scanned_at_ms: i64,
}

/// What is queued for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueuedKind {
    Purchase,
    Refund,
}

impl QueuedKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::Refund => "refund",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Queued {
    pub seq: i64,
    pub kind: QueuedKind,
    pub idempotency_key: String,
    pub body: String,
}

pub struct TillStore {
    conn: Connection,
}

impl TillStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let migrations = Migrations::new(vec![M::up(SCHEMA)]);
        let conn = loyalty_core::store::open_sqlite(path, APPLICATION_ID, &migrations)?;
        Ok(Self { conn })
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn meta_number(&self, key: &str) -> Result<Option<i64>, StoreError> {
        self.meta(key)?
            .map(|v| {
                v.parse()
                    .map_err(|_| StoreError::Corrupt(format!("{key} = {v}")))
            })
            .transpose()
    }

    pub fn cache_state(&self) -> Result<CacheState, StoreError> {
        let policy = match self.meta("policy")? {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?
            }
            None => OfflinePolicy::default(),
        };
        let redemption = match self.meta("redemption")? {
            Some(json) => {
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?
            }
            None => RedemptionPolicy::default(),
        };
        Ok(CacheState {
            cursor: self.meta_number("cursor")?.unwrap_or(0).max(0) as u64,
            refreshed_at_ms: self.meta_number("refreshed_at")?,
            offset_ms: self.meta_number("offset")?.unwrap_or(0),
            policy,
            redemption,
        })
    }

    /// Applies one page of the feed: the latest state of each key and card replaces what the
    /// cache had, and the cursor moves on, in one transaction. The last page of a refresh
    /// (`!feed.more`) also records the refresh time, the clock offset and the policy.
    pub fn apply_feed(&mut self, feed: &KeyFeed, local_now_ms: i64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for key in &feed.keys {
            let public_key = key_bytes(&key.public_key)?;
            tx.execute(
                "INSERT INTO keys (card_number, key_id, public_key, revoked) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET revoked = excluded.revoked",
                params![key.card_number, key.key_id, public_key, key.revoked],
            )?;
        }
        for card in &feed.cards {
            tx.execute(
                "INSERT INTO cards (card_number, blocked) VALUES (?1, ?2)
                 ON CONFLICT DO UPDATE SET blocked = excluded.blocked",
                params![card.card_number, card.blocked],
            )?;
        }
        let put = |key: &str, value: String| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT DO UPDATE SET value = excluded.value",
                params![key, value],
            )
        };
        put("cursor", feed.cursor.to_string())?;
        if !feed.more {
            put("refreshed_at", feed.server_time_ms.to_string())?;
            put("offset", (feed.server_time_ms - local_now_ms).to_string())?;
            let policy = serde_json::to_string(&feed.offline)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            put("policy", policy)?;
            let redemption = serde_json::to_string(&feed.redemption)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            put("redemption", redemption)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The cached keys of a card with this id (several keys may share one).
    pub fn keys_for(&self, card_number: &str, key_id: u32) -> Result<Vec<CachedKey>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT public_key, revoked FROM keys WHERE card_number = ?1 AND key_id = ?2",
        )?;
        let rows = statement.query_map(params![card_number, key_id], |r| {
            Ok(CachedKey {
                public_key: r.get(0)?,
                revoked: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn card_blocked(&self, card_number: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT blocked FROM cards WHERE card_number = ?1",
                [card_number],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Records a code as seen (until it can no longer pass the time check) and, when given, the
    /// session it opened, atomically; false if this till saw the code before.
    pub fn see_code(
        &mut self,
        code_id: [u8; 16],
        forget_after_ms: i64,
        now_ms: i64,
        session: Option<&OfflineSession>,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM seen WHERE forget_after < ?1", [now_ms])?;
        let fresh = tx.execute(
            "INSERT INTO seen (code_id, forget_after) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            params![code_id.as_slice(), forget_after_ms],
        )?;
        if fresh != 1 {
            return Ok(false);
        }
        if let Some(s) = session {
            let trust = match s.trust {
                OfflineTrust::Verified => "verified",
                OfflineTrust::EarnOnly => "earn_only",
            };
            tx.execute(
                "INSERT INTO sessions (session_id, code, card_number, trust, scanned_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.session_id, s.code, s.card_number, trust, s.scanned_at_ms],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    pub fn session(&self, session_id: &str) -> Result<Option<OfflineSession>, StoreError> {
        let row: Option<(String, String, String, i64)> = self
            .conn
            .query_row(
                "SELECT code, card_number, trust, scanned_at FROM sessions WHERE session_id = ?1",
                [session_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((code, card_number, trust, scanned_at_ms)) = row else {
            return Ok(None);
        };
        let trust = match trust.as_str() {
            "verified" => OfflineTrust::Verified,
            "earn_only" => OfflineTrust::EarnOnly,
            other => return Err(StoreError::Corrupt(format!("session trust {other}"))),
        };
        Ok(Some(OfflineSession {
            session_id: session_id.to_string(),
            code,
            card_number,
            trust,
            scanned_at_ms,
        }))
    }

    /// Points the card redeemed offline at this till on `day` (days since 1970, UTC).
    pub fn redeemed_on(&self, card_number: &str, day: i64) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT points FROM redeemed WHERE card_number = ?1 AND day = ?2",
                params![card_number, day],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Queues a posting; a purchase that redeems counts against the card's allowance for the day
    /// in the same transaction. False if the key is queued already (nothing changes).
    pub fn enqueue(
        &mut self,
        kind: QueuedKind,
        idempotency_key: &str,
        body: &str,
        redeemed: Option<(&str, i64, i64)>,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let fresh = tx.execute(
            "INSERT INTO queue (kind, idempotency_key, body) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![kind.as_str(), idempotency_key, body],
        )?;
        if fresh != 1 {
            return Ok(false);
        }
        if let Some((card_number, day, points)) = redeemed.filter(|r| r.2 > 0) {
            tx.execute(
                "INSERT INTO redeemed (card_number, day, points) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO UPDATE SET points = points + excluded.points",
                params![card_number, day, points],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// What waits for the server, in the order it was made.
    pub fn queued(&self) -> Result<Vec<Queued>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT seq, kind, idempotency_key, body FROM queue WHERE state = 'queued' ORDER BY seq",
        )?;
        let rows = statement.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, kind, idempotency_key, body) = row?;
            let kind = match kind.as_str() {
                "purchase" => QueuedKind::Purchase,
                "refund" => QueuedKind::Refund,
                other => return Err(StoreError::Corrupt(format!("queued kind {other}"))),
            };
            out.push(Queued {
                seq,
                kind,
                idempotency_key,
                body,
            });
        }
        Ok(out)
    }

    /// Records the server's final answer to a queued posting: `posted` or `refused`.
    pub fn settle(&mut self, seq: i64, posted: bool, answer: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE queue SET state = ?1, answer = ?2 WHERE seq = ?3",
            params![if posted { "posted" } else { "refused" }, answer, seq],
        )?;
        Ok(())
    }
}

fn key_bytes(text: &str) -> Result<Vec<u8>, StoreError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| StoreError::Corrupt(format!("public key `{text}`: {e}")))
}
