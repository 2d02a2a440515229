//! Prometheus metrics: HTTP latency by route, sessions by status, events appended.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use agentd_domain::SessionStatus;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::state::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

/// The server's metrics registry.
pub struct Metrics {
    registry: Registry,
    http: Family<HttpLabels, Histogram, fn() -> Histogram>,
    sessions: Family<StatusLabels, Gauge>,
    events: Counter,
    events_seen: AtomicU64,
    encode_lock: Mutex<()>,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms .. ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    /// The registry, for other parts of the server (the browser runtime) to add theirs.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http = Family::<HttpLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "agentd_http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            http.clone(),
        );
        let sessions = Family::<StatusLabels, Gauge>::default();
        registry.register("agentd_sessions", "Sessions by status", sessions.clone());
        let events = Counter::default();
        registry.register("agentd_events_appended", "Events committed since start", events.clone());
        Self {
            registry,
            http,
            sessions,
            events,
            events_seen: AtomicU64::new(0),
            encode_lock: Mutex::new(()),
        }
    }

    /// Renders the exposition text, refreshing the store-derived values first.
    pub fn render(&self, by_status: &[(SessionStatus, u64)], events_total: u64) -> String {
        let _guard = self.encode_lock.lock().unwrap_or_else(|e| e.into_inner());
        for status in SessionStatus::ALL {
            let n = by_status.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
            self.sessions
                .get_or_create(&StatusLabels {
                    status: status.as_str().to_owned(),
                })
                .set(n as i64);
        }
        let seen = self.events_seen.swap(events_total, Ordering::Relaxed);
        self.events.inc_by(events_total.saturating_sub(seen));
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "could not encode metrics");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware: observes every request's latency under its route template.
pub async fn track_http(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // A fixed label set: arbitrary methods from anonymous clients must not mint series.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    state
        .metrics
        .http
        .get_or_create(&HttpLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}
