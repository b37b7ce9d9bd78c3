//! CSRF protection for the JSON API's writes (POST, DELETE), three checks:
//!
//! 1. a random id in keygate's own cookie (`__Host-keygate-csrf`: Secure,
//!    HttpOnly, SameSite=Lax), set by the page when missing. Lax, not Strict:
//!    a page reached by a cross-site link (back from the CAS server) would
//!    not see a Strict cookie, mint a new id and break the tokens of the
//!    user's other tabs; cross-site POST and DELETE get no Lax cookie either;
//! 2. the token `HMAC(user, id)` that the page embeds and the script sends
//!    back in `X-CSRF-Token`: another site can neither read the page nor
//!    compute it, and it is bound to both the browser and the signed-in user;
//! 3. `Origin` must be the gateway's own origin (`login.public_url`, else
//!    `https://` + the request's host), and `Sec-Fetch-Site`, when a browser
//!    sends it, `same-origin`.

use http::header::{self, HeaderMap, HeaderValue};
use http::Uri;

use crate::login::signed::{random_id, Signer};

pub const COOKIE: &str = "__Host-keygate-csrf";
pub const HEADER: &str = "x-csrf-token";

/// Why a write was refused (403); the reason goes to the log only.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum CsrfError {
    #[error("no CSRF cookie")]
    NoCookie,
    #[error("missing or wrong X-CSRF-Token")]
    BadToken,
    #[error("missing or foreign Origin")]
    BadOrigin,
    #[error("Sec-Fetch-Site is not same-origin")]
    CrossSite,
}

pub struct Csrf {
    signer: Signer,
    /// `login.public_url`, when configured.
    origin: Option<String>,
}

/// The page's CSRF state: the token to embed and, for a new browser, the cookie to set.
pub struct Issued {
    pub token: String,
    pub set_cookie: Option<HeaderValue>,
}

// === impl Csrf ===

impl Csrf {
    pub fn new(signer: Signer, origin: Option<String>) -> Csrf {
        Csrf { signer, origin }
    }

    fn token(&self, user: &str, id: &str) -> String {
        self.signer.sign(&[b"csrf", user.as_bytes(), id.as_bytes()])
    }

    /// For the page: the token of this browser's id, making an id if it has none.
    pub fn issue(&self, headers: &HeaderMap, user: &str) -> Issued {
        match crate::login::cookie(headers, COOKIE).filter(|id| is_id(id)) {
            Some(id) => Issued {
                token: self.token(user, id),
                set_cookie: None,
            },
            None => {
                let id = random_id();
                let cookie = format!("{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Lax");
                Issued {
                    token: self.token(user, &id),
                    set_cookie: Some(HeaderValue::try_from(cookie).expect("base64url id")),
                }
            }
        }
    }

    /// For a write by `user`: every check must pass.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri, user: &str) -> Result<(), CsrfError> {
        if let Some(site) = headers.get("sec-fetch-site") {
            if site.as_bytes() != b"same-origin" {
                return Err(CsrfError::CrossSite);
            }
        }
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .ok_or(CsrfError::BadOrigin)?;
        if !self.own_origin(origin, headers, uri) {
            return Err(CsrfError::BadOrigin);
        }
        let id = crate::login::cookie(headers, COOKIE)
            .filter(|id| is_id(id))
            .ok_or(CsrfError::NoCookie)?;
        let token = headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or(CsrfError::BadToken)?;
        if !self
            .signer
            .verify(&[b"csrf", user.as_bytes(), id.as_bytes()], token)
        {
            return Err(CsrfError::BadToken);
        }
        Ok(())
    }

    fn own_origin(&self, origin: &str, headers: &HeaderMap, uri: &Uri) -> bool {
        let origin = comparable(origin);
        if let Some(ours) = &self.origin {
            return origin == comparable(ours);
        }
        // HTTP/2 carries the host in :authority, HTTP/1.1 in Host.
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
        host.is_some_and(|host| origin == comparable(&format!("https://{host}")))
    }
}

/// An origin as browsers serialize it (RFC 6454 §6.1): lowercase, without
/// the scheme's default port, so `https://KG.example.org:443` (a valid
/// `public_url`) matches the `https://kg.example.org` a browser sends.
fn comparable(origin: &str) -> String {
    let o = origin.to_ascii_lowercase();
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        if o.starts_with(scheme) && o.ends_with(port) {
            return o[..o.len() - port.len()].to_owned();
        }
    }
    o
}

/// What `random_id` makes: 22 base64url characters.
fn is_id(text: &str) -> bool {
    text.len() == 22
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_token_works_for_its_user_browser_and_origin_only() {
        let csrf = Csrf::new(Signer::new([3; 32]), None);
        let issued = csrf.issue(&HeaderMap::new(), "alice");
        let cookie = issued.set_cookie.unwrap();
        let pair = cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let uri: Uri = "/.keygate/api/keys".parse().unwrap();
        let good = headers(&[
            ("host", "kg.example.org:8443"),
            ("origin", "https://kg.example.org:8443"),
            ("cookie", &pair),
            (HEADER, &issued.token),
        ]);
        assert!(csrf.check(&good, &uri, "alice").is_ok());
        assert!(matches!(
            csrf.check(&good, &uri, "bob"),
            Err(CsrfError::BadToken)
        ));
        let mut foreign = good.clone();
        foreign.insert("origin", "https://evil.example".parse().unwrap());
        assert!(matches!(
            csrf.check(&foreign, &uri, "alice"),
            Err(CsrfError::BadOrigin)
        ));
        let mut cross = good.clone();
        cross.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(matches!(
            csrf.check(&cross, &uri, "alice"),
            Err(CsrfError::CrossSite)
        ));
        let mut other_browser = good.clone();
        other_browser.insert(
            "cookie",
            format!("{COOKIE}=AAAAAAAAAAAAAAAAAAAAAA").parse().unwrap(),
        );
        assert!(matches!(
            csrf.check(&other_browser, &uri, "alice"),
            Err(CsrfError::BadToken)
        ));
    }

    #[test]
    fn a_default_port_in_public_url_or_host_still_matches_the_browsers_origin() {
        let uri: Uri = "/.keygate/api/keys".parse().unwrap();
        let origin = headers(&[("origin", "https://kg.example.org")]);
        let csrf = Csrf::new(
            Signer::new([3; 32]),
            Some("https://KG.example.org:443".into()),
        );
        assert!(csrf.own_origin("https://kg.example.org", &origin, &uri));
        assert!(!csrf.own_origin("https://kg.example.org:8443", &origin, &uri));
        assert!(!csrf.own_origin("http://kg.example.org", &origin, &uri));
        let csrf = Csrf::new(Signer::new([3; 32]), None);
        let h = headers(&[("host", "kg.example.org:443")]);
        assert!(csrf.own_origin("https://kg.example.org", &h, &uri));
        assert!(!csrf.own_origin("https://kg.example.org.evil", &h, &uri));
        assert!(!csrf.own_origin("null", &h, &uri));
    }
}
