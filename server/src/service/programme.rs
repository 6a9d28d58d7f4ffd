//! The programme's operator API and its own work. Operators read and replace the configuration
//! (earning rules, points policy, tier ladder) as one validated document and can set a member's
//! tier by hand. The settle job matures and expires points, warns members before their points
//! expire, reviews tiers and awards birthday points; it runs in the background every
//! `settle_interval` and on request. Event points (enrollment, a completed profile, birthdays) are
//! postings with an idempotency key per member and event, so each is awarded once.

use crate::storage::PostingKind;
use loyalty_core::api::PostingResponse;
use loyalty_core::programme::Programme;
use loyalty_core::reasons::{Reason, ReasonCode, ReasonParams};

use crate::app::App;
use crate::error::DomainError;
use crate::service::ledger::{self, Plan};

pub(crate) fn programme_plan(key: &str, kind: PostingKind) -> Plan {
    Plan {
        idempotency_key: key.to_string(),
        request_hash: [0; 32],
        kind,
        till_id: "programme".into(),
        receipt_id: String::new(),
        refers_to: None,
        total_minor: 0,
        earned: 0,
        redeemed: 0,
        always: true,
    }
}

/// Replaces the programme after validating it: the instance's cache at once, other instances'
/// within their cache's life.
pub async fn replace(app: &App, programme: Programme) -> Result<Programme, DomainError> {
    programme
        .validate()
        .map_err(|m| DomainError::bad_request("invalid_programme", m))?;
    app.storage.set_programme(&programme, app.now_ms()).await?;
    app.cache_programme(std::sync::Arc::new(programme.clone()));
    tracing::info!("programme configuration replaced");
    Ok(programme)
}

/// Pins the member's tier (`Some`, a tier of the ladder) or hands them back to the ladder
/// (`None`, evaluated from their current spend from today), as a posting of its own.
pub async fn set_tier(
    app: &App,
    member_id: &str,
    tier: Option<String>,
) -> Result<PostingResponse, DomainError> {
    let programme = app.programme().await?;
    if let Some(t) = &tier
        && programme.tiers.get(t).is_none()
    {
        return Err(DomainError::bad_request(
            "unknown_tier",
            format!("the programme has no tier `{t}`"),
        ));
    }
    let key = format!("tier:{}", loyalty_core::ids::new_record_id("set"));
    let outcome = ledger::transact(app, member_id, false, |draft| {
        match &tier {
            Some(t) => {
                draft.tier.tier = t.clone();
                draft.tier.manual = true;
                draft.tier.since_ms = draft.now;
                draft.tier.downgrade_at_ms = None;
            }
            None => {
                // Back on the ladder: evaluation from the current spend decides, from today.
                draft.tier.manual = false;
                draft.tier.since_ms = draft.now;
                draft.tier.review_at_ms = draft.now;
            }
        }
        Ok(programme_plan(&key, PostingKind::Tier))
    })
    .await?;
    tracing::info!(member = %member_id, manual = tier.is_some(), "tier set by an operator");
    Ok(outcome.response)
}

/// Awards event points once per member and `event` (`enrollment`, `profile`, `birthday:2026`).
/// Returns whether this call awarded them.
pub async fn award_event(
    app: &App,
    member_id: &str,
    event: &str,
    points: i64,
    reason: &str,
) -> Result<bool, DomainError> {
    if points <= 0 {
        return Ok(false);
    }
    let key = format!("event:{member_id}:{event}");
    // Most calls find the event already paid (another device enrolled, the profile changed
    // again): one indexed read instead of a whole posting attempt. Only this member's event
    // posting counts as paid: tills post in a namespace of their own (`till:…`), so anything else
    // under this key is a defect to report, not a bonus to skip in silence.
    if let Some(prior) = app.storage.prior_posting(&key).await? {
        if prior.member_id == member_id && prior.kind == PostingKind::Event {
            return Ok(false);
        }
        return Err(DomainError::internal(
            "event points",
            format!(
                "key {key} holds a {} posting, not this member's event",
                prior.kind
            ),
        ));
    }
    let rule = format!("event:{}", event.split(':').next().unwrap_or(event));
    let outcome = ledger::transact(app, member_id, false, |draft| {
        // Pending protects against refunds; nothing refunds an event, so it is spendable at once.
        let params = ReasonParams {
            rule_id: Some(rule.clone()),
            title: Some(reason.to_string()),
            ..ReasonParams::default()
        };
        draft.earn_available(&rule, points, Reason::new(ReasonCode::Event, params));
        let mut plan = programme_plan(&key, PostingKind::Event);
        plan.earned = points;
        Ok(plan)
    })
    .await?;
    Ok(outcome.written)
}

/// After enrollment: the enrollment bonus, once per member however many devices they enroll.
pub async fn enrolled(app: &App, member_id: &str) {
    let result = async {
        let points = app.programme().await?.earning.events.enrollment;
        award_event(
            app,
            member_id,
            "enrollment",
            points,
            "Welcome to the programme",
        )
        .await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(member = %member_id, error = %e.message, "enrollment points not awarded");
    }
}

/// After the member document changed: the profile bonus, once, when every profile field is set.
/// `preferences` are the ones the sync just stored.
pub async fn member_changed(
    app: &App,
    member_id: &str,
    preferences: &std::collections::BTreeMap<String, String>,
) {
    let result = async {
        let programme = app.programme().await?;
        let events = &programme.earning.events;
        if events.profile_complete <= 0 {
            return Ok(false);
        }
        let complete = events
            .profile_fields
            .iter()
            .all(|f| preferences.get(f).is_some_and(|v| !v.trim().is_empty()));
        if !complete {
            return Ok(false);
        }
        award_event(
            app,
            member_id,
            "profile",
            events.profile_complete,
            "Thank you for completing your profile",
        )
        .await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(member = %member_id, error = %e.message, "profile points not awarded");
    }
}
