//! Keys that expire without breaking anyone's scripts: rotation with a
//! grace period (admin API, CLI), self-rotation, expiry notices and the
//! `KeyGate-Key-Expires` header, idle keys retired. Real Redis, real
//! keygate instances sharing it (the leak tests' fleet), a real webhook
//! receiver.

mod admin;
mod expiry;
mod notices;
mod racing_revocation;
mod self_rotation;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::leaks::Fleet;
use crate::support::admin::{call, json_of};
use crate::support::client::Answer;

/// `POST /v1/keys/{id}/rotate` on instance `i` with `body`.
pub(crate) async fn rotate(f: &Fleet, i: usize, id: &str, body: Value) -> Answer {
    call(
        &f.clients[i],
        &f.gateways[i],
        Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        Some(body),
    )
    .await
}

/// The user's keys as `GET /v1/keys?user=` lists them, by id.
pub(crate) async fn listed(f: &Fleet, user: &str) -> Vec<Value> {
    let a = call(
        &f.clients[0],
        &f.gateways[0],
        Method::GET,
        &format!("/v1/keys?user={user}"),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    json_of(&a)["keys"].as_array().unwrap().clone()
}

/// A rotation's 201 answer as JSON.
pub(crate) fn rotated(a: &Answer) -> Value {
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    json_of(a)
}

/// An RFC 3339 time as unix seconds.
pub(crate) fn unix(rfc3339: &Value) -> u64 {
    humantime::parse_rfc3339(rfc3339.as_str().unwrap())
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `{"grace": g}`.
pub(crate) fn grace(g: &str) -> Value {
    json!({ "grace": g })
}
