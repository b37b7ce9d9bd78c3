//! The admin listener: key management for admins, health for load
//! balancers. JSON in, JSON out; every route but health and the OpenAPI
//! document needs `Authorization: Bearer <token>` (`[admin] token_file`).
//!
//! Client input never yields a 500: bad JSON, unknown fields, wrong types,
//! bad TTLs are 400 with `{"error": ...}` naming the field; wrong method 405;
//! wrong content type 415; unknown id 404; a store outage 503.

mod health;
mod keys;
mod openapi;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::audit::Actor;
use crate::conn::{ConnCtx, Handler};
use crate::http::body::ResponseBody;
use crate::http::json_body::{self, BodyError};
use crate::http::response;
use crate::keyring::Keyring;
use crate::keys::Source;
use crate::metrics::Metrics;
use crate::tokens::Tokens;

/// Largest admin request body (a list of leaked keys fits easily).
const MAX_BODY: usize = 8 * 1024 * 1024;

pub struct Admin {
    keyring: Keyring,
    tokens: Arc<Tokens>,
    /// Set when shutdown starts: /readyz answers 503 so balancers stop sending.
    draining: Arc<AtomicBool>,
}

/// An answer that is not a success, as JSON `{"error": ...}`.
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// For 405: the methods the route answers (RFC 9110 §15.5.6 requires `Allow`).
    allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            allow: None,
        }
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, msg.into())
    }

    fn revoke(e: crate::keyring::RevokeError) -> Self {
        match e {
            crate::keyring::RevokeError::Store(e) => ApiError::store(e),
            e @ crate::keyring::RevokeError::NotPropagated { .. } => {
                tracing::error!(error = %e, "revocation not confirmed by the fleet");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
        }
    }

    fn store(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "admin request failed: key store unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the key store is unavailable",
        )
    }
}

type ApiResult = Result<Response<ResponseBody>, ApiError>;

// === impl Admin ===

impl Admin {
    pub fn new(keyring: Keyring, tokens: Arc<Tokens>, draining: Arc<AtomicBool>) -> Self {
        Admin {
            keyring,
            tokens,
            draining,
        }
    }

    async fn route(&self, req: Request<Incoming>, conn: &ConnCtx) -> ApiResult {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        match (path.as_str(), &method) {
            ("/healthz", &Method::GET) => return Ok(health::healthz()),
            ("/readyz", &Method::GET) => {
                return Ok(health::readyz(&self.keyring, &self.draining).await)
            }
            ("/v1/openapi.json", &Method::GET) => return Ok(openapi::document()),
            ("/metrics", &Method::GET) => return Ok(metrics_text(self.keyring.metrics())),
            ("/healthz" | "/readyz" | "/v1/openapi.json" | "/metrics", _) => {
                return Err(not_allowed("GET"))
            }
            _ => {}
        }
        let Some(actor) = self.tokens.check(
            req.headers()
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        ) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or invalid bearer token",
            ));
        };
        let ctx = keys::Ctx {
            keyring: &self.keyring,
            actor: Actor::new(actor, Source::Admin, Some(conn.peer.ip())),
        };
        match (path.as_str(), method) {
            ("/v1/keys", Method::POST) => keys::create(&ctx, json_body(req).await?).await,
            ("/v1/keys", Method::GET) => keys::list(&ctx, req.uri().query()).await,
            ("/v1/keys", _) => Err(not_allowed("GET, POST")),
            ("/v1/revoke", Method::POST) => keys::revoke(&ctx, json_body(req).await?).await,
            ("/v1/revoke", _) => Err(not_allowed("POST")),
            ("/v1/audit", Method::GET) => keys::audit_log(&ctx, req.uri().query()).await,
            ("/v1/settings", Method::GET) => keys::get_settings(&ctx).await,
            ("/v1/settings", Method::PUT) => keys::put_settings(&ctx, json_body(req).await?).await,
            ("/v1/settings", _) => Err(not_allowed("GET, PUT")),
            ("/v1/audit", _) => Err(not_allowed("GET")),
            (p, Method::DELETE) if p.starts_with("/v1/keys/") => {
                keys::delete(&ctx, &p["/v1/keys/".len()..]).await
            }
            (p, _) if p.starts_with("/v1/keys/") => Err(not_allowed("DELETE")),
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no route {path}"),
            )),
        }
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
        let mut resp = match self.route(req, &conn).await {
            Ok(resp) => resp,
            Err(ApiError {
                status,
                message,
                allow,
            }) => {
                let mut resp = json(status, &serde_json::json!({ "error": message }));
                match status {
                    StatusCode::UNAUTHORIZED => {
                        resp.headers_mut().insert(
                            header::WWW_AUTHENTICATE,
                            HeaderValue::from_static("Bearer realm=\"keygate-admin\""),
                        );
                    }
                    StatusCode::METHOD_NOT_ALLOWED => {
                        if let Some(allow) = allow {
                            resp.headers_mut()
                                .insert(header::ALLOW, HeaderValue::from_static(allow));
                        }
                    }
                    StatusCode::SERVICE_UNAVAILABLE => {
                        resp.headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                    }
                    _ => {}
                }
                resp
            }
        };
        if head {
            response::without_body(&mut resp);
        }
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

fn not_allowed(allow: &'static str) -> ApiError {
    ApiError {
        allow: Some(allow),
        ..ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed; allowed: {allow}"),
        )
    }
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<ResponseBody> {
    let body = serde_json::to_vec(value).expect("JSON values serialize");
    let mut resp = Response::new(ResponseBody::full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Read and parse a JSON body (`http::json_body`), as an admin API answer.
async fn json_body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    json_body::read(req, MAX_BODY).await.map_err(|e| match e {
        BodyError::NotJson => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ),
        BodyError::TooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {MAX_BODY} bytes or unreadable"),
        ),
        BodyError::Invalid(message) => ApiError::bad_request(message),
    })
}
