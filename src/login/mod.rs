//! Who is signed in on the self-service page (`[login] method`), one module
//! per method:
//!
//! * [`backend_session`]: ask the application, with the browser's cookies;
//! * [`trusted_header`]: believe an SSO proxy's header, from its address only
//!   (the gateway also sends that user upstream, see `http::admission`);
//! * [`cas`]: keygate runs the CAS 3.0 login itself and keeps a signed cookie;
//! * [`oidc`]: keygate is an OpenID Connect client and keeps the same cookie;
//! * `Dev`: `keygate dev` only, everyone is its demo user.
//!
//! [`signed`] signs what keygate hands to browsers, [`session`] is the
//! cookie of `cas` and `oidc`, [`flow`] binds their sign-in in progress to
//! the browser that started it; [`fetch`] is the small HTTP client of
//! `backend_session`, `cas` and `oidc`.

pub mod backend_session;
pub mod cas;
pub mod fetch;
pub mod flow;
pub mod oidc;
pub mod session;
pub mod signed;
pub mod trusted_header;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use http::header::{self, HeaderMap};

use crate::config::{self, LoginMethod};
use backend_session::{BackendSession, Who};
use cas::Cas;
use fetch::Fetch;
use oidc::Oidc;
use session::Sessions;
use signed::Signer;
use trusted_header::TrustedHeader;

/// Someone signed in: the user, and (with `oidc`) the groups among
/// `[admin] groups` the provider says they are in (`config::Admin::by_group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub user: String,
    pub groups: Vec<String>,
}

// === impl Person ===

impl Person {
    /// Someone the method knows by name only.
    pub fn named(user: String) -> Person {
        Person {
            user,
            groups: Vec::new(),
        }
    }
}

/// Who the browser is, as far as the login method can tell.
#[derive(Debug)]
pub enum Outcome {
    SignedIn(Person),
    SignedOut,
    /// The method's server cannot be asked (503): never taken as either answer.
    Unavailable(String),
    /// Signed in under a name no key can carry (`keys::user`): `why`. `by`
    /// says who gave the name ("the application"). Said at once (403), not
    /// when the person asks for a key.
    NotAUser {
        user: String,
        why: &'static str,
        by: &'static str,
    },
}

impl Outcome {
    /// `person`, signed in by `by`, if their name is a user name. Also for
    /// a CAS or OIDC session: one signed before the rule last changed is
    /// held to today's.
    fn checked(person: Person, by: &'static str) -> Outcome {
        match crate::keys::user::check(&person.user) {
            Ok(()) => Outcome::SignedIn(person),
            Err(why) => Outcome::NotAUser {
                user: person.user,
                why,
                by,
            },
        }
    }
}

pub enum Method {
    BackendSession(BackendSession),
    TrustedHeader(TrustedHeader),
    Cas(Cas),
    /// Boxed: its caches make it the largest by far.
    Oidc(Box<Oidc>),
    Dev(String),
}

pub struct Login {
    pub method: Method,
    /// See `config::Login::public_url`.
    pub public_url: Option<String>,
}

// === impl Login ===

impl Login {
    /// `signer` signs sessions; `ca_file` (`upstream.ca_file`) is trusted
    /// besides the system roots for https login URLs; `admin_groups`
    /// (`[admin] groups`) are the groups an `oidc` session keeps.
    pub fn new(
        cfg: &config::Login,
        signer: Arc<Signer>,
        ca_file: Option<&Path>,
        admin_groups: &[String],
    ) -> Result<Login, String> {
        let fetch = |url: &str| Fetch::new(cfg.timeout, url.starts_with("https://"), ca_file);
        let public_url = |method: &str| {
            cfg.public_url.as_deref().ok_or(format!(
                "login.public_url is required with method = \"{method}\""
            ))
        };
        let method = match &cfg.method {
            LoginMethod::BackendSession {
                whoami_url,
                user_pointer,
                login_url,
                guest_users,
            } => Method::BackendSession(BackendSession::new(
                whoami_url.clone(),
                user_pointer.clone(),
                login_url.clone(),
                guest_users.clone(),
                fetch(&whoami_url.to_string())?,
            )),
            LoginMethod::TrustedHeader {
                header,
                trusted_proxies,
            } => Method::TrustedHeader(TrustedHeader::new(header.clone(), trusted_proxies.clone())),
            LoginMethod::Cas { cas_url } => Method::Cas(Cas::new(
                cas_url.clone(),
                public_url("cas")?,
                fetch(cas_url)?,
                signer.clone(),
                Sessions::new(signer, cfg.session_ttl, "cas-session", cas_url.clone()),
            )),
            LoginMethod::Oidc(client) => Method::Oidc(Box::new(Oidc::new(
                client.clone(),
                public_url("oidc")?,
                fetch(&client.issuer)?,
                signer.clone(),
                Sessions::new(
                    signer,
                    cfg.session_ttl,
                    "oidc-session",
                    oidc::vouched_by(client),
                ),
                admin_groups.to_vec(),
            ))),
            LoginMethod::Dev { user } => Method::Dev(user.clone()),
        };
        Ok(Login {
            method,
            public_url: cfg.public_url.clone(),
        })
    }

    /// Who sent this request (`peer` is the TCP peer, for `trusted_header`).
    pub async fn who(&self, headers: &HeaderMap, peer: IpAddr) -> Outcome {
        match &self.method {
            Method::BackendSession(b) => match b.who(headers).await {
                Ok(Who::User(u)) => Outcome::checked(Person::named(u), "the application"),
                Ok(Who::SignedOut) => Outcome::SignedOut,
                Err(e) => {
                    tracing::warn!(error = %e, "who-am-I URL unavailable; answering 503");
                    Outcome::Unavailable("the application's sign-in service".into())
                }
            },
            Method::TrustedHeader(t) => t.named(headers, peer).map_or(Outcome::SignedOut, |u| {
                Outcome::checked(Person::named(u.to_owned()), "the single sign-on proxy")
            }),
            Method::Cas(c) => c.who(headers).map_or(Outcome::SignedOut, |p| {
                Outcome::checked(p, "the CAS server")
            }),
            Method::Oidc(o) => o.who(headers).map_or(Outcome::SignedOut, |p| {
                Outcome::checked(p, "the identity provider")
            }),
            Method::Dev(user) => Outcome::SignedIn(Person::named(user.clone())),
        }
    }

    /// Where a signed-out browser is sent: the app's login page, keygate's
    /// own CAS or OIDC login, or nowhere (the SSO proxy in front decides).
    pub fn login_url(&self) -> Option<&str> {
        match &self.method {
            Method::BackendSession(b) => Some(&b.login_url),
            Method::Cas(_) | Method::Oidc(_) => Some("/.keygate/login"),
            Method::TrustedHeader(_) | Method::Dev(_) => None,
        }
    }
}

/// The first value of parameter `name` in a sign-in answer's `query`
/// ("" without one): the flow it names, to end only that one.
pub(crate) fn query_param(query: &str, name: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map_or(String::new(), |(_, v)| v.into_owned())
}

/// The first value of cookie `name` in the request's `Cookie` headers.
///
/// Read as bytes: the application behind keygate may set cookies holding
/// UTF-8, which browsers send as it is, in the same field as keygate's;
/// `to_str` refuses such a field whole, and keygate's own cookies in it
/// (session, flow, CSRF) went unseen.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    cookies(headers, name).next()
}

/// Every value of the cookie `name`, in the order sent: a cookie another
/// host or path may also set (not `__Host-`) can come more than once.
pub fn cookies<'h, 'n>(headers: &'h HeaderMap, name: &'n str) -> impl Iterator<Item = &'h str> + 'n
where
    'h: 'n,
{
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (&pair[..eq] == name.as_bytes()).then(|| std::str::from_utf8(&pair[eq + 1..]).ok())?
        })
}

/// A request's `Cookie` header holding the pair a `Set-Cookie` value sets.
#[cfg(test)]
pub(crate) fn jar(set_cookie: &http::HeaderValue) -> HeaderMap {
    let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
    let mut h = HeaderMap::new();
    h.insert(header::COOKIE, pair.parse().unwrap());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_beside_cookies_holding_utf8() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            http::HeaderValue::from_bytes("name=Zo\u{eb}; __Host-keygate-csrf=abc; b=1".as_bytes())
                .unwrap(),
        );
        h.append(header::COOKIE, "c=2; d=x=y".parse().unwrap());
        assert_eq!(cookie(&h, "__Host-keygate-csrf"), Some("abc"));
        assert_eq!(cookie(&h, "c"), Some("2"));
        assert_eq!(cookie(&h, "d"), Some("x=y"));
        assert_eq!(cookie(&h, "name"), Some("Zo\u{eb}"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    /// A CAS session signed for a name the user-name rule refuses today
    /// (signed by an older keygate, before the rule took in `U+202E`) is
    /// no signed-in person: the page says why, as at sign-in.
    #[tokio::test]
    async fn a_session_signed_for_a_name_the_rule_now_refuses_is_not_signed_in() {
        let cas = cas::for_tests("https://cas.example.org/cas");
        let (good, bad) = (
            jar(&cas.session_cookie("zo\u{EB}")),
            jar(&cas.session_cookie("zo\u{EB}\u{202E}nimda")),
        );
        let login = Login {
            method: Method::Cas(cas),
            public_url: None,
        };
        let peer = IpAddr::from([127, 0, 0, 1]);
        assert!(matches!(
            login.who(&good, peer).await,
            Outcome::SignedIn(Person { user, .. }) if user == "zo\u{EB}"
        ));
        assert!(matches!(
            login.who(&bad, peer).await,
            Outcome::NotAUser { why, by: "the CAS server", .. }
                if why.starts_with("contains an invisible or direction-changing")
        ));
    }
}
