//! The ID token kept for sign-out: RP-initiated logout sends it back to the
//! provider as `id_token_hint` (OpenID Connect RP-Initiated Logout §2), which
//! tells the provider whose session ends; with `client_id` alone some
//! providers (Keycloak) ask the person to confirm, or cannot tell which of
//! their sessions to end.
//!
//! keygate keeps no state on its side, so the token waits in the browser, in
//! a cookie of its own (`__Secure-keygate-logout-hint`, as long as the
//! session, `Secure; HttpOnly; SameSite=Lax`), sent only to
//! `/.keygate/logout`: a kilobyte or two of token on every request to the
//! application would cost each of them, and reach an application behind an
//! external-auth proxy. It is tagged like the session with who
//! vouched for the user (a token from before a change of provider or client
//! is never sent to the new one), and with the session cookie it was made
//! beside: a `__Secure-` cookie can be planted by a sibling host, and
//! another person's token planted in this browser must not be sent in its
//! person's name (their provider session would end, not this one's). A sign-out another site's link asked for
//! (`Sec-Fetch-Site`) names the client alone, so the provider asks. A token too large for a cookie is not kept
//! (the sign-out then names the client only), and any older one is cleared:
//! another sign-in's token is never sent in this one's name.

use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};

use crate::login::session::SESSION_COOKIE;
use crate::login::signed::Signer;

pub const COOKIE: &str = "__Secure-keygate-logout-hint";
/// The one path the cookie is sent to (a `__Host-` cookie must be `Path=/`).
const PATH: &str = "/.keygate/logout";
const PURPOSE: &[u8] = b"oidc-logout-hint";
/// Browsers keep a cookie of at most 4096 bytes (name and value): a little less.
const MAX_PAIR: usize = 4000;

/// `Set-Cookie` that keeps `id_token` for `ttl` (the session's), bound to
/// `session` (the value of the session cookie set beside it), or clears
/// the cookie when a cookie cannot hold the token.
pub fn keep(
    signer: &Signer,
    vouched_by: &str,
    session: &str,
    id_token: &str,
    ttl: Duration,
) -> HeaderValue {
    let tag = signer.sign(&signed(vouched_by, session, id_token));
    let pair = format!("{COOKIE}={id_token}.{tag}");
    let octets = id_token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !octets || pair.len() > MAX_PAIR {
        let why = match octets {
            true => "too large for a cookie",
            false => "it holds characters a cookie cannot",
        };
        tracing::debug!(
            bytes = id_token.len(),
            "the ID token is not kept for sign-out: {why}"
        );
        return clear();
    }
    let cookie = format!(
        "{pair}; Path={PATH}; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
        ttl.as_secs()
    );
    HeaderValue::try_from(cookie).expect("base64url, dots, digits and ASCII attributes")
}

/// The ID token this browser's sign-in kept, if keygate kept it for this
/// provider and client, and the sign-out was asked on keygate's own pages
/// or typed: with the hint a provider may end its session without asking,
/// and another site's link to `/.keygate/logout` (a top-level GET, which
/// gets the cookie) must not sign the person out of everything.
pub fn read<'h>(signer: &Signer, vouched_by: &str, headers: &'h HeaderMap) -> Option<&'h str> {
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if site.is_some_and(|s| s != b"same-origin" && s != b"none") {
        return None;
    }
    let session = crate::login::cookie(headers, SESSION_COOKIE)?;
    // A planted one may come first: the one made beside this session.
    crate::login::cookies(headers, COOKIE).find_map(|value| {
        let (token, tag) = value.rsplit_once('.')?;
        signer
            .verify(&signed(vouched_by, session, token), tag)
            .then_some(token)
    })
}

fn signed<'a>(vouched_by: &'a str, session: &'a str, token: &'a str) -> [&'a [u8]; 4] {
    [
        PURPOSE,
        vouched_by.as_bytes(),
        session.as_bytes(),
        token.as_bytes(),
    ]
}

pub fn clear() -> HeaderValue {
    HeaderValue::try_from(format!(
        "{COOKIE}=; Path={PATH}; Max-Age=0; Secure; HttpOnly; SameSite=Lax"
    ))
    .expect("an ASCII cookie name and attributes")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::login::jar;

    /// The request's cookies: the session `session` and the `Set-Cookie` pairs.
    fn sent(session: &str, hints: &[&HeaderValue]) -> HeaderMap {
        let mut pairs = vec![format!("{SESSION_COOKIE}={session}")];
        for h in hints {
            pairs.push(h.to_str().unwrap().split(';').next().unwrap().to_owned());
        }
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, pairs.join("; ").parse().unwrap());
        headers
    }

    #[test]
    fn a_kept_token_is_read_back_only_for_its_provider_and_session_and_only_if_it_fits() {
        let signer = Signer::new([5; 32]);
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        let set = keep(
            &signer,
            "idp-a",
            "alice-session",
            token,
            Duration::from_secs(60),
        );
        let s = set.to_str().unwrap();
        for attr in [
            "Path=/.keygate/logout;",
            "Max-Age=60",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
        ] {
            assert!(s.contains(attr), "{s}");
        }
        let alice = sent("alice-session", &[&set]);
        assert_eq!(read(&signer, "idp-a", &alice), Some(token));
        assert_eq!(read(&signer, "idp-b", &alice), None);
        assert_eq!(read(&Signer::new([6; 32]), "idp-a", &alice), None);
        assert_eq!(read(&signer, "idp-a", &jar(&set)), None, "no session");
        let mut cross_site = alice.clone();
        cross_site.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert_eq!(read(&signer, "idp-a", &cross_site), None);
        cross_site.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert_eq!(read(&signer, "idp-a", &cross_site), Some(token));
        let forged = s.replace("eyJzdWIiOiJhIn0", "eyJzdWIiOiJiIn0");
        let forged = HeaderValue::try_from(forged).unwrap();
        assert_eq!(
            read(&signer, "idp-a", &sent("alice-session", &[&forged])),
            None
        );

        // Mallory's own hint, planted in Alice's browser by a sibling host
        // (sent first): never sent in Alice's name; her own still is.
        let mallorys = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtIn0.c2ln";
        let planted = keep(
            &signer,
            "idp-a",
            "mallory-session",
            mallorys,
            Duration::from_secs(60),
        );
        assert_eq!(
            read(&signer, "idp-a", &sent("alice-session", &[&planted])),
            None
        );
        assert_eq!(
            read(&signer, "idp-a", &sent("alice-session", &[&planted, &set])),
            Some(token)
        );

        let huge = format!("a.{}.c", "b".repeat(MAX_PAIR));
        let cleared = keep(&signer, "idp-a", "s", &huge, Duration::from_secs(60));
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
        let odd = keep(&signer, "idp-a", "s", "a.b;c.d", Duration::from_secs(60));
        assert!(odd.to_str().unwrap().contains("Max-Age=0"));
    }
}
