//! SQLite's [`CardStore`]: card sessions, the till PIN and its lock (migration 016).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use crate::storage::LedgerStore;

use super::{SqliteStorage, backend};
use loyalty_core::api::{LinkedCard, LinkedCardStatus};

use crate::storage::{CardLink, CardStore, CheckoutSession, PinTry, StorageError, TillMember};

/// Reserves a try: a lock that ended starts the count over; none while locked or used up.
const TAKE_TRY: &str = "
    UPDATE member_pins
    SET failures = CASE WHEN locked_until IS NOT NULL AND locked_until <= ?2 THEN 1
                        ELSE failures + 1 END,
        locked_until = CASE WHEN locked_until IS NOT NULL AND locked_until <= ?2 THEN NULL
                            ELSE locked_until END
    WHERE member_id = ?1
      AND ((locked_until IS NULL AND failures < ?3) OR locked_until <= ?2)
    RETURNING hash";

fn status_from(name: &str) -> Result<LinkedCardStatus, StorageError> {
    LinkedCardStatus::parse(name).ok_or_else(|| backend(format!("unknown card status `{name}`")))
}

#[async_trait]
impl CardStore for SqliteStorage {
    async fn link_card(
        &self,
        member_id: &str,
        card_number: &str,
        now_ms: i64,
    ) -> Result<CardLink, StorageError> {
        let (member_id, card_number) = (member_id.to_string(), card_number.to_string());
        self.run(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            let primary: Option<String> = tx
                .query_row(
                    "SELECT member_id FROM members WHERE card_number = ?1",
                    [&card_number],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if primary.is_some() {
                return Ok(CardLink::Taken);
            }
            let linked: Option<(String, String)> = tx
                .query_row(
                    "SELECT member_id, status FROM member_cards WHERE card_number = ?1",
                    [&card_number],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            if let Some((holder, status)) = linked {
                let mine = holder == member_id && status == LinkedCardStatus::Linked.as_str();
                return Ok(if mine {
                    CardLink::Already
                } else {
                    CardLink::Taken
                });
            }
            tx.execute(
                "INSERT INTO member_cards (card_number, member_id, status, linked_at)
                 VALUES (?1, ?2, 'linked', ?3)",
                params![card_number, member_id, now_ms],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(CardLink::Linked)
        })
        .await
    }

    async fn report_card_lost(
        &self,
        member_id: &str,
        card_number: &str,
    ) -> Result<bool, StorageError> {
        let (member_id, card_number) = (member_id.to_string(), card_number.to_string());
        self.run(move |conn| {
            let n = conn
                .execute(
                    "UPDATE member_cards SET status = 'lost' WHERE card_number = ?1 AND member_id = ?2",
                    params![card_number, member_id],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn linked_cards(&self, member_id: &str) -> Result<Vec<LinkedCard>, StorageError> {
        let member_id = member_id.to_string();
        self.read(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT card_number, status, linked_at FROM member_cards
                     WHERE member_id = ?1 ORDER BY linked_at, card_number",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map([&member_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (card_number, status, linked_at_ms) = row.map_err(backend)?;
                out.push(LinkedCard {
                    card_number,
                    status: status_from(&status)?,
                    linked_at_ms,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn card_holder(
        &self,
        card_number: &str,
    ) -> Result<Option<(TillMember, LinkedCardStatus)>, StorageError> {
        if let Some(member) = self.member_by_card(card_number).await? {
            return Ok(Some((member, LinkedCardStatus::Primary)));
        }
        let card_number = card_number.to_string();
        let linked: Option<(String, String)> = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT m.card_number, c.status FROM member_cards c JOIN members m USING (member_id)
                     WHERE c.card_number = ?1",
                    [&card_number],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)
            })
            .await?;
        let Some((primary, status)) = linked else {
            return Ok(None);
        };
        let status = status_from(&status)?;
        Ok(self
            .member_by_card(&primary)
            .await?
            .map(|member| (member, status)))
    }

    async fn open_card_session(
        &self,
        session: &CheckoutSession,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let s = session.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO checkout_sessions (session_id, member_id, till_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.session_id, s.member_id, s.till_id, now_ms, s.expires_at_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn set_pin(&self, member_id: &str, hash: &str) -> Result<(), StorageError> {
        let (member_id, hash) = (member_id.to_string(), hash.to_string());
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO member_pins (member_id, hash) VALUES (?1, ?2)
                 ON CONFLICT DO UPDATE SET hash = excluded.hash, failures = 0, locked_until = NULL",
                params![member_id, hash],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_pin_try(
        &self,
        member_id: &str,
        now_ms: i64,
        max_tries: i64,
    ) -> Result<PinTry, StorageError> {
        let member_id = member_id.to_string();
        self.run(move |conn| {
            let hash: Option<String> = conn
                .query_row(TAKE_TRY, params![member_id, now_ms, max_tries], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?;
            if let Some(hash) = hash {
                return Ok(PinTry::Check { hash });
            }
            let lock: Option<Option<i64>> = conn
                .query_row(
                    "SELECT locked_until FROM member_pins WHERE member_id = ?1",
                    [&member_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            Ok(match lock {
                None => PinTry::NoPin,
                Some(until_ms) => PinTry::Locked { until_ms },
            })
        })
        .await
    }

    async fn pin_checked(
        &self,
        member_id: &str,
        right: bool,
        max_tries: i64,
        locked_until_ms: i64,
    ) -> Result<(), StorageError> {
        let member_id = member_id.to_string();
        self.run(move |conn| {
            if right {
                conn.execute(
                    "UPDATE member_pins SET failures = 0, locked_until = NULL WHERE member_id = ?1",
                    [&member_id],
                )
            } else {
                conn.execute(
                    "UPDATE member_pins SET locked_until = ?2
                     WHERE member_id = ?1 AND failures >= ?3 AND locked_until IS NULL",
                    params![member_id, locked_until_ms, max_tries],
                )
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn verify_session(&self, session_id: &str, now_ms: i64) -> Result<(), StorageError> {
        let session_id = session_id.to_string();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO session_pins (session_id, verified_at) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
                params![session_id, now_ms],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn session_verified(&self, session_id: &str) -> Result<bool, StorageError> {
        let session_id = session_id.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT 1 FROM session_pins WHERE session_id = ?1",
                [&session_id],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(backend)
        })
        .await
    }
}
