//! Prometheus metrics (`GET /metrics` on the admin listener, no token).
//!
//! Every labelled series is created at start and its handle kept, so the
//! request path increments an atomic (or takes the histogram's short lock)
//! and never looks a label set up. No label carries a user, key or path:
//! cardinality stays fixed.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// How an authentication ended (the `outcome` label).
#[derive(Debug, Clone, Copy)]
pub enum AuthOutcome {
    Ok,
    Anonymous,
    Missing,
    Malformed,
    Unknown,
    Mismatch,
    Ambiguous,
    StoreError,
    RateLimited,
    Forbidden,
    /// No API key; the SSO proxy's user (`login.method = "trusted_header"`).
    Sso,
}

const OUTCOMES: [(AuthOutcome, &str); 11] = [
    (AuthOutcome::Ok, "ok"),
    (AuthOutcome::Anonymous, "anonymous"),
    (AuthOutcome::Missing, "missing"),
    (AuthOutcome::Malformed, "malformed"),
    (AuthOutcome::Unknown, "unknown"),
    (AuthOutcome::Mismatch, "mismatch"),
    (AuthOutcome::Ambiguous, "ambiguous"),
    (AuthOutcome::StoreError, "store_error"),
    (AuthOutcome::RateLimited, "rate_limited"),
    (AuthOutcome::Forbidden, "forbidden"),
    (AuthOutcome::Sso, "sso"),
];

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

pub struct Metrics {
    registry: Registry,
    /// Index = status class - 1.
    requests: [Counter; 5],
    /// Index = `AuthOutcome as usize`.
    auth: [Counter; 11],
    upstream_seconds: Histogram,
    store_seconds: Histogram,
    pub open_connections: Gauge,
    pub keys_created: Counter,
    pub keys_revoked: Counter,
}

// === impl Metrics ===

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let requests_family = Family::<Labels, Counter>::default();
        registry.register(
            "keygate_http_requests",
            "Requests answered on the main listener, by status class",
            requests_family.clone(),
        );
        let requests = CLASSES.map(|c| requests_family.get_or_create(&vec![("class", c)]).clone());

        let auth_family = Family::<Labels, Counter>::default();
        registry.register(
            "keygate_auth",
            "Authentication outcomes on the main listener",
            auth_family.clone(),
        );
        let auth =
            OUTCOMES.map(|(_, name)| auth_family.get_or_create(&vec![("outcome", name)]).clone());

        // 100 µs .. ~3.3 s
        let upstream_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "keygate_upstream_response_seconds",
            "Time from sending a request upstream to its response headers",
            upstream_seconds.clone(),
        );
        let store_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        registry.register(
            "keygate_store_lookup_seconds",
            "Time to look a key up in the store",
            store_seconds.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "keygate_open_connections",
            "Client connections open on the main listener",
            open_connections.clone(),
        );
        let keys_created = Counter::default();
        registry.register(
            "keygate_keys_created",
            "Keys created through this instance",
            keys_created.clone(),
        );
        let keys_revoked = Counter::default();
        registry.register(
            "keygate_keys_revoked",
            "Keys revoked through this instance",
            keys_revoked.clone(),
        );

        Arc::new(Metrics {
            registry,
            requests,
            auth,
            upstream_seconds,
            store_seconds,
            open_connections,
            keys_created,
            keys_revoked,
        })
    }

    pub fn response(&self, status: StatusCode) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize;
        self.requests[class - 1].inc();
    }

    pub fn auth(&self, outcome: AuthOutcome) {
        self.auth[outcome as usize].inc();
    }

    pub fn upstream(&self, took: Duration) {
        self.upstream_seconds.observe(took.as_secs_f64());
    }

    pub fn store(&self, took: Duration) {
        self.store_seconds.observe(took.as_secs_f64());
    }

    /// The text exposition (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_follow_prometheus_naming_and_count() {
        let m = Metrics::new();
        m.response(StatusCode::OK);
        m.response(StatusCode::UNAUTHORIZED);
        m.auth(AuthOutcome::Malformed);
        m.upstream(Duration::from_millis(3));
        let text = m.encode();
        assert!(
            text.contains("keygate_http_requests_total{class=\"2xx\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("keygate_http_requests_total{class=\"4xx\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("keygate_auth_total{outcome=\"malformed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("keygate_upstream_response_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("keygate_keys_created_total 0"), "{text}");
    }
}
