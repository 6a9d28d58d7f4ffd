//! SQLite's [`DirectoryStore`]: members by a preference's value or by external reference, each
//! through its index.

use async_trait::async_trait;
use loyalty_core::api::MemberMatch;
use rusqlite::params;

use super::{SqliteStorage, backend};
use crate::storage::{DirectoryStore, MAX_MATCHES, MemberFilter, MemberLookup, StorageError};

const BY_PREFERENCE: &str = "
    SELECT m.member_id, m.card_number, m.external_ref, m.status, m.tier, m.balance, m.created_at
    FROM member_preferences p JOIN members m USING (member_id)
    WHERE p.key = ?1 AND p.value IN (?2, lower(?2)) ORDER BY m.member_id LIMIT ?3";
const BY_EXTERNAL_REF: &str = "
    SELECT m.member_id, m.card_number, m.external_ref, m.status, m.tier, m.balance, m.created_at
    FROM members m WHERE m.external_ref = ?1 ORDER BY m.member_id LIMIT ?2";
/// Every filter optional (a NULL parameter admits all); paged by member id, the primary key.
const LIST: &str = "
    SELECT m.member_id, m.card_number, m.external_ref, m.status, m.tier, m.balance, m.created_at
    FROM members m
    WHERE (?1 IS NULL OR m.tier = ?1) AND (?2 IS NULL OR m.status = ?2)
      AND (?3 IS NULL OR EXISTS (SELECT 1 FROM segment_members s
                                 WHERE s.segment_id = ?3 AND s.member_id = m.member_id))
      AND (?4 IS NULL OR m.created_at >= ?4) AND (?5 IS NULL OR m.created_at < ?5)
      AND (?6 IS NULL OR m.member_id > ?6)
    ORDER BY m.member_id LIMIT ?7";
const BY_ID: &str = "
    SELECT m.member_id, m.card_number, m.external_ref, m.status, m.tier, m.balance, m.created_at
    FROM members m WHERE m.member_id = ?1 LIMIT ?2";

fn member_match(r: &rusqlite::Row<'_>) -> rusqlite::Result<MemberMatch> {
    Ok(MemberMatch {
        member_id: r.get(0)?,
        card_number: r.get(1)?,
        external_ref: r.get(2)?,
        blocked: r.get::<_, String>(3)? == "blocked",
        tier: r.get(4)?,
        balance: r.get(5)?,
        enrolled_at_ms: r.get(6)?,
    })
}

#[async_trait]
impl DirectoryStore for SqliteStorage {
    async fn find_members(&self, lookup: &MemberLookup) -> Result<Vec<MemberMatch>, StorageError> {
        let lookup = lookup.clone();
        self.read(move |conn| {
            let rows = match &lookup {
                MemberLookup::Preference { key, value } => {
                    conn.prepare_cached(BY_PREFERENCE).and_then(|mut s| {
                        s.query_map(params![key, value, MAX_MATCHES], member_match)?
                            .collect::<Result<Vec<_>, _>>()
                    })
                }
                MemberLookup::ExternalRef(value) | MemberLookup::MemberId(value) => conn
                    .prepare_cached(match lookup {
                        MemberLookup::MemberId(_) => BY_ID,
                        _ => BY_EXTERNAL_REF,
                    })
                    .and_then(|mut s| {
                        s.query_map(params![value, MAX_MATCHES], member_match)?
                            .collect::<Result<Vec<_>, _>>()
                    }),
            };
            rows.map_err(backend)
        })
        .await
    }

    async fn list_members(&self, f: &MemberFilter) -> Result<Vec<MemberMatch>, StorageError> {
        let f = f.clone();
        self.read(move |conn| {
            let status = f.blocked.map(|b| if b { "blocked" } else { "active" });
            conn.prepare_cached(LIST)
                .and_then(|mut s| {
                    s.query_map(
                        params![
                            f.tier,
                            status,
                            f.segment,
                            f.enrolled_from_ms,
                            f.enrolled_to_ms,
                            f.after,
                            f.limit
                        ],
                        member_match,
                    )?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(backend)
        })
        .await
    }
}
