//! The server's Prometheus metrics: their names (one place, so the Grafana dashboard in
//! `docs/grafana-dashboard.json` and `docs/operations.md` can be checked against what is
//! exported), the process-wide recorder, and the text a scrape of `/metrics` gets.
//!
//! Recording goes through the `metrics` facade (`metrics::counter!(...)` where a thing happens,
//! like `tracing`); `metrics-exporter-prometheus` keeps the values and renders them. The recorder is
//! process-wide: several `App`s in one process (tests) share it, which only sums their counts.
//! Gauges that are a read of state we keep anyway (open long polls, the database pool) are set at
//! scrape time rather than on every change.
//!
//! A histogram's samples wait in the recorder until something folds them into its buckets; a
//! scrape does, and so does [`fold_histograms_forever`], which the server runs beside its
//! listener: an instance nobody scrapes would otherwise keep every request's latency sample until
//! it ran out of memory (measured: 11 MB more resident after 600,000 no-op syncs without the fold,
//! 3 MB with it; a gigabyte a day at a thousand requests a second).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by `route` (the matched template, `unmatched` for none), `method` and
/// `status` class (`2xx` … `5xx`).
pub const HTTP_REQUESTS: &str = "loyalty_http_requests_total";
/// Time from a request's head to its answer's head, by `route` and `method`.
pub const HTTP_DURATION: &str = "loyalty_http_request_duration_seconds";
/// Purchases and refunds posted at the till (`kind`), counted once each (a replay is not).
pub const POSTINGS: &str = "loyalty_postings_total";
/// Syncs answered, by `kind`: `changed` (something written or sent) or `noop`.
pub const SYNCS: &str = "loyalty_syncs_total";
/// Long polls open now.
pub const LONG_POLLS: &str = "loyalty_long_polls_open";
/// Postings written per transaction by SQLite's group-commit writer.
pub const GROUP_COMMIT: &str = "loyalty_group_commit_postings";
/// Outbound deliveries (push, SMS, e-mail) claimed by this instance's worker.
pub const OUTBOUND_CLAIMED: &str = "loyalty_outbound_claimed_total";
/// Outbound deliveries finished, by `outcome` (`sent`, `retry`, `failed`, `refused`: not sent on purpose).
pub const OUTBOUND_FINISHED: &str = "loyalty_outbound_finished_total";
/// Connections in the database pool, and how many are free (PostgreSQL's pool; on SQLite its read
/// connections beside the one writer).
pub const DB_POOL_SIZE: &str = "loyalty_db_pool_connections";
pub const DB_POOL_AVAILABLE: &str = "loyalty_db_pool_available";

/// Latency buckets, in seconds: from a no-op sync (about 1 ms) to the request timeout.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Group sizes, up to the writer's largest batch (256).
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// How often [`fold_histograms_forever`] folds the pending samples into the buckets.
pub const FOLD_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The recorder's handle, installing the recorder on first use. `None` when an embedder
/// installed a recorder of its own first: then it has the metrics, and `/metrics` is empty.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(install).as_ref()
}

/// Folds the histograms' pending samples into their buckets every [`FOLD_EVERY`], for as long as
/// the server runs (the recorder was built without the exporter's own upkeep thread).
pub async fn fold_histograms_forever() {
    let Some(handle) = handle() else { return };
    fold_every(FOLD_EVERY, || handle.run_upkeep()).await;
}

async fn fold_every(period: std::time::Duration, mut fold: impl FnMut()) {
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        fold();
    }
}

fn install() -> Option<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), SECONDS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(GROUP_COMMIT.into()), BATCH))
        .map(PrometheusBuilder::build_recorder);
    let recorder = match recorder {
        Ok(recorder) => recorder,
        Err(e) => {
            tracing::warn!(error = %e, "metrics are off: cannot build the recorder");
            return None;
        }
    };
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        return None;
    }
    describe();
    Some(handle)
}

/// HELP lines, and the counters at zero, so a dashboard's queries find every series from the
/// first scrape rather than "no data" until the first event.
fn describe() {
    use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "Requests answered, by route template, method and status class"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer a request's head"
    );
    describe_counter!(
        POSTINGS,
        "Purchases and refunds posted at the till, and operators' adjustments"
    );
    describe_counter!(SYNCS, "Syncs answered: changed or noop");
    describe_gauge!(LONG_POLLS, "Long polls open now");
    describe_histogram!(GROUP_COMMIT, "Postings per group commit (SQLite writer)");
    describe_counter!(
        OUTBOUND_CLAIMED,
        "Outbound deliveries claimed by this instance"
    );
    describe_counter!(
        OUTBOUND_FINISHED,
        "Outbound deliveries finished, by outcome"
    );
    describe_gauge!(
        DB_POOL_SIZE,
        "Connections in the database pool (SQLite: read connections)"
    );
    describe_gauge!(
        DB_POOL_AVAILABLE,
        "Free connections in the database pool (SQLite: read connections)"
    );
    for kind in ["purchase", "refund", "adjust"] {
        counter!(POSTINGS, "kind" => kind).absolute(0);
    }
    for kind in ["changed", "noop"] {
        counter!(SYNCS, "kind" => kind).absolute(0);
    }
    counter!(OUTBOUND_CLAIMED).absolute(0);
    for outcome in ["handed_over", "logged", "retry", "failed", "refused"] {
        counter!(OUTBOUND_FINISHED, "outcome" => outcome).absolute(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn folds_at_every_period_and_not_between() {
        let folds = Arc::new(AtomicUsize::new(0));
        let counted = folds.clone();
        let task = tokio::spawn(fold_every(FOLD_EVERY, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        // The first tick is at once; then one per period.
        tokio::time::sleep(FOLD_EVERY / 2).await;
        assert_eq!(folds.load(Ordering::SeqCst), 1);
        tokio::time::sleep(FOLD_EVERY * 3).await;
        assert_eq!(folds.load(Ordering::SeqCst), 4);
        task.abort();
    }
}
