//! The fraud watch list (`GET /v1/admin/reports/watch`): where an operator looks first for abuse.
//! Members and tills ranked by one measure over a window — purchases (velocity), points redeemed,
//! refunds, or codes refused at tills (replayed screenshots, forged or expired codes, revoked
//! keys, blocked or lost cards) — each with the other measures and their refund rate; the members
//! with many live devices; and the refusals and offline exceptions by reason. A list to read, not
//! a verdict: every figure links back to the ledger and the tills' records.

use serde::{Deserialize, Serialize};

/// The measure a watch list ranks members and tills by, largest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WatchOrder {
    /// Purchases in the window: velocity.
    #[default]
    Purchases,
    /// Points redeemed in the window.
    Redeemed,
    /// Refunds in the window.
    Refunds,
    /// Codes refused at tills in the window.
    RefusedCodes,
}

impl WatchOrder {
    /// The name it is asked for and serialised under.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchases => "purchases",
            Self::Redeemed => "redeemed",
            Self::Refunds => "refunds",
            Self::RefusedCodes => "refused_codes",
        }
    }
}

/// A member's or a till's activity in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchedActivity {
    /// The member id, or the till id.
    pub id: String,
    /// The member's card number (absent for a till).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_number: Option<String>,
    pub purchases: i64,
    /// Purchases that redeemed points, and how many points they redeemed.
    pub redemptions: i64,
    pub points_redeemed: i64,
    pub refunds: i64,
    /// Refunds per purchase in the window (0 without purchases).
    pub refund_rate: f64,
    /// Codes naming this member, or scanned at this till, that were refused.
    pub refused_codes: i64,
    /// Offline purchases that could not be honoured as the till did them (code reuse, refused,
    /// redemption shortfall).
    pub offline_exceptions: i64,
}

impl WatchedActivity {
    /// Refunds per purchase, 0 without purchases.
    pub fn rate(refunds: i64, purchases: i64) -> f64 {
        if purchases > 0 {
            refunds as f64 / purchases as f64
        } else {
            0.0
        }
    }
}

/// A member with many live (not revoked) devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceCount {
    pub member_id: String,
    pub card_number: String,
    pub devices: i64,
}

/// Refused codes (`source` `scan`) or offline exceptions (`offline`) of one reason.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefusalCount {
    pub source: String,
    pub reason: String,
    pub count: i64,
}

/// The fraud watch list over `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchList {
    pub from_ms: i64,
    pub to_ms: i64,
    pub by: WatchOrder,
    /// Members ranked by `by`, at most the limit asked.
    pub members: Vec<WatchedActivity>,
    /// Tills ranked by `by`, at most the limit asked.
    pub tills: Vec<WatchedActivity>,
    /// Members with at least `min_devices` live devices, most first.
    pub min_devices: i64,
    pub many_devices: Vec<DeviceCount>,
    /// Refused codes and offline exceptions in the window, by source and reason.
    pub refusals: Vec<RefusalCount>,
}

impl WatchList {
    /// The list as CSV (`list,id,card_number,purchases,redemptions,points_redeemed,refunds,
    /// refund_rate,refused_codes,offline_exceptions,devices`): `member` and `till` rows, then
    /// `devices` rows, then refusals as `scan:<reason>` or `offline:<reason>` rows whose count is
    /// in `refused_codes`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "list,id,card_number,purchases,redemptions,points_redeemed,refunds,refund_rate,\
             refused_codes,offline_exceptions,devices\n",
        );
        let activity = |out: &mut String, list: &str, a: &WatchedActivity| {
            out.push_str(&format!(
                "{list},{},{},{},{},{},{},{:.4},{},{},\n",
                a.id,
                a.card_number.as_deref().unwrap_or(""),
                a.purchases,
                a.redemptions,
                a.points_redeemed,
                a.refunds,
                a.refund_rate,
                a.refused_codes,
                a.offline_exceptions
            ));
        };
        self.members
            .iter()
            .for_each(|a| activity(&mut out, "member", a));
        self.tills
            .iter()
            .for_each(|a| activity(&mut out, "till", a));
        for d in &self.many_devices {
            out.push_str(&format!(
                "devices,{},{},,,,,,,,{}\n",
                d.member_id, d.card_number, d.devices
            ));
        }
        for r in &self.refusals {
            out.push_str(&format!("{}:{},,,,,,,,{},,\n", r.source, r.reason, r.count));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_has_a_row_per_member_till_device_count_and_refusal() {
        let list = WatchList {
            from_ms: 0,
            to_ms: 1,
            by: WatchOrder::Purchases,
            members: vec![WatchedActivity {
                id: "m1".into(),
                card_number: Some("6270000000000001".into()),
                purchases: 4,
                redemptions: 1,
                points_redeemed: 50,
                refunds: 1,
                refund_rate: WatchedActivity::rate(1, 4),
                refused_codes: 2,
                offline_exceptions: 0,
            }],
            tills: vec![WatchedActivity {
                id: "t1".into(),
                card_number: None,
                purchases: 4,
                redemptions: 1,
                points_redeemed: 50,
                refunds: 1,
                refund_rate: 0.25,
                refused_codes: 3,
                offline_exceptions: 1,
            }],
            min_devices: 3,
            many_devices: vec![DeviceCount {
                member_id: "m2".into(),
                card_number: "6270000000000002".into(),
                devices: 5,
            }],
            refusals: vec![RefusalCount {
                source: "scan".into(),
                reason: "code_replayed".into(),
                count: 3,
            }],
        };
        assert_eq!(
            list.to_csv(),
            "list,id,card_number,purchases,redemptions,points_redeemed,refunds,refund_rate,\
             refused_codes,offline_exceptions,devices\n\
             member,m1,6270000000000001,4,1,50,1,0.2500,2,0,\n\
             till,t1,,4,1,50,1,0.2500,3,1,\n\
             devices,m2,6270000000000002,,,,,,,,5\n\
             scan:code_replayed,,,,,,,,3,,\n"
        );
        assert_eq!(WatchedActivity::rate(1, 0), 0.0);
        for by in [
            WatchOrder::Purchases,
            WatchOrder::Redeemed,
            WatchOrder::Refunds,
            WatchOrder::RefusedCodes,
        ] {
            assert_eq!(serde_json::to_value(by).unwrap(), by.as_str());
        }
    }
}
