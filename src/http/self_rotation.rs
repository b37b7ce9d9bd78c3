//! `POST /.keygate/api/rotate`: a script rotates its own key with nothing
//! but the key (Basic `apikey:<key>`, the `apikey` header or Bearer, as
//! `auth.accept` allows). The answer is the successor, shown once; the old
//! key works on for its grace period (`{"grace"?, "ttl"?}` in an optional
//! JSON body, as the admin API takes them).
//!
//! The key is checked by the gateway's own admission steps (strip,
//! authenticate, limit), so a bad key gets the very 401 a bad key gets
//! everywhere, and failures count against the client alike. Its scope is
//! not checked: a read key may rotate itself, and its successor stays read.
//! Each counts against `self_service.creates_per_hour` (429 past it); one
//! that makes no key (409, 403, 404, 503) is given back. A
//! `ttl` must be one of the runtime settings' `ttl_choices`, as on the
//! page's Rotate.
//! Off unless `[keys] self_rotation = true` (403 naming the key). A chain of
//! self-rotations never outlives `keys.max_ttl` from its first key
//! (`Keyring::rotate`). A browser's request from another site is 403
//! before the key is read (`from_another_site`): no CSRF with a credential
//! the browser remembers.

use std::net::IpAddr;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::access::Completion;
use super::admission::Admission;
use super::body::ResponseBody;
use super::refusal::{Refusal, Refusals};
use super::request_body::{self, Unread};
use super::response::{self, RETRY_SOON};
use crate::audit::Actor;
use crate::keyring::{Keyring, RotateError, RotateRequest};
use crate::keys::Source;

/// The route.
pub const PATH: &str = "/.keygate/api/rotate";
/// Largest body (`{"grace","ttl"}` is tiny).
const MAX_BODY: usize = 4 * 1024;

pub struct SelfRotation {
    keyring: Keyring,
    /// `keys.self_rotation`.
    enabled: bool,
    /// `self_service.creates_per_hour`: a script rotating in a loop makes
    /// no more keys than a person may on the page (the same count).
    per_hour: u32,
    /// A body not all there within this is answered 408 (`leaks.body_within`).
    body_within: Duration,
}

// === impl SelfRotation ===

impl SelfRotation {
    pub fn new(keyring: Keyring, per_hour: u32, body_within: Duration) -> SelfRotation {
        SelfRotation {
            enabled: keyring.self_rotation(),
            keyring,
            per_hour,
            body_within,
        }
    }

    /// Answer `POST /.keygate/api/rotate` from `peer` (`client` as logged).
    pub async fn answer(
        &self,
        mut req: Request<Incoming>,
        peer: IpAddr,
        admission: &Admission,
        refusals: &Refusals,
        done: &mut Completion,
    ) -> Response<ResponseBody> {
        if req.method() != http::Method::POST {
            let mut resp = response::json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed; allowed: POST",
            );
            resp.headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            return resp;
        }
        if !self.enabled {
            return response::json_error(
                StatusCode::FORBIDDEN,
                "self-rotation is off on this gateway ([keys] self_rotation = false); ask an admin to rotate the key",
            );
        }
        if from_another_site(req.headers()) {
            // Before the credential is read, and no 401 challenge: a
            // browser would answer that with the credential it remembers.
            return response::json_error(
                StatusCode::FORBIDDEN,
                "a browser's request from another site (Origin, Sec-Fetch-Site) cannot rotate a key; \
                 scripts send neither header",
            );
        }
        let client = admission.client(peer, req.headers());
        let principal = match admission.admit_key(&mut req, peer).await {
            Ok(p) => p,
            Err(refusal) => return refusals.answer(refusal, client),
        };
        done.set_identity(principal.user(), principal.key_id().as_str());
        let request = match read_body(req, self.body_within).await {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        // A lifetime the page's Rotate would refuse is no more the key's
        // to choose (the successor's default, the old key's own, is).
        if let Some(ttl) = request.ttl() {
            match self.keyring.settings().await {
                Ok(settings) => {
                    if let Err(message) = settings.offers(ttl) {
                        return bad_request(&message);
                    }
                }
                Err(e) => return refuse(RotateError::Store(e), refusals, client),
            }
        }
        let (grace, ttl) = match request.parse() {
            Ok(parsed) => parsed,
            Err(message) => return bad_request(&message),
        };
        // Counted before the rotation, so concurrent ones on any instance
        // cannot pass the limit; given back when no key was made.
        let user = principal.user();
        let counted = match self.keyring.count_creation(user, self.per_hour).await {
            Ok(Ok(counted)) => counted,
            Ok(Err(retry)) => {
                let resp = response::json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many keys made for this user in the last hour (self_service.creates_per_hour); try again later",
                );
                return response::retry_after(resp, retry);
            }
            Err(e) => return refuse(RotateError::Store(e), refusals, client),
        };
        let actor = Actor::new(user, Source::SelfRotation, Some(client));
        match self
            .keyring
            .rotate(&actor, principal.key_id(), grace, ttl)
            .await
        {
            Ok(rotated) => response::json(StatusCode::CREATED, &rotated.view()),
            Err(e) => {
                // A script retrying a 409 must not use up its owner's hour.
                self.keyring.give_back_creation(user, counted).await;
                refuse(e, refusals, client)
            }
        }
    }
}

/// A request a browser sent on another site's behalf. A browser sends a
/// Basic credential a person typed at keygate's 401 prompt along with any
/// site's form (Chromium does), which would rotate the key: its successor
/// shown in a tab or frame the person may never look at, the old key
/// stopping after its grace period. So only a script's request (neither `Origin` nor
/// `Sec-Fetch-Site`) or one the browser marks `same-origin` may rotate. A
/// browser too old for `Sec-Fetch-Site` that sends `Origin` is refused
/// even from the same origin: failing closed costs a page script little.
fn from_another_site(headers: &http::HeaderMap) -> bool {
    match headers.get("sec-fetch-site") {
        Some(site) => site.as_bytes() != b"same-origin",
        None => headers.contains_key(http::header::ORIGIN),
    }
}

/// A rotation refused: each reason its status, in one match.
fn refuse(e: RotateError, refusals: &Refusals, client: IpAddr) -> Response<ResponseBody> {
    use StatusCode as S;
    match e {
        e @ (RotateError::Grace(_) | RotateError::Ttl(_)) => bad_request(&e.to_string()),
        e @ RotateError::ChainEnded { .. } => response::json_error(S::FORBIDDEN, &e.to_string()),
        // Revoked or expired between its check and the rotation: as any dead key.
        RotateError::NotFound => refusals.answer(Refusal::Missing, client),
        e @ RotateError::Rotated { to, .. } => response::json(
            S::CONFLICT,
            &json!({ "error": e.to_string(), "rotated_to": to }),
        ),
        RotateError::Store(e) => {
            tracing::error!(error = %e, "self-rotation failed: key store unavailable");
            let resp = response::json_error(S::SERVICE_UNAVAILABLE, "the key store is unavailable");
            response::retry_after(resp, RETRY_SOON)
        }
    }
}

/// An empty body is `{}`; otherwise JSON, its errors naming the field.
async fn read_body(
    req: Request<Incoming>,
    within: Duration,
) -> Result<RotateRequest, Response<ResponseBody>> {
    let bytes = request_body::read(req, MAX_BODY, within)
        .await
        .map_err(|e| match e {
            Unread::TooLarge => response::json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("body larger than {MAX_BODY} bytes or unreadable"),
            ),
            Unread::Slow => {
                response::json_error(StatusCode::REQUEST_TIMEOUT, request_body::SLOW_BODY)
            }
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(RotateRequest::default());
    }
    super::json_body::parse_object(&bytes).map_err(|message| bad_request(&message))
}

/// A 400 naming what is wrong (`json_error` redacts a key secret the
/// client put where a duration goes).
fn bad_request(message: &str) -> Response<ResponseBody> {
    response::json_error(StatusCode::BAD_REQUEST, message)
}
