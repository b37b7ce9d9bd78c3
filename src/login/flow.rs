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
//! yours) is refused. The cookie holds the few sign-ins the browser's tabs
//! have under way (`FLOWS_AT_ONCE`), each signed alone.
//!
//! Each flow also says which of keygate's own pages the sign-in returns to
//! (`Return`): a word signed with it, never a URL, so no open redirect.

use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};
use subtle::ConstantTimeEq as _;

use crate::keys::unix_now;
use crate::login::signed::{random_id, Signer};

/// How long a person may take at the sign-in server's page.
const FLOW_TTL: Duration = Duration::from_secs(600);
/// Sign-ins one browser may have under way at once (a tab each: a
/// restored session, a second link); a newer one drops the oldest.
const FLOWS_AT_ONCE: usize = 4;
/// Between two flows in the cookie (a cookie-octet no flow holds).
const SEPARATOR: char = '~';

/// Where a finished sign-in sends the browser: back to the keygate page it
/// asked for, one of a fixed few (never a URL from the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    /// `/.keygate/keys`, the page for everyone.
    Keys,
    /// `/.keygate/admin`, the admin console.
    Admin,
}

// === impl Return ===

impl Return {
    /// The page a signed-out request for `path` was after.
    pub fn of_path(path: &str) -> Return {
        match path {
            "/.keygate/admin" => Return::Admin,
            _ => Return::Keys,
        }
    }

    /// The `to` parameter of `/.keygate/login` (`to=admin`); any other is the keys page.
    pub fn of_query(query: &str) -> Return {
        match crate::login::query_param(query, "to").as_str() {
            "admin" => Return::Admin,
            _ => Return::Keys,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Return::Keys => "/.keygate/keys",
            Return::Admin => "/.keygate/admin",
        }
    }

    /// Where a signed-out browser starts its sign-in to come back here.
    pub fn login_path(self) -> &'static str {
        match self {
            Return::Keys => "/.keygate/login",
            Return::Admin => "/.keygate/login?to=admin",
        }
    }

    /// Its word in a flow entry: none for the keys page (an entry as
    /// keygate wrote them before there was a choice).
    fn word(self) -> Option<&'static str> {
        match self {
            Return::Keys => None,
            Return::Admin => Some("admin"),
        }
    }

    fn of_word(word: Option<&str>) -> Option<Return> {
        match word {
            None => Some(Return::Keys),
            Some("admin") => Some(Return::Admin),
            Some(_) => None,
        }
    }
}

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

/// One flow as the cookie holds it: `id.exp.tag`, or `id.exp.word.tag`
/// for a sign-in that returns elsewhere than the keys page.
struct Held<'h> {
    id: &'h str,
    exp: &'h str,
    to: Return,
    tag: &'h str,
    raw: &'h str,
}

// === impl FlowCookie ===

impl FlowCookie {
    /// A new flow id, and the `Set-Cookie` that binds it to this browser,
    /// beside the flows its other tabs have under way (`headers`); the
    /// sign-in returns to `to`.
    pub fn begin(&self, signer: &Signer, headers: &HeaderMap, to: Return) -> (String, HeaderValue) {
        let id = random_id();
        let exp = (unix_now() + FLOW_TTL.as_secs()).to_string();
        let tag = signer.sign(&self.signed(&id, &exp, to));
        let entry = match to.word() {
            None => format!("{id}.{exp}.{tag}"),
            Some(word) => format!("{id}.{exp}.{word}.{tag}"),
        };
        let mut flows = vec![entry];
        flows.extend(
            self.live(signer, headers)
                .take(FLOWS_AT_ONCE - 1)
                .map(|f| f.raw.to_owned()),
        );
        (id, self.set(&flows))
    }

    /// The flow id this browser started, if `answered` (the id the answer
    /// carries) is one of them, and where it returns; else why not, as a
    /// sentence's end.
    pub fn resume(
        &self,
        signer: &Signer,
        headers: &HeaderMap,
        answered: Option<&str>,
    ) -> Result<(String, Return), &'static str> {
        let value = crate::login::cookie(headers, self.name)
            .ok_or("no sign-in was started in this browser, or its cookie was refused")?;
        // Never more than a cookie of ours holds: a made-up cookie of
        // thousands of entries is not walked.
        let held: Vec<Held<'_>> = value
            .split(SEPARATOR)
            .take(FLOWS_AT_ONCE)
            .filter_map(parse)
            .collect();
        if held.is_empty() {
            return Err("the sign-in cookie is damaged");
        }
        let answered = answered.ok_or(self.mismatch)?;
        // Every flow is compared, so the time taken says nothing of which matched.
        let mut found = None;
        for f in &held {
            if bool::from(answered.as_bytes().ct_eq(f.id.as_bytes())) {
                found = Some(f);
            }
        }
        let f = found.ok_or(self.mismatch)?;
        if !self.genuine(signer, f) {
            return Err("the sign-in cookie is not keygate's");
        }
        if !unexpired(f) {
            return Err("the sign-in took longer than 10 minutes");
        }
        Ok((f.id.to_owned(), f.to))
    }

    /// `Set-Cookie` once flow `id` has ended: the browser's other flows
    /// stay, for its other tabs.
    pub fn end(&self, signer: &Signer, headers: &HeaderMap, id: &str) -> HeaderValue {
        let rest: Vec<String> = self
            .live(signer, headers)
            .filter(|f| f.id != id)
            .map(|f| f.raw.to_owned())
            .collect();
        if rest.is_empty() {
            return self.clear();
        }
        self.set(&rest)
    }

    /// `Set-Cookie` that ends every flow of this browser.
    pub fn clear(&self) -> HeaderValue {
        let cookie = format!(
            "{}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
            self.name
        );
        HeaderValue::try_from(cookie).expect("an ASCII cookie name and attributes")
    }

    /// This browser's flows that are keygate's and not yet expired, newest first.
    fn live<'h>(
        &'h self,
        signer: &'h Signer,
        headers: &'h HeaderMap,
    ) -> impl Iterator<Item = Held<'h>> + 'h {
        crate::login::cookie(headers, self.name)
            .unwrap_or("")
            .split(SEPARATOR)
            // Never more than a cookie of ours holds: each entry costs an HMAC.
            .take(FLOWS_AT_ONCE)
            .filter_map(parse)
            .filter(move |f| self.genuine(signer, f) && unexpired(f))
    }

    fn genuine(&self, signer: &Signer, f: &Held<'_>) -> bool {
        signer.verify(&self.signed(f.id, f.exp, f.to), f.tag)
    }

    /// What a flow's tag covers: the return's word only when it has one,
    /// so the entries of the keys page are signed as they always were.
    fn signed<'a>(&'a self, id: &'a str, exp: &'a str, to: Return) -> Vec<&'a [u8]> {
        let mut parts = vec![self.purpose.as_bytes(), id.as_bytes(), exp.as_bytes()];
        parts.extend(to.word().map(str::as_bytes));
        parts
    }

    fn set(&self, flows: &[String]) -> HeaderValue {
        let cookie = format!(
            "{}={}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
            self.name,
            flows.join(&SEPARATOR.to_string()),
            FLOW_TTL.as_secs()
        );
        HeaderValue::try_from(cookie).expect("base64url, digits and ASCII attributes")
    }
}

fn parse(raw: &str) -> Option<Held<'_>> {
    let mut parts = raw.split('.');
    let (id, exp) = (parts.next()?, parts.next()?);
    let (word, tag) = match (parts.next()?, parts.next(), parts.next()) {
        (tag, None, _) => (None, tag),
        (word, Some(tag), None) => (Some(word), tag),
        _ => return None,
    };
    let to = Return::of_word(word)?;
    (!id.is_empty()).then_some(Held {
        id,
        exp,
        to,
        tag,
        raw,
    })
}

fn unexpired(f: &Held<'_>) -> bool {
    f.exp.parse::<u64>().is_ok_and(|exp| exp > unix_now())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::login::jar;

    #[test]
    fn a_flow_resumes_only_with_its_id_cookie_and_method() {
        let signer = Signer::new([3; 32]);
        let (id, cookie) = CAS_FLOW.begin(&signer, &HeaderMap::new(), Return::Keys);
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
            Ok((id.clone(), Return::Keys))
        );

        // Another browser's id, none, no cookie, another deployment's cookie.
        let (other, _) = CAS_FLOW.begin(&signer, &HeaderMap::new(), Return::Keys);
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
        let (oidc_id, oidc_cookie) = OIDC_FLOW.begin(&signer, &HeaderMap::new(), Return::Keys);
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

    /// A sign-in started for the console returns there; its word is signed
    /// with it (taken off, or put on a keys page's entry, it is no flow).
    #[test]
    fn a_flow_returns_to_the_page_it_was_started_for() {
        let signer = Signer::new([3; 32]);
        let (id, cookie) = OIDC_FLOW.begin(&signer, &HeaderMap::new(), Return::Admin);
        assert_eq!(
            OIDC_FLOW.resume(&signer, &jar(&cookie), Some(&id)),
            Ok((id.clone(), Return::Admin))
        );
        let s = cookie.to_str().unwrap();
        let stripped = HeaderValue::try_from(s.replace(".admin.", ".")).unwrap();
        assert_eq!(
            OIDC_FLOW.resume(&signer, &jar(&stripped), Some(&id)),
            Err("the sign-in cookie is not keygate's")
        );
        let (keys_id, keys) = OIDC_FLOW.begin(&signer, &HeaderMap::new(), Return::Keys);
        let pair = keys.to_str().unwrap().split(';').next().unwrap().to_owned();
        let (name, entry) = pair.split_once('=').unwrap();
        let (front, tag) = entry.rsplit_once('.').unwrap();
        let added = HeaderValue::try_from(format!("{name}={front}.admin.{tag}")).unwrap();
        assert!(OIDC_FLOW
            .resume(&signer, &jar(&added), Some(&keys_id))
            .is_err());
        // Only keygate's own pages, whatever a link asks for.
        assert_eq!(Return::of_query("to=admin"), Return::Admin);
        for query in [
            "",
            "to=keys",
            "to=https://evil.example",
            "to=//evil.example",
            "to=ADMIN",
        ] {
            assert_eq!(Return::of_query(query), Return::Keys, "{query}");
        }
        assert_eq!(Return::of_path("/.keygate/admin"), Return::Admin);
        assert_eq!(Return::of_path("/.keygate/api/admin/keys"), Return::Keys);
    }

    /// Each tab's sign-in resumes; ending one keeps the others; a fifth
    /// drops the oldest; an entry not keygate's, or expired, is not kept.
    #[test]
    fn the_flows_of_several_tabs_each_resume_and_end_alone() {
        let signer = Signer::new([3; 32]);
        let (first, cookie) = CAS_FLOW.begin(&signer, &HeaderMap::new(), Return::Keys);
        let (second, cookie) = CAS_FLOW.begin(&signer, &jar(&cookie), Return::Keys);
        for id in [&first, &second] {
            assert_eq!(
                CAS_FLOW.resume(&signer, &jar(&cookie), Some(id)),
                Ok((id.clone(), Return::Keys))
            );
        }
        let rest = CAS_FLOW.end(&signer, &jar(&cookie), &first);
        assert!(CAS_FLOW.resume(&signer, &jar(&rest), Some(&first)).is_err());
        assert_eq!(
            CAS_FLOW.resume(&signer, &jar(&rest), Some(&second)),
            Ok((second.clone(), Return::Keys))
        );
        let none = CAS_FLOW.end(&signer, &jar(&rest), &second);
        assert!(none.to_str().unwrap().contains("Max-Age=0"));

        let mut cookie = cookie;
        let mut ids = vec![first, second];
        for _ in 0..3 {
            let (id, next) = CAS_FLOW.begin(&signer, &jar(&cookie), Return::Keys);
            ids.push(id);
            cookie = next;
        }
        assert!(CAS_FLOW
            .resume(&signer, &jar(&cookie), Some(&ids[0]))
            .is_err());
        for id in &ids[1..] {
            assert!(CAS_FLOW.resume(&signer, &jar(&cookie), Some(id)).is_ok());
        }

        // A forged entry (a tag of another key) and an expired one are dropped.
        let other = Signer::new([4; 32]);
        let past = (unix_now() - 1).to_string();
        let forged = format!(
            "AAAAAAAAAAAAAAAAAAAAAA.{past}.{}",
            other.sign(&[b"cas-flow", b"AAAAAAAAAAAAAAAAAAAAAA", past.as_bytes()])
        );
        let expired = format!(
            "BBBBBBBBBBBBBBBBBBBBBB.{past}.{}",
            signer.sign(&[b"cas-flow", b"BBBBBBBBBBBBBBBBBBBBBB", past.as_bytes()])
        );
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            format!("__Host-keygate-cas={forged}~{expired}")
                .parse()
                .unwrap(),
        );
        assert_eq!(
            CAS_FLOW.resume(&signer, &h, Some("BBBBBBBBBBBBBBBBBBBBBB")),
            Err("the sign-in took longer than 10 minutes")
        );
        assert_eq!(
            CAS_FLOW.resume(&signer, &h, Some("AAAAAAAAAAAAAAAAAAAAAA")),
            Err("the sign-in cookie is not keygate's")
        );
        let (_, fresh) = CAS_FLOW.begin(&signer, &h, Return::Keys);
        assert_eq!(fresh.to_str().unwrap().matches('~').count(), 0, "{fresh:?}");

        // Only the first FLOWS_AT_ONCE entries are read: a flow padded
        // behind thousands of made-up ones (each an HMAC to check) is not.
        let (id, cookie) = CAS_FLOW.begin(&signer, &HeaderMap::new(), Return::Keys);
        let ours = cookie.to_str().unwrap().split(';').next().unwrap();
        let (name, entry) = ours.split_once('=').unwrap();
        let padded = format!("{name}={}~{entry}", vec!["x.1.y"; 2000].join("~"));
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, padded.parse().unwrap());
        assert!(CAS_FLOW.resume(&signer, &h, Some(&id)).is_err());
        let (_, kept) = CAS_FLOW.begin(&signer, &h, Return::Keys);
        assert_eq!(kept.to_str().unwrap().matches('~').count(), 0, "{kept:?}");
    }
}
