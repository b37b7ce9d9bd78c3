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

    /// The user the SSO proxy names, if `peer` is that proxy. Two copies,
    /// an empty value or one that cannot be a header value upstream: nobody.
    pub fn user(&self, headers: &HeaderMap, peer: IpAddr) -> Option<String> {
        if !self.trusted_proxies.iter().any(|net| net.contains(&peer)) {
            return None;
        }
        let mut values = headers.get_all(&self.header).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return None;
        };
        let user = value.to_str().ok()?.trim();
        // mod_auth_mellon sends "(null)" where the user is unknown (SSO-TESTING.md).
        (!user.is_empty() && user != "(null)").then(|| user.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
