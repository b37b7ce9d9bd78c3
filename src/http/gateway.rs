//! The main listener's pipeline, top to bottom:
//!
//! 1. `/.keygate/*` is keygate's own (`selfservice`), never forwarded, nor
//!    any spelling a backend might read as it (`own_path`);
//! 2. with `[login] method = "trusted_header"`, the SSO proxy's user is read
//!    (from a trusted proxy address only); then every client copy of the
//!    identity headers, and of the login header, is removed, and so are
//!    keygate's own cookies (credentials for `/.keygate/` only);
//! 3. the API credential is checked. An API key, when present, decides
//!    (a script behind the SSO proxy still gets its key's user, and a bad key
//!    is a 401 even with an SSO user); without one the SSO user goes upstream
//!    as the identity; without either, `anonymous` decides;
//! 4. the request is rewritten for the backend (hop-by-hop headers,
//!    `X-Forwarded-*`, URI) and forwarded; a WebSocket upgrade is tunnelled.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use ipnet::IpNet;

use super::access::Completion;
use super::body::ResponseBody;
use super::headers::{self, Spoofable};
use super::own_path;
use super::response;
use crate::auth::{scope, AuthError, Authenticator};
use crate::config::{Anonymous, Config};
use crate::conn::{ConnCtx, Handler};
use crate::keyring::VerifyError;
use crate::keys::KeyId;
use crate::metrics::{AuthOutcome, Metrics};
use crate::ratelimit::Limiter;
use crate::selfservice::SelfService;
use crate::upstream::{self, upgrade, Upstream, UpstreamError};

pub struct Gateway {
    upstream: Upstream,
    auth: Authenticator,
    limiter: Arc<Limiter>,
    metrics: Arc<Metrics>,
    /// `/.keygate/*`, and the login method (`trusted_header` applies to every request).
    selfservice: SelfService,
    /// Identity, key-id and login headers: removed from every client request.
    spoofable: Spoofable,
    identity_header: http::HeaderName,
    trusted_proxies: Vec<IpNet>,
    anonymous: Anonymous,
    /// Prebuilt `WWW-Authenticate` value.
    challenge: HeaderValue,
    access_log: bool,
}

// === impl Gateway ===

impl Gateway {
    pub fn new(
        config: &Config,
        upstream: Upstream,
        auth: Authenticator,
        limiter: Arc<Limiter>,
        metrics: Arc<Metrics>,
        selfservice: SelfService,
    ) -> Self {
        let login_header = selfservice
            .login()
            .and_then(|l| l.trusted_header())
            .map(|t| t.header.clone());
        Gateway {
            upstream,
            auth,
            limiter,
            metrics,
            spoofable: Spoofable::new(
                [&config.auth.identity_header, &headers::KEY_ID]
                    .into_iter()
                    .chain(login_header.as_ref()),
            ),
            selfservice,
            identity_header: config.auth.identity_header.clone(),
            trusted_proxies: config.listen.trusted_proxies.clone(),
            anonymous: config.auth.anonymous,
            challenge: response::challenge(&config.auth.realm),
            access_log: config.log.access_log,
        }
    }

    async fn respond(
        &self,
        mut req: Request<Incoming>,
        conn: &Arc<ConnCtx>,
        done: &mut Completion,
    ) -> Response<ResponseBody> {
        // A lenient spelling of the prefix (`/%2ekeygate/`, `//.keygate/`)
        // matches no route and is answered with keygate's own 404.
        let path = req.uri().path();
        if own_path::is_own(path) || own_path::looks_own(path) {
            // Boxed: its (large) state lives on the heap for the few requests
            // that take it, not inline in every proxied request's future.
            return Box::pin(self.selfservice.handle(req, conn, done)).await;
        }
        let sso_user = self
            .selfservice
            .login()
            .and_then(|l| l.trusted_header())
            .and_then(|t| t.user(req.headers(), conn.peer.ip()));
        self.spoofable.strip(req.headers_mut());
        headers::strip_own_cookies(req.headers_mut());

        match self.auth.authenticate(req.headers_mut()).await {
            Ok(Some(principal)) => {
                if let Err(retry) = self.limiter.request(&principal.key_id()) {
                    self.metrics.auth(AuthOutcome::RateLimited);
                    return response::too_many_requests(retry.0);
                }
                if !scope::allows(principal.scope(), req.method()) {
                    self.metrics.auth(AuthOutcome::Forbidden);
                    return response::forbidden();
                }
                self.metrics.auth(AuthOutcome::Ok);
                let Ok(user) = HeaderValue::from_str(principal.user()) else {
                    // Users are validated at creation; a record that fails here is refused, never half-set.
                    tracing::error!(key_id = %principal.key_id(), "stored user is not a valid header value; refusing");
                    return response::unauthorized(&self.challenge);
                };
                self.auth.used(&principal);
                done.set_identity(principal.user(), principal.key_id().as_str());
                let h = req.headers_mut();
                h.insert(self.identity_header.clone(), user);
                h.insert(
                    headers::KEY_ID,
                    HeaderValue::from_str(principal.key_id().as_str()).expect("key ids are base62"),
                );
            }
            Ok(None) => match sso_user.and_then(|u| HeaderValue::from_str(&u).ok().map(|v| (u, v)))
            {
                Some((user, value)) => {
                    self.metrics.auth(AuthOutcome::Sso);
                    done.set_identity(&user, "-");
                    req.headers_mut()
                        .insert(self.identity_header.clone(), value);
                }
                None if self.anonymous == Anonymous::Passthrough => {
                    self.metrics.auth(AuthOutcome::Anonymous)
                }
                None => {
                    self.metrics.auth(AuthOutcome::Missing);
                    return response::unauthorized(&self.challenge);
                }
            },
            Err(e) => return self.refuse(e, conn, req.headers()),
        }

        self.forward(req, conn).await
    }

    /// Log the failure once (never the secret) and choose the answer.
    fn refuse(&self, e: AuthError, conn: &ConnCtx, h: &http::HeaderMap) -> Response<ResponseBody> {
        let client = headers::client_ip(conn.peer.ip(), h, &self.trusted_proxies);
        match e {
            AuthError::Key(VerifyError::Store(e)) => {
                self.metrics.auth(AuthOutcome::StoreError);
                tracing::error!(client = %client, error = %e, "key store unavailable; refusing (503)");
                response::store_unavailable()
            }
            AuthError::Ambiguous => {
                self.metrics.auth(AuthOutcome::Ambiguous);
                tracing::info!(client = %client, reason = %e, "refused an ambiguous credential (400)");
                response::bad_request()
            }
            AuthError::Key(
                e @ (VerifyError::Malformed | VerifyError::Unknown(_) | VerifyError::Mismatch(_)),
            ) => {
                let key_id = e.key_id();
                tracing::info!(client = %client, key_id = key_id.as_ref().map_or("-", KeyId::as_str), reason = %e, "authentication failed");
                match self.limiter.failed_auth(client) {
                    Ok(()) => {
                        self.metrics.auth(match e {
                            VerifyError::Malformed => AuthOutcome::Malformed,
                            VerifyError::Unknown(_) => AuthOutcome::Unknown,
                            _ => AuthOutcome::Mismatch,
                        });
                        response::unauthorized(&self.challenge)
                    }
                    Err(retry) => {
                        self.metrics.auth(AuthOutcome::RateLimited);
                        response::too_many_requests(retry.0)
                    }
                }
            }
        }
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        conn: &Arc<ConnCtx>,
    ) -> Response<ResponseBody> {
        let upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

        let had_host = req.headers().contains_key(header::HOST);
        let host = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        upstream::to_origin_form(req.uri_mut());
        *req.version_mut() = Version::HTTP_11;
        let h = req.headers_mut();
        headers::remove_hop_by_hop(h, upgrade);
        headers::set_forwarded(
            h,
            conn.peer.ip(),
            &conn.peer_ip_header,
            conn.tls,
            host.clone(),
            &self.trusted_proxies,
        );
        // HTTP/2 carries the host in :authority; the backend gets it as Host.
        // An HTTP/1.1 request keeps the Host it came with, untouched.
        if !had_host {
            let host = host.unwrap_or_else(|| {
                HeaderValue::from_str(self.upstream.authority().as_str())
                    .expect("authority is a valid header value")
            });
            h.insert(header::HOST, host);
        }

        let sent_at = Instant::now();
        let sent = self.upstream.send(req, sent_at).await;
        self.metrics.upstream(sent_at.elapsed());
        let (mut resp, lease) = match sent {
            Ok(sent) => sent,
            Err(e) => return upstream_failure(e, conn),
        };

        if let (Some(client_upgrade), StatusCode::SWITCHING_PROTOCOLS) =
            (client_upgrade, resp.status())
        {
            upgrade::tunnel(client_upgrade, hyper::upgrade::on(&mut resp), conn.clone());
            return resp.map(|_| ResponseBody::empty());
        }
        headers::remove_hop_by_hop(resp.headers_mut(), false);
        resp.map(|body| ResponseBody::upstream(body, lease))
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
    type Body = ResponseBody;

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnCtx>,
    ) -> Response<ResponseBody> {
        let mut done = Completion::new(
            conn.stats.clone(),
            self.access_log.then(Instant::now),
            conn.peer.ip(),
            req.method(),
            req.uri().path(),
        );
        let head = req.method() == Method::HEAD;
        let mut resp = self.respond(req, &conn, &mut done).await;
        if head {
            response::without_body(&mut resp);
        }
        done.set_status(resp.status());
        resp.body_mut().set_completion(done);
        resp
    }
}
