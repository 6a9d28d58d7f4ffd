//! Segments: operator-defined groups of members, and the rules that define them. A rule combines RFM
//! score ranges (recency, frequency, monetary), a set of tiers, an enrollment date range and
//! preference values; every condition given must hold (they are ANDed), and a condition left out
//! does not restrict. This module is pure: the server evaluates the rules in SQL over the ledger and
//! the mirror of the member documents, and it validates them here first, so a malformed rule is
//! refused before anything is stored.
//!
//! RFM scores run from 1 (lowest fifth of buying members) to 5 (highest fifth). Score 0 means "no
//! purchase in the RFM window", so a range `0..=0` selects lapsed members and a range starting at 1
//! selects buyers only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::valid_record_id;

/// The highest RFM score.
pub const MAX_SCORE: u8 = 5;
/// Longest segment name, in bytes.
pub const MAX_NAME: usize = 128;
/// Most tiers one rule may list.
pub const MAX_TIERS: usize = 32;
/// Most preference conditions one rule may hold.
pub const MAX_PREFERENCES: usize = 16;

/// An inclusive range of RFM scores, each 0 (no purchase in the window) to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScoreRange {
    #[cfg_attr(feature = "openapi", schema(maximum = 5))]
    pub min: u8,
    #[cfg_attr(feature = "openapi", schema(maximum = 5))]
    pub max: u8,
}

/// The conditions a member must meet to be in a segment. Unknown fields are refused rather than
/// ignored: a misspelt condition silently widening a segment to every member would be worse than an
/// error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SegmentRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recency: Option<ScoreRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<ScoreRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monetary: Option<ScoreRange>,
    /// The member's tier is one of these; empty for any tier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 32))]
    pub tiers: Vec<String>,
    /// Enrolled at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_from_ms: Option<i64>,
    /// Enrolled before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_until_ms: Option<i64>,
    /// Each preference key has exactly this value in the member document.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub preferences: BTreeMap<String, String>,
}

/// A segment as operators define it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Segment {
    pub id: String,
    pub name: String,
    pub rules: SegmentRules,
}

/// Reads rules only from a JSON object. Serde would also take an array for a struct (its fields in
/// order), so `"rules": []` would become "no conditions" — every member — without a word.
pub fn rules_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SegmentRules, D::Error> {
    let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
    serde_json::from_value(serde_json::Value::Object(map)).map_err(serde::de::Error::custom)
}

impl ScoreRange {
    fn validate(&self, what: &str) -> Result<(), String> {
        if self.min > self.max || self.max > MAX_SCORE {
            return Err(format!(
                "{what} range {}..{} must satisfy 0 <= min <= max <= {MAX_SCORE}",
                self.min, self.max
            ));
        }
        Ok(())
    }
}

/// A tier name: the same shape as a record id, so it can never smuggle anything odd into a query
/// or a document.
pub fn valid_tier(tier: &str) -> bool {
    valid_record_id(tier)
}

impl SegmentRules {
    pub fn validate(&self) -> Result<(), String> {
        for (what, range) in [
            ("recency", &self.recency),
            ("frequency", &self.frequency),
            ("monetary", &self.monetary),
        ] {
            if let Some(r) = range {
                r.validate(what)?;
            }
        }
        if self.tiers.len() > MAX_TIERS {
            return Err(format!("at most {MAX_TIERS} tiers per rule"));
        }
        if let Some(bad) = self.tiers.iter().find(|t| !valid_tier(t)) {
            return Err(format!(
                "tier `{bad}` must be 1-64 characters of letters, digits, `_`, `-`, `.`"
            ));
        }
        if let (Some(from), Some(until)) = (self.enrolled_from_ms, self.enrolled_until_ms)
            && until <= from
        {
            return Err("the enrollment range must end after it starts".into());
        }
        if self.preferences.len() > MAX_PREFERENCES {
            return Err(format!(
                "at most {MAX_PREFERENCES} preference conditions per rule"
            ));
        }
        for (key, value) in &self.preferences {
            // The member document's own limits: a condition nobody could ever meet is a mistake.
            if key.is_empty() || key.len() > crate::member::limits::MAX_KEY {
                return Err(format!(
                    "preference key must be 1-{} bytes",
                    crate::member::limits::MAX_KEY
                ));
            }
            if value.len() > crate::member::limits::MAX_VALUE {
                return Err(format!(
                    "preference value must be at most {} bytes",
                    crate::member::limits::MAX_VALUE
                ));
            }
        }
        Ok(())
    }
}

impl Segment {
    pub fn validate(&self) -> Result<(), String> {
        if !valid_record_id(&self.id) {
            return Err(
                "segment id must be 1-64 characters of letters, digits, `_`, `-`, `.`".into(),
            );
        }
        if self.name.trim().is_empty() || self.name.len() > MAX_NAME {
            return Err(format!("segment name must be 1-{MAX_NAME} bytes"));
        }
        self.rules.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(rules: SegmentRules) -> Segment {
        Segment {
            id: "loyal-coffee".into(),
            name: "Loyal coffee buyers".into(),
            rules,
        }
    }

    #[test]
    fn a_full_rule_is_valid_and_reads_back_from_json() {
        let json = r#"{"recency": {"min": 4, "max": 5}, "frequency": {"min": 0, "max": 5},
                       "tiers": ["gold", "silver"], "enrolled_from_ms": 0, "enrolled_until_ms": 10,
                       "preferences": {"coffee": "yes"}}"#;
        let rules: SegmentRules = serde_json::from_str(json).unwrap();
        assert!(segment(rules.clone()).validate().is_ok());
        let again: SegmentRules =
            serde_json::from_str(&serde_json::to_string(&rules).unwrap()).unwrap();
        assert_eq!(again, rules);
    }

    #[test]
    fn rules_must_be_an_object() {
        #[derive(Deserialize)]
        struct Body {
            #[serde(deserialize_with = "rules_object")]
            rules: SegmentRules,
        }
        assert!(serde_json::from_str::<Body>(r#"{"rules": []}"#).is_err());
        assert!(serde_json::from_str::<Body>(r#"{"rules": {"recncy": {}}}"#).is_err());
        let ok = serde_json::from_str::<Body>(r#"{"rules": {"tiers": ["gold"]}}"#).unwrap();
        assert_eq!(ok.rules.tiers, ["gold"]);
    }

    #[test]
    fn no_conditions_means_every_member() {
        assert!(segment(SegmentRules::default()).validate().is_ok());
    }

    #[test]
    fn misspelt_or_unknown_conditions_are_refused() {
        assert!(
            serde_json::from_str::<SegmentRules>(r#"{"recncy": {"min": 1, "max": 2}}"#).is_err()
        );
        assert!(
            serde_json::from_str::<SegmentRules>(r#"{"recency": {"min": 1, "max": 2, "x": 1}}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<SegmentRules>(r#"{"recency": {"min": -1, "max": 2}}"#).is_err()
        );
    }

    #[test]
    fn bad_ranges_and_values_are_refused() {
        let range = |min, max| Some(ScoreRange { min, max });
        let bad = [
            SegmentRules {
                recency: range(3, 2),
                ..Default::default()
            },
            SegmentRules {
                monetary: range(1, 6),
                ..Default::default()
            },
            SegmentRules {
                tiers: vec!["gold; DROP".into()],
                ..Default::default()
            },
            SegmentRules {
                tiers: vec!["t".into(); MAX_TIERS + 1],
                ..Default::default()
            },
            SegmentRules {
                enrolled_from_ms: Some(10),
                enrolled_until_ms: Some(10),
                ..Default::default()
            },
            SegmentRules {
                preferences: [(String::new(), "x".into())].into(),
                ..Default::default()
            },
            SegmentRules {
                preferences: [("k".into(), "x".repeat(crate::member::limits::MAX_VALUE + 1))]
                    .into(),
                ..Default::default()
            },
        ];
        for rules in bad {
            assert!(segment(rules.clone()).validate().is_err(), "{rules:?}");
        }
        let mut s = segment(SegmentRules::default());
        s.id = "a/b".into();
        assert!(s.validate().is_err());
        s = segment(SegmentRules::default());
        s.name = " ".into();
        assert!(s.validate().is_err());
    }
}
