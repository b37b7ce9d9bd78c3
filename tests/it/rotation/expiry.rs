//! A key's printed `expires_at` is when it stops, on every instance and
//! through every path (the validation cache, a store lookup, a rotation):
//! never a second late because Redis counted its TTL from a later instant.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use serde_json::json;

use super::{grace, rotate, unix};
use crate::leaks::fleet;
use crate::support::admin::{call, json_of};

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// Sleep until unix time `at` (seconds, fractional).
async fn until(at: f64) {
    let wait = at - now().as_secs_f64();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

#[tokio::test]
async fn a_key_stops_at_its_printed_expiry_not_up_to_a_second_later() {
    let f = fleet(2, "expiry-edge", |_| {}).await;
    // Made late in a second: its expiry is the second it was made in plus
    // its lifetime, so Redis, counting the lifetime from the creation,
    // would keep the record for most of a second more.
    until(now().as_secs() as f64 + 0.8).await;
    let a = call(
        &f.clients[0],
        &f.gateways[0],
        Method::POST,
        "/v1/keys",
        Some(json!({"user": "edgar", "ttl": "2s"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let v = json_of(&a);
    let key = v["key"].as_str().unwrap().to_owned();
    let id = v["id"].as_str().unwrap().to_owned();
    let end = unix(&v["expires_at"]) as f64;
    // Cached on instance 0; instance 1 reads the store.
    assert_eq!(f.status(0, &key).await, StatusCode::OK);

    until(end + 0.05).await;
    for i in 0..2 {
        assert_eq!(
            f.status(i, &key).await,
            StatusCode::UNAUTHORIZED,
            "instance {i} accepted the key {:.2}s after its expires_at",
            now().as_secs_f64() - end
        );
    }
    // An expired key is 404 to a rotation: no successor of a dead key.
    let a = rotate(&f, 1, &id, grace("1h")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
}
