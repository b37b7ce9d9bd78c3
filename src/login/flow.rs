//! A sign-in in progress, bound to the browser that started it: the defence
//! against login CSRF for the methods where keygate runs the sign-in itself
//! (`cas`, `oidc`).
//!
//! `/.keygate/login` draws a random id and sets it in a short-lived signed
//! cookie (`__Host-`, 10 minutes, `SameSite=Lax` so it comes back on the
//! sign-in server's redirect), and sends the id along to the sign-in server
//! (OIDC's `state`, the `flow` parameter of the CAS service URL). The answer
//! is taken only if it carries the id of this browser's cookie: an answer
//! meant for another browser (someone else's code or ticket planted in
//! yours) is refused.

use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};
use subtle::ConstantTimeEq as _;

use crate::keys::unix_now;
use crate::login::signed::{random_id, Signer};

/// How long a person may take at the sign-in server's page.
const FLOW_TTL: Duration = Duration::from_secs(600);

/// One method's flow cookie: its name, the purpose signed into its tag (so
/// one method's cookie is not another's), and how it says an answer carries
/// another id.
pub struct FlowCookie {
    pub name: &'static str,
    purpose: &'static str,
    mismatch: &'static str,
}

pub const OIDC_FLOW: FlowCookie = FlowCookie {
    name: "__Host-keygate-oidc",
    purpose: "oidc-flow",
    mismatch: "the answer's state is not the one this browser was sent with",
};

pub const CAS_FLOW: FlowCookie = FlowCookie {
    name: "__Host-keygate-cas",
    purpose: "cas-flow",
    mismatch: "the answer's flow is not the one this browser was sent with",
};

// === impl FlowCookie ===

impl FlowCookie {
    /// A new flow id, and the `Set-Cookie` that binds it to this browser.
    pub fn begin(&self, signer: &Signer) -> (String, HeaderValue) {
        let id = random_id();
        let exp = (unix_now() + FLOW_TTL.as_secs()).to_string();
        let tag = signer.sign(&[self.purpose.as_bytes(), id.as_bytes(), exp.as_bytes()]);
        let cookie = format!(
            "{}={id}.{exp}.{tag}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
            self.name,
            FLOW_TTL.as_secs()
        );
        let cookie = HeaderValue::try_from(cookie).expect("base64url, digits and ASCII attributes");
        (id, cookie)
    }

    /// The flow id this browser started, if `answered` (the id the answer
    /// carries) is it; else why not, as a sentence's end.
    pub fn resume(
        &self,
        signer: &Signer,
        headers: &HeaderMap,
        answered: Option<&str>,
    ) -> Result<String, &'static str> {
        let value = crate::login::cookie(headers, self.name)
            .ok_or("no sign-in was started in this browser, or its cookie was refused")?;
        let mut parts = value.splitn(3, '.');
        let (id, exp, tag) = match (parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(exp), Some(tag)) => (id, exp, tag),
            _ => return Err("the sign-in cookie is damaged"),
        };
        if !signer.verify(
            &[self.purpose.as_bytes(), id.as_bytes(), exp.as_bytes()],
            tag,
        ) {
            return Err("the sign-in cookie is not keygate's");
        }
        if exp.parse::<u64>().map_or(true, |exp| exp <= unix_now()) {
            return Err("the sign-in took longer than 10 minutes");
        }
        match answered {
            Some(answered) if bool::from(answered.as_bytes().ct_eq(id.as_bytes())) => {
                Ok(id.to_owned())
            }
            _ => Err(self.mismatch),
        }
    }

    /// `Set-Cookie` that ends the flow.
    pub fn clear(&self) -> HeaderValue {
        let cookie = format!(
            "{}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
            self.name
        );
        HeaderValue::try_from(cookie).expect("an ASCII cookie name and attributes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::login::jar;

    #[test]
    fn a_flow_resumes_only_with_its_id_cookie_and_method() {
        let signer = Signer::new([3; 32]);
        let (id, cookie) = CAS_FLOW.begin(&signer);
        let s = cookie.to_str().unwrap();
        assert!(s.starts_with("__Host-keygate-cas="), "{s}");
        for attr in [
            "Path=/",
            "Max-Age=600",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
        ] {
            assert!(s.contains(attr), "{s}");
        }
        assert_eq!(
            CAS_FLOW.resume(&signer, &jar(&cookie), Some(&id)),
            Ok(id.clone())
        );

        // Another browser's id, none, no cookie, another deployment's cookie.
        let (other, _) = CAS_FLOW.begin(&signer);
        assert!(CAS_FLOW
            .resume(&signer, &jar(&cookie), Some(&other))
            .is_err());
        assert!(CAS_FLOW.resume(&signer, &jar(&cookie), None).is_err());
        assert!(CAS_FLOW
            .resume(&signer, &HeaderMap::new(), Some(&id))
            .is_err());
        assert!(CAS_FLOW
            .resume(&Signer::new([4; 32]), &jar(&cookie), Some(&id))
            .is_err());
        // An OIDC flow's cookie, renamed, is no CAS flow.
        let (oidc_id, oidc_cookie) = OIDC_FLOW.begin(&signer);
        let renamed = oidc_cookie
            .to_str()
            .unwrap()
            .replace("__Host-keygate-oidc=", "__Host-keygate-cas=");
        let renamed = HeaderValue::try_from(renamed).unwrap();
        assert!(CAS_FLOW
            .resume(&signer, &jar(&renamed), Some(&oidc_id))
            .is_err());
        assert_eq!(
            CAS_FLOW.clear().to_str().unwrap(),
            "__Host-keygate-cas=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax"
        );
    }
}
