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
//! vouched for the user: a token from before a change of provider or client
//! is never sent to the new one. A sign-out another site's link asked for
//! (`Sec-Fetch-Site`) names the client alone, so the provider asks. A token too large for a cookie is not kept
//! (the sign-out then names the client only), and any older one is cleared:
//! another sign-in's token is never sent in this one's name.

use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};

use crate::login::signed::Signer;

pub const COOKIE: &str = "__Secure-keygate-logout-hint";
/// The one path the cookie is sent to (a `__Host-` cookie must be `Path=/`).
const PATH: &str = "/.keygate/logout";
const PURPOSE: &[u8] = b"oidc-logout-hint";
/// Browsers keep a cookie of at most 4096 bytes (name and value): a little less.
const MAX_PAIR: usize = 4000;

/// `Set-Cookie` that keeps `id_token` for `ttl` (the session's), or clears
/// the cookie when a cookie cannot hold the token.
pub fn keep(signer: &Signer, vouched_by: &str, id_token: &str, ttl: Duration) -> HeaderValue {
    let tag = signer.sign(&[PURPOSE, vouched_by.as_bytes(), id_token.as_bytes()]);
    let pair = format!("{COOKIE}={id_token}.{tag}");
    let octets = id_token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !octets || pair.len() > MAX_PAIR {
        tracing::debug!(
            bytes = id_token.len(),
            "the ID token is not kept for sign-out: too large for a cookie"
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
    let value = crate::login::cookie(headers, COOKIE)?;
    let (token, tag) = value.rsplit_once('.')?;
    signer
        .verify(&[PURPOSE, vouched_by.as_bytes(), token.as_bytes()], tag)
        .then_some(token)
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

    #[test]
    fn a_kept_token_is_read_back_only_for_its_provider_and_only_if_it_fits() {
        let signer = Signer::new([5; 32]);
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        let set = keep(&signer, "idp-a", token, Duration::from_secs(60));
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
        assert_eq!(read(&signer, "idp-a", &jar(&set)), Some(token));
        assert_eq!(read(&signer, "idp-b", &jar(&set)), None);
        assert_eq!(read(&Signer::new([6; 32]), "idp-a", &jar(&set)), None);
        let mut cross_site = jar(&set);
        cross_site.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert_eq!(read(&signer, "idp-a", &cross_site), None);
        cross_site.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert_eq!(read(&signer, "idp-a", &cross_site), Some(token));
        let forged = s.replace("eyJzdWIiOiJhIn0", "eyJzdWIiOiJiIn0");
        let forged = HeaderValue::try_from(forged).unwrap();
        assert_eq!(read(&signer, "idp-a", &jar(&forged)), None);

        let huge = format!("a.{}.c", "b".repeat(MAX_PAIR));
        let cleared = keep(&signer, "idp-a", &huge, Duration::from_secs(60));
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
        let odd = keep(&signer, "idp-a", "a.b;c.d", Duration::from_secs(60));
        assert!(odd.to_str().unwrap().contains("Max-Age=0"));
    }
}
