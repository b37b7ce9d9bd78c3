//! Why the gateway does not forward a request, and the one place where each
//! reason becomes an answer: its status, its `keygate_auth` outcome, its log
//! line and its body, in one exhaustive match. Any listener that admits
//! requests the gateway's way (`http::admission`) answers its refusals here,
//! so the same request is refused alike wherever it arrives.
//!
//! Bodies are short fixed text: a client learns the status, never which
//! check failed or why (that goes to the log, never with the secret).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::ResponseBody;
use super::response::{self, RETRY_SOON};
use crate::auth::AuthError;
use crate::keyring::VerifyError;
use crate::keys::KeyId;
use crate::metrics::{AuthOutcome, Metrics};
use crate::ratelimit::RetryAfter;
use crate::store::StoreError;
use crate::telemetry::throttle::Throttled;
use crate::upstream::UpstreamError;

/// Why a request is answered by keygate instead of the backend.
#[derive(Debug)]
pub enum Refusal {
    /// No credential, and `auth.anonymous = "reject"`.
    Missing,
    /// More than one credential (an unreadable one is a `BadKey`, malformed).
    Ambiguous,
    /// A key that is no live key of this deployment (`failure` is never
    /// `VerifyError::Store`, see `StoreUnavailable`); `limited` when the
    /// client has failed too often (`rate_limit.failed_auth_per_minute`).
    BadKey {
        failure: VerifyError,
        limited: Option<RetryAfter>,
    },
    /// The key's `rate_limit.requests_per_second`.
    RateLimited(RetryAfter),
    /// A `read` key asking to write.
    ReadOnly,
    /// The key verified but its stored user cannot be a header value.
    BadUser(KeyId),
    /// The key store cannot be asked: fail closed.
    StoreUnavailable(StoreError),
    /// The backend did not answer (502) or not in time (504).
    Upstream(UpstreamError),
    /// A request that cannot be forwarded as it is: 400, saying why.
    BadRequest(&'static str),
    /// A method keygate does not carry (CONNECT: it tunnels nothing): 501.
    NotImplemented(&'static str),
}

/// Answers refusals: holds what every answer needs.
pub struct Refusals {
    metrics: Arc<Metrics>,
    /// Prebuilt `WWW-Authenticate` value.
    challenge: HeaderValue,
    /// A store outage refuses every keyed request: one line a second says
    /// so, with how many were refused unsaid (each is in the access log and
    /// `keygate_auth`), not one line per request.
    store_down_log: Mutex<Throttled>,
}

/// How often a store outage's refusals are said.
const STORE_DOWN_LOG_EVERY: Duration = Duration::from_secs(1);

// === impl Refusal ===

impl Refusal {
    /// A key that did not verify; the store's failure is no key's fault.
    pub fn of_key(failure: VerifyError, limited: impl FnOnce() -> Option<RetryAfter>) -> Refusal {
        match failure {
            VerifyError::Store(e) => Refusal::StoreUnavailable(e),
            f @ (VerifyError::Malformed | VerifyError::Unknown(_) | VerifyError::Mismatch(_)) => {
                Refusal::BadKey {
                    failure: f,
                    limited: limited(),
                }
            }
        }
    }
}

// === impl Refusals ===

impl Refusals {
    /// `realm` is `auth.realm` (validated: no quotes or backslashes).
    pub fn new(metrics: Arc<Metrics>, realm: &str) -> Self {
        Refusals {
            metrics,
            challenge: HeaderValue::try_from(format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
                .expect("realm is validated to be a plain header value"),
            store_down_log: Mutex::new(Throttled::every(STORE_DOWN_LOG_EVERY)),
        }
    }

    /// Count, log and answer `refusal` of a request from `client`.
    pub fn answer(&self, refusal: Refusal, client: IpAddr) -> Response<ResponseBody> {
        use StatusCode as S;
        let (outcome, resp) = match refusal {
            Refusal::Missing => (Some(AuthOutcome::Missing), self.unauthorized()),
            Refusal::Ambiguous => {
                tracing::info!(client = %client, reason = %AuthError::Ambiguous, "refused an ambiguous credential (400)");
                let resp = response::text(S::BAD_REQUEST, "400 Bad Request\n");
                (Some(AuthOutcome::Ambiguous), resp)
            }
            Refusal::BadKey { failure, limited } => {
                let key_id = failure.key_id();
                tracing::info!(client = %client, key_id = key_id.as_ref().map_or("-", KeyId::as_str), reason = %failure, "authentication failed");
                match limited {
                    None => (Some(outcome_of(&failure)), self.unauthorized()),
                    Some(retry) => (Some(AuthOutcome::RateLimited), too_many(retry)),
                }
            }
            Refusal::RateLimited(retry) => (Some(AuthOutcome::RateLimited), too_many(retry)),
            Refusal::ReadOnly => (
                Some(AuthOutcome::Forbidden),
                response::text(
                    S::FORBIDDEN,
                    "403 Forbidden: this key may only read (GET, HEAD, OPTIONS)\n",
                ),
            ),
            // Counted `ok` already: the key verified, its record is what is wrong.
            Refusal::BadUser(key_id) => {
                tracing::error!(key_id = %key_id, "stored user is not a valid header value; refusing");
                (None, self.unauthorized())
            }
            Refusal::StoreUnavailable(e) => {
                let due = self
                    .store_down_log
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .due(Instant::now());
                if let Some(unlogged) = due {
                    tracing::error!(client = %client, error = %e, unlogged, "key store unavailable; refusing (503)");
                }
                let resp = response::text(
                    S::SERVICE_UNAVAILABLE,
                    "503 Service Unavailable: keys cannot be checked right now\n",
                );
                (
                    Some(AuthOutcome::StoreError),
                    response::retry_after(resp, RETRY_SOON),
                )
            }
            Refusal::Upstream(UpstreamError::ClientBody(e)) => {
                tracing::info!(client = %client, error = %e, "the client's request body broke off (400)");
                let resp = response::text(
                    S::BAD_REQUEST,
                    "400 Bad Request: the request body could not be read\n",
                );
                (None, resp)
            }
            Refusal::Upstream(e) => {
                let cause = root_cause(&e);
                tracing::warn!(client = %client, error = %e, cause = cause.as_deref(), "upstream request failed");
                let resp = match e {
                    UpstreamError::Timeout(_) => response::text(
                        S::GATEWAY_TIMEOUT,
                        "504 Gateway Timeout: the upstream did not answer in time\n",
                    ),
                    UpstreamError::UnaskedSwitch => response::text(
                        S::BAD_GATEWAY,
                        "502 Bad Gateway: the upstream switched protocols unasked\n",
                    ),
                    // Connect, Failed (ClientBody is answered above).
                    _ => response::text(
                        S::BAD_GATEWAY,
                        "502 Bad Gateway: the upstream could not be reached\n",
                    ),
                };
                (None, resp)
            }
            Refusal::BadRequest(why) => {
                tracing::info!(client = %client, reason = why, "refused a malformed request (400)");
                let resp = response::text(S::BAD_REQUEST, format!("400 Bad Request: {why}\n"));
                (None, resp)
            }
            Refusal::NotImplemented(why) => {
                tracing::info!(client = %client, reason = why, "refused an unsupported request (501)");
                let resp =
                    response::text(S::NOT_IMPLEMENTED, format!("501 Not Implemented: {why}\n"));
                (None, resp)
            }
        };
        if let Some(outcome) = outcome {
            self.metrics.auth(outcome);
        }
        resp
    }

    /// 401 with the Basic challenge; the same for every kind of failure.
    fn unauthorized(&self) -> Response<ResponseBody> {
        let mut resp = response::text(
            StatusCode::UNAUTHORIZED,
            "401 Unauthorized: a valid API key is required\n",
        );
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.challenge.clone());
        resp
    }
}

/// The innermost cause of `e`, as text, unless `e`'s own message says it:
/// hyper names only its step ("error reading a body from connection"), the
/// I/O error under it says what happened. `None` is no field in the log.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut inner = e.source()?;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let text = inner.to_string();
    (!e.to_string().contains(&text)).then_some(text)
}

fn too_many(retry: RetryAfter) -> Response<ResponseBody> {
    let resp = response::text(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests\n");
    response::retry_after(resp, retry.0)
}

/// The `keygate_auth` outcome of a key that did not verify.
fn outcome_of(failure: &VerifyError) -> AuthOutcome {
    match failure {
        VerifyError::Malformed => AuthOutcome::Malformed,
        VerifyError::Unknown(_) => AuthOutcome::Unknown,
        VerifyError::Mismatch(_) => AuthOutcome::Mismatch,
        VerifyError::Store(_) => AuthOutcome::StoreError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that, like hyper's, names only its own step.
    #[derive(Debug, thiserror::Error)]
    #[error("error reading a body from connection")]
    struct Step(#[source] std::io::Error);

    #[test]
    fn the_log_names_the_innermost_cause_once() {
        let reset = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let cut = Step(reset());
        assert_eq!(root_cause(&cut).as_deref(), Some("connection reset"));
        // Said already in the message: no second field.
        let refused = UpstreamError::Connect(reset());
        assert_eq!(root_cause(&refused), None);
        assert_eq!(root_cause(&std::io::Error::other("alone")), None);
    }
}
