//! `[login] method = "oidc"` over HTTP: against the real oidc-provider
//! (`#[ignore]`d for a bare `cargo test`: scripts/test.sh installs Node.js
//! and the package, and runs them), and against a small hand-made provider
//! (`support::idp`) for the answers a real provider never gives: forged,
//! expired or misdirected ID tokens, unknown keys, outages, slowness.

use http::{header, StatusCode};

use super::*;
use crate::support::oidc::{self, OidcProvider, ALICE, BOB, RS256_CLIENT};

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
    let port = oidc::free_port();
    let redirect_uri = format!("https://127.0.0.1:{port}/.keygate/login");
    let provider = tokio::task::spawn_blocking(move || OidcProvider::start(&redirect_uri))
        .await
        .unwrap();
    let gw = oidc::gateway(
        port,
        &up.url(),
        &provider.issuer(),
        RS256_CLIENT,
        &provider.secret_file(),
        &[
            "scopes = [\"openid\", \"email\", \"groups\"]",
            &format!("allowed_groups = [\"{}\"]", oidc::STAFF),
        ],
    )
    .await;
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

    // Sign out: the session cookie is cleared, then the provider's end_session.
    let out = browser.get("/.keygate/logout").await;
    assert_eq!(out.status, StatusCode::FOUND);
    assert_eq!(
        out.headers[header::LOCATION].to_str().unwrap(),
        format!("{}/session/end?client_id={RS256_CLIENT}", provider.issuer())
    );
    assert!(browser.cookie("__Host-keygate-session").is_none());
    let after = browser
        .api(http::Method::GET, "/.keygate/api/keys", None, None)
        .await;
    assert_eq!(after.status, StatusCode::FORBIDDEN, "{}", after.text());
}
