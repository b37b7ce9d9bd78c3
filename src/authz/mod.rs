//! The auth listener (`[authz] addr`): keygate as the auth service of a
//! proxy that stays in the data path. The proxy asks about each request and
//! keygate answers "yes, as this user" (`200` with the identity header and
//! `X-Keygate-Key-Id` to copy onto the request to the app, and
//! `KeyGate-Key-Expires` for a key expiring soon) or no: the very
//! refusal the gateway would answer (401 + challenge, 403 for a read key
//! writing, 429, 503 + `Retry-After` when the store cannot be asked).
//!
//! One request, in order:
//!
//! 1. **who asks**: only a peer in `authz.trusted_proxies` (403 otherwise:
//!    its forwarded headers could say anything);
//! 2. **route**: the contract of the proxy (`contract`): which headers
//!    name the original method and URI (400 naming what is missing);
//! 3. **admit** (`http::admission`): the gateway's own steps, with the
//!    original method for the read-scope rule;
//! 4. **answer** (`allowed`, or `error` for every no).
//!
//! The check's body is never read (it is dropped unread), and nothing is
//! ever forwarded: the proxy forwards, keygate only answers. Each check is
//! one access-log line naming the original request.

mod allowed;
mod contract;
mod error;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::HeaderName;
use http::request::Parts;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use ipnet::IpNet;

use self::allowed::Credentials;
use self::contract::{Contract, Original};
use self::error::CheckError;
use crate::config::Config;
use crate::conn::{ConnCtx, Handler};
use crate::http::access::Completion;
use crate::http::admission::{Admission, Admitted};
use crate::http::body::ResponseBody;
use crate::http::expiry::ExpiryWarning;
use crate::http::refusal::Refusals;
use crate::http::response;
use crate::metrics::{AuthzRoute, Metrics};

/// Answers the checks of the proxies in `authz.trusted_proxies`.
pub struct Authz {
    /// Built like the gateway's, trusting `authz.trusted_proxies`' `X-Forwarded-For`.
    admission: Admission,
    refusals: Refusals,
    /// `keygate_authz_checks_total`, by route and status class.
    metrics: Arc<Metrics>,
    trusted_proxies: Vec<IpNet>,
    identity_header: HeaderName,
    /// `KeyGate-Key-Expires` on a yes for a key expiring soon, as the gateway's.
    expiry_warning: ExpiryWarning,
    access_log: bool,
}

// === impl Authz ===

impl Authz {
    /// `admission` shares the gateway's limiter and metrics (one key, one
    /// budget, wherever it is checked).
    pub fn new(
        config: &Config,
        authz: &crate::config::Authz,
        admission: Admission,
        metrics: Arc<Metrics>,
        expiry_warning: ExpiryWarning,
    ) -> Self {
        Authz {
            admission: admission.trusting(authz.trusted_proxies.clone()),
            refusals: Refusals::new(metrics.clone(), &config.auth.realm),
            metrics,
            trusted_proxies: authz.trusted_proxies.clone(),
            identity_header: config.auth.identity_header.clone(),
            expiry_warning,
            access_log: config.log.access_log,
        }
    }

    /// Steps 1 and 2: may the peer ask, and what does it ask about?
    fn describe(
        &self,
        req: &Request<()>,
        peer: IpAddr,
    ) -> Result<(Contract, Original), CheckError> {
        if !self.trusted_proxies.iter().any(|net| net.contains(&peer)) {
            return Err(CheckError::Untrusted);
        }
        let contract = Contract::of(req.uri().path()).ok_or(CheckError::NoRoute)?;
        Ok((contract, contract.describe(req)?))
    }

    /// Steps 3 and 4: the gateway's checks on the described request.
    async fn check(
        &self,
        contract: Contract,
        original: &Original,
        parts: &mut Parts,
        peer: IpAddr,
        done: &mut Completion,
    ) -> Result<Response<ResponseBody>, CheckError> {
        let h = &mut parts.headers;
        let credentials = Credentials::present(h);
        let admitted = self
            .admission
            .admit_as(&original.method, h, peer)
            .await
            .map_err(CheckError::Refused)?;
        done.set_admitted(&admitted);
        let mut yes = allowed::answer(contract, h, &self.identity_header, &credentials);
        if let Admitted::Key(p) = &admitted {
            self.expiry_warning.apply(p, yes.headers_mut(), done);
        }
        Ok(yes)
    }
}

impl Handler for Authz {
    type Body = ResponseBody;

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnCtx>,
    ) -> Response<ResponseBody> {
        let start = self.access_log.then(Instant::now);
        // The body is dropped unread: a check is decided on its head.
        let (parts, _body) = req.into_parts();
        let req = Request::from_parts(parts, ());
        let peer = conn.peer.ip();
        let client = self.admission.client(peer, req.headers());
        let described = self.describe(&req, peer);
        let (method, path) = match &described {
            Ok((_, original)) => (&original.method, original.uri.path()),
            Err(_) => (req.method(), req.uri().path()),
        };
        // A check that describes its request badly still counts on its route.
        let route = match &described {
            Err(CheckError::Untrusted) => {
                // Its connection closes after this answer, also over HTTP/2
                // (GOAWAY), where `Connection: close` says nothing.
                conn.finish.after_this();
                AuthzRoute::None
            }
            _ => Contract::of(req.uri().path()).map_or(AuthzRoute::None, Contract::metric),
        };
        let mut done = Completion::new(conn.stats.clone(), start, client, method, path);
        let head = req.method() == Method::HEAD;
        let (mut parts, ()) = req.into_parts();
        let checked = match described {
            Ok((contract, original)) => {
                self.check(contract, &original, &mut parts, peer, &mut done)
                    .await
            }
            Err(e) => Err(e),
        };
        let mut resp = checked.unwrap_or_else(|e| e.answer(&self.refusals, client));
        if head {
            response::without_body(&mut resp);
        }
        self.metrics.authz_check(route, resp.status());
        done.set_status(resp.status());
        resp.body_mut().set_completion(done);
        resp
    }
}
