//! PostgreSQL's [`CardStore`]: card sessions, the till PIN and its lock (migration 017). The
//! reserving `UPDATE` takes the PIN row's lock, so simultaneous tries are counted one by one.

use async_trait::async_trait;

use super::{Cached, PgStorage, backend};
use loyalty_core::api::{LinkedCard, LinkedCardStatus};

use crate::storage::{
    CardLink, CardStore, CheckoutSession, LedgerStore, PinTry, StorageError, TillMember,
};

fn status_from(name: &str) -> Result<LinkedCardStatus, StorageError> {
    LinkedCardStatus::parse(name).ok_or_else(|| backend(format!("unknown card status `{name}`")))
}

/// Reserves a try: a lock that ended starts the count over; none while locked or used up.
const TAKE_TRY: &str = "
    UPDATE member_pins
    SET failures = CASE WHEN locked_until IS NOT NULL AND locked_until <= $2 THEN 1
                        ELSE failures + 1 END,
        locked_until = CASE WHEN locked_until IS NOT NULL AND locked_until <= $2 THEN NULL
                            ELSE locked_until END
    WHERE member_id = $1
      AND ((locked_until IS NULL AND failures < $3) OR locked_until <= $2)
    RETURNING hash";

#[async_trait]
impl CardStore for PgStorage {
    async fn link_card(
        &self,
        member_id: &str,
        card_number: &str,
        now_ms: i64,
    ) -> Result<CardLink, StorageError> {
        let client = self.client().await?;
        let primary = client
            .fetch_opt(
                "SELECT 1 FROM members WHERE card_number = $1",
                &[&card_number],
            )
            .await
            .map_err(backend)?;
        if primary.is_some() {
            return Ok(CardLink::Taken);
        }
        // The primary key decides between racing links; the loser reads who holds it.
        let linked = client
            .exec(
                "INSERT INTO member_cards (card_number, member_id, status, linked_at)
                 VALUES ($1, $2, 'linked', $3) ON CONFLICT DO NOTHING",
                &[&card_number, &member_id, &now_ms],
            )
            .await
            .map_err(backend)?;
        if linked == 1 {
            return Ok(CardLink::Linked);
        }
        let row = client
            .fetch_one(
                "SELECT member_id, status FROM member_cards WHERE card_number = $1",
                &[&card_number],
            )
            .await
            .map_err(backend)?;
        let holder: String = row.try_get(0).map_err(backend)?;
        let status: String = row.try_get(1).map_err(backend)?;
        Ok(if holder == member_id && status == "linked" {
            CardLink::Already
        } else {
            CardLink::Taken
        })
    }

    async fn report_card_lost(
        &self,
        member_id: &str,
        card_number: &str,
    ) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let n = client
            .exec(
                "UPDATE member_cards SET status = 'lost' WHERE card_number = $1 AND member_id = $2",
                &[&card_number, &member_id],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    async fn linked_cards(&self, member_id: &str) -> Result<Vec<LinkedCard>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .fetch_all(
                "SELECT card_number, status, linked_at FROM member_cards
                 WHERE member_id = $1 ORDER BY linked_at, card_number",
                &[&member_id],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get(1).map_err(backend)?;
                Ok(LinkedCard {
                    card_number: r.try_get(0).map_err(backend)?,
                    status: status_from(&status)?,
                    linked_at_ms: r.try_get(2).map_err(backend)?,
                })
            })
            .collect()
    }

    async fn card_holder(
        &self,
        card_number: &str,
    ) -> Result<Option<(TillMember, LinkedCardStatus)>, StorageError> {
        if let Some(member) = self.member_by_card(card_number).await? {
            return Ok(Some((member, LinkedCardStatus::Primary)));
        }
        let client = self.client().await?;
        let row = client
            .fetch_opt(
                "SELECT m.card_number, c.status FROM member_cards c JOIN members m USING (member_id)
                 WHERE c.card_number = $1",
                &[&card_number],
            )
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let primary: String = row.try_get(0).map_err(backend)?;
        let status = status_from(&row.try_get::<_, String>(1).map_err(backend)?)?;
        Ok(self
            .member_by_card(&primary)
            .await?
            .map(|member| (member, status)))
    }

    async fn open_card_session(
        &self,
        s: &CheckoutSession,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO checkout_sessions (session_id, member_id, till_id, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&s.session_id, &s.member_id, &s.till_id, &now_ms, &s.expires_at_ms],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn set_pin(&self, member_id: &str, hash: &str) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO member_pins (member_id, hash) VALUES ($1, $2)
                 ON CONFLICT (member_id) DO UPDATE
                 SET hash = excluded.hash, failures = 0, locked_until = NULL",
                &[&member_id, &hash],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn take_pin_try(
        &self,
        member_id: &str,
        now_ms: i64,
        max_tries: i64,
    ) -> Result<PinTry, StorageError> {
        let client = self.client().await?;
        let reserved = client
            .fetch_opt(TAKE_TRY, &[&member_id, &now_ms, &max_tries])
            .await
            .map_err(backend)?;
        if let Some(row) = reserved {
            return Ok(PinTry::Check {
                hash: row.try_get(0).map_err(backend)?,
            });
        }
        let lock = client
            .fetch_opt(
                "SELECT locked_until FROM member_pins WHERE member_id = $1",
                &[&member_id],
            )
            .await
            .map_err(backend)?;
        Ok(match lock {
            None => PinTry::NoPin,
            Some(row) => PinTry::Locked {
                until_ms: row.try_get(0).map_err(backend)?,
            },
        })
    }

    async fn pin_checked(
        &self,
        member_id: &str,
        right: bool,
        max_tries: i64,
        locked_until_ms: i64,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        if right {
            client
                .exec(
                    "UPDATE member_pins SET failures = 0, locked_until = NULL WHERE member_id = $1",
                    &[&member_id],
                )
                .await
        } else {
            client
                .exec(
                    "UPDATE member_pins SET locked_until = $2
                     WHERE member_id = $1 AND failures >= $3 AND locked_until IS NULL",
                    &[&member_id, &locked_until_ms, &max_tries],
                )
                .await
        }
        .map_err(backend)?;
        Ok(())
    }

    async fn verify_session(&self, session_id: &str, now_ms: i64) -> Result<(), StorageError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO session_pins (session_id, verified_at) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
                &[&session_id, &now_ms],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn session_verified(&self, session_id: &str) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let row = client
            .fetch_opt(
                "SELECT 1 FROM session_pins WHERE session_id = $1",
                &[&session_id],
            )
            .await
            .map_err(backend)?;
        Ok(row.is_some())
    }
}
