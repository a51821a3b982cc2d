//! Prometheus metrics plumbing: the process-wide recorder, every metric's name and help text,
//! and bounded product labels.
//!
//! Product ids come from outside, so using them raw as label values would let anyone create
//! unbounded time series. [`ProductLabels`] admits the first N distinct ids and reports the
//! rest as `other`.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Label used for product ids past the limit.
pub const OTHER: &str = "other";

/// Latency buckets (seconds) for request and batch-duration histograms: 100 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Entries per batch: up to the largest `stream.batch_size`.
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 100000.0,
];

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric the tracker emits, with its help text (README's metric tables list the same
/// names; a test compares them with what `/metrics` serves).
pub const METRICS: &[(&str, Kind, &str)] = &[
    (
        "stats_tracker_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by route template, method, product and status class",
    ),
    (
        "stats_tracker_http_request_duration_seconds",
        Kind::Histogram,
        "Time to answer an HTTP request, by route template, method and product",
    ),
    (
        "stats_tracker_dead_letters_redriven_total",
        Kind::Counter,
        "Dead letters re-driven: appended to the event stream again and deleted",
    ),
    (
        "stats_tracker_worker_events_total",
        Kind::Counter,
        "Stream entries the worker handled, by product, event type and outcome",
    ),
    (
        "stats_tracker_worker_dead_letters_total",
        Kind::Counter,
        "Dead letters written, by product and reason kind (one per letter: an event refused by \
         several boards makes one letter per board)",
    ),
    (
        "stats_tracker_worker_replayed_events_total",
        Kind::Counter,
        "Entries found already applied (a replay after a restart or takeover) and skipped",
    ),
    (
        "stats_tracker_worker_batch_duration_seconds",
        Kind::Histogram,
        "Time from planning a batch to its acknowledgement",
    ),
    (
        "stats_tracker_worker_batch_size",
        Kind::Histogram,
        "Entries per batch",
    ),
    (
        "stats_tracker_worker_consumer_lag",
        Kind::Gauge,
        "Entries not yet delivered to the tracker's consumer group, over the partitions this worker holds",
    ),
    (
        "stats_tracker_worker_pending_entries",
        Kind::Gauge,
        "Entries delivered to the group and not yet acknowledged",
    ),
    (
        "stats_tracker_worker_lease_held",
        Kind::Gauge,
        "Stream partitions whose lease this worker holds (1 or 0 with one partition)",
    ),
    (
        "stats_tracker_worker_partitions",
        Kind::Gauge,
        "Stream partitions (stream.partitions) this worker shares with the pool",
    ),
    (
        "stats_tracker_worker_partition_lease_held",
        Kind::Gauge,
        "1 while this worker holds the lease of the partition",
    ),
    (
        "stats_tracker_worker_partition_lag",
        Kind::Gauge,
        "Entries of the partition not yet delivered to the group, while this worker holds it",
    ),
    (
        "stats_tracker_worker_pool_workers",
        Kind::Gauge,
        "Live workers in the pool, as this worker last counted them",
    ),
    (
        "stats_tracker_worker_rebalances_total",
        Kind::Counter,
        "Partitions this worker gave back to the pool because it held more than its share",
    ),
    (
        "stats_tracker_worker_rating_cache_entries",
        Kind::Gauge,
        "Rating states the worker holds in memory",
    ),
    (
        "stats_tracker_worker_redis_errors_total",
        Kind::Counter,
        "Interruptions by Redis errors, retried with back-off",
    ),
    (
        "stats_tracker_worker_stale_reloads_total",
        Kind::Counter,
        "Commits refused because the store was not what they were planned on; the worker reloads",
    ),
    (
        "stats_tracker_worker_rebuilds_total",
        Kind::Counter,
        "Rebuilds the worker ran because voids asked for them, switched in",
    ),
    (
        "stats_tracker_worker_rebuild_failures_total",
        Kind::Counter,
        "Rebuilds asked for by voids that failed (tried again a minute later)",
    ),
    (
        "stats_tracker_worker_held_commits_total",
        Kind::Counter,
        "Commits that waited while a rebuild switched a product to its rebuilt copy",
    ),
    (
        "stats_tracker_worker_lost_entries_total",
        Kind::Counter,
        "Entries deleted or trimmed from the stream before the tracker read them",
    ),
    (
        "stats_tracker_worker_rederivations_total",
        Kind::Counter,
        "Times the store was found to have lost acknowledged writes and they were re-derived",
    ),
    (
        "stats_tracker_worker_rederived_entries_total",
        Kind::Counter,
        "Entries applied again from the stream because the store had lost their effects",
    ),
    (
        "stats_tracker_worker_webhook_deliveries_total",
        Kind::Counter,
        "Change feed entries delivered to a webhook (answered 2xx)",
    ),
    (
        "stats_tracker_worker_webhook_failures_total",
        Kind::Counter,
        "Webhook delivery attempts that failed (an error or a non-2xx answer); each is retried",
    ),
    (
        "stats_tracker_worker_rederive_gaps_total",
        Kind::Counter,
        "Re-derived partitions some of whose entries may be gone from the stream (trimmed or deleted)",
    ),
];

/// Registers the help text of every metric.
fn describe() {
    for &(name, kind, help) in METRICS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

/// Counters with labels: they appear with their first label values, not before.
const LABELLED: [&str; 3] = [
    "stats_tracker_worker_events_total",
    "stats_tracker_worker_dead_letters_total",
    "stats_tracker_http_requests_total",
];

/// Shows the unlabelled counters whose names start with `prefix` at 0 before they first
/// count, so alerts can tell "none" from "not reported".
pub fn show_counters_at_zero(prefix: &str) {
    for &(name, kind, _) in METRICS {
        if kind == Kind::Counter && name.starts_with(prefix) && !LABELLED.contains(&name) {
            metrics::counter!(name).increment(0);
        }
    }
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// Installing fails only when another recorder is already installed (never in this crate);
/// then metrics are not recorded and the handle renders what this recorder has (nothing).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("stats_tracker_worker_batch_size".to_owned()),
                    BATCH_SIZE_BUCKETS,
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; metrics are not recorded");
        }
        describe();
        handle
    })
}

/// Admits at most `limit` distinct product ids as label values.
#[derive(Debug)]
pub struct ProductLabels {
    limit: usize,
    seen: Mutex<HashSet<String>>,
}

impl ProductLabels {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// The label for `product`: itself if admitted, else [`OTHER`].
    pub fn label(&self, product: &str) -> String {
        let Ok(mut seen) = self.seen.lock() else {
            return OTHER.to_owned();
        };
        if seen.contains(product) {
            return product.to_owned();
        }
        if seen.len() < self.limit {
            seen.insert(product.to_owned());
            return product.to_owned();
        }
        OTHER.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_past_the_limit_are_other() {
        let labels = ProductLabels::new(2);
        assert_eq!(labels.label("a"), "a");
        assert_eq!(labels.label("b"), "b");
        assert_eq!(labels.label("c"), OTHER);
        assert_eq!(labels.label("a"), "a");
    }
}
