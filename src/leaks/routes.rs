//! The leaked-key routes on the main listener, no sign-in needed:
//!
//! | route | what |
//! |---|---|
//! | `POST /.keygate/leaks/github`, `/.keygate/leaks/gitlab` | a signed secret-scanning report -> 200 with feedback |
//! | `POST /.keygate/revoke` | keys someone found -> 202, whatever they were |
//! | `GET /.keygate/revoke` | a small form that posts there ("Revoke a key you found") |
//!
//! A report is checked in this order: an intake that is off is keygate's own
//! 404; the signature headers (401, nothing read further: also for a
//! signature that is not base64); the scanner's key (503 + `Retry-After`
//! when its list cannot be read: the scanner sends the report again, nothing
//! is lost; 401 for a key it does not publish); the body size (413; bodies
//! are read a few at a time, so a flood of large ones cannot exhaust
//! memory); the signature over the raw body (401); the JSON (400). Then the keyring
//! revokes the live keys through the fleet's barrier and the answer says
//! which tokens were live. That work runs in a task of its own: a scanner
//! that hangs up does not stop a revocation half-way, and one that takes
//! longer than `[leaks] answer_within` is answered 503 + `Retry-After` while
//! it goes on (a report sent again is harmless: the keys it revoked are
//! simply no longer live). A 200 is never sent before the revocation is
//! done on every instance.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::key_source::{KeySource, Origin, Unavailable};
use super::page;
use super::possession::{self, BodyError};
use super::report::{self, Reported};
use super::signature::SignatureError;
use crate::audit::Actor;
use crate::config::{Config, KeysFrom, LeakAction};
use crate::http::body::ResponseBody;
use crate::http::request_body::{self, Unread};
use crate::http::response;
use crate::keyring::{Keyring, RevokeError, Sighting};
use crate::keys::{ApiKey, Source};
use crate::login::fetch::Fetch;
use crate::ratelimit::{PerClient, RetryAfter};

/// Longest key identifier header read.
const MAX_KEY_ID: usize = 256;
/// Reports read and settled at once on this instance.
const REPORTS_AT_ONCE: usize = 8;

/// The two scanners, told apart by their route and header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanner {
    Github,
    Gitlab,
}

pub struct Leaks {
    keyring: Keyring,
    github: Option<KeySource>,
    gitlab: Option<KeySource>,
    action: LeakAction,
    answer_within: Duration,
    /// Half of `answer_within`: a body not all there by then is a 408.
    body_within: Duration,
    max_report_bytes: usize,
    /// `REPORTS_AT_ONCE` permits.
    reports: tokio::sync::Semaphore,
    possession: bool,
    /// `possession_per_minute` per client address; `None` = unlimited.
    possession_limit: Option<Arc<PerClient>>,
}

/// Why a leak route does not answer as asked; `answer` maps each one.
#[derive(Debug)]
enum Refusal {
    NotFound,
    Method(&'static str),
    Unsigned(&'static str),
    TooLarge(String),
    KeysUnavailable(Unavailable, Duration),
    BadRequest(String),
    RateLimited(Duration),
    Store(String),
    StillRevoking(Duration),
    /// `REPORTS_AT_ONCE` reports are being read and settled already.
    Busy,
    /// The body did not arrive in time (half of `answer_within`): a
    /// report's, or one sent to `/.keygate/revoke`.
    SlowBody,
}

// === impl Scanner ===

impl Scanner {
    fn name(self) -> &'static str {
        match self {
            Scanner::Github => "GitHub",
            Scanner::Gitlab => "GitLab",
        }
    }

    fn key_id_header(self) -> &'static str {
        match self {
            Scanner::Github => "github-public-key-identifier",
            Scanner::Gitlab => "gitlab-public-key-identifier",
        }
    }

    fn signature_header(self) -> &'static str {
        match self {
            Scanner::Github => "github-public-key-signature",
            Scanner::Gitlab => "gitlab-public-key-signature",
        }
    }

    /// The audit and webhook `source`.
    fn source(self) -> Source {
        match self {
            Scanner::Github => Source::GithubSecretScanning,
            Scanner::Gitlab => Source::GitlabSecretScanning,
        }
    }
}

// === impl Leaks ===

impl Leaks {
    pub fn new(config: &Config, keyring: Keyring) -> Result<Leaks, String> {
        let leaks = &config.leaks;
        let source = |from: &Option<KeysFrom>, key: &str| -> Result<Option<KeySource>, String> {
            let origin = match from {
                None => return Ok(None),
                Some(KeysFrom::File(path)) => Origin::File(path.clone()),
                Some(KeysFrom::Url(url)) => Origin::Url {
                    url: url.clone(),
                    fetch: Fetch::new(
                        leaks.fetch_timeout,
                        url.scheme_str() == Some("https"),
                        config.upstream.ca_file.as_deref(),
                    )
                    .map_err(|e| format!("{key}: {e}"))?,
                },
            };
            Ok(Some(KeySource::new(origin, leaks.refetch_interval)))
        };
        Ok(Leaks {
            github: source(&leaks.github, "leaks.github_keys_url")?,
            gitlab: source(&leaks.gitlab, "leaks.gitlab_keys_url")?,
            keyring,
            action: leaks.action,
            answer_within: leaks.answer_within,
            body_within: leaks.body_within(),
            max_report_bytes: leaks.max_report_bytes,
            reports: tokio::sync::Semaphore::new(REPORTS_AT_ONCE),
            possession: leaks.possession,
            possession_limit: NonZeroU32::new(leaks.possession_per_minute)
                .map(|n| PerClient::per_minute(n, config.rate_limit.max_tracked_clients)),
        })
    }

    /// Whether `path` is one of these routes.
    pub fn owns(path: &str) -> bool {
        matches!(
            path,
            "/.keygate/leaks/github" | "/.keygate/leaks/gitlab" | "/.keygate/revoke"
        )
    }

    /// Answer a request for one of these routes, from `client`.
    pub async fn handle(&self, req: Request<Incoming>, client: IpAddr) -> Response<ResponseBody> {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let answer = match (path.as_str(), &method) {
            ("/.keygate/leaks/github", &Method::POST) => {
                self.report(Scanner::Github, req, client).await
            }
            ("/.keygate/leaks/gitlab", &Method::POST) => {
                self.report(Scanner::Gitlab, req, client).await
            }
            ("/.keygate/revoke", &Method::POST) if self.possession => {
                self.possession(req, client).await
            }
            ("/.keygate/revoke", &Method::GET | &Method::HEAD) if self.possession => {
                Ok(response::html(StatusCode::OK, page::form_page()))
            }
            ("/.keygate/revoke", _) if !self.possession => Err(Refusal::NotFound),
            ("/.keygate/revoke", _) => Err(Refusal::Method("GET, HEAD, POST")),
            ("/.keygate/leaks/github", _) if self.github.is_none() => Err(Refusal::NotFound),
            ("/.keygate/leaks/gitlab", _) if self.gitlab.is_none() => Err(Refusal::NotFound),
            _ => Err(Refusal::Method("POST")),
        };
        answer.unwrap_or_else(refused)
    }

    /// A secret scanner's report.
    async fn report(
        &self,
        scanner: Scanner,
        req: Request<Incoming>,
        client: IpAddr,
    ) -> Result<Response<ResponseBody>, Refusal> {
        let keys = match scanner {
            Scanner::Github => self.github.as_ref(),
            Scanner::Gitlab => self.gitlab.as_ref(),
        }
        .ok_or(Refusal::NotFound)?;
        let (key_id, signature) = signature_headers(scanner, req.headers())?;
        let key = keys
            .key(&key_id)
            .await
            .map_err(|e| Refusal::KeysUnavailable(e, keys.retry_after()))?
            .ok_or(Refusal::Unsigned(
                "the key identifier is not one the scanner publishes",
            ))?;
        // Bodies are read a few at a time: a flood of large ones cannot
        // take more than REPORTS_AT_ONCE * max_report_bytes of memory.
        let _reading = tokio::time::timeout(self.answer_within, self.reports.acquire())
            .await
            .map_err(|_| Refusal::Busy)?
            .expect("the semaphore is never closed");
        // A body that trickles in holds its slot half of `answer_within`
        // at most (then 408), so senders that stall only delay the reports
        // queued behind them, in turn, instead of holding every slot for as
        // long as their connections stay open.
        let body = self.read_body(req, self.max_report_bytes).await?;
        match key.verify(&body, &signature) {
            Ok(()) => {}
            Err(SignatureError::Encoding) => {
                return Err(Refusal::Unsigned("the signature is not base64"))
            }
            Err(SignatureError::Mismatch) => {
                return Err(Refusal::Unsigned("the signature does not match the body"))
            }
        }
        let reported = report::parse(&body).map_err(Refusal::BadRequest)?;
        tracing::info!(
            scanner = scanner.name(),
            tokens = reported.len(),
            key_identifier = %key_id,
            "secret-scanning report"
        );
        let actor = Actor::new(scanner.source().as_str(), scanner.source(), Some(client));
        let live = self
            .settle(
                actor,
                sightings(&reported),
                self.action == LeakAction::Revoke,
            )
            .await?;
        let feedback = report::feedback(&reported, |i| live[i]);
        Ok(response::json(StatusCode::OK, &feedback))
    }

    /// The whole body, at most `max` bytes (413 beyond: also when
    /// announced), within half of `answer_within` (408).
    async fn read_body(&self, req: Request<Incoming>, max: usize) -> Result<Bytes, Refusal> {
        request_body::read(req, max, self.body_within)
            .await
            .map_err(|e| match e {
                Unread::TooLarge => {
                    Refusal::TooLarge(format!("the body is larger than {max} bytes"))
                }
                Unread::Slow => Refusal::SlowBody,
            })
    }

    /// `POST /.keygate/revoke`: always 202, whatever the keys were.
    async fn possession(
        &self,
        req: Request<Incoming>,
        client: IpAddr,
    ) -> Result<Response<ResponseBody>, Refusal> {
        if let Some(limit) = &self.possession_limit {
            limit
                .check(client)
                .map_err(|RetryAfter(after)| Refusal::RateLimited(after))?;
        }
        let html = wants_html(req.headers());
        // Nobody signs these: a body that never comes would hold its
        // connection for ever (no idle timeout runs while a request is in
        // flight), a few per minute per address until max_connections.
        let body = self.read_body(req, possession::MAX_BODY).await?;
        let keys = possession::keys_in(&body).map_err(|e| match e {
            BodyError::TooMany => {
                Refusal::TooLarge(format!("at most {} keys per request", possession::MAX_KEYS))
            }
            BodyError::NotJson(e) => Refusal::BadRequest(e),
        })?;
        let sightings = keys
            .into_iter()
            .map(|key| Sighting {
                key,
                url: None,
                found_in: None,
            })
            .collect();
        let actor = Actor::new("possession", Source::Possession, Some(client));
        self.settle(actor, sightings, true).await?;
        let mut resp = if html {
            response::html(StatusCode::ACCEPTED, page::accepted_page())
        } else {
            response::json(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "status": "accepted" }),
            )
        };
        *resp.status_mut() = StatusCode::ACCEPTED;
        Ok(resp)
    }

    /// Have the keyring settle these sightings in a task of its own, and
    /// wait for it at most `answer_within`: which of them were live keys.
    async fn settle(
        &self,
        actor: Actor,
        sightings: Vec<Sighting>,
        revoke: bool,
    ) -> Result<Vec<bool>, Refusal> {
        let keyring = self.keyring.clone();
        let work = tokio::spawn(async move { keyring.leaked(&actor, sightings, revoke).await });
        match tokio::time::timeout(self.answer_within, work).await {
            Ok(Ok(Ok(live))) => Ok(live),
            Ok(Ok(Err(RevokeError::Store(e)))) => Err(Refusal::Store(e.to_string())),
            Ok(Ok(Err(e @ RevokeError::NotPropagated { .. }))) => {
                Err(Refusal::Store(e.to_string()))
            }
            Ok(Err(join)) => Err(Refusal::Store(format!(
                "the revocation task failed: {join}"
            ))),
            Err(_) => Err(Refusal::StillRevoking(self.answer_within)),
        }
    }
}

/// What the keyring is told about each reported token (tokens of other
/// formats are passed too: the keyring drops them without a lookup).
fn sightings(reported: &[Reported]) -> Vec<Sighting> {
    reported
        .iter()
        .map(|r| Sighting {
            key: ApiKey::new(r.token.clone()),
            url: r.url.clone(),
            found_in: r.source.clone(),
        })
        .collect()
}

/// The key identifier and the signature, both present and readable.
fn signature_headers(scanner: Scanner, h: &HeaderMap) -> Result<(String, String), Refusal> {
    let one = |name: &str| {
        let mut values = h.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => v.to_str().ok().map(str::trim).filter(|v| !v.is_empty()),
            _ => None,
        }
    };
    let key_id = one(scanner.key_id_header())
        .filter(|id| id.len() <= MAX_KEY_ID)
        .ok_or(Refusal::Unsigned(
            "missing or unreadable public key identifier header",
        ))?;
    let signature = one(scanner.signature_header()).ok_or(Refusal::Unsigned(
        "missing or unreadable public key signature header",
    ))?;
    // Refused before any key is fetched for it.
    super::signature::decode(signature)
        .map_err(|_| Refusal::Unsigned("the signature is not base64"))?;
    Ok((key_id.to_owned(), signature.to_owned()))
}

/// A browser's form post (show a page), rather than a script (JSON).
fn wants_html(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// Every refusal, one exhaustive match: the status and what it says.
fn refused(refusal: Refusal) -> Response<ResponseBody> {
    use StatusCode as S;
    match refusal {
        Refusal::NotFound => response::json_error(S::NOT_FOUND, "not found"),
        Refusal::Method(allow) => {
            let mut resp = response::json_error(S::METHOD_NOT_ALLOWED, "method not allowed");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            resp
        }
        Refusal::Unsigned(why) => response::json_error(S::UNAUTHORIZED, why),
        Refusal::TooLarge(why) => response::json_error(S::PAYLOAD_TOO_LARGE, &why),
        Refusal::KeysUnavailable(e, after) => {
            tracing::warn!(error = %e, "a secret-scanning report waits for the scanner's keys");
            response::retry_after(
                response::json_error(
                    S::SERVICE_UNAVAILABLE,
                    "the scanner's public keys cannot be read now; send the report again later",
                ),
                after,
            )
        }
        Refusal::BadRequest(why) => response::json_error(S::BAD_REQUEST, &why),
        Refusal::RateLimited(after) => response::retry_after(
            response::json_error(S::TOO_MANY_REQUESTS, "too many requests from this address"),
            after,
        ),
        Refusal::Store(why) => {
            tracing::error!(error = %why, "a leaked-key revocation failed; the sender should retry");
            response::retry_after(
                response::json_error(
                    S::SERVICE_UNAVAILABLE,
                    "the key store is unavailable; send the same request again",
                ),
                response::RETRY_SOON,
            )
        }
        Refusal::SlowBody => response::json_error(S::REQUEST_TIMEOUT, request_body::SLOW_BODY),
        Refusal::Busy => {
            tracing::warn!("more secret-scanning reports at once than this instance reads; asking the sender to retry");
            response::retry_after(
                response::json_error(
                    S::SERVICE_UNAVAILABLE,
                    "too many reports at once; send it again later",
                ),
                response::RETRY_SOON,
            )
        }
        Refusal::StillRevoking(within) => {
            tracing::warn!(
                answer_within_ms = within.as_millis() as u64,
                "revoking a report's keys takes longer than leaks.answer_within; it goes on, the sender is asked to retry"
            );
            response::retry_after(
                response::json_error(
                    S::SERVICE_UNAVAILABLE,
                    "the revocation is still under way; send the same request again",
                ),
                response::RETRY_SOON,
            )
        }
    }
}
