//! Every answer keygate writes itself, built one way for the gateway, the
//! admin API and the self-service page: text, JSON or HTML, never cached
//! (`Cache-Control: no-store`), with `Retry-After` where a client should
//! come back. What each refusal says is decided where it is mapped
//! (`http::refusal`, `admin`, `selfservice::refusal`); this module only
//! shapes the answer.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::ResponseBody;
use crate::keys::format::redact_keys;

/// `Retry-After` for an outage keygate cannot time (the key store, a login
/// server): come back in a few seconds.
pub const RETRY_SOON: Duration = Duration::from_secs(5);

/// A response keygate wrote itself: `body` as `content_type`, not to be stored.
fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Plain text: the gateway's short fixed answers (a client learns the
/// status, never which check failed), and the auth listener's 400s, which
/// name the header a proxy did not send.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    with_body(status, "text/plain; charset=utf-8", body)
}

/// A JSON document: the admin API, the page's API.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<ResponseBody> {
    let body = serde_json::to_vec(value).expect("JSON values serialize");
    with_body(status, "application/json", body)
}

/// `{"error": message}`: how the JSON APIs refuse. A message may quote
/// what a client sent, so any key secret in it is redacted here, for every
/// route at once.
pub fn json_error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    json(
        status,
        &serde_json::json!({ "error": redact_keys(message) }),
    )
}

/// An HTML page (self-service).
pub fn html(status: StatusCode, page: String) -> Response<ResponseBody> {
    with_body(status, "text/html; charset=utf-8", page)
}

/// No content (204 after a revocation).
pub fn no_content() -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// Ask the client to come back after `after` (whole seconds, at least 1).
pub fn retry_after(mut resp: Response<ResponseBody>, after: Duration) -> Response<ResponseBody> {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    resp
}

/// A HEAD request's answer: GET's status and headers, the length of the body
/// keygate would have sent, and no body (hyper leaves a HEAD response's body
/// out on HTTP/1.1, not on HTTP/2). Every handler applies it to HEAD requests.
pub fn without_body(resp: &mut Response<ResponseBody>) {
    if let Some(len) = resp.body_mut().take_local() {
        resp.headers_mut()
            .entry(header::CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(len));
    }
}
