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

/// Ready to take traffic: the store answers and shutdown has not begun.
pub async fn readyz(keyring: &Keyring, draining: &AtomicBool) -> Response<ResponseBody> {
    if draining.load(Ordering::Relaxed) {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "draining" }),
        );
    }
    match keyring.ping().await {
        Ok(()) => json(StatusCode::OK, &json!({ "status": "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: key store unavailable");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "status": "store unavailable" }),
            )
        }
    }
}
