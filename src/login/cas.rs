//! `method = "cas"`: keygate is itself a CAS 3.0 client.
//!
//! 1. A browser without a session is sent to `{cas_url}/login?service=S`,
//!    where `S` is `{public_url}/.keygate/login?flow=F` and `F` the id of a
//!    new flow cookie (`login::flow`, `__Host-keygate-cas`, 10 minutes).
//!    CAS has no `state`: the flow in the service URL is what binds the
//!    ticket to the browser that started the sign-in (login CSRF).
//! 2. The CAS server sends the browser to `S&ticket=ST-…`. keygate takes it
//!    only if its `flow` is this browser's cookie's (else 403, and the CAS
//!    server is not asked), then asks
//!    `{cas_url}/p3/serviceValidate?service=S&ticket=…` with `S` rebuilt
//!    from the cookie, exactly the string it sent (CAS servers rewrite query
//!    strings on the way back). A failure is still HTTP 200, so the XML
//!    decides: `cas:authenticationSuccess/cas:user`, or
//!    `cas:authenticationFailure code="…"` (a replayed ticket, one issued for
//!    another service) which keygate shows as a refusal, never a 500.
//! 3. keygate sets its own session cookie (`session::Sessions`) and clears
//!    the flow's.
//! 4. `/.keygate/logout` clears the cookie and sends the browser to
//!    `{cas_url}/logout`. Logout is a GET, as CAS clients do: another site
//!    can sign a user out, nothing more.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue};
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

use super::fetch::{Fetch, FetchError};
use super::flow::{Return, CAS_FLOW};
use super::session::Sessions;
use super::signed::Signer;
use super::Person;

/// The CAS 2.0/3.0 XML namespace.
const CAS_NS: &[u8] = b"http://www.yale.edu/tp/cas";
/// CAS 3.0 §3.7: a ticket is at most 256 characters.
const MAX_TICKET: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum CasError {
    /// The callback is not for a sign-in this browser started (login
    /// CSRF: another browser's ticket), or too late.
    #[error("{0}")]
    Flow(&'static str),
    /// The CAS server said no (e.g. INVALID_TICKET for a replayed ticket,
    /// INVALID_SERVICE for one issued to another service).
    #[error("the CAS server refused the ticket ({code})")]
    Refused { code: String },
    /// The CAS server signed in a name no key can carry (`keys::user`):
    /// the same answer every time, so a refusal, not an outage.
    #[error("the CAS server's user name (cas:user) for this account {why}")]
    NotAUser { user: String, why: &'static str },
    #[error(transparent)]
    Unavailable(#[from] FetchError),
    #[error("the CAS server's answer cannot be read: {0}")]
    Unreadable(String),
}

pub struct Cas {
    cas_url: String,
    /// `{public_url}/.keygate/login`: with a flow's `?flow=F`, the service
    /// URL sent to `/login` and to `/p3/serviceValidate` alike.
    callback: String,
    fetch: Fetch,
    /// Signs the flow cookie.
    signer: Arc<Signer>,
    sessions: Sessions,
}

// === impl Cas ===

impl Cas {
    /// `sessions` signs with the purpose `"cas-session"`, `signer` the flow cookie.
    pub fn new(
        cas_url: String,
        public_url: &str,
        fetch: Fetch,
        signer: Arc<Signer>,
        sessions: Sessions,
    ) -> Cas {
        Cas {
            cas_url,
            callback: format!("{public_url}/.keygate/login"),
            fetch,
            signer,
            sessions,
        }
    }

    /// Where a browser without a session goes, and the cookie of its flow
    /// (beside those of its other tabs, in `headers`), which returns to `to`.
    pub fn start(&self, headers: &HeaderMap, to: Return) -> (String, HeaderValue) {
        let (flow, cookie) = CAS_FLOW.begin(&self.signer, headers, to);
        let location = format!(
            "{}/login?service={}",
            self.cas_url,
            encode(&self.service(&flow))
        );
        (location, cookie)
    }

    /// The CAS server's callback (its query string, with a `ticket`), with
    /// this browser's `headers`: who signed in, the `Set-Cookie` that ends
    /// this flow (the browser's others stay) and the page it returns to.
    /// The CAS server is asked only when the callback's `flow` is this browser's.
    pub async fn finish(
        &self,
        query: &str,
        headers: &HeaderMap,
    ) -> Result<(String, HeaderValue, Return), CasError> {
        let (mut flow, mut ticket) = (None, None);
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "flow" => &mut flow,
                "ticket" => &mut ticket,
                _ => continue,
            };
            if slot.replace(v).is_some() {
                return Err(CasError::Flow("the answer repeats a parameter"));
            }
        }
        let (flow, to) = CAS_FLOW
            .resume(&self.signer, headers, flow.as_deref())
            .map_err(CasError::Flow)?;
        let ticket = ticket.ok_or(CasError::Refused {
            code: "INVALID_REQUEST".into(),
        })?;
        let user = self.validate(&ticket, &self.service(&flow)).await?;
        Ok((user, CAS_FLOW.end(&self.signer, headers, &flow), to))
    }

    /// `Set-Cookie` that ends the flow a callback (`query`) names, and no
    /// other of this browser's (its other tabs').
    pub fn end_flow(&self, query: &str, headers: &HeaderMap) -> HeaderValue {
        CAS_FLOW.end(&self.signer, headers, &super::query_param(query, "flow"))
    }

    /// The service URL of flow `flow`: the same string at `/login` and at validation.
    fn service(&self, flow: &str) -> String {
        format!("{}?flow={}", self.callback, encode(flow))
    }

    pub fn logout_redirect(&self) -> String {
        format!("{}/logout", self.cas_url)
    }

    /// Ask the CAS server who `ticket`, issued for `service`, was issued to.
    async fn validate(&self, ticket: &str, service: &str) -> Result<String, CasError> {
        if ticket.is_empty()
            || ticket.len() > MAX_TICKET
            || !ticket.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(CasError::Refused {
                code: "INVALID_REQUEST".into(),
            });
        }
        let url = format!(
            "{}/p3/serviceValidate?service={}&ticket={}",
            self.cas_url,
            encode(service),
            encode(ticket)
        );
        let url = url
            .parse()
            .map_err(|_| CasError::Unreadable("the validation URL is invalid".into()))?;
        let (status, body) = self.fetch.get(&url, HeaderMap::new()).await?;
        if !status.is_success() {
            return Err(CasError::Unreadable(format!("HTTP status {status}")));
        }
        let text =
            std::str::from_utf8(&body).map_err(|_| CasError::Unreadable("not UTF-8".into()))?;
        let user = parse_validation(text)?;
        // UTF-8 as the server sends it, if it is a user name keys can carry.
        crate::keys::user::check(&user).map_err(|why| CasError::NotAUser {
            user: user.clone(),
            why,
        })?;
        Ok(user)
    }

    /// `Set-Cookie` for a new session of `user`.
    pub fn session_cookie(&self, user: &str) -> HeaderValue {
        self.sessions.cookie(&Person {
            user: user.to_owned(),
            groups: Vec::new(),
        })
    }

    /// The person of a valid, unexpired session cookie.
    pub fn who(&self, headers: &HeaderMap) -> Option<Person> {
        self.sessions.read(headers)
    }
}

/// Query-string encoding (application/x-www-form-urlencoded, as CAS servers decode it).
fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The user of a `cas:serviceResponse`, or the failure code it carries.
///
/// The user is the text of the `cas:user` that is a direct child of
/// `cas:authenticationSuccess`; a `cas:user` deeper down (a released
/// attribute called "user") or an empty `<cas:user/>` is never it.
fn parse_validation(xml: &str) -> Result<String, CasError> {
    let mut reader = NsReader::from_str(xml);
    // Element depth, and the depth of `cas:authenticationSuccess` once seen.
    let mut depth = 0usize;
    let mut success: Option<usize> = None;
    let mut in_user = false;
    let mut user = String::new();
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| CasError::Unreadable(e.to_string()))?;
        let cas = matches!(ns, ResolveResult::Bound(Namespace(n)) if n == CAS_NS);
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) if cas => {
                // The depth of this element.
                let here = depth + 1;
                if !empty {
                    depth = here;
                }
                match e.local_name().as_ref() {
                    b"authenticationSuccess" if success.is_none() && !empty => success = Some(here),
                    b"user" if success.is_some_and(|d| here == d + 1) => {
                        if empty {
                            return Err(CasError::Unreadable("empty cas:user".into()));
                        }
                        in_user = true;
                    }
                    b"authenticationFailure" => {
                        let code = e
                            .try_get_attribute("code")
                            .ok()
                            .flatten()
                            .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                            .unwrap_or_else(|| "UNKNOWN".into());
                        return Err(CasError::Refused {
                            code: code
                                .chars()
                                .filter(char::is_ascii_graphic)
                                .take(64)
                                .collect(),
                        });
                    }
                    _ => {}
                }
            }
            Event::Start(_) => depth += 1,
            Event::Text(t) if in_user => user.push_str(
                &t.decode()
                    .map_err(|e| CasError::Unreadable(e.to_string()))?,
            ),
            Event::GeneralRef(r) if in_user => {
                let name = r
                    .decode()
                    .map_err(|e| CasError::Unreadable(e.to_string()))?;
                user.push_str(&format!("&{name};"));
            }
            Event::End(e) => {
                if cas && in_user && e.local_name().as_ref() == b"user" {
                    let user = quick_xml::escape::unescape(&user)
                        .map_err(|e| CasError::Unreadable(e.to_string()))?;
                    // ASCII white space only (the XML's own layout): a
                    // trimmed U+3000 would make "alice\u{3000}" alice.
                    let user = user.trim_ascii();
                    if user.is_empty() {
                        return Err(CasError::Unreadable("empty cas:user".into()));
                    }
                    return Ok(user.to_owned());
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => {
                return Err(CasError::Unreadable(
                    "neither authenticationSuccess with a user nor authenticationFailure".into(),
                ))
            }
            _ => {}
        }
    }
}

/// A CAS login at `cas_url` for `https://kg.example.org`, with a fixed
/// signing key and one-minute sessions.
#[cfg(test)]
pub(crate) fn for_tests(cas_url: &str) -> Cas {
    let signer = std::sync::Arc::new(super::signed::Signer::new([7; 32]));
    Cas::new(
        cas_url.into(),
        "https://kg.example.org",
        Fetch::new(std::time::Duration::from_secs(1), false, None).unwrap(),
        signer.clone(),
        Sessions::new(
            signer,
            std::time::Duration::from_secs(60),
            "cas-session",
            cas_url.into(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_success_and_failure() {
        let ok = r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
            <cas:authenticationSuccess><cas:user>al&amp;ice</cas:user>
            <cas:attributes><cas:user>not me</cas:user></cas:attributes>
            </cas:authenticationSuccess></cas:serviceResponse>"#;
        assert_eq!(parse_validation(ok).unwrap(), "al&ice");
        let fail = r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
            <cas:authenticationFailure code="INVALID_TICKET">Ticket ST-1 not recognized</cas:authenticationFailure>
            </cas:serviceResponse>"#;
        assert!(
            matches!(parse_validation(fail), Err(CasError::Refused { code }) if code == "INVALID_TICKET")
        );
        // The right local names in another namespace prove nothing.
        let spoof = r#"<x:serviceResponse xmlns:x="urn:other"><x:authenticationSuccess>
            <x:user>mallory</x:user></x:authenticationSuccess></x:serviceResponse>"#;
        assert!(matches!(
            parse_validation(spoof),
            Err(CasError::Unreadable(_))
        ));
        assert!(matches!(
            parse_validation("<html>"),
            Err(CasError::Unreadable(_))
        ));
    }

    /// Only the `cas:user` directly under `cas:authenticationSuccess` names
    /// the user: not an empty one followed by an attribute called "user".
    #[test]
    fn the_user_is_the_direct_child_of_authentication_success_only() {
        let empty_then_attribute = r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
            <cas:authenticationSuccess><cas:user/>
            <cas:attributes><cas:user>mallory</cas:user></cas:attributes>
            </cas:authenticationSuccess></cas:serviceResponse>"#;
        assert!(matches!(
            parse_validation(empty_then_attribute),
            Err(CasError::Unreadable(_))
        ));
        let attribute_first = r#"<cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
            <cas:authenticationSuccess>
            <cas:attributes><cas:user>mallory</cas:user></cas:attributes>
            <cas:user>alice</cas:user>
            </cas:authenticationSuccess></cas:serviceResponse>"#;
        assert_eq!(parse_validation(attribute_first).unwrap(), "alice");
        let entity = r#"<!DOCTYPE x [<!ENTITY e "mallory">]><cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas">
            <cas:authenticationSuccess><cas:user>&e;</cas:user>
            </cas:authenticationSuccess></cas:serviceResponse>"#;
        assert!(matches!(
            parse_validation(entity),
            Err(CasError::Unreadable(_))
        ));
    }

    mod properties {
        //! The answer parser under generated input (proptest): never a
        //! panic; a user or a failure code comes out exactly as sent.
        //! `PROPTEST_CASES=N` for a longer run.
        use super::*;
        use proptest::prelude::*;

        const NS: &str = r#"xmlns:cas="http://www.yale.edu/tp/cas""#;

        fn config() -> ProptestConfig {
            let cases = std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(512);
            ProptestConfig {
                cases,
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        fn success(user: &str, attribute_first: bool) -> String {
            let user = quick_xml::escape::escape(user);
            let attributes = "<cas:attributes><cas:user>mallory</cas:user></cas:attributes>";
            let (a, b) = if attribute_first {
                (attributes, "")
            } else {
                ("", attributes)
            };
            format!(
                "<cas:serviceResponse {NS}><cas:authenticationSuccess>{a}\
                 <cas:user>{user}</cas:user>{b}</cas:authenticationSuccess></cas:serviceResponse>"
            )
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn any_text_is_a_user_or_an_error(text in any::<String>()) {
                let _ = parse_validation(&text);
            }

            /// A real answer with bytes changed, cut or repeated: still no panic.
            #[test]
            fn damaged_answers_are_a_user_or_an_error(
                user in "[a-z@.]{1,20}",
                cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 1..8),
            ) {
                let mut text: Vec<char> = success(&user, true).chars().collect();
                for (at, c) in cuts {
                    let i = at.index(text.len());
                    match c as u32 % 3 {
                        0 => text[i] = c,
                        1 => { text.remove(i); }
                        _ => text.insert(i, text[i]),
                    }
                }
                let _ = parse_validation(&text.into_iter().collect::<String>());
            }

            #[test]
            fn the_user_round_trips(user in "[^\\p{Cc}]{1,40}", attribute_first in any::<bool>()) {
                prop_assume!(!user.trim_ascii().is_empty());
                let parsed = parse_validation(&success(&user, attribute_first));
                let parsed = parsed.ok();
                prop_assert_eq!(parsed.as_deref(), Some(user.trim_ascii()));
            }

            #[test]
            fn a_failure_code_round_trips_printable_and_bounded(code in "[^\\p{Cc}]{0,100}") {
                let xml = format!(
                    "<cas:serviceResponse {NS}><cas:authenticationFailure code=\"{}\">no</cas:authenticationFailure></cas:serviceResponse>",
                    quick_xml::escape::escape(&code)
                );
                let expected: String = code.chars().filter(char::is_ascii_graphic).take(64).collect();
                let refused = matches!(
                    parse_validation(&xml),
                    Err(CasError::Refused { code: c }) if c == expected
                );
                prop_assert!(refused, "{}", xml);
            }
        }
    }

    #[test]
    fn a_session_cookie_names_the_user_and_the_login_url_the_service() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;

        let cas = for_tests("https://cas.example.org/cas");
        let set = cas.session_cookie("alice");
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, pair.parse().unwrap());
        assert_eq!(cas.who(&h).map(|p| p.user).as_deref(), Some("alice"));
        let forged = pair.replace(
            &URL_SAFE_NO_PAD.encode("alice"),
            &URL_SAFE_NO_PAD.encode("admin"),
        );
        h.insert(http::header::COOKIE, forged.parse().unwrap());
        assert_eq!(cas.who(&h), None);
        // The service URL carries the flow its cookie binds to this browser.
        let (location, flow_cookie) = cas.start(&HeaderMap::new(), Return::Keys);
        let flow = flow_cookie.to_str().unwrap();
        let id = flow
            .strip_prefix("__Host-keygate-cas=")
            .and_then(|v| v.split('.').next())
            .unwrap();
        assert_eq!(
            location,
            format!(
                "https://cas.example.org/cas/login?service=https%3A%2F%2Fkg.example.org%2F.keygate%2Flogin%3Fflow%3D{id}"
            )
        );
    }

    /// A callback without this browser's flow is refused before the CAS
    /// server (here one that does not exist) is asked.
    #[tokio::test]
    async fn a_callback_without_this_browsers_flow_is_refused_unasked() {
        let cas = for_tests("http://127.0.0.1:1/cas");
        let (_, mine) = cas.start(&HeaderMap::new(), Return::Keys);
        let (_, theirs) = cas.start(&HeaderMap::new(), Return::Keys);
        let theirs = theirs.to_str().unwrap();
        let their_id =
            theirs[..theirs.find('.').unwrap()].trim_start_matches("__Host-keygate-cas=");
        let jar = crate::login::jar(&mine);
        for (query, headers) in [
            (format!("flow={their_id}&ticket=ST-1"), &jar),
            ("ticket=ST-1".to_owned(), &jar),
            (format!("flow={their_id}&ticket=ST-1"), &HeaderMap::new()),
        ] {
            assert!(
                matches!(cas.finish(&query, headers).await, Err(CasError::Flow(_))),
                "{query}"
            );
        }
    }
}
