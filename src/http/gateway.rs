//! The main listener's pipeline, top to bottom:
//!
//! 1. `/.keygate/*` is keygate's own, never forwarded;
//! 2. every client copy of the identity headers is removed;
//! 3. the API credential is checked (or, with `anonymous = "passthrough"`,
//!    a request without one goes on unauthenticated);
//! 4. the request is rewritten for the backend (hop-by-hop headers,
//!    `X-Forwarded-*`, URI) and forwarded; a WebSocket upgrade is tunnelled.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use ipnet::IpNet;

use super::access::Completion;
use super::body::ResponseBody;
use super::headers::{self, Spoofable};
use super::response;
use crate::auth::{self, Credential};
use crate::config::{Anonymous, Config};
use crate::listener::{ConnCtx, Handler};
use crate::upstream::{upgrade, Upstream, UpstreamError};

/// Paths under this prefix are answered by keygate itself.
const OWN_PREFIX: &str = "/.keygate/";

pub struct Gateway {
    upstream: Upstream,
    /// Identity and key-id headers: removed from every client request.
    spoofable: Spoofable,
    trusted_proxies: Vec<IpNet>,
    username: String,
    anonymous: Anonymous,
    /// Prebuilt `WWW-Authenticate` value.
    challenge: HeaderValue,
    access_log: bool,
}

// === impl Gateway ===

impl Gateway {
    pub fn new(config: &Config, upstream: Upstream) -> Self {
        Gateway {
            upstream,
            spoofable: Spoofable::new([&config.auth.identity_header, &headers::KEY_ID]),
            trusted_proxies: config.listen.trusted_proxies.clone(),
            username: config.auth.username.clone(),
            anonymous: config.auth.anonymous,
            challenge: response::challenge(&config.auth.realm),
            access_log: config.log.access_log,
        }
    }

    async fn respond(&self, mut req: Request<Incoming>, conn: &ConnCtx) -> Response<ResponseBody> {
        if req.uri().path().starts_with(OWN_PREFIX) {
            return response::not_found();
        }
        self.spoofable.strip(req.headers_mut());

        match auth::credential(req.headers(), &self.username) {
            Credential::None if self.anonymous == Anonymous::Passthrough => {}
            Credential::Ambiguous => return response::bad_request(),
            // No key store yet: a presented key cannot be known valid, so it is refused.
            Credential::None | Credential::ApiKey(_) => {
                return response::unauthorized(&self.challenge)
            }
        }

        self.forward(req, conn).await
    }

    async fn forward(&self, mut req: Request<Incoming>, conn: &ConnCtx) -> Response<ResponseBody> {
        let upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

        let host = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let uri = self.upstream.uri_for(req.uri().path_and_query());
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        let h = req.headers_mut();
        headers::remove_hop_by_hop(h, upgrade);
        headers::set_forwarded(
            h,
            conn.peer.ip(),
            conn.tls,
            host.clone(),
            &self.trusted_proxies,
        );
        // HTTP/2 carries the host in :authority; the backend gets it as Host.
        match host {
            Some(host) => h.insert(header::HOST, host),
            None => h.insert(
                header::HOST,
                HeaderValue::from_str(self.upstream.authority().as_str())
                    .expect("authority is a valid header value"),
            ),
        };

        let mut resp = match self.upstream.send(req).await {
            Ok(resp) => resp,
            Err(e) => return upstream_failure(e, conn),
        };

        if let (Some(client_upgrade), StatusCode::SWITCHING_PROTOCOLS) =
            (client_upgrade, resp.status())
        {
            upgrade::tunnel(client_upgrade, hyper::upgrade::on(&mut resp));
            return resp.map(|_| ResponseBody::empty());
        }
        headers::remove_hop_by_hop(resp.headers_mut(), false);
        resp.map(ResponseBody::upstream)
    }
}

/// Log an upstream failure once and choose its status: 504 for a timeout, 502 otherwise.
fn upstream_failure(e: UpstreamError, conn: &ConnCtx) -> Response<ResponseBody> {
    tracing::warn!(client = %conn.peer, error = %e, source = ?std::error::Error::source(&e), "upstream request failed");
    match e {
        UpstreamError::Timeout(_) => response::gateway_timeout(),
        UpstreamError::Connect(_) | UpstreamError::Failed(_) => response::bad_gateway(),
    }
}

impl Handler for Gateway {
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnCtx>,
    ) -> Response<ResponseBody> {
        let mut done = Completion::new(
            conn.stats.clone(),
            self.access_log,
            Instant::now(),
            conn.peer.ip(),
            req.method(),
            req.uri().path(),
        );
        let mut resp = self.respond(req, &conn).await;
        done.set_status(resp.status());
        resp.body_mut().set_completion(done);
        resp
    }
}
