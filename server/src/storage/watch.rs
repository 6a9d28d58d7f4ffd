//! The fraud watch list as the database computes it: one aggregate over a window's postings, the
//! codes tills refused and offline tills' exceptions, grouped by member or by till and ranked by
//! one measure; and the members with many live devices. Refused codes are counted here as they
//! happen (per UTC day, till, member and reason), since a refusal leaves nothing else behind.

use async_trait::async_trait;
use loyalty_core::api::watch_list::WatchOrder;

use crate::storage::StorageError;
use crate::storage::dialect::Dialect;

/// What a watch list covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchQuery {
    /// Postings and exceptions at or after this, refusals from its UTC day.
    pub from_ms: i64,
    /// Postings and exceptions before this, refusals to its UTC day inclusive.
    pub to_ms: i64,
    /// The measure the members and tills are ranked by, largest first.
    pub by: WatchOrder,
    /// How many members and how many tills.
    pub limit: u32,
    /// Members with at least this many live devices are listed.
    pub min_devices: i64,
}

/// One member's or till's activity in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchActivity {
    /// The member id or the till id.
    pub id: String,
    /// The member's card number (`None` for a till).
    pub card_number: Option<String>,
    pub purchases: i64,
    /// Purchases that redeemed points.
    pub redemptions: i64,
    pub points_redeemed: i64,
    pub refunds: i64,
    pub refused_codes: i64,
    pub offline_exceptions: i64,
}

/// The watch list's figures, before the service shapes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchTotals {
    pub members: Vec<WatchActivity>,
    pub tills: Vec<WatchActivity>,
    /// (member id, card number, live devices), most devices first.
    pub many_devices: Vec<(String, String, i64)>,
    /// (source, reason, count): `scan` for refused codes, `offline` for offline tills' exceptions.
    pub refusals: Vec<(String, String, i64)>,
}

#[async_trait]
pub trait WatchStore: Send + Sync + 'static {
    /// Counts one code a till refused at `at_ms`, for the member the code named when it named a
    /// known card.
    async fn record_refusal(
        &self,
        till_id: &str,
        member_id: Option<&str>,
        reason: &str,
        at_ms: i64,
    ) -> Result<(), StorageError>;

    /// The watch list over the query's window: one scan of the window's postings, refusals and
    /// exceptions per ranking, one of the live devices.
    async fn watch_list(&self, query: &WatchQuery) -> Result<WatchTotals, StorageError>;
}

/// The ranking's column in the backends' statements (a fixed name, never input).
pub(crate) fn order_column(by: WatchOrder) -> &'static str {
    match by {
        WatchOrder::Purchases => "purchases",
        WatchOrder::Redeemed => "points_redeemed",
        WatchOrder::Refunds => "refunds",
        WatchOrder::RefusedCodes => "refused_codes",
    }
}

/// The UTC days a window's refusals are counted over: from its start's day to its end's.
pub(crate) fn refusal_days(query: &WatchQuery) -> (i64, i64) {
    let day = loyalty_core::calendar::DAY_MS;
    (
        query.from_ms.div_euclid(day),
        query.to_ms.saturating_sub(1).div_euclid(day),
    )
}

/// The ranked activity of members (`by_member`) or tills in one statement. Parameters: 1 and 2
/// the window in ms, 3 and 4 its first and last UTC day, 5 the limit.
pub(crate) fn activity_statement(d: &Dialect, by_member: bool, by: WatchOrder) -> String {
    let (who, card, join) = if by_member {
        (
            "member_id",
            "m.card_number",
            "LEFT JOIN members m ON m.member_id = r.who",
        )
    } else {
        ("till_id", d.null_text, "")
    };
    let (int, c, order) = (d.int, d.collate, order_column(by));
    let sql = format!(
        "WITH acts AS (
            SELECT {who} AS who,
                   CASE WHEN kind = 'purchase' THEN 1 ELSE 0 END AS purchases,
                   CASE WHEN kind = 'purchase' AND redeemed > 0 THEN 1 ELSE 0 END AS redemptions,
                   CASE WHEN kind = 'purchase' THEN redeemed ELSE 0 END AS points_redeemed,
                   CASE WHEN kind = 'refund' THEN 1 ELSE 0 END AS refunds,
                   0 AS refused_codes, 0 AS offline_exceptions
            FROM postings WHERE at >= ?1 AND at < ?2 AND kind IN ('purchase', 'refund')
            UNION ALL
            SELECT {who}, 0, 0, 0, 0, count, 0 FROM code_refusals WHERE day >= ?3 AND day <= ?4
            UNION ALL
            SELECT {who}, 0, 0, 0, 0, 0, 1 FROM till_exceptions WHERE at >= ?1 AND at < ?2),
        ranked AS (
            SELECT who, sum(purchases){int} AS purchases, sum(redemptions){int} AS redemptions,
                   sum(points_redeemed){int} AS points_redeemed, sum(refunds){int} AS refunds,
                   sum(refused_codes){int} AS refused_codes,
                   sum(offline_exceptions){int} AS offline_exceptions
            FROM acts WHERE who IS NOT NULL AND who <> '' GROUP BY who
            ORDER BY {order} DESC, who{c} LIMIT ?5)
        SELECT r.who, {card}, r.purchases, r.redemptions, r.points_redeemed, r.refunds,
               r.refused_codes, r.offline_exceptions
        FROM ranked r {join}
        WHERE r.{order} > 0
        ORDER BY r.{order} DESC, r.who{c}"
    );
    d.params(&sql)
}

/// Members with many live devices. Parameters: 1 the least count, 2 the limit.
pub(crate) fn devices_statement(d: &Dialect) -> String {
    // Counted from the live devices' own index first; only the few members past the bound are
    // joined for their card number.
    let c = d.collate;
    d.params(&format!(
        "SELECT d.member_id, m.card_number, d.n
         FROM (SELECT member_id, count(*) AS n FROM devices WHERE revoked_at IS NULL
               GROUP BY member_id HAVING count(*) >= ?1) d
         JOIN members m ON m.member_id = d.member_id
         ORDER BY d.n DESC, d.member_id{c} LIMIT ?2"
    ))
}

/// Refusals and offline exceptions by reason. Parameters: 1 and 2 the first and last UTC day,
/// 3 and 4 the window in ms.
pub(crate) fn refusals_statement(d: &Dialect) -> String {
    let int = d.int;
    d.params(&format!(
        "SELECT 'scan', reason, sum(count){int} FROM code_refusals
         WHERE day >= ?1 AND day <= ?2 GROUP BY reason
         UNION ALL
         SELECT 'offline', kind, count(*) FROM till_exceptions
         WHERE at >= ?3 AND at < ?4 GROUP BY kind"
    ))
}
