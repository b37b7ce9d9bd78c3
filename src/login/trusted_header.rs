//! `method = "trusted_header"`: an SSO module in front of keygate (Apache
//! mod_auth_mellon, Shibboleth) signs the browser in and names the user in a
//! header. The header is believed only on connections from
//! `login.trusted_proxies`; from any other address it is a spoofing attempt
//! and the gateway strips it with the other identity headers.
//!
//! Only the exact header name counts: Apache overwrites `X-Remote-User` but
//! forwards a client's `X_Remote_User` untouched, so other spellings are
//! never read here (and are stripped before anything goes upstream).

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;

pub struct TrustedHeader {
    pub header: HeaderName,
    trusted_proxies: Vec<IpNet>,
}

// === impl TrustedHeader ===

impl TrustedHeader {
    pub fn new(header: HeaderName, trusted_proxies: Vec<IpNet>) -> Self {
        TrustedHeader {
            header,
            trusted_proxies,
        }
    }

    /// The user the SSO proxy names, if `peer` is that proxy and it is a
    /// user name (`keys::user`: it goes upstream in the identity header).
    pub fn user(&self, headers: &HeaderMap, peer: IpAddr) -> Option<String> {
        self.named(headers, peer)
            .filter(|u| crate::keys::user::is_valid(u))
            .map(str::to_owned)
    }

    /// What the SSO proxy names, if `peer` is that proxy: its UTF-8 bytes
    /// as sent (`zoë`, not ASCII only), trimmed, not yet held to the
    /// user-name rule (the self-service page says why a name is refused).
    /// Two copies, an empty value or bytes that are not UTF-8: nobody.
    pub fn named<'h>(&self, headers: &'h HeaderMap, peer: IpAddr) -> Option<&'h str> {
        if !self.trusted_proxies.iter().any(|net| net.contains(&peer)) {
            return None;
        }
        let mut values = headers.get_all(&self.header).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return None;
        };
        // `to_str` takes visible ASCII only; SSO fronts send UTF-8.
        // ASCII white space only: `str::trim` also takes U+00A0, U+3000…,
        // and "alice\u{3000}" would sign in as alice.
        let user = std::str::from_utf8(value.as_bytes()).ok()?.trim_ascii();
        // mod_auth_mellon sends "(null)" where the user is unknown (SSO-TESTING.md).
        (!user.is_empty() && user != "(null)").then_some(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    #[test]
    fn believed_only_from_a_trusted_proxy_and_only_one_copy() {
        let t = TrustedHeader::new(
            HeaderName::from_static("x-remote-user"),
            vec!["127.0.0.2/32".parse().unwrap()],
        );
        let mut h = HeaderMap::new();
        h.insert("x-remote-user", "alice".parse().unwrap());
        let proxy: IpAddr = "127.0.0.2".parse().unwrap();
        let other: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(t.user(&h, proxy).as_deref(), Some("alice"));
        assert_eq!(t.user(&h, other), None);
        h.append("x-remote-user", "bob".parse().unwrap());
        assert_eq!(t.user(&h, proxy), None);
        let mut h = HeaderMap::new();
        h.insert("x_remote_user", "mallory".parse().unwrap());
        assert_eq!(t.user(&h, proxy), None);
        h.insert("x-remote-user", "(null)".parse().unwrap());
        assert_eq!(t.user(&h, proxy), None);
    }

    #[test]
    fn a_utf8_user_is_read_as_sent_and_a_non_user_is_nobody() {
        let t = TrustedHeader::new(
            HeaderName::from_static("x-remote-user"),
            vec!["127.0.0.2/32".parse().unwrap()],
        );
        let proxy: IpAddr = "127.0.0.2".parse().unwrap();
        let user = |bytes: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert("x-remote-user", HeaderValue::from_bytes(bytes).unwrap());
            t.user(&h, proxy)
        };
        assert_eq!(user("zoë".as_bytes()).as_deref(), Some("zoë"));
        assert_eq!(
            user(" josé@例え.jp ".as_bytes()).as_deref(),
            Some("josé@例え.jp")
        );
        // Latin-1 `zoë`, a right-to-left override, a tab inside, 257 bytes.
        assert_eq!(user(b"zo\xeb"), None);
        assert_eq!(user("a\u{202E}b".as_bytes()), None);
        assert_eq!(user(b"a\tb"), None);
        assert_eq!(user("é".repeat(129).as_bytes()), None);
        // Unicode white space is not trimmed into another user's name.
        assert_eq!(user("alice\u{3000}".as_bytes()), None);
        assert_eq!(user("\u{a0}alice".as_bytes()), None);
    }
}
