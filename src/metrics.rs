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

/// The auth-listener route a check came to (the `route` label); `None`:
/// refused before any route (a peer not in `authz.trusted_proxies`, or a
/// path that is no route).
#[derive(Debug, Clone, Copy)]
pub enum AuthzRoute {
    ForwardAuth,
    AuthRequest,
    ExtAuthz,
    None,
}

const AUTHZ_ROUTES: [(AuthzRoute, &str); 4] = [
    (AuthzRoute::ForwardAuth, "forward_auth"),
    (AuthzRoute::AuthRequest, "auth_request"),
    (AuthzRoute::ExtAuthz, "ext_authz"),
    (AuthzRoute::None, "none"),
];

/// An expiry notice (the `type` label: the webhook event's name).
#[derive(Debug, Clone, Copy)]
pub enum ExpiryEvent {
    Expiring,
    Expired,
}

impl ExpiryEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryEvent::Expiring => "key.expiring",
            ExpiryEvent::Expired => "key.expired",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    /// Index = status class - 1.
    requests: [Counter; 5],
    /// Index = `AuthzRoute as usize`, then status class - 1.
    authz_checks: [[Counter; 5]; 4],
    /// Index = `AuthOutcome as usize`.
    auth: [Counter; 11],
    upstream_seconds: Histogram,
    store_seconds: Histogram,
    pub open_connections: Gauge,
    pub keys_created: Counter,
    pub keys_revoked: Counter,
    pub keys_rotated: Counter,
    /// Index = `ExpiryEvent as usize`.
    expiry_notices: [Counter; 2],
    /// Key lookups answered by the validation cache.
    cache_hits: Counter,
    /// 1 while this instance's cache holds a lease from the fleet.
    fleet_connected: Gauge,
    fleet_invalidations: Counter,
    fleet_joins: Counter,
    /// Live keys reported leaked (scanners, possession) through this instance.
    pub keys_leaked: Counter,
    /// Webhook messages this instance delivered (a 2xx answer).
    pub webhooks_delivered: Counter,
    /// Webhook attempts of this instance that failed (tried again later).
    pub webhook_failures: Counter,
    /// Webhook messages this instance found dropped undelivered (`keep` passed).
    pub webhooks_expired: Counter,
    /// Log lines the log writer dropped because it fell behind or could not write.
    log_dropped_lines: Counter,
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

        let checks_family = Family::<Labels, Counter>::default();
        registry.register(
            "keygate_authz_checks",
            "Checks answered on the auth listener ([authz]), by route and status class",
            checks_family.clone(),
        );
        let authz_checks = AUTHZ_ROUTES.map(|(_, route)| {
            CLASSES.map(|c| {
                checks_family
                    .get_or_create(&vec![("route", route), ("class", c)])
                    .clone()
            })
        });

        // 100 µs .. ~105 s: past `upstream.response_timeout`'s 60 s, so that
        // a slow backend's p99 reads as slow (a quantile in `+Inf` reads as
        // the last finite bound).
        let upstream_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 21));
        registry.register(
            "keygate_upstream_response_seconds",
            "Time from sending a request upstream to its response headers",
            upstream_seconds.clone(),
        );
        // 50 µs .. ~3.3 s: past `store.timeout`'s 2 s.
        let store_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 17));
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
        let keys_rotated = Counter::default();
        registry.register(
            "keygate_keys_rotated",
            "Keys rotated through this instance (each also counts as created)",
            keys_rotated.clone(),
        );
        let notices_family = Family::<Labels, Counter>::default();
        registry.register(
            "keygate_expiry_notices",
            "Expiry notices this instance sent, by type (each notice is sent by one instance of the fleet)",
            notices_family.clone(),
        );
        let expiry_notices = [ExpiryEvent::Expiring, ExpiryEvent::Expired].map(|e| {
            notices_family
                .get_or_create(&vec![("type", e.as_str())])
                .clone()
        });

        let cache_hits = Counter::default();
        registry.register(
            "keygate_cache_hits",
            "Key lookups answered by the validation cache (the rest are in keygate_store_lookup_seconds)",
            cache_hits.clone(),
        );
        let fleet_connected = Gauge::default();
        registry.register(
            "keygate_fleet_connected",
            "1 while the validation cache holds a lease (subscribed to invalidations), else 0",
            fleet_connected.clone(),
        );
        let fleet_invalidations = Counter::default();
        registry.register(
            "keygate_fleet_invalidations",
            "Invalidations received from the fleet and applied to the cache",
            fleet_invalidations.clone(),
        );

        let fleet_joins = Counter::default();
        registry.register(
            "keygate_fleet_joins",
            "Times this instance joined the fleet (a rise after the first means it lost touch and came back)",
            fleet_joins.clone(),
        );

        let keys_leaked = Counter::default();
        registry.register(
            "keygate_keys_leaked",
            "Live keys reported leaked (secret scanners, revocation by possession) through this instance",
            keys_leaked.clone(),
        );
        let webhooks_delivered = Counter::default();
        registry.register(
            "keygate_webhooks_delivered",
            "Webhook messages this instance delivered (the receiver answered 2xx)",
            webhooks_delivered.clone(),
        );
        let webhook_failures = Counter::default();
        registry.register(
            "keygate_webhook_failures",
            "Webhook delivery attempts of this instance that failed (tried again later)",
            webhook_failures.clone(),
        );

        let webhooks_expired = Counter::default();
        registry.register(
            "keygate_webhooks_expired",
            "Webhook messages this instance's workers found dropped undelivered, their webhooks.keep passed",
            webhooks_expired.clone(),
        );

        let log_dropped_lines = Counter::default();
        registry.register(
            "keygate_log_dropped_lines",
            "Log lines lost: dropped because the log writer fell behind (log.buffer_lines full), or not written (a full disk)",
            log_dropped_lines.clone(),
        );

        Arc::new(Metrics {
            registry,
            requests,
            authz_checks,
            auth,
            upstream_seconds,
            store_seconds,
            open_connections,
            keys_created,
            keys_revoked,
            keys_rotated,
            expiry_notices,
            cache_hits,
            fleet_connected,
            fleet_invalidations,
            fleet_joins,
            keys_leaked,
            webhooks_delivered,
            webhook_failures,
            webhooks_expired,
            log_dropped_lines,
        })
    }

    pub fn response(&self, status: StatusCode) {
        self.requests[class(status)].inc();
    }

    /// A check the auth listener answered.
    pub fn authz_check(&self, route: AuthzRoute, status: StatusCode) {
        self.authz_checks[route as usize][class(status)].inc();
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

    pub fn notice(&self, event: ExpiryEvent) {
        self.expiry_notices[event as usize].inc();
    }

    pub fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    /// `keygate_fleet_connected` as it stands (/readyz shows it too).
    pub fn is_fleet_connected(&self) -> bool {
        self.fleet_connected.get() == 1
    }

    pub fn fleet_connected(&self, yes: bool) {
        self.fleet_connected.set(i64::from(yes));
        if yes {
            self.fleet_joins.inc();
        }
    }

    pub fn log_dropped_lines(&self, lines: u64) {
        self.log_dropped_lines.inc_by(lines);
    }

    pub fn fleet_invalidation(&self) {
        self.fleet_invalidations.inc();
    }

    /// The text exposition (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The index of `status`'s class in `CLASSES`.
fn class(status: StatusCode) -> usize {
    (status.as_u16() / 100).clamp(1, 5) as usize - 1
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
        m.authz_check(AuthzRoute::ExtAuthz, StatusCode::SERVICE_UNAVAILABLE);
        let text = m.encode();
        assert!(
            text.contains("keygate_authz_checks_total{route=\"ext_authz\",class=\"5xx\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("keygate_authz_checks_total{route=\"none\",class=\"2xx\"} 0"),
            "{text}"
        );
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

    /// The finite bucket bound a single observation lands under, as
    /// `histogram_quantile` would report it (`None`: only in `+Inf`).
    fn bucket_of(text: &str, histogram: &str) -> Option<f64> {
        let prefix = format!("{histogram}_bucket{{le=\"");
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .filter_map(|rest| rest.split_once("\"} "))
            .filter(|(_, count)| *count == "1")
            .filter_map(|(le, _)| le.parse::<f64>().ok())
            .find(|le| le.is_finite())
    }

    #[test]
    fn latencies_up_to_the_timeouts_land_in_a_finite_bucket() {
        for (upstream, store) in [(30.0, 1.9), (59.0, 1.99)] {
            let m = Metrics::new();
            m.upstream(Duration::from_secs_f64(upstream));
            m.store(Duration::from_secs_f64(store));
            let text = m.encode();
            let le = bucket_of(&text, "keygate_upstream_response_seconds");
            assert!(
                le.is_some_and(|le| le >= upstream && le <= 2.0 * upstream),
                "{upstream}s upstream under {le:?}"
            );
            let le = bucket_of(&text, "keygate_store_lookup_seconds");
            assert!(
                le.is_some_and(|le| le >= store && le <= 2.0 * store),
                "{store}s store lookup under {le:?}"
            );
        }
    }
}
