//! The main listener's pipeline, one named step each:
//!
//! 1. **route**: `/.keygate/*` is keygate's own (`selfservice`), never
//!    forwarded, nor any spelling a backend might read as it (`own_path`);
//!    `/.keygate/api/rotate` is a key rotating itself (`self_rotation`),
//!    admitted by its key as below;
//! 2. **admit** (`http::admission`): strip what no client may send,
//!    authenticate, limit, authorize, and set the identity headers;
//! 3. **forward**: the request is rewritten for the backend (hop-by-hop
//!    headers, `X-Forwarded-*`, URI) and sent; a WebSocket upgrade is tunnelled.
//!
//! A step that says no returns a `Refusal`; `http::refusal` answers every
//! one of them in one place.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use ipnet::IpNet;

use super::access::Completion;
use super::admission::{Admission, Admitted};
use super::body::ResponseBody;
use super::expiry::ExpiryWarning;
use super::headers;
use super::own_path;
use super::refusal::{Refusal, Refusals};
use super::response;
use super::self_rotation::{self, SelfRotation};
use crate::config::Config;
use crate::conn::{ConnCtx, Handler};
use crate::fleet::tunnels::{Since, Tunnels};
use crate::keyring::Keyring;
use crate::metrics::Metrics;
use crate::upstream::pool::Lease;
use crate::upstream::{self, upgrade, Upstream};

/// keygate's own pages under `/.keygate/` (the self-service module):
/// answered by keygate, never forwarded.
pub trait OwnPages: Send + Sync + 'static {
    /// Answer a request for one of them; the signed-in user, if any, goes to
    /// the access log through `done`.
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        conn: &'a ConnCtx,
        done: &'a mut Completion,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'a;
}

pub struct Gateway<P> {
    /// `/.keygate/*`.
    own_pages: P,
    /// `/.keygate/api/rotate`: a key rotates itself (admitted here, by key).
    self_rotation: SelfRotation,
    /// Keys expiring within `keys.warn_before`'s longest offset are told so.
    expiry_warning: ExpiryWarning,
    admission: Admission,
    refusals: Refusals,
    upstream: Upstream,
    metrics: Arc<Metrics>,
    trusted_proxies: Vec<IpNet>,
    access_log: bool,
    /// The open tunnels admitted by a key: a revocation ends theirs.
    tunnels: Tunnels,
}

// === impl Gateway ===

impl<P: OwnPages> Gateway<P> {
    pub fn new(
        config: &Config,
        own_pages: P,
        admission: Admission,
        upstream: Upstream,
        metrics: Arc<Metrics>,
        keyring: Keyring,
    ) -> Self {
        Gateway {
            own_pages,
            expiry_warning: ExpiryWarning::new(keyring.warn_window()),
            tunnels: keyring.tunnels().clone(),
            self_rotation: SelfRotation::new(
                keyring,
                config.self_service.creates_per_hour,
                config.leaks.body_within(),
            ),
            admission,
            refusals: Refusals::new(metrics.clone(), &config.auth.realm),
            upstream,
            metrics,
            trusted_proxies: config.listen.trusted_proxies.clone(),
            access_log: config.log.access_log,
        }
    }

    /// A plain function returning an `async move` block, not an async fn:
    /// an async fn keeps each argument twice in its state (the argument and
    /// the local it is moved into, 264 bytes for a request) and copies one
    /// into the other as it starts; the block uses its capture in place.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn holds its arguments twice"
    )]
    fn respond<'a>(
        &'a self,
        mut req: Request<Incoming>,
        conn: &'a Arc<ConnCtx>,
        done: &'a mut Completion,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'a {
        async move {
            if req.uri().path() == self_rotation::PATH {
                let peer = conn.peer.ip();
                let answer =
                    self.self_rotation
                        .answer(req, peer, &self.admission, &self.refusals, done);
                return super::html::with_own_headers(Box::pin(answer).await);
            }
            if Self::is_own(&req) {
                // Boxed: its (large) state lives on the heap for the few requests
                // that take it, not inline in every proxied request's future.
                return Box::pin(self.own_pages.handle(req, conn, done)).await;
            }
            let peer = conn.peer.ip();
            if req.method() == Method::CONNECT {
                let refusal = Refusal::NotImplemented("keygate does not tunnel CONNECT");
                return self.refuse(refusal, peer, req.headers());
            }
            let host = match Self::check_form(&req).and_then(|()| Self::host_of(&req)) {
                Ok(host) => host,
                Err(refusal) => return self.refuse(refusal, peer, req.headers()),
            };
            let client_upgrade = Self::upgrade_of(&mut req);
            // Before admission: what a client's `Connection` names must not take
            // away the identity headers admission sets.
            headers::remove_hop_by_hop(req.headers_mut(), client_upgrade.is_some());
            // Upgrades only: a revocation applied from here on may name the
            // key that admits this one, and must still end its tunnel.
            let since = client_upgrade.as_ref().map(|_| self.tunnels.admitting());
            let admitted = match self.admission.admit(&mut req, peer).await {
                Ok(admitted) => admitted,
                Err(refusal) => return self.refuse(refusal, peer, req.headers()),
            };
            done.set_admitted(&admitted);
            // Forward. The rewrite before the send and the answer after it are
            // plain functions, not a nested async fn: each async level would
            // hold one more copy of the request and copy its whole state into
            // this one (BENCHMARKS.md, instructions per request).
            self.to_backend(&mut req, host, conn);
            let sent_at = Instant::now();
            let sent = self.upstream.send(req, sent_at).await;
            self.metrics.upstream(sent_at.elapsed());
            // The request is gone to the backend: an upstream failure is logged with the peer.
            let answer = sent.and_then(|(resp, lease)| {
                let upgrade = client_upgrade.map(|u| (u, self.revocable(since, &admitted)));
                Self::from_backend(resp, lease, upgrade, conn)
            });
            let mut resp = match answer {
                Ok(resp) => resp,
                Err(e) => self.refusals.answer(Refusal::Upstream(e), peer),
            };
            if let Admitted::Key(p) = &admitted {
                self.expiry_warning.apply(p, resp.headers_mut(), done);
            }
            resp
        }
    }

    /// What a tunnel needs to register when the backend agrees: only a
    /// tunnel admitted by a key can be revoked.
    fn revocable(&self, since: Option<Since>, admitted: &Admitted) -> Revocable {
        match (since, admitted) {
            (Some(since), Admitted::Key(p)) => {
                Some((self.tunnels.clone(), since, p.key_id(), p.user().to_owned()))
            }
            _ => None,
        }
    }

    /// Route: keygate's own paths, also under a lenient spelling of the
    /// prefix (`/%2ekeygate/`, `//.keygate/`), answered with keygate's own 404.
    fn is_own(req: &Request<Incoming>) -> bool {
        let path = req.uri().path();
        own_path::is_own(path) || own_path::looks_own(path)
    }

    /// Answer a refusal, naming the client as the access log does.
    fn refuse(&self, refusal: Refusal, peer: IpAddr, h: &HeaderMap) -> Response<ResponseBody> {
        self.refusals
            .answer(refusal, self.admission.client(peer, h))
    }

    /// RFC 9112 §3.2.3, §3.2.4: `*` is OPTIONS's target alone, and an
    /// authority alone is CONNECT's (refused before): neither is a path
    /// the backend is to get (`GET *` went on as it came, `GET host:80` as
    /// `GET /`).
    fn check_form(req: &Request<Incoming>) -> Result<(), Refusal> {
        let uri = req.uri();
        if uri.path() == "*" && req.method() != Method::OPTIONS {
            return Err(Refusal::BadRequest("only OPTIONS may have * as its target"));
        }
        if uri.scheme().is_none() && uri.authority().is_some() {
            return Err(Refusal::BadRequest(
                "the request target is a host without a path",
            ));
        }
        Ok(())
    }

    /// The host the backend is to see (RFC 9112 §3.2): the request target's
    /// authority when it has one (absolute form; HTTP/2's `:authority`,
    /// RFC 9113 §8.3.1), else its one `Host` header. More than one `Host`,
    /// none on HTTP/1.1, or one that is no host (`a/b`, `good@evil`, a
    /// space), is a bad request: the backend and `X-Forwarded-Host` get
    /// only a host.
    fn host_of(req: &Request<Incoming>) -> Result<Host, Refusal> {
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let (first, second) = (hosts.next(), hosts.next());
        if second.is_some() {
            return Err(Refusal::BadRequest("more than one Host header"));
        }
        if let Some(authority) = req.uri().authority() {
            // Without any `user@` (HTTP/2 forbids it; absolute form may carry it).
            let host = authority.as_str().rsplit('@').next().unwrap_or_default();
            return HeaderValue::from_str(host)
                .map(Host::Target)
                .map_err(|_| Refusal::BadRequest("the request target's host is not valid"));
        }
        match first {
            Some(host) if !headers::is_host(host.as_bytes()) => {
                Err(Refusal::BadRequest("the Host header is not a host[:port]"))
            }
            Some(host) => Ok(Host::Header(host.clone())),
            None if req.version() == Version::HTTP_11 => Err(Refusal::BadRequest(
                "an HTTP/1.1 request needs a Host header",
            )),
            None => Ok(Host::Absent),
        }
    }

    /// A WebSocket upgrade the client asks for: taken before the request is
    /// rewritten, tunnelled if the backend agrees (`from_backend`).
    fn upgrade_of(req: &mut Request<Incoming>) -> Option<OnUpgrade> {
        let upgrade = req.version() == Version::HTTP_11
            && req.method() == Method::GET
            && headers::is_websocket_upgrade(req.headers());
        upgrade.then(|| hyper::upgrade::on(req))
    }

    /// The request as the backend gets it (its hop-by-hop headers are gone
    /// already): `X-Forwarded-*` set, the URI in origin form, `Host` set.
    fn to_backend(&self, req: &mut Request<Incoming>, host: Host, conn: &ConnCtx) {
        upstream::to_origin_form(req.uri_mut());
        *req.version_mut() = Version::HTTP_11;
        let h = req.headers_mut();
        let forwarded_host = match &host {
            Host::Header(v) | Host::Target(v) => Some(v.clone()),
            Host::Absent => None,
        };
        headers::set_forwarded(
            h,
            conn.peer.ip(),
            &conn.peer_ip_header,
            conn.tls,
            forwarded_host,
            &self.trusted_proxies,
        );
        match host {
            // An HTTP/1.1 request keeps the Host it came with, untouched.
            Host::Header(_) => {}
            Host::Target(v) => {
                h.insert(header::HOST, v);
            }
            Host::Absent => {
                let v = HeaderValue::from_str(self.upstream.authority().as_str())
                    .expect("authority is a valid header value");
                h.insert(header::HOST, v);
            }
        }
    }

    /// The backend's response as the client gets it: a `101` to a WebSocket
    /// handshake starts the tunnel; a `101` to anything else is no answer
    /// (nothing was asked to switch; HTTP/2 has no 101 at all): 502.
    /// Otherwise what only keygate may say goes (`headers::for_client`) and
    /// the body gives the upstream connection back to the pool when read to
    /// its end.
    fn from_backend(
        mut resp: Response<Incoming>,
        lease: Lease,
        client_upgrade: Option<(OnUpgrade, Revocable)>,
        conn: &Arc<ConnCtx>,
    ) -> Result<Response<ResponseBody>, upstream::UpstreamError> {
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // A connection that switched serves no other request: the
            // lease is not released, its slot goes to the tunnel.
            let Some((client_upgrade, revocable)) = client_upgrade else {
                return Err(upstream::UpstreamError::UnaskedSwitch);
            };
            let registered =
                revocable.map(|(tunnels, since, id, user)| tunnels.open(since, id.as_str(), &user));
            let upstream = hyper::upgrade::on(&mut resp);
            upgrade::tunnel(
                client_upgrade,
                upstream,
                lease.into_slot(),
                conn.clone(),
                registered,
            );
            let h = resp.headers_mut();
            h.remove(headers::KEY_EXPIRES);
            headers::remove_own_set_cookies(h);
            return Ok(resp.map(|_| ResponseBody::empty()));
        }
        headers::for_client(resp.headers_mut());
        Ok(resp.map(|body| ResponseBody::upstream(body, lease)))
    }
}

/// A key tunnel's registration, made once the backend answers 101.
type Revocable = Option<(Tunnels, Since, crate::keys::KeyId, String)>;

/// Where the backend's `Host` comes from (`Gateway::host_of`).
enum Host {
    /// The request's one `Host` header, forwarded as it is.
    Header(HeaderValue),
    /// The request target's authority, which replaces any `Host`.
    Target(HeaderValue),
    /// Neither (HTTP/1.0): the upstream's own authority.
    Absent,
}

impl<P: OwnPages> Handler for Gateway<P> {
    type Body = ResponseBody;

    // Not an async fn, for the reason `respond` gives.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn holds its arguments twice"
    )]
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnCtx>,
    ) -> impl Future<Output = Response<ResponseBody>> + Send {
        async move {
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
}
