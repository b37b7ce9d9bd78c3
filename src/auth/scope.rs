//! What a key's scope allows: `read` keys only the safe methods.

use http::header::{HeaderMap, HeaderName};
use http::Method;

use crate::keys::Scope;

/// Whether `scope` may make a request with `method` (RFC 9110 §9.2.1 safe methods for `read`).
pub fn allows(scope: Scope, method: &Method) -> bool {
    match scope {
        Scope::Full => true,
        Scope::Read => matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS),
    }
}

/// Headers that frameworks take as the request's method instead of the
/// request line's (Flask's and Werkzeug's override middleware, ASP.NET,
/// OData, Jersey...), some of them on a GET too.
pub const METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Whether every method the override headers in `h` name is one `scope`
/// may use: a read key's GET saying `X-HTTP-Method-Override: DELETE` is a
/// DELETE to an app that honours it. Read case-blind, as frameworks do; a
/// value that is no method is refused too, never guessed at.
pub fn overrides_allowed(scope: Scope, h: &HeaderMap) -> bool {
    scope == Scope::Full
        || METHOD_OVERRIDES
            .iter()
            .flat_map(|name| h.get_all(name))
            .all(|value| {
                let named = value.as_bytes().trim_ascii().to_ascii_uppercase();
                Method::from_bytes(&named).is_ok_and(|m| allows(scope, &m))
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_keys_only_read() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(allows(Scope::Read, &m));
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!allows(Scope::Read, &m));
            assert!(allows(Scope::Full, &m));
        }
    }

    #[test]
    fn a_read_key_may_not_name_another_method_in_an_override_header() {
        use crate::header_names::tests::map;
        for ok in [
            map(&[]),
            map(&[("x-http-method-override", "GET")]),
            map(&[
                ("X-HTTP-Method", " head "),
                ("x-method-override", "options"),
            ]),
        ] {
            assert!(overrides_allowed(Scope::Read, &ok), "{ok:?}");
        }
        for refused in [
            map(&[("x-http-method-override", "DELETE")]),
            map(&[("x-http-method", "put")]),
            map(&[("x-method-override", "GET"), ("x-method-override", "PATCH")]),
            map(&[("x-http-method-override", "GET, POST")]),
            map(&[("x-http-method-override", "")]),
        ] {
            assert!(!overrides_allowed(Scope::Read, &refused), "{refused:?}");
            assert!(overrides_allowed(Scope::Full, &refused), "{refused:?}");
        }
    }
}
