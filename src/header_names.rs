//! The header names keygate sets or removes itself, and so reserves, and
//! its own cookies: a leaf that the config check (an identity header may not
//! be one of them), the HTTP layer's header rules (`http::headers`) and the
//! login (which hands the browser's other cookies to the application) read.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The key id of the authenticated key, set by keygate only.
pub const KEY_ID: HeaderName = HeaderName::from_static("x-keygate-key-id");
/// On answers to a key that expires within `keys.warn_before`'s longest
/// offset: its expiry (RFC 3339), for scripts to log. Set by keygate only.
pub const KEY_EXPIRES: HeaderName = HeaderName::from_static("keygate-key-expires");
/// LabKey's credential header, which keygate reads a key from (`auth.apikey_header`).
pub const APIKEY: HeaderName = HeaderName::from_static("apikey");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

pub const HOP_BY_HOP_COUNT: usize = 8;
/// Where `Connection` and `Transfer-Encoding` are in `HOP_BY_HOP`: the
/// header rules look at these two on their own.
pub const CONNECTION_AT: usize = 0;
pub const TRANSFER_ENCODING_AT: usize = 7;

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

/// Where `name` is in `HOP_BY_HOP`. One match on the name's text instead of
/// a comparison with each of the eight: it runs for every header of every
/// message that crosses keygate.
pub fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    match name.as_str() {
        "connection" => Some(CONNECTION_AT),
        "keep-alive" => Some(1),
        "proxy-connection" => Some(2),
        "proxy-authenticate" => Some(3),
        "proxy-authorization" => Some(4),
        "te" => Some(5),
        "trailer" => Some(6),
        "transfer-encoding" => Some(TRANSFER_ENCODING_AT),
        _ => None,
    }
}

/// Headers keygate reads (the credentials), sets or removes itself: the
/// identity and login headers may not be one of them. Compared in the
/// spelling the identity header is stripped in (`_` and `.` as `-`). Other
/// `X-Forwarded-*` names stay free: oauth2-proxy's `X-Forwarded-User` is
/// the usual login header behind it.
pub fn is_reserved(name: &HeaderName) -> bool {
    let name = name.as_str().replace(['_', '.'], "-");
    HOP_BY_HOP.iter().any(|h| h.as_str() == name)
        || [
            header::AUTHORIZATION,
            APIKEY,
            header::HOST,
            header::UPGRADE,
            header::COOKIE,
            header::CONTENT_LENGTH,
            header::CONTENT_TYPE,
            KEY_ID,
            KEY_EXPIRES,
            FORWARDED,
            X_FORWARDED_FOR,
            X_FORWARDED_PROTO,
            X_FORWARDED_HOST,
            // What a proxy says of the request it asks the auth listener about.
            HeaderName::from_static("x-forwarded-method"),
            HeaderName::from_static("x-forwarded-uri"),
            HeaderName::from_static("x-original-method"),
            HeaderName::from_static("x-original-uri"),
        ]
        .iter()
        .any(|h| h.as_str() == name)
}

/// The names of keygate's own cookies (the CAS or OIDC session, the CAS or
/// OIDC sign-in in progress, the CSRF id): `__Host-keygate-session`,
/// `__Host-keygate-cas`, `__Host-keygate-oidc`, `__Host-keygate-csrf`. (The
/// OIDC sign-out hint, `__Secure-keygate-logout-hint`, is sent only to
/// `/.keygate/logout`, which keygate answers itself.)
pub const OWN_COOKIE_PREFIX: &str = "__Host-keygate-";

/// Remove keygate's own cookies from the request's `Cookie` headers. The
/// browser sends them with every request to the gateway's host, but they are
/// credentials for `/.keygate/` only: a backend that saw the CAS session
/// cookie could replay it to mint API keys in the user's name. The other
/// cookies are kept, joined into one field (RFC 9113 §8.2.3), also when
/// none was ours: an HTTP/2 client may split its cookies into one field
/// each, which an HTTP/1.1 backend must get as one `Cookie` (gunicorn and
/// Apache would join two with a comma, and misread every cookie after it).
pub fn strip_own_cookies(headers: &mut HeaderMap) {
    fn ours(pair: &[u8]) -> bool {
        pair.trim_ascii_start()
            .starts_with(OWN_COOKIE_PREFIX.as_bytes())
    }
    let pairs = |h: &HeaderMap| -> Vec<Vec<u8>> {
        h.get_all(header::COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
            .map(|pair| pair.trim_ascii().to_vec())
            .filter(|pair| !pair.is_empty())
            .collect()
    };
    // Most requests carry one field and none of ours: look before building anything.
    let (mut fields, mut any_ours) = (0, false);
    for v in headers.get_all(header::COOKIE) {
        fields += 1;
        any_ours = any_ours || v.as_bytes().split(|&b| b == b';').any(ours);
    }
    if !any_ours && fields < 2 {
        return;
    }
    let all = pairs(headers);
    let kept: Vec<Vec<u8>> = all.into_iter().filter(|p| !ours(p)).collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_bytes(&kept.join(&b"; "[..])) {
            headers.insert(header::COOKIE, v);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header map of `(name, value)` pairs, repeated names appended.
    pub(crate) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn keygates_own_cookies_are_removed_and_the_others_kept() {
        let mut h = map(&[
            ("cookie", "app=1; __Host-keygate-session=u.1.t"),
            ("cookie", "__Host-keygate-csrf=abc;b=2"),
        ]);
        strip_own_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "app=1; b=2");
        let mut h = map(&[("cookie", "__Host-keygate-session=x")]);
        strip_own_cookies(&mut h);
        assert!(!h.contains_key("cookie"));
        let mut h = map(&[("cookie", "a=1; b=2")]);
        strip_own_cookies(&mut h);
        assert_eq!(h["cookie"], "a=1; b=2", "untouched");
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2")]);
        strip_own_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1, "joined");
        assert_eq!(h["cookie"], "a=1; b=2");
    }

    #[test]
    fn headers_keygate_reads_or_manages_are_reserved_in_any_spelling() {
        let reserved = |text: &str| is_reserved(&HeaderName::from_bytes(text.as_bytes()).unwrap());
        for name in [
            "apikey",
            "APIKey",
            "authorization",
            "host",
            "cookie",
            "x-keygate-key-id",
            "x_keygate_key_id",
            "keygate-key-expires",
            "connection",
            "proxy-authorization",
            "x-forwarded-for",
            "X_Forwarded_Proto",
            "x.forwarded.host",
            "X-Forwarded-Method",
            "x_original_uri",
            "forwarded",
        ] {
            assert!(reserved(name), "{name}");
        }
        for name in [
            "x-remote-user",
            "x-apikey-user",
            "x-forwarded",
            "x-forwarded-user",
            "X-Forwarded-Email",
            "remote_user",
        ] {
            assert!(!reserved(name), "{name}");
        }
    }

    #[test]
    fn the_hop_by_hop_match_finds_each_of_them_and_nothing_else() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
            let spelled = HeaderName::from_bytes(name.as_str().to_uppercase().as_bytes()).unwrap();
            assert_eq!(
                hop_by_hop_index(&spelled),
                Some(i),
                "{name} sent in capitals"
            );
        }
        for other in [
            "upgrade",
            "host",
            "tee",
            "trailers",
            "connection2",
            "x-keep-alive",
        ] {
            let name = HeaderName::from_bytes(other.as_bytes()).unwrap();
            assert_eq!(hop_by_hop_index(&name), None, "{other}");
        }
    }
}
