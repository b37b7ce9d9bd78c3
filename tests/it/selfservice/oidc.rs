//! `[login] method = "oidc"` over HTTP: against the real oidc-provider
//! (`#[ignore]`d for a bare `cargo test`: scripts/test.sh installs Node.js
//! and the package, and runs them), and against a small hand-made provider
//! (`support::idp`) for the answers a real provider never gives: forged,
//! expired or misdirected ID tokens, unknown keys, outages, slowness.

use http::{header, StatusCode};

use super::*;
use crate::support::idp::{self, Idp};
use crate::support::oidc::{self, ALICE, BOB, RS256_CLIENT};

/// The query parameters of `url`.
fn query(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// keygate's redirect to the provider, with the flow cookie kept in `browser`.
async fn start(browser: &mut Browser) -> String {
    let to_login = browser.get("/.keygate/keys").await;
    assert_eq!(to_login.status, StatusCode::FOUND, "{}", to_login.text());
    assert_eq!(to_login.headers[header::LOCATION], "/.keygate/login");
    let start = browser.get("/.keygate/login").await;
    assert_eq!(start.status, StatusCode::FOUND, "{}", start.text());
    let set = start.headers[header::SET_COOKIE].to_str().unwrap();
    for attr in [
        "__Host-keygate-oidc=",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=600",
    ] {
        assert!(set.contains(attr), "{set}");
    }
    start.headers[header::LOCATION].to_str().unwrap().to_owned()
}

#[tokio::test]
#[ignore = "needs oidc-provider (Node.js): run through scripts/test.sh"]
async fn a_real_provider_signs_in_once_per_code_and_signs_out() {
    let up = Upstream::start().await;
    let allowed = format!("allowed_groups = [\"{}\"]", oidc::STAFF);
    let (provider, gw) = oidc::provider_and_gateway(&up.url(), RS256_CLIENT, &[&allowed]).await;
    let mut browser = Browser::new(&gw);

    // The authorization request: the code flow, PKCE S256, state and nonce.
    let authorize = start(&mut browser).await;
    assert!(
        authorize.starts_with(&format!("{}/auth?", provider.issuer())),
        "{authorize}"
    );
    let q = query(&authorize);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], RS256_CLIENT);
    assert_eq!(q["redirect_uri"], gw.url("/.keygate/login"));
    assert_eq!(q["scope"], "openid email groups");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 22 && q["nonce"].len() >= 22, "{q:?}");
    let flow = browser.cookie("__Host-keygate-oidc").unwrap();
    assert!(flow.starts_with(&q["state"]), "the cookie binds the state");

    let back = oidc::sign_in(&authorize, &ALICE).await;
    let callback = back
        .strip_prefix(&gw.url(""))
        .unwrap_or_else(|| panic!("back at keygate: {back}"))
        .to_owned();
    assert_eq!(query(&back)["state"], q["state"]);
    let signed_in = browser.get(&callback).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text()
    );
    assert_eq!(signed_in.headers[header::LOCATION], "/.keygate/keys");
    let cookies: Vec<&str> = signed_in
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-keygate-session="))
        .unwrap_or_else(|| panic!("{cookies:?}"));
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Max-Age=28800"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-keygate-oidc=;") && c.contains("Max-Age=0")),
        "the flow cookie is cleared: {cookies:?}"
    );

    // Signed in as the email the provider's userinfo names.
    let (page, token) = browser.page().await;
    assert!(
        page.text()
            .contains("<strong id=\"user\">alice@example.org</strong>"),
        "{}",
        page.text()
    );
    assert!(page.text().contains("href=\"/.keygate/logout\""));
    let created = browser.create(&token, "oidc", "1d").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(json_of(&created)["user"], "alice@example.org");

    // The same answer again, even with the flow cookie it needs: the
    // provider refuses the used code (invalid_grant), keygate says so.
    let mut replay = Browser::new(&gw);
    replay.set_cookie(&format!("__Host-keygate-oidc={flow}"));
    let replayed = replay.get(&callback).await;
    assert_eq!(
        replayed.status,
        StatusCode::FORBIDDEN,
        "{}",
        replayed.text()
    );
    assert!(
        replayed.text().contains("invalid_grant"),
        "{}",
        replayed.text()
    );
    assert!(replayed
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .all(|c| !c.to_str().unwrap().starts_with("__Host-keygate-session=")));
    // Without the cookie (another browser, login CSRF): refused before the provider is asked.
    let csrf = Browser::new(&gw).get(&callback).await;
    assert_eq!(csrf.status, StatusCode::FORBIDDEN, "{}", csrf.text());
    assert!(
        csrf.text()
            .contains("no sign-in was started in this browser"),
        "{}",
        csrf.text()
    );

    // Bob signs in at the provider, but is outside allowed_groups.
    let mut bob = Browser::new(&gw);
    let authorize = start(&mut bob).await;
    let back = oidc::sign_in(&authorize, &BOB).await;
    let refused = bob.get(back.strip_prefix(&gw.url("")).unwrap()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    assert!(
        refused.text().contains("bob@example.org"),
        "{}",
        refused.text()
    );
    assert!(
        refused.text().contains("not in a group allowed"),
        "{}",
        refused.text()
    );
    assert_eq!(bob.get("/.keygate/keys").await.status, StatusCode::FOUND);

    // Sign out: the session cookie is cleared, then the provider's
    // end_session with the ID token as a hint, which the provider checks
    // and takes (on to its confirmation; a damaged hint is a 400).
    let out = browser.get("/.keygate/logout").await;
    assert_eq!(out.status, StatusCode::FOUND);
    let location = out.headers[header::LOCATION].to_str().unwrap();
    assert!(
        location.starts_with(&format!(
            "{}/session/end?client_id={RS256_CLIENT}&id_token_hint=ey",
            provider.issuer()
        )),
        "{location}"
    );
    let (status, text) = fetched(location).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("/session/end/confirm"), "{text}");
    let (status, text) = fetched(&location.replace("id_token_hint=ey", "id_token_hint=eX")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a hint it checks: {text}");
    assert!(browser.cookie("__Host-keygate-session").is_none());
    assert!(browser.cookie("__Secure-keygate-logout-hint").is_none());
    let after = browser
        .api(http::Method::GET, "/.keygate/api/keys", None, None)
        .await;
    assert_eq!(after.status, StatusCode::FORBIDDEN, "{}", after.text());
}

/// `[admin] groups` (issue 17): alice, in the provider's `ADMINS` group,
/// gets the console and its JSON calls and the link on her page; bob, in
/// none of them, gets 403 and no link. Neither is in `[admin] users`.
#[tokio::test]
#[ignore = "needs oidc-provider (Node.js): run through scripts/test.sh"]
async fn an_admin_group_at_the_provider_makes_its_members_console_admins() {
    let up = Upstream::start().await;
    let groups = format!("groups = [\"{}\"]", oidc::ADMINS);
    let (_provider, gw) =
        oidc::provider_and_gateway_with(&up.url(), RS256_CLIENT, &[], &[&groups]).await;
    for (account, admin) in [(&ALICE, true), (&BOB, false)] {
        let mut browser = Browser::new(&gw);
        let authorize = start(&mut browser).await;
        let back = oidc::sign_in(&authorize, account).await;
        let signed_in = browser.get(back.strip_prefix(&gw.url("")).unwrap()).await;
        assert_eq!(
            signed_in.status,
            StatusCode::SEE_OTHER,
            "{}",
            signed_in.text()
        );
        let (page, _) = browser.page().await;
        assert!(page.text().contains(account.email), "{}", page.text());
        assert_eq!(
            page.text().contains("External Tool Settings"),
            admin,
            "{}: {}",
            account.email,
            page.text()
        );
        let expected = if admin {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        let console = browser.get("/.keygate/admin").await;
        assert_eq!(
            console.status,
            expected,
            "{}: {}",
            account.email,
            console.text()
        );
        let keys = browser
            .api(http::Method::GET, "/.keygate/api/admin/keys", None, None)
            .await;
        assert_eq!(keys.status, expected, "{}: {}", account.email, keys.text());
    }
}

/// keygate in front of `up`, signing in through the hand-made provider.
async fn with_idp(idp: &Idp, up: &Upstream, login: &[&str]) -> TestGateway {
    let port = oidc::free_port();
    oidc::gateway(
        port,
        &up.url(),
        &idp.issuer(),
        idp::CLIENT_ID,
        &idp.secret_file(),
        login,
        &[],
    )
    .await
}

/// The status, headers and text of a GET of `url` (plain http).
async fn get_plain(url: &str) -> (StatusCode, http::HeaderMap, String) {
    use http_body_util::BodyExt;
    let client: hyper_util::client::legacy::Client<_, body::TestBody> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let resp = client
        .request(http::Request::get(url).body(body::empty()).unwrap())
        .await
        .expect("the provider answers");
    let (parts, body) = resp.into_parts();
    let text = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&text).into_owned(),
    )
}

/// The status and text of a GET of `url` (plain http).
async fn fetched(url: &str) -> (StatusCode, String) {
    let (status, _, text) = get_plain(url).await;
    (status, text)
}

/// Where `url` (plain http) redirects.
async fn location_of(url: &str) -> String {
    let (status, headers, text) = get_plain(url).await;
    assert_eq!(status, StatusCode::FOUND, "{text}");
    headers[header::LOCATION].to_str().unwrap().to_owned()
}

/// A new browser's whole sign-in through the hand-made provider, which
/// signs everyone in at once: keygate's answer to the provider's redirect.
async fn sign_in(gw: &TestGateway) -> (Browser, Answer) {
    let mut browser = Browser::new(gw);
    let authorize = start(&mut browser).await;
    let back = location_of(&authorize).await;
    let callback = back.strip_prefix(&gw.url("")).unwrap().to_owned();
    let answer = browser.get(&callback).await;
    (browser, answer)
}

/// A 503 sign-in page that says to come back.
fn assert_unavailable(page: &Answer) {
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.text()
    );
    assert!(page.headers.contains_key(header::RETRY_AFTER));
    assert!(
        page.text().contains("Sign-in is unavailable"),
        "{}",
        page.text()
    );
}

fn new_session(a: &Answer) -> bool {
    a.headers.get_all(header::SET_COOKIE).iter().any(|c| {
        c.to_str().unwrap().starts_with("__Host-keygate-session=")
            && !c.to_str().unwrap().contains("Max-Age=0")
    })
}

/// Each ID token keygate must not believe is a 403 page naming what is
/// wrong, and no session; the provider's own answer before and after is
/// believed (so each refusal is that token's fault).
#[tokio::test]
async fn forged_expired_misdirected_or_unsigned_id_tokens_are_refused() {
    let (up, idp) = (Upstream::start().await, Idp::start().await);
    let gw = with_idp(&idp, &up, &[]).await;
    let (mut alice, ok) = sign_in(&gw).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text());
    assert!(new_session(&ok));
    let (page, _) = alice.page().await;
    assert!(page
        .text()
        .contains("<strong id=\"user\">alice@example.org</strong>"));

    type Case = (&'static str, fn(&mut idp::Token), &'static str);
    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }
    let cases: Vec<Case> = vec![
        (
            "forged: signed by another key under a published kid",
            |t| t.key = 1,
            "signature does not match",
        ),
        (
            "expired beyond the leeway",
            |t| {
                t.claims.insert("exp".into(), (now() - 120).into());
            },
            "expired",
        ),
        (
            "for another audience",
            |t| {
                t.claims.insert("aud".into(), "another-app".into());
            },
            "another client (aud)",
        ),
        (
            "for several audiences, another's azp",
            |t| {
                t.claims.insert(
                    "aud".into(),
                    serde_json::json!([idp::CLIENT_ID, "another-app"]),
                );
                t.claims.insert("azp".into(), "another-app".into());
            },
            "another client (azp",
        ),
        (
            "from another issuer",
            |t| {
                t.claims.insert("iss".into(), "https://evil.example".into());
            },
            "another issuer",
        ),
        (
            "with another browser's nonce",
            |t| {
                t.claims.insert("nonce".into(), "n-0123456789".into());
            },
            "nonce",
        ),
        (
            "without exp",
            |t| {
                t.claims.remove("exp");
            },
            "no exp claim",
        ),
        (
            "not valid yet",
            |t| {
                t.claims.insert("nbf".into(), (now() + 3600).into());
            },
            "not valid yet",
        ),
        (
            "HS256 under the client secret",
            |t| {
                t.hmac = true;
                t.header.insert("alg".into(), "HS256".into());
            },
            "keygate accepts RS256 and ES256",
        ),
        (
            "an unverified email",
            |t| {
                t.claims.insert("email_verified".into(), false.into());
            },
            "not verified",
        ),
    ];
    for (what, tweak, says) in cases {
        idp.tweak(Some(Box::new(tweak)));
        let (_, refused) = sign_in(&gw).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            refused.text()
        );
        assert!(refused.text().contains(says), "{what}: {}", refused.text());
        assert!(!new_session(&refused), "{what}");
    }
    idp.tweak(None);
    let (_, again) = sign_in(&gw).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text());
    assert_eq!(idp.hits("/userinfo"), 0, "the ID token said it all");

    // An ID token that names the email without saying whether it is
    // verified: the provider's userinfo settles it.
    idp.tweak(Some(Box::new(|t| {
        t.claims.remove("email_verified");
    })));
    let (_, via_userinfo) = sign_in(&gw).await;
    assert_eq!(
        via_userinfo.status,
        StatusCode::SEE_OTHER,
        "{}",
        via_userinfo.text()
    );
    assert!(new_session(&via_userinfo));
    assert_eq!(idp.hits("/userinfo"), 1);
    // Its userinfo verifies its own address, not another the ID token named.
    idp.tweak(Some(Box::new(|t| {
        t.claims.remove("email_verified");
        t.claims
            .insert("email".into(), "mallory@example.org".into());
    })));
    let (_, other) = sign_in(&gw).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.text());
    assert!(other.text().contains("not verified"), "{}", other.text());
    assert_eq!(idp.hits("/userinfo"), 2);
    idp.tweak(None);
}

/// A provider that names no key id (`kid`) in its tokens and rotates its
/// keys: the token no held key verifies makes keygate read the keys again,
/// under the same 30 s limit as an unknown key id (a forged token without
/// one cannot make it hammer the provider either).
#[tokio::test]
async fn a_token_without_kid_after_a_rotation_reads_the_keys_again() {
    let (up, idp) = (Upstream::start().await, Idp::start().await);
    let gw = with_idp(&idp, &up, &[]).await;
    idp.tweak(Some(Box::new(|t| {
        t.header.remove("kid");
    })));
    let (_, ok) = sign_in(&gw).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text());
    assert_eq!(idp.hits("/jwks"), 1);

    idp.rotate(&[1], 1);
    let (_, rotated) = sign_in(&gw).await;
    assert_eq!(rotated.status, StatusCode::SEE_OTHER, "{}", rotated.text());
    assert_eq!(idp.hits("/jwks"), 2);

    // Signed by a key published nowhere: refused, the keys not read again so soon.
    idp.tweak(Some(Box::new(|t| {
        t.header.remove("kid");
        t.key = 2;
    })));
    for _ in 0..3 {
        let (_, forged) = sign_in(&gw).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text());
        assert!(
            forged.text().contains("signature does not match"),
            "{}",
            forged.text()
        );
    }
    assert_eq!(idp.hits("/jwks"), 2);
}

/// A token signed with a key id keygate does not hold makes it read the
/// provider's keys again (a rotation works at once), but at most once per
/// 30 s: made-up key ids cannot make keygate hammer the provider.
#[tokio::test]
async fn an_unknown_kid_reads_the_keys_again_at_most_every_30_seconds() {
    let (up, idp) = (Upstream::start().await, Idp::start().await);
    let gw = with_idp(&idp, &up, &[]).await;
    let (_, ok) = sign_in(&gw).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text());
    assert_eq!(idp.hits("/jwks"), 1);
    let (_, ok) = sign_in(&gw).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(idp.hits("/jwks"), 1, "the keys are kept");

    // The provider rotates to key 1: keygate reads the set again and believes it.
    idp.rotate(&[0, 1], 1);
    let (_, rotated) = sign_in(&gw).await;
    assert_eq!(rotated.status, StatusCode::SEE_OTHER, "{}", rotated.text());
    assert_eq!(idp.hits("/jwks"), 2);

    // Key 2 is published nowhere: refused, and the keys are not read again so soon.
    idp.rotate(&[0, 1], 2);
    for _ in 0..3 {
        let (_, unknown) = sign_in(&gw).await;
        assert_eq!(unknown.status, StatusCode::FORBIDDEN, "{}", unknown.text());
        assert!(
            unknown
                .text()
                .contains("a key the provider does not publish"),
            "{}",
            unknown.text()
        );
    }
    assert_eq!(idp.hits("/jwks"), 2);
}

/// Login CSRF: an answer with another sign-in's state, even with a flow
/// cookie of this browser, is refused before the code goes anywhere; so is
/// one with no state. The provider's own error is shown, not a crash.
#[tokio::test]
async fn a_wrong_state_or_a_provider_error_signs_nobody_in() {
    let (up, idp) = (Upstream::start().await, Idp::start().await);
    let gw = with_idp(&idp, &up, &[]).await;
    let mut victim = Browser::new(&gw);
    let _ = start(&mut victim).await;
    // The attacker's own sign-in, answered by the provider, planted in the victim's browser.
    let mut attacker = Browser::new(&gw);
    let authorize = start(&mut attacker).await;
    let planted = location_of(&authorize).await;
    let planted = planted.strip_prefix(&gw.url("")).unwrap();
    let refused = victim.get(planted).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    assert!(
        refused.text().contains("state is not the one"),
        "{}",
        refused.text()
    );
    assert!(!new_session(&refused));
    let no_state = victim.get("/.keygate/login?code=code-1").await;
    assert_eq!(
        no_state.status,
        StatusCode::FORBIDDEN,
        "{}",
        no_state.text()
    );
    assert_eq!(idp.hits("/token"), 0, "no code was traded");

    let mut denied = Browser::new(&gw);
    let authorize = start(&mut denied).await;
    let state = query(&authorize)["state"].clone();
    let page = denied
        .get(&format!("/.keygate/login?error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E&state={state}"))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
    assert!(page.text().contains("(access_denied)"), "{}", page.text());
    assert!(!page.text().contains("<b>"), "{}", page.text());
}

/// Two tabs of one browser each start a sign-in (a restored session, a
/// second link): each one's answer is taken, in either order. The second
/// start replaced the first's flow cookie, so the first tab's answer was
/// refused as another browser's ("state is not the one...").
#[tokio::test]
async fn two_tabs_signing_in_at_once_both_finish() {
    let (up, idp) = (Upstream::start().await, Idp::start().await);
    let gw = with_idp(&idp, &up, &[]).await;
    let mut browser = Browser::new(&gw);
    let first = start(&mut browser).await;
    let second = start(&mut browser).await;
    let (first, second) = (location_of(&first).await, location_of(&second).await);
    for back in [first, second] {
        let callback = back.strip_prefix(&gw.url("")).unwrap().to_owned();
        let answer = browser.get(&callback).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
        assert!(new_session(&answer));
    }
    // Each answer is taken once: the flow it finished is gone.
    let again = browser.get("/.keygate/keys").await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert!(browser.cookie("__Host-keygate-oidc").is_none());

    // One tab's sign-in refused by the provider ends that one only.
    let mut browser = Browser::new(&gw);
    let denied = query(&start(&mut browser).await)["state"].clone();
    let other = start(&mut browser).await;
    let page = browser
        .get(&format!(
            "/.keygate/login?error=access_denied&state={denied}"
        ))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
    let back = location_of(&other).await;
    let answer = browser.get(back.strip_prefix(&gw.url("")).unwrap()).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
}

/// The answer's URL again (Back to the provider, which answers at once
/// for a person signed in there; a reload) in a browser signed in by it:
/// the page, not a "Sign-in failed" 403 for a flow already over.
#[tokio::test]
async fn an_answer_seen_again_after_signing_in_leads_to_the_page() {
    let (up, idp) = (Upstream::start().await, Idp::start().await);
    let gw = with_idp(&idp, &up, &[]).await;
    let mut browser = Browser::new(&gw);
    let authorize = start(&mut browser).await;
    let back = location_of(&authorize).await;
    let callback = back.strip_prefix(&gw.url("")).unwrap().to_owned();
    let first = browser.get(&callback).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.text());
    let again = browser.get(&callback).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text());
    assert_eq!(again.headers[header::LOCATION], "/.keygate/keys");
    assert!(!new_session(&again));
    assert_eq!(idp.hits("/token"), 1, "the code was not traded again");
    // Another browser's answer in a signed-out one is still refused.
    let mut other = Browser::new(&gw);
    let refused = other.get(&callback).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
}

/// A provider that cannot be reached, or answers too slowly, is a 503 page
/// with Retry-After within `login.timeout`, at the start of a sign-in and
/// at the token endpoint; nobody is signed in.
#[tokio::test]
async fn a_provider_that_is_down_or_slow_is_a_503_within_the_timeout() {
    let up = Upstream::start().await;
    let closed = format!("http://127.0.0.1:{}", oidc::free_port());
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s").unwrap();
    let gw = oidc::gateway(
        oidc::free_port(),
        &up.url(),
        &closed,
        "kg",
        &secret,
        &[],
        &[],
    )
    .await;
    assert_unavailable(&Browser::new(&gw).get("/.keygate/login").await);

    let idp = Idp::start().await;
    let gw = with_idp(&idp, &up, &["timeout = \"300ms\""]).await;
    let bound = std::time::Duration::from_secs(3);
    idp.hang(Some("/.well-known/openid-configuration"));
    let started = std::time::Instant::now();
    assert_unavailable(&Browser::new(&gw).get("/.keygate/login").await);
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());

    // Discovery answers, the token endpoint hangs: the callback is the 503.
    idp.hang(Some("/token"));
    let started = std::time::Instant::now();
    let (_, page) = sign_in(&gw).await;
    assert_unavailable(&page);
    assert!(!new_session(&page));
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
}

/// Sign-out sends the provider the ID token of this browser's sign-in as
/// `id_token_hint`, beside `client_id` (RP-initiated logout: the provider
/// can tell whose session ends), and clears it with the session; not when
/// another site's link asked for the sign-out. A token
/// too large for a cookie is not kept, nor is the one of an earlier
/// sign-in in the same browser: that sign-out names the client alone.
#[tokio::test]
async fn sign_out_hands_the_provider_the_id_token_as_a_hint() {
    const HINT: &str = "__Secure-keygate-logout-hint";
    let (up, idp) = (Upstream::start().await, Idp::start().await);
    let gw = with_idp(&idp, &up, &[]).await;
    let (mut alice, ok) = sign_in(&gw).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text());
    let issued = idp.last_id_token().unwrap();
    let out = alice.get("/.keygate/logout").await;
    assert_eq!(out.status, StatusCode::FOUND, "{}", out.text());
    let location = out.headers[header::LOCATION].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{}/logout?", idp.issuer())),
        "{location}"
    );
    let q = query(location);
    assert_eq!(q["client_id"], idp::CLIENT_ID);
    assert_eq!(q.get("id_token_hint"), Some(&issued), "{location}");
    assert!(alice.cookie("__Host-keygate-session").is_none());
    assert!(alice.cookie(HINT).is_none(), "cleared at sign-out");
    assert_eq!(alice.get("/.keygate/keys").await.status, StatusCode::FOUND);

    // Another site's link to the sign-out signs out of keygate, but sends
    // no hint: the provider asks before it ends its own session.
    let again = sign_in_from(&gw, &mut alice, "/.keygate/login").await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text());
    alice
        .headers
        .push(("sec-fetch-site".into(), "cross-site".into()));
    let out = alice.get("/.keygate/logout").await;
    alice.headers.clear();
    let location = out.headers[header::LOCATION].to_str().unwrap();
    assert!(!query(location).contains_key("id_token_hint"), "{location}");
    assert!(alice.cookie("__Host-keygate-session").is_none());
    assert!(alice.cookie(HINT).is_none());

    // Signed in, then again in the same browser with a token no cookie
    // can hold: the first token is not sent in the second's name.
    let first = sign_in_from(&gw, &mut alice, "/.keygate/login").await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.text());
    assert!(alice.cookie(HINT).is_some());
    idp.tweak(Some(Box::new(|t| {
        t.claims.insert("padding".into(), "x".repeat(5000).into());
    })));
    let large = sign_in_from(&gw, &mut alice, "/.keygate/login").await;
    idp.tweak(None);
    assert_eq!(large.status, StatusCode::SEE_OTHER, "{}", large.text());
    assert!(new_session(&large));
    assert!(alice.cookie(HINT).is_none());
    let out = alice.get("/.keygate/logout").await;
    let location = out.headers[header::LOCATION].to_str().unwrap();
    assert_eq!(
        location,
        format!("{}/logout?client_id={}", idp.issuer(), idp::CLIENT_ID)
    );
}

/// A sign-in from `login` (`/.keygate/login...`) in `browser`, signed in or
/// not: keygate's answer to the provider's redirect.
async fn sign_in_from(gw: &TestGateway, browser: &mut Browser, login: &str) -> Answer {
    let start = browser.get(login).await;
    assert_eq!(start.status, StatusCode::FOUND, "{}", start.text());
    let authorize = start.headers[header::LOCATION].to_str().unwrap().to_owned();
    let back = location_of(&authorize).await;
    browser.get(back.strip_prefix(&gw.url("")).unwrap()).await
}

/// A signed-out visit to the admin console comes back to the console once
/// signed in, not to the keys page; `/.keygate/login` takes only `to=admin`
/// (keygate's own page, by a word), never a URL: anything else returns to
/// the keys page.
#[tokio::test]
async fn a_sign_in_started_at_the_console_returns_to_the_console() {
    let (up, idp) = (Upstream::start().await, Idp::start().await);
    let port = oidc::free_port();
    let admins = format!("users = [\"{}\"]", idp::USER);
    let gw = oidc::gateway(
        port,
        &up.url(),
        &idp.issuer(),
        idp::CLIENT_ID,
        &idp.secret_file(),
        &[],
        &[&admins],
    )
    .await;
    let mut browser = Browser::new(&gw);
    let to_login = browser.get("/.keygate/admin").await;
    assert_eq!(to_login.status, StatusCode::FOUND, "{}", to_login.text());
    assert_eq!(
        to_login.headers[header::LOCATION],
        "/.keygate/login?to=admin"
    );
    let login = to_login.headers[header::LOCATION].to_str().unwrap();
    let back = sign_in_from(&gw, &mut browser, login).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.text());
    assert_eq!(back.headers[header::LOCATION], "/.keygate/admin");
    let console = browser.get("/.keygate/admin").await;
    assert_eq!(console.status, StatusCode::OK, "{}", console.text());

    for to in [
        "https://evil.example/",
        "//evil.example",
        "/.keygate/api/keys",
        "keys",
    ] {
        let mut other = Browser::new(&gw);
        let path = format!(
            "/.keygate/login?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("to", to)
                .finish()
        );
        let back = sign_in_from(&gw, &mut other, &path).await;
        assert_eq!(back.status, StatusCode::SEE_OTHER, "{to}: {}", back.text());
        assert_eq!(back.headers[header::LOCATION], "/.keygate/keys", "{to}");
    }
}
