//! SQLite's [`DirectoryStore`]: members by a preference's value or by external reference, each
//! through its index.

use async_trait::async_trait;
use loyalty_core::api::MemberMatch;
use rusqlite::params;

use super::{SqliteStorage, backend};
use crate::storage::{DirectoryStore, MAX_MATCHES, MemberLookup, StorageError};

const BY_PREFERENCE: &str = "
    SELECT m.member_id, m.card_number, m.external_ref, m.status, m.tier, m.balance
    FROM member_preferences p JOIN members m USING (member_id)
    WHERE p.key = ?1 AND p.value IN (?2, lower(?2)) ORDER BY m.member_id LIMIT ?3";
const BY_EXTERNAL_REF: &str = "
    SELECT m.member_id, m.card_number, m.external_ref, m.status, m.tier, m.balance
    FROM members m WHERE m.external_ref = ?1 ORDER BY m.member_id LIMIT ?2";
const BY_ID: &str = "
    SELECT m.member_id, m.card_number, m.external_ref, m.status, m.tier, m.balance
    FROM members m WHERE m.member_id = ?1 LIMIT ?2";

fn member_match(r: &rusqlite::Row<'_>) -> rusqlite::Result<MemberMatch> {
    Ok(MemberMatch {
        member_id: r.get(0)?,
        card_number: r.get(1)?,
        external_ref: r.get(2)?,
        blocked: r.get::<_, String>(3)? == "blocked",
        tier: r.get(4)?,
        balance: r.get(5)?,
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
}
