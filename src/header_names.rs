//! The header names keygate sets or removes itself, and so reserves: a leaf
//! that the config check (an identity header may not be one of them) and
//! the HTTP layer's header rules (`http::headers`) both read.

use http::header::{self, HeaderName};

/// The key id of the authenticated key, set by keygate only.
pub const KEY_ID: HeaderName = HeaderName::from_static("x-keygate-key-id");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

pub const HOP_BY_HOP_COUNT: usize = 8;

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy `Keep-Alive` and
/// `Proxy-Connection`): they describe one connection and must not be forwarded.
// A static, not a const: a const array would be built and dropped at each use.
pub static HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Headers keygate manages itself; the identity header may not be one of them.
pub fn is_reserved(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
        || [
            header::AUTHORIZATION,
            header::HOST,
            header::UPGRADE,
            header::COOKIE,
            header::CONTENT_LENGTH,
            header::CONTENT_TYPE,
            KEY_ID,
            X_FORWARDED_FOR,
            X_FORWARDED_PROTO,
            X_FORWARDED_HOST,
            FORWARDED,
        ]
        .contains(name)
}
