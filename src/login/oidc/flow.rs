//! One OpenID Connect sign-in in progress, bound to the browser that
//! started it by the flow cookie (`login::flow`, `__Host-keygate-oidc`).
//! Everything else is derived from the flow id under keygate's secret, so
//! the cookie holds nothing worth stealing:
//!
//! * `state` is the id itself: the callback's `state` must equal the
//!   cookie's, so an answer meant for another browser (login CSRF: someone
//!   else's code planted in yours) is refused;
//! * `nonce` = HMAC("oidc-nonce", id): the ID token must carry it;
//! * the PKCE `code_verifier` = HMAC("oidc-pkce", id), sent only to the
//!   token endpoint; the authorization request carries its S256 challenge.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use super::OidcError;
use crate::login::flow::{Return, OIDC_FLOW};
use crate::login::signed::Signer;

pub struct Flow {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// The page the sign-in returns to.
    pub to: Return,
}

// === impl Flow ===

impl Flow {
    /// A new sign-in that returns to `to`, and the `Set-Cookie` that binds
    /// it to this browser (beside the sign-ins of its other tabs, in `headers`).
    pub fn begin(signer: &Signer, headers: &HeaderMap, to: Return) -> (Flow, HeaderValue) {
        let (id, cookie) = OIDC_FLOW.begin(signer, headers, to);
        (Flow::derive(signer, id, to), cookie)
    }

    /// The sign-in this browser started, if `state` is its.
    pub fn resume(
        signer: &Signer,
        headers: &HeaderMap,
        state: Option<&str>,
    ) -> Result<Flow, OidcError> {
        let (id, to) = OIDC_FLOW
            .resume(signer, headers, state)
            .map_err(OidcError::Flow)?;
        Ok(Flow::derive(signer, id, to))
    }

    /// `Set-Cookie` once this sign-in has ended: the browser's others stay.
    pub fn end(&self, signer: &Signer, headers: &HeaderMap) -> HeaderValue {
        Flow::end_named(signer, headers, &self.state)
    }

    /// `Set-Cookie` once the sign-in of `state` has ended, if it is this
    /// browser's: the others stay.
    pub fn end_named(signer: &Signer, headers: &HeaderMap, state: &str) -> HeaderValue {
        OIDC_FLOW.end(signer, headers, state)
    }

    /// `BASE64URL(SHA256(code_verifier))` (RFC 7636 S256).
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }

    fn derive(signer: &Signer, id: String, to: Return) -> Flow {
        Flow {
            to,
            nonce: signer.sign(&[b"oidc-nonce", id.as_bytes()]),
            // 43 base64url characters: RFC 7636's shortest verifier, 256 bits.
            verifier: signer.sign(&[b"oidc-pkce", id.as_bytes()]),
            state: id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::login::jar;

    #[test]
    fn the_flow_resumes_only_with_its_state_and_cookie() {
        let signer = Signer::new([3; 32]);
        let (flow, cookie) = Flow::begin(&signer, &HeaderMap::new(), Return::Keys);
        assert_eq!(flow.verifier.len(), 43);
        assert_ne!(flow.nonce, flow.verifier);
        let back = Flow::resume(&signer, &jar(&cookie), Some(&flow.state)).unwrap();
        assert_eq!(
            (back.nonce, back.verifier),
            (flow.nonce, flow.verifier.clone())
        );

        // Another browser's state, no cookie, another deployment's cookie.
        let (other, _) = Flow::begin(&signer, &HeaderMap::new(), Return::Keys);
        assert!(Flow::resume(&signer, &jar(&cookie), Some(&other.state)).is_err());
        assert!(Flow::resume(&signer, &jar(&cookie), None).is_err());
        assert!(Flow::resume(&signer, &HeaderMap::new(), Some(&flow.state)).is_err());
        assert!(Flow::resume(&Signer::new([4; 32]), &jar(&cookie), Some(&flow.state)).is_err());
        // RFC 7636 appendix B's example.
        let rfc = Flow {
            state: String::new(),
            nonce: String::new(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            to: Return::Keys,
        };
        assert_eq!(
            rfc.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
