//! The OpenAPI 3 document of the admin API, shipped in the binary.

use http::{Response, StatusCode};

use crate::http::body::ResponseBody;

const DOCUMENT: &str = include_str!("openapi.json");

pub fn document() -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(DOCUMENT));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}
