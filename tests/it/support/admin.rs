//! The admin API as a client calls it: bearer token, JSON bodies.

use http::{Method, Request};
use serde_json::Value;

use super::body;
use super::client::{send, Answer, HttpsClient};
use super::gateway::TestGateway;
use super::ADMIN_TOKEN;

/// The fields of a newly minted key's answer, as `POST /v1/keys` and
/// `keygate keys create --json` give it (docs/reference.md).
pub const NEW_KEY_FIELDS: [&str; 7] = [
    "id",
    "key",
    "user",
    "label",
    "scope",
    "created_at",
    "expires_at",
];

/// One admin call with the test token.
pub async fn call(
    c: &HttpsClient,
    gw: &TestGateway,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(gw.admin_url(path))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    let b = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            body::full(v.to_string())
        }
        None => body::empty(),
    };
    send(c, req.body(b).unwrap()).await
}

/// `POST /v1/keys` for `user` (201 asserted): the key and its id.
pub async fn create_key(c: &HttpsClient, gw: &TestGateway, user: &str) -> (String, String) {
    let a = call(
        c,
        gw,
        Method::POST,
        "/v1/keys",
        Some(serde_json::json!({ "user": user })),
    )
    .await;
    assert_eq!(a.status, http::StatusCode::CREATED, "{}", a.text());
    let v = json_of(&a);
    (
        v["key"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    )
}

pub fn json_of(a: &Answer) -> Value {
    serde_json::from_slice(&a.body).unwrap_or_else(|_| panic!("not JSON: {}", a.text()))
}
