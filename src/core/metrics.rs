//! Prometheus metrics plumbing: the process-wide recorder and bounded product labels.
//!
//! Product ids come from outside, so using them raw as label values would let anyone create
//! unbounded time series. [`ProductLabels`] admits the first N distinct ids and reports the
//! rest as `other`.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Label used for product ids past the limit.
pub const OTHER: &str = "other";

/// Latency buckets (seconds) for request and batch histograms: 100 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The process-wide Prometheus recorder, installed on first use.
///
/// Installing fails only when another recorder is already installed (never in this crate);
/// then metrics are not recorded and the handle renders what this recorder has (nothing).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; metrics are not recorded");
        }
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
