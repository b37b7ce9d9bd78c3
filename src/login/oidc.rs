//! `method = "oidc"`: keygate is itself an OpenID Connect client (relying
//! party), with the authorization code flow, PKCE (S256), `state` and `nonce`.
//!
//! 1. `/.keygate/login` reads the provider's metadata (`provider`), starts a
//!    sign-in bound to this browser (`flow`) and sends the browser to the
//!    authorization endpoint; the redirect URI is always
//!    `{public_url}/.keygate/login`.
//! 2. The provider sends the browser back there with `code` and `state`.
//!    keygate checks the state against the browser's flow cookie, trades
//!    the code and the PKCE verifier for tokens at the token endpoint
//!    (client secret from `login.client_secret_file`), and checks the ID
//!    token (`id_token`, keys from `jwks`).
//! 3. The user is the `login.user_claim` claim, read from the ID token, or
//!    from the userinfo endpoint when the ID token lacks it (providers that
//!    keep profile claims out of the ID token in the code flow); the same
//!    for `login.groups_claim`. Outside `login.allowed_groups`: refused.
//! 4. keygate sets its session cookie (`session::Sessions`), with the
//!    person's groups among `[admin] groups`, the only ones it asks about later.
//!    The ID token waits beside it for sign-out (`logout`).
//! 5. `/.keygate/logout` clears both and, when the provider has an
//!    `end_session_endpoint`, sends the browser there (RP-initiated logout)
//!    with `client_id` and the ID token as `id_token_hint`.

mod flow;
mod id_token;
mod jwks;
pub mod logout;
mod provider;
mod ring_jose;

use std::collections::HashMap;

use http::header::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use super::fetch::{Fetch, FetchError};
use super::flow::Return;
use super::session::Sessions;
use super::signed::Signer;
use super::Person;
use crate::config::OidcClient;
use flow::Flow;
use jwks::Jwks;
use provider::{printable, Provider};

/// Why a sign-in did not end with a session. Shown to the person as a
/// sentence (`selfservice::refusal`), logged with the detail.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The answer is not for a sign-in this browser started (login CSRF), or too late.
    #[error("{0}")]
    Flow(&'static str),
    /// The provider sent the browser back with an error (`access_denied`...).
    #[error("the provider answered {error}: {description}")]
    Provider { error: String, description: String },
    /// The token endpoint refused the code (`invalid_grant`: used twice, expired...).
    #[error("the token endpoint refused the code ({0})")]
    Refused(String),
    #[error("the ID token is not valid: {0}")]
    IdToken(String),
    /// A valid answer without a user keygate can take.
    #[error("{0}")]
    Claims(String),
    #[error("{user} is in none of login.allowed_groups")]
    NotAllowed { user: String },
    #[error(transparent)]
    Unavailable(#[from] FetchError),
    #[error("the OpenID provider's answer cannot be used: {0}")]
    Unreadable(String),
}

pub struct Oidc {
    client: OidcClient,
    redirect_uri: String,
    provider: Provider,
    jwks: Jwks,
    signer: std::sync::Arc<Signer>,
    sessions: Sessions,
    /// `[admin] groups`.
    admin_groups: Vec<String>,
    /// `vouched_by(&client)`: tags the ID token kept for sign-out.
    vouched_by: String,
}

/// A sign-in the provider's answer finished.
pub struct SignedIn {
    pub person: Person,
    /// `Set-Cookie` that ends this sign-in's flow (the browser's others stay).
    pub flow_done: HeaderValue,
    /// Sent back at sign-out as `id_token_hint`.
    id_token: String,
    /// The page the sign-in returns to.
    pub to: Return,
}

// === impl Oidc ===

impl Oidc {
    /// `sessions` signs with the purpose `"oidc-session"`; `signer` also
    /// signs the flow cookie and derives each flow's nonce and verifier.
    pub fn new(
        client: OidcClient,
        public_url: &str,
        fetch: Fetch,
        signer: std::sync::Arc<Signer>,
        sessions: Sessions,
        admin_groups: Vec<String>,
    ) -> Oidc {
        ring_jose::install();
        Oidc {
            redirect_uri: format!("{public_url}/.keygate/login"),
            provider: Provider::new(client.issuer.clone(), fetch),
            jwks: Jwks::default(),
            vouched_by: vouched_by(&client),
            client,
            signer,
            sessions,
            admin_groups,
        }
    }

    /// Where a browser without a session goes, and the cookie of its flow
    /// (beside those of its other tabs, in `headers`), which returns to `to`.
    pub async fn start(
        &self,
        headers: &HeaderMap,
        to: Return,
    ) -> Result<(String, HeaderValue), OidcError> {
        let m = self.provider.metadata().await?;
        let (flow, cookie) = Flow::begin(&self.signer, headers, to);
        let url = with_query(
            &m.authorization_endpoint,
            &[
                ("response_type", "code"),
                ("client_id", &self.client.client_id),
                ("redirect_uri", &self.redirect_uri),
                ("scope", &self.client.scopes.join(" ")),
                ("state", &flow.state),
                ("nonce", &flow.nonce),
                ("code_challenge", &flow.challenge()),
                ("code_challenge_method", "S256"),
            ],
        );
        Ok((url, cookie))
    }

    /// The provider's answer at the redirect URI (its query string), with
    /// this browser's `headers`: who signed in, the `Set-Cookie` that ends
    /// this sign-in (the browser's others stay) and the ID token.
    pub async fn finish(&self, query: &str, headers: &HeaderMap) -> Result<SignedIn, OidcError> {
        let params = single_values(query)?;
        let param = |name: &str| params.get(name).map(String::as_str);
        let flow = Flow::resume(&self.signer, headers, param("state"))?;
        // RFC 9207: an answer that names another issuer is a mix-up.
        if param("iss").is_some_and(|iss| iss != self.client.issuer) {
            return Err(OidcError::Flow("the answer comes from another issuer"));
        }
        if let Some(error) = param("error") {
            return Err(OidcError::Provider {
                error: printable(error),
                description: printable(param("error_description").unwrap_or("")),
            });
        }
        let code = param("code").ok_or(OidcError::Flow("the answer carries no code"))?;
        let m = self.provider.metadata().await?;
        let tokens = self
            .provider
            .exchange(&m, &self.client, code, &flow.verifier, &self.redirect_uri)
            .await?;
        let token = tokens.id_token.ok_or_else(|| {
            OidcError::Unreadable(
                "the token endpoint sent no id_token (is \"openid\" in login.scopes?)".into(),
            )
        })?;
        let (alg, kid) = id_token::header(&token)?;
        let keys = self
            .jwks
            .candidates(&self.provider, &m.jwks_uri, alg, kid.as_deref())
            .await?;
        let expected = id_token::Expected {
            issuer: &self.client.issuer,
            client_id: &self.client.client_id,
            nonce: &flow.nonce,
        };
        let mut claims = match id_token::verify(&token, alg, &keys, &expected) {
            // No key id, and none of the held keys: the provider may have
            // rotated them (rate-limited, as for an unknown key id).
            Err(e) if kid.is_none() && id_token::unverified(&e) => {
                let keys = self.jwks.reread(&self.provider, &m.jwks_uri, alg).await?;
                id_token::verify(&token, alg, &keys, &expected)?
            }
            verified => verified?,
        };
        let needs_groups = !self.client.allowed_groups.is_empty() || !self.admin_groups.is_empty();
        // An email names a person only if verified: a provider may say so
        // in its userinfo alone.
        let needs_verified = self.client.user_claim == "email";
        let missing = !claims.contains_key(&self.client.user_claim)
            || (needs_groups && !claims.contains_key(&self.client.groups_claim))
            || (needs_verified && !claims.contains_key("email_verified"));
        if let (true, Some(url), Some(access)) =
            (missing, &m.userinfo_endpoint, &tokens.access_token)
        {
            let more = self.provider.userinfo(url, access).await?;
            // Core §5.3.2: the userinfo must be about the token's subject.
            if more.get("sub") != claims.get("sub") {
                return Err(OidcError::IdToken(
                    "the userinfo answer is about another subject".into(),
                ));
            }
            // Its email_verified speaks of its own email, not of another
            // address the ID token named.
            let same_email =
                !claims.contains_key("email") || more.get("email") == claims.get("email");
            for (k, v) in more {
                if k != "email_verified" || same_email {
                    claims.entry(k).or_insert(v);
                }
            }
        }
        let person = self.person(&claims)?;
        Ok(SignedIn {
            person,
            flow_done: flow.end(&self.signer, headers),
            id_token: token,
            to: flow.to,
        })
    }

    /// The user and groups in `claims`, if `login.allowed_groups` lets them in.
    fn person(&self, claims: &Map<String, Value>) -> Result<Person, OidcError> {
        let name = &self.client.user_claim;
        // A user name as keys carry it (`keys::user`, UTF-8 as the provider
        // sends it); it also goes into the session cookie.
        // ASCII white space only: a trimmed U+3000 would make another
        // account's "alice\u{3000}" alice.
        let user = match claims
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim_ascii)
        {
            Some(u) => match crate::keys::user::check(u) {
                Ok(()) => u,
                Err(why) if !u.is_empty() => {
                    return Err(OidcError::Claims(format!(
                        "the provider's \"{}\" claim (login.user_claim) for this account {why}",
                        printable(name)
                    )))
                }
                Err(_) => return Err(no_user(name)),
            },
            None => return Err(no_user(name)),
        };
        // Only a verified address names a person: where anyone may set
        // their own email (some providers do not check it, nor say), it
        // could be someone else's ("nOAuth").
        if name == "email" && !email_verified(claims) {
            return Err(OidcError::Claims(format!(
                "the email address {user} is not verified (the provider's email_verified, \
                 in the ID token or its userinfo, is missing or false); with a provider that \
                 never sends it, name users by a claim it controls \
                 (login.user_claim = \"preferred_username\" or \"sub\")"
            )));
        }
        let groups: Vec<String> = match claims.get(&self.client.groups_claim) {
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        let allowed = &self.client.allowed_groups;
        if !allowed.is_empty() && !groups.iter().any(|g| allowed.contains(g)) {
            return Err(OidcError::NotAllowed {
                user: user.to_owned(),
            });
        }
        Ok(Person {
            user: user.to_owned(),
            groups: groups
                .into_iter()
                .filter(|g| self.admin_groups.contains(g))
                .collect(),
        })
    }

    /// `Set-Cookie`s of a new session: the session, and its ID token kept for sign-out.
    pub fn session_cookies(&self, signed_in: &SignedIn) -> [HeaderValue; 2] {
        let session = self.sessions.cookie(&signed_in.person);
        let value = session
            .to_str()
            .ok()
            .and_then(|c| c.split(';').next()?.split_once('='))
            .map_or("", |(_, v)| v);
        let hint = logout::keep(
            &self.signer,
            &self.vouched_by,
            value,
            &signed_in.id_token,
            self.sessions.ttl(),
        );
        [session, hint]
    }

    pub fn who(&self, headers: &HeaderMap) -> Option<Person> {
        self.sessions.read(headers)
    }

    /// The provider's sign-out page (RP-initiated logout), when it has one
    /// and its metadata can be read now: with `client_id`, and the ID token
    /// this browser's sign-in kept (`headers`) as `id_token_hint`.
    pub async fn logout_redirect(&self, headers: &HeaderMap) -> Option<String> {
        let m = match self.provider.metadata().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "signing out of keygate only: the OpenID provider's metadata cannot be read");
                return None;
            }
        };
        let end = m.end_session_endpoint.as_ref()?;
        let mut pairs = vec![("client_id", self.client.client_id.as_str())];
        if let Some(token) = logout::read(&self.signer, &self.vouched_by, headers) {
            pairs.push(("id_token_hint", token));
        }
        Some(with_query(end, &pairs))
    }

    /// `Set-Cookie` that ends the sign-in an answer (`query`) names by its
    /// state, and no other of this browser's (its other tabs').
    pub fn end_flow(&self, query: &str, headers: &HeaderMap) -> HeaderValue {
        Flow::end_named(&self.signer, headers, &super::query_param(query, "state"))
    }
}

/// What a session from this provider is bound to: the provider, this
/// client at it, the claims that name the user and their groups, and who
/// may sign in (`allowed_groups`: the session keeps only the admin groups,
/// so a narrower list could not be checked again on read). A change to any
/// of them voids the sessions made before it.
pub fn vouched_by(client: &OidcClient) -> String {
    let mut allowed = client.allowed_groups.clone();
    allowed.sort_unstable();
    let mut parts = vec![
        client.issuer.clone(),
        client.client_id.clone(),
        client.user_claim.clone(),
        client.groups_claim.clone(),
    ];
    parts.extend(allowed);
    parts.join("\n")
}

/// `url` with `pairs` added to its query (an endpoint may have one already).
fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = url.to_owned();
    out.push(if url.contains('?') { '&' } else { '?' });
    let start = out.len();
    form_urlencoded::Serializer::for_suffix(out, start)
        .extend_pairs(pairs)
        .finish()
}

/// The query's parameters; one given twice is refused (RFC 6749 §3.1).
fn single_values(query: &str) -> Result<HashMap<String, String>, OidcError> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if out.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(OidcError::Flow("the answer repeats a parameter"));
        }
    }
    Ok(out)
}

/// No string at all, or an empty one, where the user should be.
fn no_user(claim: &str) -> OidcError {
    OidcError::Claims(format!(
        "the provider sent no usable \"{}\" claim (login.user_claim) for this account",
        printable(claim)
    ))
}

/// `email_verified` says yes: `true`, or the string `"true"` some
/// providers send.
fn email_verified(claims: &Map<String, Value>) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(text)) => text == "true",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientSecret;
    use serde_json::json;
    use std::sync::Arc;
    use std::time::Duration;

    fn rp(user_claim: &str, allowed: &[&str]) -> Oidc {
        let signer = Arc::new(Signer::new([9; 32]));
        let client = OidcClient {
            issuer: "https://id.example.org".into(),
            client_id: "keygate".into(),
            client_secret: ClientSecret("s".into()),
            user_claim: user_claim.into(),
            groups_claim: "groups".into(),
            allowed_groups: allowed.iter().map(|g| g.to_string()).collect(),
            scopes: vec!["openid".into()],
        };
        let vouched_by = vouched_by(&client);
        Oidc::new(
            client,
            "https://kg.example.org",
            Fetch::new(Duration::from_secs(1), false, None).unwrap(),
            signer.clone(),
            Sessions::new(signer, Duration::from_secs(60), "oidc-session", vouched_by),
            vec!["keygate-admins".into()],
        )
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// Narrowing who may sign in signs out those it leaves out: the
    /// session cannot show their groups again, so it is void for everyone.
    #[test]
    fn a_session_is_void_once_allowed_groups_change() {
        let alice = Person {
            user: "alice@example.org".into(),
            groups: vec![],
        };
        let before = rp("email", &["staff", "contractors"]);
        let cookie = crate::login::jar(&before.sessions.cookie(&alice));
        assert_eq!(
            rp("email", &["contractors", "staff"]).who(&cookie),
            Some(alice)
        );
        assert_eq!(rp("email", &["staff"]).who(&cookie), None);
    }

    /// The session keeps only the groups among `[admin] groups`;
    /// `allowed_groups` lets members of any of them in, nobody else.
    #[test]
    fn the_person_is_the_user_claim_with_the_admin_groups_only() {
        let alice = claims(json!({
            "sub": "1", "email": "alice@example.org", "email_verified": true,
            "groups": ["staff", "keygate-admins", "everyone"],
        }));
        let p = rp("email", &["staff"]).person(&alice).unwrap();
        assert_eq!(p.user, "alice@example.org");
        assert_eq!(p.groups, vec!["keygate-admins".to_string()]);

        let bob = claims(
            json!({"sub": "2", "email": "bob@example.org", "email_verified": "true", "groups": "contractors"}),
        );
        assert!(matches!(
            rp("email", &["staff"]).person(&bob),
            Err(OidcError::NotAllowed { user }) if user == "bob@example.org"
        ));
        let p = rp("email", &[]).person(&bob).unwrap();
        assert_eq!((p.user.as_str(), p.groups.len()), ("bob@example.org", 0));

        for unverified in [json!(false), json!("false"), json!(null)] {
            let eve = claims(
                json!({"sub": "3", "email": "eve@example.org", "email_verified": unverified}),
            );
            assert!(
                matches!(rp("email", &[]).person(&eve), Err(OidcError::Claims(_))),
                "{unverified}"
            );
        }
        let silent = claims(json!({"sub": "3", "email": "eve@example.org"}));
        assert!(matches!(
            rp("email", &[]).person(&silent),
            Err(OidcError::Claims(_))
        ));
        // Another claim names the user; an empty or missing one is no user.
        let p = rp("preferred_username", &[]).person(&claims(
            json!({"sub": "4", "preferred_username": " carol "}),
        ));
        assert_eq!(p.unwrap().user, "carol");
        // UTF-8 as the provider sends it; no user name (a direction
        // override, a control character, 257 bytes) is no sign-in.
        let p = rp("preferred_username", &[])
            .person(&claims(json!({"sub": "4", "preferred_username": "zoë"})));
        assert_eq!(p.unwrap().user, "zoë");
        for bad in ["a\u{202E}b", "a\u{85}b", &"é".repeat(129)] {
            let c = claims(json!({"sub": "6", "preferred_username": bad}));
            assert!(matches!(
                rp("preferred_username", &[]).person(&c),
                Err(OidcError::Claims(m)) if m.contains("1-256 bytes of UTF-8")
            ));
        }
        for c in [
            json!({"sub": "5"}),
            json!({"sub": "5", "email": ""}),
            json!({"sub": "5", "email": 7}),
        ] {
            assert!(matches!(
                rp("email", &[]).person(&claims(c)),
                Err(OidcError::Claims(_))
            ));
        }
    }
}
