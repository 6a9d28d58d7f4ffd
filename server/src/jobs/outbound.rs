//! The outbound worker: push, SMS and e-mail deliveries claimed from storage and handed to the [`crate::outbound`] adapter.

use crate::app::App;
use crate::outbound::{Handover, OutboundChannel, OutboundError, OutboundMessage};
use crate::storage::{DeliveryStatus, FinalStatus, MessageKind, OutboundJob, OutboundOutcome};
use std::sync::Arc;
use std::time::Duration;

/// How long one provider call may take before it counts as unavailable.
pub(crate) const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(30);

/// External deliveries the worker claims at once, and for how long: the lease outlasts the
/// batch sent one by one at the slowest a provider may be, so another instance never reclaims
/// (and sends again) what this one is still sending.
pub(crate) const OUTBOUND_BATCH: i64 = 8;

pub(crate) const OUTBOUND_LEASE_MS: i64 =
    OUTBOUND_BATCH * OUTBOUND_TIMEOUT.as_millis() as i64 + 60_000;

/// Attempts at a delivery whose provider is unavailable, before it is recorded as failed.
pub(crate) const OUTBOUND_ATTEMPTS: i64 = 5;

/// The first pause before a retry; it doubles with each attempt.
pub(crate) const OUTBOUND_BACKOFF_MS: i64 = 30_000;

/// How often an idle worker looks for due retries and for rows other instances queued.
pub(crate) const OUTBOUND_IDLE: Duration = Duration::from_secs(5);

/// Sends queued push, SMS and e-mail deliveries through the app's adapter until the task is
/// dropped. [`crate::serve`] runs it; it wakes when a send queues work and every few seconds for
/// retries and for rows other server instances queued.
pub async fn run_outbound_worker(app: Arc<App>) {
    loop {
        // Created before looking, so a send that queues work meanwhile is not missed.
        let woken = app.outbound_wake.notified();
        match app
            .storage
            .claim_outbound(app.now_ms(), OUTBOUND_LEASE_MS, OUTBOUND_BATCH)
            .await
        {
            Ok(jobs) if !jobs.is_empty() => {
                metrics::counter!(crate::metrics::OUTBOUND_CLAIMED).increment(jobs.len() as u64);
                // The new delivery states reach the phones at their next sync; waking every
                // waiting device after each batch of a campaign would cost more than it shows.
                for job in jobs {
                    deliver(&app, job).await;
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the outbound queue could not be read"),
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(OUTBOUND_IDLE) => {}
        }
    }
}

/// Carries out one delivery and records how it ended.
pub(crate) async fn deliver(app: &App, job: OutboundJob) {
    let outcome = decide(app, &job).await;
    let (status, reason) = match &outcome {
        OutboundOutcome::Final { status, reason, .. } => {
            (DeliveryStatus::from(*status), reason.as_deref())
        }
        OutboundOutcome::Retry { reason, .. } => (DeliveryStatus::Queued, Some(reason.as_str())),
    };
    let counted = match &outcome {
        OutboundOutcome::Final { status, .. } => status.as_str(),
        OutboundOutcome::Retry { .. } => "retry",
    };
    metrics::counter!(crate::metrics::OUTBOUND_FINISHED, "outcome" => counted).increment(1);
    // The reason only: a provider's words (the outcome's detail) may quote the address.
    if matches!(status, DeliveryStatus::HandedOver | DeliveryStatus::Logged) {
        tracing::info!(message_id = %job.message_id, member = %job.member_id, channel = %job.channel, status = status.as_str(), "delivery done");
    } else {
        tracing::warn!(
            message_id = %job.message_id,
            member = %job.member_id,
            channel = %job.channel,
            status = status.as_str(),
            reason = reason.unwrap_or(""),
            "not delivered"
        );
    }
    if let Err(e) = app
        .storage
        .finish_outbound(&job.message_id, &job.member_id, outcome, app.now_ms())
        .await
    {
        // The lease runs out and the delivery is tried again: sent twice rather than lost.
        tracing::warn!(error = %e, message_id = %job.message_id, "a delivery's outcome was not recorded");
    }
}

/// What becomes of a delivery: refused or failed before any provider is asked, or the adapter's
/// answer.
async fn decide(app: &App, job: &OutboundJob) -> OutboundOutcome {
    let fail = |status, reason: &str| OutboundOutcome::Final {
        status,
        reason: Some(reason.into()),
        detail: None,
    };
    match (OutboundChannel::parse(&job.channel), &job.address) {
        // Consent can be withdrawn between the send and now: it is checked again at the last moment.
        _ if job.kind == MessageKind::Marketing && !job.consent => {
            fail(FinalStatus::Refused, "no_consent")
        }
        (None, _) => fail(FinalStatus::Failed, "channel_unsupported"),
        (_, None) => fail(FinalStatus::Failed, "no_address"),
        (Some(channel), Some(address)) => hand_over(app, job, channel, address).await,
    }
}

/// Hands the delivery to the adapter, within [`OUTBOUND_TIMEOUT`], and reads its answer.
async fn hand_over(
    app: &App,
    job: &OutboundJob,
    channel: OutboundChannel,
    address: &str,
) -> OutboundOutcome {
    let message = OutboundMessage {
        attempt: job.attempts,
        channel,
        member_id: job.member_id.clone(),
        message_id: job.message_id.clone(),
        kind: job.kind.as_str().into(),
        subject: job.subject.clone(),
        body: job.body.clone(),
        address: address.to_string(),
    };
    let result = tokio::time::timeout(OUTBOUND_TIMEOUT, app.outbound.send(&message))
        .await
        .unwrap_or_else(|_| Err(OutboundError::Unavailable("timed out".into())));
    match result {
        Ok(Handover::Provider { reference }) => OutboundOutcome::Final {
            status: FinalStatus::HandedOver,
            reason: None,
            detail: reference,
        },
        Ok(Handover::Logged) => OutboundOutcome::Final {
            status: FinalStatus::Logged,
            reason: None,
            detail: None,
        },
        Err(e) if e.is_transient() && job.attempts + 1 < OUTBOUND_ATTEMPTS => {
            OutboundOutcome::Retry {
                reason: e.reason().into(),
                detail: e.detail().map(str::to_string),
                at_ms: app.now_ms()
                    + OUTBOUND_BACKOFF_MS.saturating_mul(1 << job.attempts.clamp(0, 16)),
            }
        }
        Err(e) => OutboundOutcome::Final {
            status: FinalStatus::Failed,
            reason: Some(e.reason().into()),
            detail: e.detail().map(str::to_string),
        },
    }
}
