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
