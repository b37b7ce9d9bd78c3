//! keygate's own session, for the methods where keygate runs the sign-in
//! itself (`cas`, `oidc`): a cookie that carries the user, the groups that
//! matter to keygate and an expiry, signed (`signed::Signer`), `Secure;
//! HttpOnly; SameSite=Lax` (Lax: the browser arrives from the sign-in server
//! by a cross-site redirect). Nothing is stored server-side: a copied cookie
//! stays valid until it expires (`login.session_ttl`).
//!
//! A session whose expiry lies beyond today's `login.session_ttl` from now
//! was made under a longer one and is void: lowering `session_ttl` cuts the
//! sessions already handed out, too.
//!
//! The value is `b64(user).b64(groups, one per line).expiry.tag`; the tag
//! also binds the method and who vouched for the user (the CAS server; the
//! OpenID provider, client and claims), so a session one method issued is
//! not another's, and one from before a change of sign-in server is void:
//! `alice` at one server need not be `alice` at the next.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{HeaderMap, HeaderValue};

use super::signed::Signer;
use super::Person;
use crate::keys::unix_now;

/// keygate's session cookie. `__Host-`: Secure, `Path=/`, no `Domain`, so a
/// sibling host cannot plant one.
pub const SESSION_COOKIE: &str = "__Host-keygate-session";

/// How far ahead of this instance's clock another's may be: its sessions'
/// expiry may lie this much beyond `now + session_ttl` here.
const CLOCK_LEEWAY: Duration = Duration::from_secs(300);

pub struct Sessions {
    signer: Arc<Signer>,
    ttl: Duration,
    /// `"cas-session"`, `"oidc-session"`: signed into every tag.
    purpose: &'static str,
    /// Who vouches for the user (see the module's doc): signed into every tag.
    vouched_by: String,
}

// === impl Sessions ===

impl Sessions {
    pub fn new(
        signer: Arc<Signer>,
        ttl: Duration,
        purpose: &'static str,
        vouched_by: String,
    ) -> Sessions {
        Sessions {
            signer,
            ttl,
            purpose,
            vouched_by,
        }
    }

    /// `Set-Cookie` for a new session of `person`.
    pub fn cookie(&self, person: &Person) -> HeaderValue {
        let exp = (unix_now() + self.ttl.as_secs()).to_string();
        let groups = person.groups.join("\n");
        let tag = self.tag(&person.user, &groups, &exp);
        let value = format!(
            "{SESSION_COOKIE}={}.{}.{exp}.{tag}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
            URL_SAFE_NO_PAD.encode(&person.user),
            URL_SAFE_NO_PAD.encode(&groups),
            self.ttl.as_secs()
        );
        HeaderValue::try_from(value).expect("base64url, digits and ASCII attributes")
    }

    /// How long a session lasts (`login.session_ttl`).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn clear() -> HeaderValue {
        HeaderValue::from_static(
            "__Host-keygate-session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
        )
    }

    /// The person of a valid, unexpired session cookie.
    pub fn read(&self, headers: &HeaderMap) -> Option<Person> {
        let value = super::cookie(headers, SESSION_COOKIE)?;
        let mut parts = value.splitn(4, '.');
        let (user, groups, exp, tag) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let user = String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()?;
        let groups = String::from_utf8(URL_SAFE_NO_PAD.decode(groups).ok()?).ok()?;
        if !self.signer.verify(&self.parts(&user, &groups, exp), tag) {
            return None;
        }
        let (exp, now) = (exp.parse::<u64>().ok()?, unix_now());
        // An expiry further off than today's `session_ttl` allows (plus
        // the clock difference of two instances) was signed under a longer
        // one: lowering `session_ttl` is the way to cut sessions short, as
        // none can be revoked, so it holds for those already handed out.
        if exp <= now || exp > now + self.ttl.as_secs() + CLOCK_LEEWAY.as_secs() {
            return None;
        }
        let groups = groups
            .split('\n')
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Person { user, groups })
    }

    fn tag(&self, user: &str, groups: &str, exp: &str) -> String {
        self.signer.sign(&self.parts(user, groups, exp))
    }

    fn parts<'a>(&'a self, user: &'a str, groups: &'a str, exp: &'a str) -> [&'a [u8]; 5] {
        [
            self.purpose.as_bytes(),
            self.vouched_by.as_bytes(),
            user.as_bytes(),
            groups.as_bytes(),
            exp.as_bytes(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::login::jar;

    #[test]
    fn a_session_round_trips_with_its_groups_and_resists_tampering() {
        let signer = Arc::new(Signer::new([7; 32]));
        let issuer = "https://idp.example.org".to_owned();
        let oidc = Sessions::new(
            signer.clone(),
            Duration::from_secs(60),
            "oidc-session",
            issuer.clone(),
        );
        let alice = Person {
            user: "alice@example.org".into(),
            groups: vec!["keygate-admins".into(), "staff".into()],
        };
        let set = oidc.cookie(&alice);
        let s = set.to_str().unwrap();
        for attr in ["Path=/", "Max-Age=60", "Secure", "HttpOnly", "SameSite=Lax"] {
            assert!(s.contains(attr), "{s}");
        }
        assert_eq!(oidc.read(&jar(&set)), Some(alice.clone()));

        // Another user, or one more group, under the same tag: no session.
        let pair = s.split(';').next().unwrap();
        let forged_user = pair.replace(
            &URL_SAFE_NO_PAD.encode(&alice.user),
            &URL_SAFE_NO_PAD.encode("admin@example.org"),
        );
        let forged_groups = pair.replace(
            &URL_SAFE_NO_PAD.encode("keygate-admins\nstaff"),
            &URL_SAFE_NO_PAD.encode("keygate-admins\nstaff\nroot"),
        );
        for forged in [forged_user, forged_groups] {
            let mut h = HeaderMap::new();
            h.insert(http::header::COOKIE, forged.parse().unwrap());
            assert_eq!(oidc.read(&h), None, "{forged}");
        }
        // A CAS session is not an OIDC one, though the key is the same,
        // nor is a session from another provider.
        let cas = Sessions::new(
            signer.clone(),
            Duration::from_secs(60),
            "cas-session",
            issuer,
        );
        assert_eq!(cas.read(&jar(&set)), None);
        let elsewhere = Sessions::new(
            signer,
            Duration::from_secs(60),
            "oidc-session",
            "https://other-idp.example.org".into(),
        );
        assert_eq!(elsewhere.read(&jar(&set)), None, "another provider's alice");
        let bob = Person {
            user: "bob".into(),
            groups: vec![],
        };
        assert_eq!(cas.read(&jar(&cas.cookie(&bob))), Some(bob));
    }

    /// Sessions signed under a longer `session_ttl` than today's are void;
    /// another instance's clock a little ahead is no reason to refuse one.
    #[test]
    fn a_session_longer_than_todays_ttl_is_none() {
        let signer = Arc::new(Signer::new([1; 32]));
        let sessions = |ttl: u64| {
            Sessions::new(
                signer.clone(),
                Duration::from_secs(ttl),
                "cas-session",
                "https://cas.example.org/cas".into(),
            )
        };
        let alice = Person {
            user: "alice".into(),
            groups: vec![],
        };
        let week = sessions(7 * 86_400).cookie(&alice);
        assert_eq!(sessions(7 * 86_400).read(&jar(&week)), Some(alice.clone()));
        assert_eq!(sessions(3600).read(&jar(&week)), None);
        let ahead = sessions(3600 + 240).cookie(&alice);
        assert_eq!(sessions(3600).read(&jar(&ahead)), Some(alice));
    }

    #[test]
    fn an_expired_session_is_none() {
        let s = Sessions::new(
            Arc::new(Signer::new([1; 32])),
            Duration::from_secs(0),
            "cas-session",
            "https://cas.example.org/cas".into(),
        );
        let person = Person {
            user: "alice".into(),
            groups: vec![],
        };
        assert_eq!(s.read(&jar(&s.cookie(&person))), None);
    }
}
