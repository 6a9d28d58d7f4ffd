//! PostgreSQL's [`DirectoryStore`]: members by a preference's value or by external reference, each
//! through its index.

use async_trait::async_trait;
use loyalty_core::api::MemberMatch;
use tokio_postgres::Row;

use super::{Cached, PgStorage, backend};
use crate::storage::{DirectoryStore, MAX_MATCHES, MemberFilter, MemberLookup, StorageError};

const BY_PREFERENCE: &str = "
    SELECT m.member_id, m.card_number, m.external_ref, m.status, m.tier, m.balance, m.created_at
    FROM member_preferences p JOIN members m USING (member_id)
    WHERE p.key = $1 AND p.value IN ($2, lower($2)) ORDER BY m.member_id LIMIT $3";
const BY_EXTERNAL_REF: &str = "
    SELECT m.member_id, m.card_number, m.external_ref, m.status, m.tier, m.balance, m.created_at
    FROM members m WHERE m.external_ref = $1 ORDER BY m.member_id LIMIT $2";
/// Every filter optional (a NULL parameter admits all); paged by member id in byte order, as on
/// SQLite.
const LIST: &str = "
    SELECT m.member_id, m.card_number, m.external_ref, m.status, m.tier, m.balance, m.created_at
    FROM members m
    WHERE ($1::text IS NULL OR m.tier = $1) AND ($2::text IS NULL OR m.status = $2)
      AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM segment_members s
                                       WHERE s.segment_id = $3 AND s.member_id = m.member_id))
      AND ($4::bigint IS NULL OR m.created_at >= $4) AND ($5::bigint IS NULL OR m.created_at < $5)
      AND ($6::text IS NULL OR m.member_id COLLATE \"C\" > $6)
    ORDER BY m.member_id COLLATE \"C\" LIMIT $7";
const BY_ID: &str = "
    SELECT m.member_id, m.card_number, m.external_ref, m.status, m.tier, m.balance, m.created_at
    FROM members m WHERE m.member_id = $1 LIMIT $2";

fn member_match(r: &Row) -> Result<MemberMatch, StorageError> {
    Ok(MemberMatch {
        member_id: r.try_get(0).map_err(backend)?,
        card_number: r.try_get(1).map_err(backend)?,
        external_ref: r.try_get(2).map_err(backend)?,
        blocked: r.try_get::<_, String>(3).map_err(backend)? == "blocked",
        tier: r.try_get(4).map_err(backend)?,
        balance: r.try_get(5).map_err(backend)?,
        enrolled_at_ms: r.try_get(6).map_err(backend)?,
    })
}

#[async_trait]
impl DirectoryStore for PgStorage {
    async fn find_members(&self, lookup: &MemberLookup) -> Result<Vec<MemberMatch>, StorageError> {
        let client = self.client().await?;
        let limit = i64::from(MAX_MATCHES);
        let rows = match lookup {
            MemberLookup::Preference { key, value } => {
                client.fetch_all(BY_PREFERENCE, &[key, value, &limit]).await
            }
            MemberLookup::ExternalRef(value) => {
                client.fetch_all(BY_EXTERNAL_REF, &[value, &limit]).await
            }
            MemberLookup::MemberId(value) => client.fetch_all(BY_ID, &[value, &limit]).await,
        }
        .map_err(backend)?;
        rows.iter().map(member_match).collect()
    }

    async fn list_members(&self, f: &MemberFilter) -> Result<Vec<MemberMatch>, StorageError> {
        let status = f.blocked.map(|b| if b { "blocked" } else { "active" });
        let limit = i64::from(f.limit);
        let rows = self
            .client()
            .await?
            .fetch_all(
                LIST,
                &[
                    &f.tier,
                    &status,
                    &f.segment,
                    &f.enrolled_from_ms,
                    &f.enrolled_to_ms,
                    &f.after,
                    &limit,
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(member_match).collect()
    }
}
