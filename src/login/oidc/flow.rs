//! One sign-in in progress, bound to the browser that started it.
//!
//! `/.keygate/login` draws a random flow id and sets it in a short-lived
//! signed cookie (`__Host-keygate-oidc`, 10 minutes, `SameSite=Lax` so it
//! comes back on the provider's redirect). Everything else is derived from
//! the id under keygate's secret, so the cookie holds nothing worth stealing:
//!
//! * `state` is the id itself: the callback's `state` must equal the
//!   cookie's, so an answer meant for another browser (login CSRF: someone
//!   else's code planted in yours) is refused;
//! * `nonce` = HMAC("oidc-nonce", id): the ID token must carry it;
//! * the PKCE `code_verifier` = HMAC("oidc-pkce", id), sent only to the
//!   token endpoint; the authorization request carries its S256 challenge.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use super::OidcError;
use crate::keys::unix_now;
use crate::login::signed::{random_id, Signer};

pub const FLOW_COOKIE: &str = "__Host-keygate-oidc";
/// How long a person may take at the provider's sign-in page.
const FLOW_TTL: Duration = Duration::from_secs(600);

pub struct Flow {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

// === impl Flow ===

impl Flow {
    /// A new sign-in, and the `Set-Cookie` that binds it to this browser.
    pub fn begin(signer: &Signer) -> (Flow, HeaderValue) {
        let id = random_id();
        let exp = (unix_now() + FLOW_TTL.as_secs()).to_string();
        let tag = signer.sign(&[b"oidc-flow", id.as_bytes(), exp.as_bytes()]);
        let cookie = format!(
            "{FLOW_COOKIE}={id}.{exp}.{tag}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
            FLOW_TTL.as_secs()
        );
        let cookie = HeaderValue::try_from(cookie).expect("base64url, digits and ASCII attributes");
        (Flow::derive(signer, id), cookie)
    }

    /// The sign-in this browser started, if `state` is its.
    pub fn resume(
        signer: &Signer,
        headers: &HeaderMap,
        state: Option<&str>,
    ) -> Result<Flow, OidcError> {
        let value = crate::login::cookie(headers, FLOW_COOKIE).ok_or(OidcError::Flow(
            "no sign-in was started in this browser, or its cookie was refused",
        ))?;
        let mut parts = value.splitn(3, '.');
        let (id, exp, tag) = match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(exp), Some(tag)) => (id, exp, tag),
            _ => return Err(OidcError::Flow("the sign-in cookie is damaged")),
        };
        if !signer.verify(&[b"oidc-flow", id.as_bytes(), exp.as_bytes()], tag) {
            return Err(OidcError::Flow("the sign-in cookie is not keygate's"));
        }
        if exp.parse::<u64>().map_or(true, |exp| exp <= unix_now()) {
            return Err(OidcError::Flow("the sign-in took longer than 10 minutes"));
        }
        match state {
            Some(state) if constant_time_eq(state.as_bytes(), id.as_bytes()) => {
                Ok(Flow::derive(signer, id.to_owned()))
            }
            _ => Err(OidcError::Flow(
                "the answer's state is not the one this browser was sent with",
            )),
        }
    }

    pub fn clear() -> HeaderValue {
        HeaderValue::from_static(
            "__Host-keygate-oidc=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
        )
    }

    /// `BASE64URL(SHA256(code_verifier))` (RFC 7636 S256).
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }

    fn derive(signer: &Signer, id: String) -> Flow {
        Flow {
            nonce: signer.sign(&[b"oidc-nonce", id.as_bytes()]),
            // 43 base64url characters: RFC 7636's shortest verifier, 256 bits.
            verifier: signer.sign(&[b"oidc-pkce", id.as_bytes()]),
            state: id,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::login::jar;

    #[test]
    fn the_flow_resumes_only_with_its_state_and_cookie() {
        let signer = Signer::new([3; 32]);
        let (flow, cookie) = Flow::begin(&signer);
        assert_eq!(flow.verifier.len(), 43);
        assert_ne!(flow.nonce, flow.verifier);
        let back = Flow::resume(&signer, &jar(&cookie), Some(&flow.state)).unwrap();
        assert_eq!(
            (back.nonce, back.verifier),
            (flow.nonce, flow.verifier.clone())
        );

        // Another browser's state, no cookie, another deployment's cookie.
        let (other, _) = Flow::begin(&signer);
        assert!(Flow::resume(&signer, &jar(&cookie), Some(&other.state)).is_err());
        assert!(Flow::resume(&signer, &jar(&cookie), None).is_err());
        assert!(Flow::resume(&signer, &HeaderMap::new(), Some(&flow.state)).is_err());
        assert!(Flow::resume(&Signer::new([4; 32]), &jar(&cookie), Some(&flow.state)).is_err());
        // RFC 7636 appendix B's example.
        let rfc = Flow {
            state: String::new(),
            nonce: String::new(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
        };
        assert_eq!(
            rfc.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
