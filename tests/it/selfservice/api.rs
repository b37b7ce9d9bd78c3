//! The JSON API: a key's whole life, CSRF, ownership, bad input, per-user limits.

use http::{header, Method, StatusCode};
use serde_json::json;

use super::*;

#[tokio::test]
async fn generate_list_use_and_revoke_a_key_with_a_real_redis() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let dir = tempfile::tempdir().unwrap();
    let mut b = builder(&up.url());
    b.redis(&redis, dir.path(), "selfservice")
        .set("auth", "anonymous = \"reject\"")
        .set("login", "method = \"backend_session\"")
        .set("login", &format!("whoami_url = \"{}\"", app.whoami_url()));
    let gw = b.start().await;
    let (mut alice, token) = Browser::signed_in(&gw, &app, "alice").await;

    let created = alice.create(&token, "laptop R scripts", "1d").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let created = json_of(&created);
    let (key, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    assert_eq!(created["user"], "alice");
    assert_eq!(created["source"], "self-service");
    assert!(key.starts_with("kg_"));

    // The key works through the gateway as alice.
    let used = basic_get(&gw, key, "/data").await;
    assert_eq!(used.status, StatusCode::OK);
    assert_eq!(up.last().headers["x-remote-user"], "alice");

    // Listed on the page and in the API, never with its secret.
    let (page, _) = alice.page().await;
    assert!(
        page.text().contains(&format!(
            "<tr data-key-id=\"{id}\"><td>laptop R scripts</td>"
        )),
        "{}",
        page.text()
    );
    assert!(!page.text().contains(key));
    let listed = alice
        .api(Method::GET, "/.keygate/api/keys", None, None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.text().contains(key));
    let listed = json_of(&listed);
    assert_eq!(listed["user"], "alice");
    assert_eq!(listed["keys"][0]["id"], id);
    assert_eq!(listed["keys"][0]["source"], "self-service");

    // The admin sees where it came from, in the listing and the audit log.
    let admin = admin_get(&gw, "/v1/keys?user=alice").await;
    assert_eq!(admin["keys"][0]["source"], "self-service", "{admin}");
    let audit = admin_get(&gw, "/v1/audit").await;
    let events = audit["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["action"] == "create"
            && e["actor"] == "alice"
            && e["source"] == "self-service"),
        "{audit}"
    );
    assert!(!audit.to_string().contains(key));

    let revoked = alice
        .api(
            Method::DELETE,
            &format!("/.keygate/api/keys/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
    assert_eq!(
        basic_get(&gw, key, "/data").await.status,
        StatusCode::UNAUTHORIZED
    );
    let audit = admin_get(&gw, "/v1/audit").await;
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "revoke" && e["source"] == "self-service"),
        "{audit}"
    );
    let again = alice
        .api(
            Method::DELETE,
            &format!("/.keygate/api/keys/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn forged_or_missing_csrf_tokens_and_foreign_origins_are_403() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let (mut alice, token) = Browser::signed_in(&gw, &app, "alice").await;
    let mut bob = Browser::new(&gw);
    bob.set_cookie(&app.sign_in("bob"));
    let (_, bobs_token) = bob.page().await;

    let body = Some(json!({ "label": "x", "ttl": "1d" }));
    let missing = alice
        .api(Method::POST, "/.keygate/api/keys", None, body.clone())
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN, "{}", missing.text());
    assert!(json_of(&missing)["error"]
        .as_str()
        .unwrap()
        .contains("CSRF"));
    let forged = alice
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some("AAAAforged"),
            body.clone(),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Bob's token is bound to bob and his browser.
    let borrowed = alice
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some(&bobs_token),
            body.clone(),
        )
        .await;
    assert_eq!(borrowed.status, StatusCode::FORBIDDEN);
    // The right token from another site's page (foreign Origin, or none).
    alice.origin = "https://evil.example".into();
    let foreign = alice
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some(&token),
            body.clone(),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    alice.origin = gw.url("");
    let req = alice
        .request(Method::POST, "/.keygate/api/keys")
        .header("x-csrf-token", &token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body::full(body.clone().unwrap().to_string()))
        .unwrap();
    assert_eq!(
        client::send(&alice.client, req).await.status,
        StatusCode::FORBIDDEN
    );
    let req = alice
        .request(Method::POST, "/.keygate/api/keys")
        .header(header::ORIGIN, gw.url(""))
        .header("sec-fetch-site", "cross-site")
        .header("x-csrf-token", &token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body::full(body.clone().unwrap().to_string()))
        .unwrap();
    assert_eq!(
        client::send(&alice.client, req).await.status,
        StatusCode::FORBIDDEN
    );
    // Without keygate's CSRF cookie the token is worth nothing.
    let mut cookieless = Browser::new(&gw);
    cookieless.set_cookie(&app.sign_in("alice"));
    let no_cookie = cookieless
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some(&token),
            body.clone(),
        )
        .await;
    assert_eq!(no_cookie.status, StatusCode::FORBIDDEN);
    // DELETE is protected the same way.
    let created = json_of(&alice.create(&token, "mine", "1d").await);
    let id = created["id"].as_str().unwrap();
    let del = alice
        .api(
            Method::DELETE,
            &format!("/.keygate/api/keys/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::FORBIDDEN);
    // Nothing above made a key but the last one.
    assert_eq!(gw.keyring.list(Some("alice")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn another_users_key_is_404_like_an_unknown_one() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let mut bob = Browser::new(&gw);
    bob.set_cookie(&app.sign_in("bob"));
    let (_, bobs_token) = bob.page().await;
    let bobs = json_of(&bob.create(&bobs_token, "bob's", "1d").await);
    let (bobs_key, bobs_id) = (bobs["key"].as_str().unwrap(), bobs["id"].as_str().unwrap());

    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    let (page, token) = alice.page().await;
    assert!(!page.text().contains(bobs_id), "alice sees only her keys");
    let theirs = alice
        .api(
            Method::DELETE,
            &format!("/.keygate/api/keys/{bobs_id}"),
            Some(&token),
            None,
        )
        .await;
    let unknown = alice
        .api(
            Method::DELETE,
            "/.keygate/api/keys/AAAAAAAAAAAA",
            Some(&token),
            None,
        )
        .await;
    let garbage = alice
        .api(
            Method::DELETE,
            "/.keygate/api/keys/%3Cscript%3E",
            Some(&token),
            None,
        )
        .await;
    for a in [&theirs, &unknown, &garbage] {
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    }
    assert_eq!(theirs.body, unknown.body);
    assert_eq!(
        basic_get(&gw, bobs_key, "/x").await.status,
        StatusCode::OK,
        "bob's key still works"
    );
    let listed = json_of(
        &alice
            .api(Method::GET, "/.keygate/api/keys", None, None)
            .await,
    );
    assert_eq!(listed["keys"], json!([]));
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let (mut alice, token) = Browser::signed_in(&gw, &app, "alice").await;

    let not_offered = alice.create(&token, "x", "2d").await;
    assert_eq!(not_offered.status, StatusCode::BAD_REQUEST);
    let error = json_of(&not_offered)["error"].as_str().unwrap().to_owned();
    assert!(
        error.starts_with("ttl: \"2d\" is not one of the offered lifetimes"),
        "{error}"
    );
    let never = alice.create(&token, "x", "never").await;
    assert_eq!(never.status, StatusCode::BAD_REQUEST);
    let long = alice.create(&token, &"x".repeat(201), "1d").await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert!(json_of(&long)["error"]
        .as_str()
        .unwrap()
        .starts_with("label:"));
    let unknown = alice
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some(&token),
            Some(json!({ "ttl": "1d", "user": "admin" })),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        json_of(&unknown)["error"]
            .as_str()
            .unwrap()
            .contains("user"),
        "{}",
        unknown.text()
    );
    let wrong_type = alice
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some(&token),
            Some(json!({ "ttl": 30 })),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert!(json_of(&wrong_type)["error"]
        .as_str()
        .unwrap()
        .starts_with("ttl:"));
    let req = alice
        .request(Method::POST, "/.keygate/api/keys")
        .header(header::ORIGIN, gw.url(""))
        .header("x-csrf-token", &token)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body::full("{}"))
        .unwrap();
    assert_eq!(
        client::send(&alice.client, req).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let put = alice
        .api(Method::PUT, "/.keygate/api/keys", Some(&token), None)
        .await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.headers[header::ALLOW], "GET, HEAD, POST");
    assert!(gw.keyring.list(Some("alice")).await.unwrap().is_empty());
    assert_eq!(
        alice.get("/.keygate/nothing").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn per_user_limits_on_live_keys_and_creation_rate() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(
        &up,
        &app,
        &[
            ("self_service", "max_live_keys = 2"),
            ("self_service", "creates_per_hour = 3"),
        ],
    )
    .await;
    let (mut alice, token) = Browser::signed_in(&gw, &app, "alice").await;
    // Refused creations cost no quota: the three allowed are still there.
    for _ in 0..2 {
        let refused = alice.create(&token, &"x".repeat(201), "1d").await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.text().contains("label: "), "{}", refused.text());
    }
    let first = json_of(&alice.create(&token, "1", "1d").await);
    assert_eq!(
        alice.create(&token, "2", "1d").await.status,
        StatusCode::CREATED
    );
    let full = alice.create(&token, "3", "1d").await;
    assert_eq!(full.status, StatusCode::CONFLICT, "{}", full.text());
    assert!(json_of(&full)["error"]
        .as_str()
        .unwrap()
        .contains("2 live keys"));
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        alice
            .api(
                Method::DELETE,
                &format!("/.keygate/api/keys/{id}"),
                Some(&token),
                None
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alice.create(&token, "3", "1d").await.status,
        StatusCode::CREATED
    );
    let id = json_of(
        &alice
            .api(Method::GET, "/.keygate/api/keys", None, None)
            .await,
    )["keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice
        .api(
            Method::DELETE,
            &format!("/.keygate/api/keys/{id}"),
            Some(&token),
            None,
        )
        .await;
    // Three made this hour: the fourth waits, however many are live.
    let limited = alice.create(&token, "4", "1d").await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text()
    );
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    // Another user has their own allowance.
    let mut bob = Browser::new(&gw);
    bob.set_cookie(&app.sign_in("bob"));
    let (_, bobs) = bob.page().await;
    // 200 characters, as the page's maxlength counts them, not bytes.
    let accented = bob.create(&bobs, &"é".repeat(200), "1d").await;
    assert_eq!(accented.status, StatusCode::CREATED, "{}", accented.text());
}

/// Two instances on one Redis share a user's hour: what one counted, the
/// other sees.
#[tokio::test]
async fn the_creation_limit_holds_across_instances_sharing_redis() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let dir = tempfile::tempdir().unwrap();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let mut b = builder(&up.url());
        app.configure(&mut b);
        b.redis(&redis, dir.path(), "selfservice-limits")
            .set("self_service", "creates_per_hour = 3");
        instances.push(b.start().await);
    }
    let mut made = Vec::new();
    for (n, gw) in [0, 1, 0, 1].into_iter().map(|i| &instances[i]).enumerate() {
        let mut alice = Browser::new(gw);
        alice.set_cookie(&app.sign_in("alice"));
        let (_, token) = alice.page().await;
        made.push(alice.create(&token, &format!("k{n}"), "1d").await);
    }
    let statuses: Vec<StatusCode> = made.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "{}",
        made[3].text()
    );
    assert!(made[3].headers.contains_key(header::RETRY_AFTER));
}

/// With `login.public_url`, writes must come from exactly that origin, not
/// from whatever host the request names.
#[tokio::test]
async fn public_url_fixes_the_origin_writes_must_come_from() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(
        &up,
        &app,
        &[("login", "public_url = \"https://keygate.example.org/\"")],
    )
    .await;
    let (mut alice, token) = Browser::signed_in(&gw, &app, "alice").await;
    let own_host = alice.create(&token, "x", "1d").await;
    assert_eq!(
        own_host.status,
        StatusCode::FORBIDDEN,
        "{}",
        own_host.text()
    );
    alice.origin = "https://keygate.example.org".into();
    let public = alice.create(&token, "x", "1d").await;
    assert_eq!(public.status, StatusCode::CREATED, "{}", public.text());
    // /.keygate/login and /logout belong to method = "cas" only.
    assert_eq!(
        alice.get("/.keygate/logout").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        alice.get("/.keygate/login?ticket=ST-1").await.status,
        StatusCode::NOT_FOUND
    );
}

/// What another site can make a signed-in browser send: a form POST
/// (urlencoded or text/plain) or a "simple" `fetch` with `text/plain`, all
/// with the user's cookies but without the token (a custom header would need
/// a CORS preflight, which keygate answers 405 without CORS headers).
#[tokio::test]
async fn cross_site_forms_and_simple_fetches_neither_mint_nor_revoke() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let (mut alice, token) = Browser::signed_in(&gw, &app, "alice").await;
    let created = json_of(&alice.create(&token, "mine", "1d").await);
    let id = created["id"].as_str().unwrap().to_owned();

    let sent = |method: Method, path: &str, origin: Option<&str>, ctype: &str, body: &str| {
        let mut r = alice
            .request(method, path)
            .header(header::CONTENT_TYPE, ctype)
            .header("sec-fetch-mode", "no-cors");
        if let Some(o) = origin {
            r = r
                .header(header::ORIGIN, o)
                .header("sec-fetch-site", "cross-site");
        }
        r.body(body::full(body.to_owned())).unwrap()
    };
    for (ctype, body) in [
        ("application/x-www-form-urlencoded", "label=x&ttl=1d"),
        ("text/plain", r#"{"label":"x","ttl":"1d"}"#),
        ("multipart/form-data; boundary=b", "--b--"),
    ] {
        for origin in [Some("https://evil.example"), Some("null"), None] {
            let a = client::send(
                &alice.client,
                sent(Method::POST, "/.keygate/api/keys", origin, ctype, body),
            )
            .await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{ctype} {origin:?}");
        }
    }
    let preflight = client::send(
        &alice.client,
        alice
            .request(Method::OPTIONS, "/.keygate/api/keys")
            .header(header::ORIGIN, "https://evil.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-csrf-token")
            .body(body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(preflight.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!preflight
        .headers
        .contains_key("access-control-allow-origin"));
    // The right token in a same-origin text/plain request is still not JSON.
    let plain = client::send(
        &alice.client,
        alice
            .request(Method::POST, "/.keygate/api/keys")
            .header(header::ORIGIN, gw.url(""))
            .header("x-csrf-token", &token)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(body::full(r#"{"label":"x","ttl":"1d"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(plain.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let del = client::send(
        &alice.client,
        sent(
            Method::DELETE,
            &format!("/.keygate/api/keys/{id}"),
            Some("https://evil.example"),
            "text/plain",
            "",
        ),
    )
    .await;
    assert_eq!(del.status, StatusCode::FORBIDDEN);
    let keys = gw.keyring.list(Some("alice")).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id.as_str(), id);
}

/// The application's own cookies may hold UTF-8 (browsers send it as it is
/// set): keygate still finds its CSRF cookie among them, so the person can
/// make a key. Its own cookie was looked for only in all-ASCII `Cookie`
/// fields: every write was 403 and every page load set a new CSRF cookie.
#[tokio::test]
async fn a_utf8_cookie_of_the_application_does_not_hide_keygates_own() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    alice.set_cookie("display_name=Zoë");
    let (first, token) = alice.page().await;
    assert!(first.headers.get(header::SET_COOKIE).is_some());
    let (again, _) = alice.page().await;
    assert!(
        again.headers.get(header::SET_COOKIE).is_none(),
        "a new CSRF cookie on every load: {:?}",
        again.headers.get_all(header::SET_COOKIE)
    );
    let created = alice.create(&token, "laptop", "1d").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
}

/// The page's Rotate takes only a lifetime the page offers, as Generate
/// does: `{"ttl": "200d"}` (not among `ttl_choices`) made a key that
/// Generate would have refused.
#[tokio::test]
async fn rotate_offers_only_the_lifetimes_generate_offers() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let (mut alice, token) = Browser::signed_in(&gw, &app, "alice").await;
    let refused = alice.create(&token, "x", "200d").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let created = json_of(&alice.create(&token, "x", "1d").await);
    let rotate = format!(
        "/.keygate/api/keys/{}/rotate",
        created["id"].as_str().unwrap()
    );

    let long = alice
        .api(
            Method::POST,
            &rotate,
            Some(&token),
            Some(json!({ "ttl": "200d" })),
        )
        .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST, "{}", long.text());
    assert!(long.text().contains("ttl"), "{}", long.text());
    assert_eq!(gw.keyring.list(Some("alice")).await.unwrap().len(), 1);

    let offered = alice
        .api(
            Method::POST,
            &rotate,
            Some(&token),
            Some(json!({ "ttl": "30d" })),
        )
        .await;
    assert_eq!(offered.status, StatusCode::CREATED, "{}", offered.text());
}

/// The page's Rotate that makes no key (409: rotated before, e.g. in
/// another tab) costs no quota: Generate still has what is left.
#[tokio::test]
async fn a_refused_rotate_costs_no_quota() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[("self_service", "creates_per_hour = 3")]).await;
    let (mut alice, token) = Browser::signed_in(&gw, &app, "alice").await;
    let created = json_of(&alice.create(&token, "x", "1d").await);
    let rotate = format!(
        "/.keygate/api/keys/{}/rotate",
        created["id"].as_str().unwrap()
    );
    let first = alice
        .api(Method::POST, &rotate, Some(&token), Some(json!({})))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    for _ in 0..3 {
        let again = alice
            .api(Method::POST, &rotate, Some(&token), Some(json!({})))
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    }
    // Two made this hour: one more is allowed.
    let made = alice.create(&token, "y", "1d").await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
}

/// A signed-in user's JSON body that trickles in, a byte now and then,
/// is answered 408 naming the problem within half of `leaks.answer_within`
/// (the deadline is for the whole body, not between bytes), as a body sent
/// to `/.keygate/revoke` is: no idle timeout runs while a request is in
/// flight, so it held its connection for as long as the client liked.
#[tokio::test]
async fn a_json_body_that_trickles_is_408_naming_the_problem() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[("leaks", "answer_within = \"2s\"")]).await;
    let (alice, token) = Browser::signed_in(&gw, &app, "alice").await;
    let (tx, trickled) = body::channel();
    // A byte every 200 ms, for 10 s at most: never the whole body.
    let trickle = tokio::spawn(async move {
        for _ in 0..50 {
            if tx.send(Ok(bytes::Bytes::from_static(b" "))).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    let req = alice
        .request(Method::POST, "/.keygate/api/keys")
        .header(header::ORIGIN, gw.url(""))
        .header("x-csrf-token", &token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(trickled)
        .unwrap();
    let a = crate::support::within(
        6,
        "an answer to a body that trickles",
        client::send(&alice.client, req),
    )
    .await;
    trickle.abort();
    client::assert_slow_body(&a);
    assert!(gw.keyring.list(Some("alice")).await.unwrap().is_empty());
}
