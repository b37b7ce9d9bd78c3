//! What a key's scope allows: `read` keys only the safe methods.

use http::Method;

use crate::keys::Scope;

/// Whether `scope` may make a request with `method` (RFC 9110 §9.2.1 safe methods for `read`).
pub fn allows(scope: Scope, method: &Method) -> bool {
    match scope {
        Scope::Full => true,
        Scope::Read => matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS),
    }
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
}
