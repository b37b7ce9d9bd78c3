//! The three ways a proxy asks, one per route, and how each describes the
//! original request (its method and URI). A check that does not describe
//! it, or describes it twice, is a 400 naming what is missing: keygate
//! never guesses the method a read key's scope is checked against.

use http::header::{HeaderMap, HeaderName};
use http::uri::PathAndQuery;
use http::{Method, Request};

use super::error::CheckError;
use crate::metrics::AuthzRoute;

/// Where Envoy's HTTP ext_authz service is: its `path_prefix`.
pub const EXT_AUTHZ: &str = "/authz/ext-authz";

/// A header a contract reads, and its name as messages spell it.
struct Named(HeaderName, &'static str);

const X_FORWARDED_METHOD: Named = Named(
    HeaderName::from_static("x-forwarded-method"),
    "X-Forwarded-Method",
);
const X_FORWARDED_URI: Named = Named(
    HeaderName::from_static("x-forwarded-uri"),
    "X-Forwarded-Uri",
);
const X_ORIGINAL_METHOD: Named = Named(
    HeaderName::from_static("x-original-method"),
    "X-Original-Method",
);
const X_ORIGINAL_URI: Named = Named(HeaderName::from_static("x-original-uri"), "X-Original-URI");

/// The route a check came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `/authz/forward-auth`: Traefik ForwardAuth, Caddy `forward_auth`
    /// (`X-Forwarded-Method`, `X-Forwarded-Uri`; `-Proto` and `-Host` are
    /// not needed to decide).
    ForwardAuth,
    /// `/authz/auth-request`: nginx `auth_request` (`X-Original-Method`,
    /// `X-Original-URI`, set by the proxy's configuration).
    AuthRequest,
    /// `/authz/ext-authz/<original path>`: Envoy's HTTP ext_authz service,
    /// whose check request keeps the original method and appends the
    /// original path (and query) to `path_prefix`.
    ExtAuthz,
}

/// The request the proxy asks about.
#[derive(Debug)]
pub struct Original {
    pub method: Method,
    /// Path and query as the proxy named them (logged without the query).
    pub uri: PathAndQuery,
}

// === impl Contract ===

impl Contract {
    /// The contract of a path on the auth listener; `None`: no auth route.
    pub fn of(path: &str) -> Option<Contract> {
        match path {
            "/authz/forward-auth" => Some(Contract::ForwardAuth),
            "/authz/auth-request" => Some(Contract::AuthRequest),
            p if p
                .strip_prefix(EXT_AUTHZ)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')) =>
            {
                Some(Contract::ExtAuthz)
            }
            _ => None,
        }
    }

    /// The `route` label of `keygate_authz_checks_total`.
    pub fn metric(self) -> AuthzRoute {
        match self {
            Contract::ForwardAuth => AuthzRoute::ForwardAuth,
            Contract::AuthRequest => AuthzRoute::AuthRequest,
            Contract::ExtAuthz => AuthzRoute::ExtAuthz,
        }
    }

    /// The original request, as this contract carries it.
    pub fn describe<B>(self, req: &Request<B>) -> Result<Original, CheckError> {
        let h = req.headers();
        match self {
            Contract::ForwardAuth => from_headers(h, &X_FORWARDED_METHOD, &X_FORWARDED_URI),
            Contract::AuthRequest => from_headers(h, &X_ORIGINAL_METHOD, &X_ORIGINAL_URI),
            Contract::ExtAuthz => {
                let full = req.uri().path_and_query().map_or("", PathAndQuery::as_str);
                let rest = full.strip_prefix(EXT_AUTHZ).unwrap_or("");
                if !rest.starts_with('/') {
                    return Err(CheckError::Missing("original path after /authz/ext-authz"));
                }
                Ok(Original {
                    method: req.method().clone(),
                    uri: rest
                        .parse()
                        .map_err(|_| CheckError::Bad("the original path after /authz/ext-authz"))?,
                })
            }
        }
    }
}

/// The method and URI from the headers a proxy sets for them.
fn from_headers(h: &HeaderMap, method: &Named, uri: &Named) -> Result<Original, CheckError> {
    let method_text = one(h, method)?;
    let uri_text = one(h, uri)?;
    let method_value =
        Method::from_bytes(method_text.as_bytes()).map_err(|_| CheckError::Bad(method.1))?;
    // Origin form (`/path?query`), or `*` for `OPTIONS *`.
    let uri_value = match uri_text {
        t if t.starts_with('/') || t == "*" => t.parse().ok(),
        _ => None,
    };
    Ok(Original {
        method: method_value,
        uri: uri_value.ok_or(CheckError::Bad(uri.1))?,
    })
}

/// The one value of `name`: missing, repeated or not visible ASCII is refused.
fn one<'h>(h: &'h HeaderMap, name: &Named) -> Result<&'h str, CheckError> {
    let mut values = h.get_all(&name.0).iter();
    match (values.next(), values.next()) {
        (None, _) => Err(CheckError::Missing(name.1)),
        (Some(v), None) => match v.to_str().map(str::trim) {
            Ok(text) if !text.is_empty() => Ok(text),
            _ => Err(CheckError::Bad(name.1)),
        },
        (Some(_), Some(_)) => Err(CheckError::Bad(name.1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, method: &str, headers: &[(&str, &str)]) -> Result<Original, CheckError> {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(()).unwrap();
        Contract::of(req.uri().path()).unwrap().describe(&req)
    }

    #[test]
    fn routes_are_exact_but_ext_authz_takes_the_original_path() {
        assert_eq!(
            Contract::of("/authz/forward-auth"),
            Some(Contract::ForwardAuth)
        );
        assert_eq!(
            Contract::of("/authz/auth-request"),
            Some(Contract::AuthRequest)
        );
        assert_eq!(Contract::of("/authz/ext-authz"), Some(Contract::ExtAuthz));
        assert_eq!(
            Contract::of("/authz/ext-authz/a/b"),
            Some(Contract::ExtAuthz)
        );
        for none in [
            "/",
            "/authz",
            "/authz/forward-auth/",
            "/authz/ext-authzx",
            "/Authz/auth-request",
        ] {
            assert_eq!(Contract::of(none), None, "{none}");
        }
    }

    #[test]
    fn each_contract_reads_the_method_and_uri_where_its_proxy_puts_them() {
        let o = check(
            "/authz/forward-auth",
            "GET",
            &[
                ("x-forwarded-method", "POST"),
                ("x-forwarded-uri", "/a?b=c"),
            ],
        )
        .unwrap();
        assert_eq!((o.method, o.uri.as_str()), (Method::POST, "/a?b=c"));
        let o = check(
            "/authz/auth-request",
            "GET",
            &[("x-original-method", "DELETE"), ("x-original-uri", "/x")],
        )
        .unwrap();
        assert_eq!((o.method, o.uri.as_str()), (Method::DELETE, "/x"));
        let o = check("/authz/ext-authz/p/q?r=1", "PUT", &[]).unwrap();
        assert_eq!((o.method, o.uri.as_str()), (Method::PUT, "/p/q?r=1"));
    }

    #[test]
    fn a_missing_repeated_or_bad_description_names_the_header() {
        let missing = check("/authz/forward-auth", "GET", &[("x-forwarded-uri", "/")]);
        assert!(matches!(
            missing,
            Err(CheckError::Missing("X-Forwarded-Method"))
        ));
        let missing = check(
            "/authz/auth-request",
            "GET",
            &[("x-original-method", "GET")],
        );
        assert!(matches!(
            missing,
            Err(CheckError::Missing("X-Original-URI"))
        ));
        let twice = check(
            "/authz/auth-request",
            "GET",
            &[
                ("x-original-method", "GET"),
                ("x-original-method", "POST"),
                ("x-original-uri", "/"),
            ],
        );
        assert!(matches!(twice, Err(CheckError::Bad("X-Original-Method"))));
        let bad = check(
            "/authz/forward-auth",
            "GET",
            &[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "http://a/"),
            ],
        );
        assert!(matches!(bad, Err(CheckError::Bad("X-Forwarded-Uri"))));
        let bad = check(
            "/authz/forward-auth",
            "GET",
            &[("x-forwarded-method", "G E T"), ("x-forwarded-uri", "/")],
        );
        assert!(matches!(bad, Err(CheckError::Bad("X-Forwarded-Method"))));
        let none = check("/authz/ext-authz", "GET", &[]);
        assert!(matches!(none, Err(CheckError::Missing(_))));
    }
}
