//! The programme's operator API and its own work. Operators read and replace the configuration
//! (earning rules, points policy, tier ladder) as one validated document and can set a member's
//! tier by hand. The settle job matures and expires points, warns members before their points
//! expire, reviews tiers and awards birthday points; it runs in the background every
//! `settle_interval` and on request. Event points (enrollment, a completed profile, birthdays) are
//! postings with an idempotency key per member and event, so each is awarded once.

use std::sync::Arc;

use axum::extract::{Path, State};
use loyalty_core::calendar::{self, format_date};
use loyalty_core::earning::Earning;
use loyalty_core::programme::Programme;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::ApiError;
use crate::extract::Operator;
use crate::json::Json;
use crate::ledger::{self, Plan};

/// Members settled per batch of the settle job.
const SETTLE_BATCH: usize = 500;

pub async fn get_programme(
    State(app): State<Arc<App>>,
    _: Operator,
) -> Result<Json<Programme>, ApiError> {
    Ok(Json((*app.programme().await?).clone()))
}

pub async fn put_programme(
    State(app): State<Arc<App>>,
    _: Operator,
    body: Result<Json<Programme>, ApiError>,
) -> Result<Json<Programme>, ApiError> {
    let Json(programme) = body?;
    programme
        .validate()
        .map_err(|m| ApiError::bad_request("invalid_programme", m))?;
    app.storage.set_programme(&programme, app.now_ms()).await?;
    app.cache_programme(Arc::new(programme.clone()));
    tracing::info!("programme configuration replaced");
    Ok(Json(programme))
}

/// `POST /v1/admin/members/{id}/tier`: `{"tier": "gold"}` pins a tier; `{"tier": null}` hands the
/// member back to the ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetTier {
    pub tier: Option<String>,
}

pub async fn set_tier(
    State(app): State<Arc<App>>,
    Path(member_id): Path<String>,
    _: Operator,
    body: Result<Json<SetTier>, ApiError>,
) -> Result<Json<loyalty_core::api::PostingResponse>, ApiError> {
    let Json(request) = body?;
    let programme = app.programme().await?;
    if let Some(t) = &request.tier
        && programme.tiers.get(t).is_none()
    {
        return Err(ApiError::bad_request(
            "unknown_tier",
            format!("the programme has no tier `{t}`"),
        ));
    }
    let key = format!("tier:{}", loyalty_core::ids::new_record_id("set"));
    let outcome = ledger::transact(&app, &member_id, false, |draft| {
        match &request.tier {
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
        Ok(programme_plan(&key, "tier"))
    })
    .await?;
    tracing::info!(member = %member_id, manual = request.tier.is_some(), "tier set by an operator");
    Ok(Json(outcome.response))
}

fn programme_plan(key: &str, kind: &'static str) -> Plan {
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

/// Awards event points once per member and `event` (`enrollment`, `profile`, `birthday:2026`).
/// Returns whether this call awarded them.
pub async fn award_event(
    app: &App,
    member_id: &str,
    event: &str,
    points: i64,
    reason: &str,
) -> Result<bool, ApiError> {
    if points <= 0 {
        return Ok(false);
    }
    let key = format!("event:{member_id}:{event}");
    // Most calls find the event already paid (another device enrolled, the profile changed
    // again): one indexed read instead of a whole posting attempt. Only this member's event
    // posting counts as paid: tills post in a namespace of their own (`till:…`), so anything else
    // under this key is a defect to report, not a bonus to skip in silence.
    if let Some(prior) = app.storage.prior_posting(&key).await? {
        if prior.member_id == member_id && prior.kind == "event" {
            return Ok(false);
        }
        return Err(ApiError::internal(
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
        draft.earn_available(&Earning {
            rule: rule.clone(),
            points,
            reason: reason.to_string(),
        });
        let mut plan = programme_plan(&key, "event");
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

/// What one run of the settle job did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleReport {
    /// Members whose points or tier changed.
    pub members: usize,
    pub expired_points: i64,
    pub warnings: usize,
    pub birthdays: usize,
    /// Members the run could not settle (logged; they stay due and are tried again next run).
    #[serde(default)]
    pub failed: usize,
}

/// Settles every member whose points mature or expire, whose warning is due or whose tier is up
/// for review by now, and awards today's birthday points.
pub async fn settle(app: &App) -> Result<SettleReport, ApiError> {
    let mut report = SettleReport::default();
    let now = app.now_ms();
    // Paged by (next event, member id): a member who fails keeps their old next event and so
    // sorts first, and must not hide everyone after them.
    let mut after: Option<(i64, String)> = None;
    loop {
        let due = app
            .storage
            .members_due(now, after.clone(), SETTLE_BATCH)
            .await?;
        let Some(last) = due.last() else {
            break;
        };
        after = Some((last.1, last.0.clone()));
        for (member_id, _) in due {
            // One member's failure (a corrupt card, a busy database) must not hold up everyone
            // else's expiries and reviews.
            if let Err(e) = settle_member(app, &member_id, &mut report).await {
                tracing::warn!(member = %member_id, code = e.code, "could not settle a member");
                report.failed += 1;
            }
        }
    }
    report.birthdays = birthdays(app, now).await?;
    Ok(report)
}

async fn settle_member(
    app: &App,
    member_id: &str,
    report: &mut SettleReport,
) -> Result<(), ApiError> {
    let key = format!("settle:{}", loyalty_core::ids::new_record_id("run"));
    let mut warnings = Vec::new();
    let outcome = ledger::transact(app, member_id, false, |draft| {
        let warn_days = draft.programme.points.warn_days;
        warnings = draft.book.due_warnings(draft.now, warn_days);
        let mut plan = programme_plan(&key, "settle");
        plan.always = false;
        Ok(plan)
    })
    .await?;
    if !outcome.written {
        return Ok(());
    }
    report.members += 1;
    report.expired_points -= outcome
        .response
        .movements
        .iter()
        .filter(|m| m.rule == "expiry")
        .map(|m| m.points)
        .sum::<i64>();
    for (at, points) in warnings {
        if let Err(e) = warn_expiry(app, member_id, at, points).await {
            // The lots were marked warned with the settle; unmark them so the next run warns
            // again rather than never.
            unwarn(app, member_id, at).await?;
            return Err(e);
        }
        report.warnings += 1;
    }
    Ok(())
}

async fn unwarn(app: &App, member_id: &str, at: i64) -> Result<(), ApiError> {
    let key = format!("settle:{}", loyalty_core::ids::new_record_id("run"));
    ledger::transact(app, member_id, false, |draft| {
        draft.book.unwarn(at);
        let mut plan = programme_plan(&key, "settle");
        plan.always = false;
        Ok(plan)
    })
    .await
    .map(|_| ())
}

/// Tells the member in their inbox that points will expire. The message id names the member,
/// the date and the points, so a repeated run writes nothing new and a later warning for the same
/// date (points earned since) is a message of its own.
async fn warn_expiry(app: &App, member_id: &str, at: i64, points: i64) -> Result<(), ApiError> {
    // The last day the points can be used is the day before they expire at midnight.
    let last_day = format_date(at - 1);
    crate::messaging::send_service(
        app,
        member_id,
        &format!("{points} points expire after {last_day}"),
        &format!(
            "{points} of your points expire at the end of {last_day}. Spend them at the till before then."
        ),
        &format!("exp-{last_day}-{points}-{member_id}"),
    )
    .await
}

async fn birthdays(app: &App, now: i64) -> Result<usize, ApiError> {
    let points = app.programme().await?.earning.events.birthday;
    if points <= 0 {
        return Ok(0);
    }
    // Once per UTC day per process; the postings' keys make a second run (another instance, a
    // restart) pay nobody twice. A run that fails is tried again at the next interval.
    let day_number = now.div_euclid(calendar::DAY_MS);
    let before = app
        .birthdays_paid
        .swap(day_number, std::sync::atomic::Ordering::SeqCst);
    if before == day_number {
        return Ok(0);
    }
    let paid = pay_birthdays(app, now, points).await;
    if !matches!(paid, Ok((_, 0))) {
        // Not everyone was paid: look again next run; the keys pay nobody twice.
        app.birthdays_paid
            .store(before, std::sync::atomic::Ordering::SeqCst);
    }
    paid.map(|(awarded, _)| awarded)
}

/// Pays today's birthdays: how many were paid now, and how many failed.
async fn pay_birthdays(app: &App, now: i64, points: i64) -> Result<(usize, usize), ApiError> {
    let today = calendar::date_of(now);
    let (month, day) = (u8::from(today.month()), today.day());
    let mut members = app.storage.birthdays(month, day).await?;
    // A 29 February birthday is celebrated on 28 February in other years.
    if (month, day) == (2, 28) && !calendar::is_leap_year(today.year()) {
        members.extend(app.storage.birthdays(2, 29).await?);
    }
    let event = format!("birthday:{}", today.year());
    let (mut awarded, mut failed) = (0, 0);
    for member_id in members {
        match award_event(app, &member_id, &event, points, "Happy birthday!").await {
            Ok(true) => awarded += 1,
            Ok(false) => {}
            // Logged and skipped, so the others still get theirs.
            Err(e) => {
                tracing::warn!(member = %member_id, code = e.code, "birthday points not awarded");
                failed += 1;
            }
        }
    }
    Ok((awarded, failed))
}

/// `POST /v1/admin/programme/settle`: runs the settle job now and reports what it did.
pub async fn settle_now(
    State(app): State<Arc<App>>,
    _: Operator,
) -> Result<Json<SettleReport>, ApiError> {
    Ok(Json(settle(&app).await?))
}

/// Runs the settle job every `interval` until the process ends.
pub async fn settle_forever(app: Arc<App>, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: skip it, so a server that just started (and a test that
    // drives the job itself) is not raced by a run nobody asked for.
    tick.tick().await;
    loop {
        tick.tick().await;
        match settle(&app).await {
            Ok(r) if r != SettleReport::default() => {
                tracing::info!(
                    members = r.members,
                    expired = r.expired_points,
                    warnings = r.warnings,
                    birthdays = r.birthdays,
                    "programme settled"
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e.message, "settle run failed; retrying next interval")
            }
        }
    }
}
