//! Why the auth listener does not say yes, and the one place where each
//! reason becomes an answer. A key check that says no is answered exactly
//! as the gateway answers it (`http::refusal`): same status, challenge,
//! `Retry-After`, metric and log line. What is the auth listener's own (who
//! may ask, and how a check must describe the request) is answered here.
//! Every answer carries `Cache-Control: no-store` (`http::response`).

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use http::{Response, StatusCode};

use crate::http::body::ResponseBody;
use crate::http::refusal::{Refusal, Refusals};
use crate::http::response;
use crate::telemetry::throttle::Throttled;

/// The refusals of untrusted peers, said once a minute (one process-wide
/// auth listener).
static UNTRUSTED_LOG: Mutex<Throttled> = Mutex::new(Throttled::each_minute());

#[derive(Debug)]
pub enum CheckError {
    /// The peer is not in `authz.trusted_proxies`: its forwarded headers
    /// cannot be believed, so nothing it asks is answered.
    Untrusted,
    /// Not one of the auth routes (the auth listener forwards nothing).
    NoRoute,
    /// The contract's description of the original request is missing (the
    /// header, or the path after Envoy's prefix).
    Missing(&'static str),
    /// It is there but sent twice, or is no method / no origin-form URI.
    Bad(&'static str),
    /// The key check said no.
    Refused(Refusal),
}

// === impl CheckError ===

impl CheckError {
    /// The answer to a check from `client` (a trusted proxy's
    /// `X-Forwarded-For`, else the peer).
    pub fn answer(self, refusals: &Refusals, client: IpAddr) -> Response<ResponseBody> {
        use StatusCode as S;
        match self {
            CheckError::Untrusted => {
                // A warning: from a proxy of the operator's own, every check
                // fails until it is listed. Once a minute: anyone who
                // reaches the listener could make one a request.
                let due = UNTRUSTED_LOG
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .due(Instant::now());
                if let Some(unlogged) = due {
                    tracing::warn!(client = %client, unlogged, "refused a check from an address not in authz.trusted_proxies (403)");
                }
                let mut resp = response::text(
                    S::FORBIDDEN,
                    "403 Forbidden: this address may not ask keygate's auth listener (authz.trusted_proxies)\n",
                );
                // Nothing more to say to it: its connection does not stay
                // open holding one of the listener's max_connections (over
                // HTTP/2 `Authz::handle` has it closed).
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
                resp
            }
            CheckError::NoRoute => response::text(
                S::NOT_FOUND,
                "404 Not Found: keygate's auth listener answers /authz/forward-auth, \
                 /authz/auth-request and /authz/ext-authz/..., and forwards nothing\n",
            ),
            CheckError::Missing(what) => {
                tracing::info!(client = %client, missing = what, "refused a check that does not describe the request (400)");
                response::text(
                    S::BAD_REQUEST,
                    format!("400 Bad Request: no {what}: the proxy must describe the original request\n"),
                )
            }
            CheckError::Bad(what) => {
                tracing::info!(client = %client, bad = what, "refused a check that describes the request badly (400)");
                response::text(
                    S::BAD_REQUEST,
                    format!(
                        "400 Bad Request: {what} must be sent once, as a method or a path (/...)\n"
                    ),
                )
            }
            CheckError::Refused(refusal) => refusals.answer(refusal, client),
        }
    }
}
