//! Who a request is, and whether it may pass: the gateway's steps between
//! routing and forwarding, kept apart from both so that a listener that only
//! answers "may this pass, as whom?" (an external-auth endpoint) runs the
//! very same checks. In order:
//!
//! 1. **strip**: with `[login] method = "trusted_header"` the SSO proxy's
//!    user is read (from a trusted proxy address only); then every client
//!    copy of the identity headers and of the login header is removed, and
//!    so are keygate's own cookies (credentials for `/.keygate/` only);
//! 2. **authenticate**: the API credential is found, removed and verified.
//!    A key, when present, decides (a script behind the SSO proxy still gets
//!    its key's user, and a bad key is refused even with an SSO user);
//!    without one the SSO user is the identity; without either,
//!    `auth.anonymous` decides;
//! 3. **limit**: the key's requests per second;
//! 4. **authorize**: the key's scope against the method;
//! 5. **identify**: the identity and key-id headers are set for the backend.
//!
//! Each step that says no returns a `Refusal`, answered in `http::refusal`.

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request};
use ipnet::IpNet;

use super::headers::{self, Spoofable};
use super::refusal::Refusal;
use crate::auth::{scope, AuthError, Authenticator, Principal};
use crate::config::{Anonymous, Config};
use crate::login::trusted_header::TrustedHeader;
use crate::metrics::{AuthOutcome, Metrics};
use crate::ratelimit::Limiter;

/// Who a request passed as.
pub enum Admitted {
    /// An API key.
    Key(Principal),
    /// The SSO proxy's user (`login.method = "trusted_header"`), without a key.
    Sso(String),
    /// Nobody, with `auth.anonymous = "passthrough"`.
    Anonymous,
}

pub struct Admission {
    auth: Authenticator,
    limiter: Arc<Limiter>,
    metrics: Arc<Metrics>,
    /// `login.method = "trusted_header"`: the SSO proxy's header, believed from its addresses only.
    trusted_header: Option<TrustedHeader>,
    /// Identity, key-id and login headers: removed from every client request.
    spoofable: Spoofable,
    identity_header: HeaderName,
    trusted_proxies: Vec<IpNet>,
    anonymous: Anonymous,
}

// === impl Admission ===

impl Admission {
    pub fn new(
        config: &Config,
        auth: Authenticator,
        limiter: Arc<Limiter>,
        metrics: Arc<Metrics>,
        trusted_header: Option<TrustedHeader>,
    ) -> Self {
        let spoofable = Spoofable::new(
            [&config.auth.identity_header, &headers::KEY_ID]
                .into_iter()
                .chain(trusted_header.as_ref().map(|t| &t.header)),
        );
        Admission {
            auth,
            limiter,
            metrics,
            trusted_header,
            spoofable,
            identity_header: config.auth.identity_header.clone(),
            trusted_proxies: config.listen.trusted_proxies.clone(),
            anonymous: config.auth.anonymous,
        }
    }

    /// Whose `X-Forwarded-For` names the client (for the logs and the
    /// failed-authentication limit): `proxies` instead of
    /// `listen.trusted_proxies` (the auth listener's `authz.trusted_proxies`).
    pub fn trusting(mut self, proxies: Vec<IpNet>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Run the steps on a request that came from `peer`; on success its
    /// headers are what the backend may see.
    pub async fn admit<B>(&self, req: &mut Request<B>, peer: IpAddr) -> Result<Admitted, Refusal> {
        let method = req.method().clone();
        self.admit_as(&method, req.headers_mut(), peer).await
    }

    /// The same steps for a request that is described rather than carried:
    /// an external-auth check names the original request's method in a
    /// header (`authz`), and `h` are the headers it sent along.
    pub async fn admit_as(
        &self,
        method: &Method,
        h: &mut HeaderMap,
        peer: IpAddr,
    ) -> Result<Admitted, Refusal> {
        let sso_user = self.strip(h, peer);
        let Some(principal) = self.authenticate(h, peer).await? else {
            return self.without_key(h, sso_user);
        };
        self.limit(&principal)?;
        self.authorize(&principal, method, h)?;
        self.metrics.auth(AuthOutcome::Ok);
        self.identify(h, &principal)?;
        self.auth.used(&principal);
        Ok(Admitted::Key(principal))
    }

    /// Steps 1 to 3 for a request that must carry a key and changes only
    /// that key (self-rotation): no key is `Refusal::Missing` whatever
    /// `auth.anonymous` says, and the key's scope is not asked (a read key
    /// may rotate itself). Nothing is set for a backend: it goes nowhere.
    pub async fn admit_key<B>(
        &self,
        req: &mut Request<B>,
        peer: IpAddr,
    ) -> Result<Principal, Refusal> {
        self.strip(req.headers_mut(), peer);
        let Some(principal) = self.authenticate(req.headers_mut(), peer).await? else {
            return Err(Refusal::Missing);
        };
        self.limit(&principal)?;
        self.metrics.auth(AuthOutcome::Ok);
        self.auth.used(&principal);
        Ok(principal)
    }

    /// The client's address as the access and failure logs name it
    /// (`X-Forwarded-For` from a trusted proxy).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        headers::client_ip(peer, headers, &self.trusted_proxies)
    }

    /// Step 1: read the SSO proxy's user, then remove what no client may send.
    fn strip(&self, h: &mut HeaderMap, peer: IpAddr) -> Option<String> {
        let sso_user = self.trusted_header.as_ref().and_then(|t| t.user(h, peer));
        self.spoofable.strip(h);
        crate::header_names::strip_own_cookies(h);
        sso_user
    }

    /// Step 2: the key, if the request carries one; a key that does not
    /// verify counts against the client's failed authentications.
    async fn authenticate(
        &self,
        h: &mut HeaderMap,
        peer: IpAddr,
    ) -> Result<Option<Principal>, Refusal> {
        match self.auth.authenticate(h).await {
            Ok(principal) => Ok(principal),
            Err(AuthError::Ambiguous) => Err(Refusal::Ambiguous),
            Err(AuthError::Key(failure)) => Err(Refusal::of_key(failure, || {
                self.limiter.failed_auth(self.client(peer, h)).err()
            })),
        }
    }

    /// Step 3: the key's request rate.
    fn limit(&self, principal: &Principal) -> Result<(), Refusal> {
        self.limiter
            .request(&principal.key_id())
            .map_err(Refusal::RateLimited)
    }

    /// Step 4: what the key's scope allows, for the method and for every
    /// method an override header names (the app may take that one instead).
    fn authorize(
        &self,
        principal: &Principal,
        method: &Method,
        h: &HeaderMap,
    ) -> Result<(), Refusal> {
        let allowed = scope::allows(principal.scope(), method)
            && scope::overrides_allowed(principal.scope(), h);
        match allowed {
            true => Ok(()),
            false => Err(Refusal::ReadOnly),
        }
    }

    /// Step 5: tell the backend who is calling, with which key.
    fn identify(&self, h: &mut HeaderMap, principal: &Principal) -> Result<(), Refusal> {
        // The user's UTF-8 bytes as they are (RFC 9110 obs-text), what an
        // SSO front sends for the same person: `from_bytes` says so (http's
        // `from_str` takes them too, but reads as if it were ASCII only;
        // `to_str` would refuse them). Users are validated at creation
        // (`keys::user`); a record that fails here is refused, never half-set.
        let user = HeaderValue::from_bytes(principal.user().as_bytes())
            .map_err(|_| Refusal::BadUser(principal.key_id()))?;
        h.insert(self.identity_header.clone(), user);
        h.insert(
            headers::KEY_ID,
            HeaderValue::from_bytes(principal.key_id().as_bytes()).expect("key ids are base62"),
        );
        Ok(())
    }

    /// No key: the SSO proxy's user, else `auth.anonymous`.
    fn without_key(
        &self,
        h: &mut HeaderMap,
        sso_user: Option<String>,
    ) -> Result<Admitted, Refusal> {
        let sso = sso_user.and_then(|u| HeaderValue::from_bytes(u.as_bytes()).ok().map(|v| (u, v)));
        match (sso, self.anonymous) {
            (Some((user, value)), _) => {
                self.metrics.auth(AuthOutcome::Sso);
                h.insert(self.identity_header.clone(), value);
                Ok(Admitted::Sso(user))
            }
            (None, Anonymous::Passthrough) => {
                self.metrics.auth(AuthOutcome::Anonymous);
                Ok(Admitted::Anonymous)
            }
            (None, Anonymous::Reject) => Err(Refusal::Missing),
        }
    }
}
