//! The settle job: matures and expires points, warns of expiry, pays birthdays and reviews tiers, for the members due.

use crate::app::App;
use crate::error::DomainError;
use crate::service::ledger::{self};
use crate::service::programme::*;
use crate::storage::PostingKind;
use loyalty_core::calendar::{self, format_date};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Members settled per batch of the settle job.
pub(crate) const SETTLE_BATCH: usize = 500;

/// What one run of the settle job did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
pub async fn settle(app: &App) -> Result<SettleReport, DomainError> {
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

pub(crate) async fn settle_member(
    app: &App,
    member_id: &str,
    report: &mut SettleReport,
) -> Result<(), DomainError> {
    let key = format!("settle:{}", loyalty_core::ids::new_record_id("run"));
    let mut warnings = Vec::new();
    let outcome = ledger::transact(app, member_id, false, |draft| {
        let warn_days = draft.programme.points.warn_days;
        warnings = draft.book.due_warnings(draft.now, warn_days);
        let mut plan = programme_plan(&key, PostingKind::Settle);
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

pub(crate) async fn unwarn(app: &App, member_id: &str, at: i64) -> Result<(), DomainError> {
    let key = format!("settle:{}", loyalty_core::ids::new_record_id("run"));
    ledger::transact(app, member_id, false, |draft| {
        draft.book.unwarn(at);
        let mut plan = programme_plan(&key, PostingKind::Settle);
        plan.always = false;
        Ok(plan)
    })
    .await
    .map(|_| ())
}

/// Tells the member in their inbox that points will expire. The message id names the member,
/// the date and the points, so a repeated run writes nothing new and a later warning for the same
/// date (points earned since) is a message of its own.
pub(crate) async fn warn_expiry(
    app: &App,
    member_id: &str,
    at: i64,
    points: i64,
) -> Result<(), DomainError> {
    // The last day the points can be used is the day before they expire at midnight.
    let last_day = format_date(at - 1);
    crate::service::messaging::send_service(
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

pub(crate) async fn birthdays(app: &App, now: i64) -> Result<usize, DomainError> {
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
pub(crate) async fn pay_birthdays(
    app: &App,
    now: i64,
    points: i64,
) -> Result<(usize, usize), DomainError> {
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
