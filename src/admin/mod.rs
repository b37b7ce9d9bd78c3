//! The admin listener: key management for admins, health for load
//! balancers. JSON in, JSON out; every route but health and the OpenAPI
//! document needs `Authorization: Bearer <token>` (`[admin] token_file`).
//!
//! Client input never yields a 500: bad JSON, unknown fields, wrong types,
//! bad TTLs are 400 with `{"error": ...}` naming the field; wrong method 405;
//! wrong content type 415; unknown id 404; a key rotated before 409; a store
//! outage 503.

mod error;
mod health;
mod keys;
mod openapi;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::audit::Actor;
use crate::conn::{ConnCtx, Handler};
use crate::http::body::ResponseBody;
use crate::http::json_body;
use crate::http::response;
use crate::keyring::Keyring;
use crate::keys::Source;
use crate::metrics::Metrics;
use crate::tokens::Tokens;
pub(crate) use error::ApiError;
/// The admin console reads listings and revocations as the API does.
pub(crate) use keys::{list_query, Revoke};

/// Largest admin request body (a list of leaked keys fits easily).
const MAX_BODY: usize = 8 * 1024 * 1024;

pub struct Admin {
    keyring: Keyring,
    tokens: Arc<Tokens>,
    /// Set when shutdown starts: /readyz answers 503 so balancers stop sending.
    draining: Arc<AtomicBool>,
    /// A JSON body not all there within this is answered 408 (`leaks.body_within`).
    body_within: Duration,
}

type ApiResult = Result<Response<ResponseBody>, ApiError>;

// === impl Admin ===

impl Admin {
    pub fn new(
        keyring: Keyring,
        tokens: Arc<Tokens>,
        draining: Arc<AtomicBool>,
        body_within: Duration,
    ) -> Self {
        Admin {
            keyring,
            tokens,
            draining,
            body_within,
        }
    }

    async fn route(&self, req: Request<Incoming>, conn: &ConnCtx) -> ApiResult {
        let path = req.uri().path().to_owned();
        // HEAD is GET without the body (`handle` drops it; RFC 9110 §9.3.2).
        let method = match req.method() {
            &Method::HEAD => Method::GET,
            other => other.clone(),
        };
        match (path.as_str(), &method) {
            ("/healthz", &Method::GET) => return Ok(health::healthz()),
            ("/readyz", &Method::GET) => {
                return Ok(health::readyz(&self.keyring, &self.draining).await)
            }
            ("/v1/openapi.json", &Method::GET) => return Ok(openapi::document()),
            ("/metrics", &Method::GET) => return Ok(metrics_text(self.keyring.metrics())),
            ("/healthz" | "/readyz" | "/v1/openapi.json" | "/metrics", _) => {
                return Err(ApiError::Method("GET, HEAD"))
            }
            _ => {}
        }
        // Exactly one Authorization: with two, which one names the admin
        // would be a guess (fail closed).
        let mut authz = req.headers().get_all(header::AUTHORIZATION).iter();
        let only = match (authz.next(), authz.next()) {
            (Some(one), None) => Some(one.as_bytes()),
            _ => None,
        };
        let Some(actor) = self.tokens.check(only) else {
            return Err(ApiError::Unauthorized);
        };
        let ctx = keys::Ctx {
            keyring: &self.keyring,
            actor: Actor::new(actor, Source::Admin, Some(conn.peer.ip())),
        };
        match (path.as_str(), method) {
            ("/v1/keys", Method::POST) => keys::create(&ctx, self.json_body(req).await?).await,
            ("/v1/keys", Method::GET) => keys::list(&ctx, req.uri().query()).await,
            ("/v1/keys", _) => Err(ApiError::Method("GET, HEAD, POST")),
            ("/v1/revoke", Method::POST) => keys::revoke(&ctx, self.json_body(req).await?).await,
            ("/v1/revoke", _) => Err(ApiError::Method("POST")),
            ("/v1/audit", Method::GET) => keys::audit_log(&ctx, req.uri().query()).await,
            ("/v1/settings", Method::GET) => keys::get_settings(&ctx).await,
            ("/v1/settings", Method::PUT) => {
                keys::put_settings(&ctx, self.json_body(req).await?).await
            }
            ("/v1/settings", _) => Err(ApiError::Method("GET, HEAD, PUT")),
            ("/v1/audit", _) => Err(ApiError::Method("GET, HEAD")),
            (p, Method::POST) if rotate_route(p).is_some() => {
                let id = rotate_route(p).unwrap_or_default();
                keys::rotate(&ctx, id, self.json_body(req).await?).await
            }
            (p, _) if rotate_route(p).is_some() => Err(ApiError::Method("POST")),
            (p, Method::DELETE) if p.starts_with("/v1/keys/") => {
                keys::delete(&ctx, &p["/v1/keys/".len()..]).await
            }
            (p, Method::GET) if p.starts_with("/v1/keys/") => {
                keys::get(&ctx, &p["/v1/keys/".len()..]).await
            }
            (p, _) if p.starts_with("/v1/keys/") => Err(ApiError::Method("DELETE, GET, HEAD")),
            _ => Err(ApiError::NotFound(format!("no route {path}"))),
        }
    }
}

impl Admin {
    /// Read and parse a JSON body (`http::json_body`), as an admin API answer.
    async fn json_body<T: DeserializeOwned>(&self, req: Request<Incoming>) -> Result<T, ApiError> {
        Ok(json_body::read(req, MAX_BODY, self.body_within).await?)
    }
}

impl Handler for Admin {
    type Body = ResponseBody;

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnCtx>,
    ) -> Response<ResponseBody> {
        let head = req.method() == Method::HEAD;
        let mut resp = self
            .route(req, &conn)
            .await
            .unwrap_or_else(ApiError::into_response);
        if head {
            response::without_body(&mut resp);
        }
        resp.body_mut().watch_sends(&conn.stats.sends);
        resp
    }
}

fn metrics_text(metrics: &Metrics) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(metrics.encode()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

/// The id in `/v1/keys/{id}/rotate`.
fn rotate_route(path: &str) -> Option<&str> {
    path.strip_prefix("/v1/keys/")?
        .strip_suffix("/rotate")
        .filter(|id| !id.contains('/'))
}
