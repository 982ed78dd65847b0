//! Prometheus metrics of the reconciler, served as OpenMetrics text on `/metrics`.

use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the failure counter: `reason` is a short error category.
type FailureLabels = Vec<(String, String)>;

/// The reconciler's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    reconciliations: Counter,
    failures: Family<FailureLabels, Counter>,
    duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers `oras_cache_reconciliations_total`, `oras_cache_reconcile_failures_total{reason}`
    /// and `oras_cache_reconcile_duration_seconds`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("oras_cache");
        let reconciliations = Counter::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "reconciliations",
            "OrasCache reconciliations started",
            reconciliations.clone(),
        );
        registry.register(
            "reconcile_failures",
            "OrasCache reconciliations that failed, by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of OrasCache reconciliations",
            duration.clone(),
        );
        Metrics {
            registry,
            reconciliations,
            failures,
            duration,
        }
    }

    /// Counts a reconciliation; its duration is recorded when the guard is dropped.
    pub fn start_reconcile(&self) -> ReconcileTimer {
        self.reconciliations.inc();
        ReconcileTimer {
            started: Instant::now(),
            duration: self.duration.clone(),
        }
    }

    /// Counts a failed reconciliation.
    pub fn failure(&self, reason: &str) {
        self.failures
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Records the duration of one reconciliation when dropped.
pub struct ReconcileTimer {
    started: Instant,
    duration: Histogram,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.duration.observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reconciliations_failures_and_durations() {
        let metrics = Metrics::new();
        drop(metrics.start_reconcile());
        drop(metrics.start_reconcile());
        metrics.failure("apply");
        let text = metrics.render();
        assert!(
            text.contains("oras_cache_reconciliations_total 2"),
            "{text}"
        );
        assert!(
            text.contains("oras_cache_reconcile_failures_total{reason=\"apply\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("oras_cache_reconcile_duration_seconds_count 2"),
            "{text}"
        );
    }
}
