//! Responses keygate writes itself. Bodies are short fixed text: a client
//! learns the status, never which check failed or why (details go to the log).

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::ResponseBody;

fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
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

/// 401 with the Basic challenge; the same for every kind of failure.
pub fn unauthorized(challenge: &HeaderValue) -> Response<ResponseBody> {
    let mut resp = text(
        StatusCode::UNAUTHORIZED,
        "401 Unauthorized: a valid API key is required\n",
    );
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge.clone());
    resp
}

/// The `WWW-Authenticate` value for a realm (validated: no quotes).
pub fn challenge(realm: &str) -> HeaderValue {
    HeaderValue::try_from(format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
        .expect("realm is validated to be a plain header value")
}

pub fn bad_request() -> Response<ResponseBody> {
    text(StatusCode::BAD_REQUEST, "400 Bad Request\n")
}

pub fn not_found() -> Response<ResponseBody> {
    text(StatusCode::NOT_FOUND, "404 Not Found\n")
}

pub fn bad_gateway() -> Response<ResponseBody> {
    text(
        StatusCode::BAD_GATEWAY,
        "502 Bad Gateway: the upstream could not be reached\n",
    )
}

pub fn gateway_timeout() -> Response<ResponseBody> {
    text(
        StatusCode::GATEWAY_TIMEOUT,
        "504 Gateway Timeout: the upstream did not answer in time\n",
    )
}

pub fn forbidden() -> Response<ResponseBody> {
    text(
        StatusCode::FORBIDDEN,
        "403 Forbidden: this key may only read (GET, HEAD, OPTIONS)\n",
    )
}

fn retry_after(
    mut resp: Response<ResponseBody>,
    after: std::time::Duration,
) -> Response<ResponseBody> {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    resp
}

pub fn too_many_requests(after: std::time::Duration) -> Response<ResponseBody> {
    retry_after(
        text(StatusCode::TOO_MANY_REQUESTS, "429 Too Many Requests\n"),
        after,
    )
}

/// The key store cannot be asked: refuse (fail closed) and ask to retry.
pub fn store_unavailable() -> Response<ResponseBody> {
    retry_after(
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: keys cannot be checked right now\n",
        ),
        std::time::Duration::from_secs(5),
    )
}
