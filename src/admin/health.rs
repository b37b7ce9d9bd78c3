//! Liveness and readiness, for load balancers and orchestrators (no token).

use std::sync::atomic::{AtomicBool, Ordering};

use http::{Response, StatusCode};
use serde_json::json;

use crate::http::body::ResponseBody;
use crate::http::response::json;
use crate::keyring::Keyring;

/// The process answers.
pub fn healthz() -> Response<ResponseBody> {
    json(StatusCode::OK, &json!({ "status": "ok" }))
}

/// Ready to take traffic: the store answers, its start is done (Redis:
/// the earlier key layouts moved, the store's secret checked; `keygate
/// serve` retries it every second) and shutdown has not begun.
/// With a fleet to join, the body says too whether this instance is in
/// touch with it (`fleet`): out of touch it still serves, asking the store
/// for every request, so the status code does not change.
pub async fn readyz(keyring: &Keyring, draining: &AtomicBool) -> Response<ResponseBody> {
    if draining.load(Ordering::Relaxed) {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "draining" }),
        );
    }
    let (code, mut body) = match keyring.ping().await {
        Ok(()) if !keyring.started() => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "store start not done" }),
        ),
        Ok(()) => (StatusCode::OK, json!({ "status": "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: key store unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "store unavailable" }),
            )
        }
    };
    if let Some(connected) = keyring.fleet_connected() {
        body["fleet"] = json!(if connected {
            "connected"
        } else {
            "out_of_touch"
        });
    }
    json(code, &body)
}
