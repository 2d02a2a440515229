//! Timings of the browser runtime for `/metrics`: every observe and every action, and the
//! contexts in use. The server registers them in its registry; the pool records into them.

use std::fmt;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
    outcome: &'static str,
}

fn histogram() -> Histogram {
    // 1 ms .. ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The browser runtime's metrics (cheap to clone: clones share their values).
#[derive(Clone)]
pub struct BrowserMetrics {
    observe: Histogram,
    actions: Family<ActionLabels, Histogram, fn() -> Histogram>,
    contexts: Gauge,
    recoveries: Family<RecoveryLabels, prometheus_client::metrics::counter::Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecoveryLabels {
    cause: &'static str,
}

impl Default for BrowserMetrics {
    fn default() -> Self {
        Self {
            observe: histogram(),
            actions: Family::new_with_constructor(histogram),
            contexts: Gauge::default(),
            recoveries: Family::default(),
        }
    }
}

impl fmt::Debug for BrowserMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BrowserMetrics")
    }
}

impl BrowserMetrics {
    /// Adds the metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("agentd_browser_observe_seconds", "Time to read a page's state", self.observe.clone());
        registry.register(
            "agentd_browser_action_seconds",
            "Time to perform a browser action, by action and outcome (ok or error)",
            self.actions.clone(),
        );
        registry.register("agentd_browser_contexts", "Browser contexts leased to sessions", self.contexts.clone());
        registry.register(
            "agentd_browser_recoveries",
            "Sessions moved to a fresh page, by cause (page_crashed, browser_crashed, reaped)",
            self.recoveries.clone(),
        );
    }

    pub(crate) fn observed(&self, took: Duration) {
        self.observe.observe(took.as_secs_f64());
    }

    pub(crate) fn acted(&self, action: &str, ok: bool, took: Duration) {
        let labels = ActionLabels { action: action.to_owned(), outcome: if ok { "ok" } else { "error" } };
        self.actions.get_or_create(&labels).observe(took.as_secs_f64());
    }

    pub(crate) fn contexts(&self, in_use: usize) {
        self.contexts.set(in_use as i64);
    }

    pub(crate) fn recovered(&self, cause: &'static str) {
        self.recoveries.get_or_create(&RecoveryLabels { cause }).inc();
    }
}
