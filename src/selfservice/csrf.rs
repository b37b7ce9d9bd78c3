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
//!
//! A foreign `Origin` on a request that carries the page's token header is
//! told apart from an attack: a browser sends a custom header cross-origin
//! only after a CORS preflight, which keygate never approves, so such a
//! request came from keygate's own page, served on an address keygate does
//! not know as its own (an SSO proxy in front without `login.public_url`).
//! It is refused all the same; only the message and the log line differ.

use http::header::{self, HeaderMap, HeaderValue};
use http::Uri;

use crate::login::signed::{random_id, Signer};

pub const COOKIE: &str = "__Host-keygate-csrf";
pub const HEADER: &str = "x-csrf-token";

/// Why a write was refused (403); the reason goes to the log, and only
/// `OriginMismatch` is explained to the person.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CsrfError {
    #[error("no CSRF cookie")]
    NoCookie,
    #[error("missing or wrong X-CSRF-Token")]
    BadToken,
    #[error("Origin {came:?} is not this gateway's origin {expected:?}")]
    BadOrigin {
        /// `None`: neither `login.public_url` nor a `Host` to compare with.
        expected: Option<String>,
        /// `None`: the request had no (readable) `Origin`.
        came: Option<String>,
    },
    /// The page's own script on another origin: a configuration problem.
    #[error("the page was served on {came:?} but the gateway's origin is {expected:?}: set login.public_url to the address browsers use")]
    OriginMismatch {
        expected: Option<String>,
        came: String,
    },
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
        let expected = self.expected_origin(headers, uri);
        let came = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        match (came, &expected) {
            (Some(came), Some(ours)) if comparable(came) == comparable(ours) => {}
            (Some(came), _) if headers.contains_key(HEADER) => {
                return Err(CsrfError::OriginMismatch {
                    expected,
                    came: came.to_owned(),
                })
            }
            (came, _) => {
                return Err(CsrfError::BadOrigin {
                    expected,
                    came: came.map(str::to_owned),
                })
            }
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

    /// `login.public_url`, else `https://` + the request's host.
    fn expected_origin(&self, headers: &HeaderMap, uri: &Uri) -> Option<String> {
        if let Some(ours) = &self.origin {
            return Some(ours.clone());
        }
        // HTTP/2 carries the host in :authority, HTTP/1.1 in Host.
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()));
        host.map(|host| format!("https://{host}"))
    }

    #[cfg(test)]
    fn own_origin(&self, origin: &str, headers: &HeaderMap, uri: &Uri) -> bool {
        self.expected_origin(headers, uri)
            .is_some_and(|ours| comparable(origin) == comparable(&ours))
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
        foreign.remove(HEADER);
        foreign.insert("origin", "https://evil.example".parse().unwrap());
        assert!(matches!(
            csrf.check(&foreign, &uri, "alice"),
            Err(CsrfError::BadOrigin { came: Some(o), expected: Some(e) })
                if o == "https://evil.example" && e == "https://kg.example.org:8443"
        ));
        let mut no_origin = good.clone();
        no_origin.remove("origin");
        assert!(matches!(
            csrf.check(&no_origin, &uri, "alice"),
            Err(CsrfError::BadOrigin { came: None, .. })
        ));
        // The page's own script on an address keygate does not know as its own.
        let mut proxied = good.clone();
        proxied.insert("origin", "http://sso.example:8080".parse().unwrap());
        assert!(matches!(
            csrf.check(&proxied, &uri, "alice"),
            Err(CsrfError::OriginMismatch { came, expected: Some(e) })
                if came == "http://sso.example:8080" && e == "https://kg.example.org:8443"
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
