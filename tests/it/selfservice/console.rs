//! The admin console's page and JSON calls over real TLS, with a real Redis:
//! who gets it (`[admin] users`), CSRF, the grid's filters, cursors and
//! deletions through the barrier, settings validation, the audit log.

use http::{Method, StatusCode};
use keygate::keys::KeyId;
use serde_json::{json, Value};

use super::*;

const ADMIN: &str = "root@example.org";

/// keygate on a real Redis, `backend_session` against `app`, `ADMIN` an admin.
async fn console_gateway(redis: &RedisServer, up: &Upstream, app: &WhoAmI) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let mut b = builder(&up.url());
    b.redis(redis, dir.path(), "console")
        .set("auth", "anonymous = \"reject\"")
        .set("admin", &format!("users = [\"{ADMIN}\"]"));
    app.configure(&mut b);
    b.start().await
}

/// A browser on the console as `user`: the console's CSRF token.
async fn console(gw: &TestGateway, app: &WhoAmI, user: &str) -> (Browser, Answer, String) {
    let mut b = Browser::new(gw);
    b.set_cookie(&app.sign_in(user));
    let page = b.get("/.keygate/admin").await;
    let token = page
        .text()
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .map(|t| t.split('"').next().unwrap().to_owned())
        .unwrap_or_default();
    (b, page, token)
}

async fn keys(b: &mut Browser, query: &str) -> (StatusCode, Value) {
    let a = b
        .api(
            Method::GET,
            &format!("/.keygate/api/admin/keys?{query}"),
            None,
            None,
        )
        .await;
    (a.status, json_of(&a))
}

async fn revoke(b: &mut Browser, token: &str, body: Value) -> Answer {
    b.api(
        Method::POST,
        "/.keygate/api/admin/revoke",
        Some(token),
        Some(body),
    )
    .await
}

async fn rotate(b: &mut Browser, token: &str, path: &str, body: Value) -> Answer {
    b.api(Method::POST, path, Some(token), Some(body)).await
}

fn ids(listing: &Value) -> Vec<String> {
    listing["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn only_admins_get_the_console_and_its_json_calls_even_with_a_valid_csrf_token() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = console_gateway(&redis, &up, &app).await;
    let (key, bob_id) = gw.key("bob").await;
    let rotate_bob = format!("/.keygate/api/admin/keys/{bob_id}/rotate");
    let before = gw.keyring.settings().await.unwrap();

    // The admin: the console, and a link to it on their own page.
    let (mut root, page, _) = console(&gw, &app, ADMIN).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    assert!(
        html.contains("<title>External Tool Settings</title>"),
        "{html}"
    );
    assert!(
        html.contains("src=\"/.keygate/static/console.js\""),
        "{html}"
    );
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "{html}"
    );
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let (own, _) = root.page().await;
    assert!(
        own.text()
            .contains("<a id=\"console-link\" href=\"/.keygate/admin\">External Tool Settings</a>"),
        "{}",
        own.text()
    );

    // alice is signed in but no admin: no link, 403 everywhere, with her
    // own page's valid CSRF token or a forged one, and nothing changes.
    let (mut alice, alice_token) = Browser::signed_in(&gw, &app, "alice").await;
    let (own, _) = alice.page().await;
    assert!(
        !own.text().contains("External Tool Settings"),
        "{}",
        own.text()
    );
    assert!(!own.text().contains("/.keygate/admin"));
    let refused = alice.get("/.keygate/admin").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.text().contains("Administrators only"),
        "{}",
        refused.text()
    );
    let settings =
        json!({"self_service": false, "ttl_choices": ["1d"], "default_ttl": "1d", "max_ttl": "1d"});
    for token in [alice_token.as_str(), "forged-token"] {
        for (method, path, body) in [
            (Method::GET, "/.keygate/api/admin/keys", None),
            (Method::GET, "/.keygate/api/admin/settings", None),
            (Method::GET, "/.keygate/api/admin/audit", None),
            (
                Method::POST,
                "/.keygate/api/admin/revoke",
                Some(json!({"all": true})),
            ),
            (
                Method::POST,
                "/.keygate/api/admin/revoke",
                Some(json!({"users": ["bob"]})),
            ),
            (
                Method::PUT,
                "/.keygate/api/admin/settings",
                Some(settings.clone()),
            ),
            (Method::POST, rotate_bob.as_str(), Some(json!({}))),
        ] {
            let a = alice.api(method.clone(), path, Some(token), body).await;
            assert_eq!(
                a.status,
                StatusCode::FORBIDDEN,
                "{method} {path}: {}",
                a.text()
            );
            assert!(
                json_of(&a)["error"]
                    .as_str()
                    .unwrap()
                    .contains("administrators only"),
                "{}",
                a.text()
            );
        }
    }
    assert_eq!(basic_get(&gw, &key, "/").await.status, StatusCode::OK);
    assert_eq!(gw.keyring.settings().await.unwrap(), before);
    let bob = gw.keyring.get(&KeyId::parse(&bob_id).unwrap()).await;
    assert_eq!(bob.unwrap().unwrap().rotated_to, None, "not rotated");

    // The admin with a forged token, or from another origin: CSRF refuses.
    let forged = revoke(&mut root, "forged-token", json!({"all": true})).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text());
    assert!(json_of(&forged)["error"].as_str().unwrap().contains("CSRF"));
    assert_eq!(basic_get(&gw, &key, "/").await.status, StatusCode::OK);
    // Nobody signed in: 403 as on the user's page.
    let mut nobody = Browser::new(&gw);
    let a = nobody
        .api(Method::GET, "/.keygate/api/admin/keys", None, None)
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(json_of(&a)["error"], "not signed in");
}

#[tokio::test]
async fn the_grid_filters_pages_and_deletes_through_the_barrier_and_the_audit_names_the_admin() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = console_gateway(&redis, &up, &app).await;
    let mut alice_keys = Vec::new();
    for _ in 0..3 {
        alice_keys.push(gw.key("alice").await);
    }
    let (bob_key, _) = gw.key("bob").await;
    let (mut root, _, token) = console(&gw, &app, ADMIN).await;

    let (status, all) = keys(&mut root, "limit=50").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(ids(&all).len(), 4);
    assert!(!all.to_string().contains("kg_"), "never a secret: {all}");
    let (_, alice) = keys(&mut root, "user=alice&sort=expires&order=asc&limit=50").await;
    assert_eq!(ids(&alice).len(), 3);
    assert!(alice["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["user"] == "alice"));

    // Bad input: page sizes outside 50-500, cursors forged or of another filter.
    let (status, err) = keys(&mut root, "limit=10").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"].as_str().unwrap().starts_with("limit:"),
        "{err}"
    );
    let (status, err) = keys(&mut root, "sort=name").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap().starts_with("sort:"), "{err}");
    for _ in 0..50 {
        gw.key("carol").await;
    }
    let (_, first) = keys(&mut root, "limit=50").await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (status, second) = keys(&mut root, &format!("limit=50&cursor={cursor}")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(ids(&second).len(), 4);
    let (status, err) = keys(&mut root, &format!("limit=50&user=alice&cursor={cursor}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"].as_str().unwrap().starts_with("cursor:"),
        "{err}"
    );
    let (status, err) = keys(&mut root, &format!("limit=50&cursor=x{cursor}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"].as_str().unwrap().starts_with("cursor:"),
        "{err}"
    );

    // Delete two of alice's: revoked through the barrier, this instance acknowledged.
    let two: Vec<String> = alice_keys[..2].iter().map(|(_, id)| id.clone()).collect();
    let done = revoke(&mut root, &token, json!({ "ids": two })).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let done = json_of(&done);
    assert_eq!(done["revoked"], 2);
    assert_eq!(
        done["instances"]["acknowledged"].as_array().unwrap().len(),
        1,
        "{done}"
    );
    for (key, _) in &alice_keys[..2] {
        assert_eq!(
            basic_get(&gw, key, "/").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        basic_get(&gw, &alice_keys[2].0, "/").await.status,
        StatusCode::OK
    );

    // A stale page: the same rows again with a live one, no error.
    let mut stale = two.clone();
    stale.push(alice_keys[2].1.clone());
    let done = revoke(&mut root, &token, json!({ "ids": stale })).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(json_of(&done)["revoked"], 1);

    // A filter that matches nothing: the dry run counts 0, the revocation revokes 0.
    let nothing = json!({ "filter": { "user": "nobody" }, "dry_run": true });
    let dry = json_of(&revoke(&mut root, &token, nothing).await);
    assert_eq!(
        (dry["would_revoke"].as_u64(), dry["dry_run"].as_bool()),
        (Some(0), Some(true))
    );
    // Every key of a filter, counted first.
    let carol = json!({ "filter": { "user": "carol" }, "dry_run": true });
    let dry = json_of(&revoke(&mut root, &token, carol).await);
    assert_eq!(dry["would_revoke"], 50, "{dry}");
    assert_eq!(dry["filter"], "user=carol");
    let done = json_of(&revoke(&mut root, &token, json!({ "filter": { "user": "carol" } })).await);
    assert_eq!(done["revoked"], 50, "{done}");
    assert_eq!(basic_get(&gw, &bob_key, "/").await.status, StatusCode::OK);
    let empty_filter = revoke(&mut root, &token, json!({ "filter": {} })).await;
    assert_eq!(empty_filter.status, StatusCode::BAD_REQUEST);
    assert!(json_of(&empty_filter)["error"]
        .as_str()
        .unwrap()
        .starts_with("filter:"));

    // The audit log, newest first: the admin as actor, from the console.
    let a = root
        .api(Method::GET, "/.keygate/api/admin/audit?limit=2", None, None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let audit = json_of(&a);
    let latest = &audit["events"][0];
    assert_eq!(latest["actor"], ADMIN, "{audit}");
    assert_eq!(latest["source"], "admin-console", "{audit}");
    assert_eq!(latest["count"], 50, "{audit}");
    assert!(
        latest["target"].as_str().unwrap().contains("user=carol"),
        "{audit}"
    );
    let before = audit["before"].as_str().expect("older events").to_owned();
    let older = root
        .api(
            Method::GET,
            &format!("/.keygate/api/admin/audit?before={before}&limit=200"),
            None,
            None,
        )
        .await;
    let older = json_of(&older);
    assert!(older["events"].as_array().unwrap().len() >= 2, "{older}");
    let bad = root
        .api(
            Method::GET,
            "/.keygate/api/admin/audit?before=soon",
            None,
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(json_of(&bad)["error"]
        .as_str()
        .unwrap()
        .starts_with("before:"));
}

#[tokio::test]
async fn settings_out_of_range_name_their_field_and_save_nothing() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = console_gateway(&redis, &up, &app).await;
    let (mut root, _, token) = console(&gw, &app, ADMIN).await;
    let before = gw.keyring.settings().await.unwrap();

    let bad = put(&mut root, &token, json!({
        "self_service": true, "ttl_choices": ["1d", "soon"], "default_ttl": "100d", "max_ttl": "90d"
    }))
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    let problems = json_of(&bad)["problems"].clone();
    let fields: Vec<&str> = problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"default_ttl") && fields.contains(&"ttl_choices[1]"),
        "{problems}"
    );
    assert_eq!(
        gw.keyring.settings().await.unwrap(),
        before,
        "nothing saved"
    );
    let unknown = put(
        &mut root,
        &token,
        json!({ "self_service": true, "colour": "red" }),
    )
    .await;
    assert_eq!(
        unknown.status,
        StatusCode::BAD_REQUEST,
        "{}",
        unknown.text()
    );
    assert_eq!(
        gw.keyring.settings().await.unwrap(),
        before,
        "nothing saved"
    );

    let ok = put(
        &mut root,
        &token,
        json!({
            "self_service": true, "ttl_choices": ["2d", "7d"], "default_ttl": "7d", "max_ttl": "7d"
        }),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    // A user's page offers exactly the new lifetimes.
    let (mut alice, _) = Browser::signed_in(&gw, &app, "alice").await;
    let (page, _) = alice.page().await;
    assert!(page.text().contains("<option value=\"2d\">2 days</option><option value=\"7d\" selected>7 days</option></select>"), "{}", page.text());

    // Self-service off: users are turned away, the admin still reaches the console.
    let off = put(
        &mut root,
        &token,
        json!({
            "self_service": false, "ttl_choices": ["2d"], "default_ttl": "2d", "max_ttl": "7d"
        }),
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text());
    let off_page = alice.get("/.keygate/keys").await;
    assert_eq!(off_page.status, StatusCode::FORBIDDEN);
    assert!(
        !off_page.text().contains("/.keygate/admin"),
        "{}",
        off_page.text()
    );
    // The admin's page says where to switch it back on.
    let off_page = root.get("/.keygate/keys").await;
    assert_eq!(off_page.status, StatusCode::FORBIDDEN);
    assert!(
        off_page
            .text()
            .contains("href=\"/.keygate/admin\">External Tool Settings</a>"),
        "{}",
        off_page.text()
    );
    assert_eq!(root.get("/.keygate/admin").await.status, StatusCode::OK);
    let audit = root
        .api(Method::GET, "/.keygate/api/admin/audit", None, None)
        .await;
    let audit = json_of(&audit);
    assert_eq!(audit["events"][0]["action"], "settings", "{audit}");
    assert_eq!(audit["events"][0]["actor"], ADMIN);
}

/// The console's path of an unconfirmed save (set up as
/// `redis_deployments::an_unconfirmed_settings_save_is_a_503_that_says_it_is_in_force_and_is_audited`):
/// 503 saying the settings are saved, in force, and to save them again;
/// they are in force and audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_settings_save_on_the_console_is_a_503_that_says_it_is_in_force() {
    let (master, replica) = crate::support::deploy::master_and_replica();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = console_gateway(&master, &up, &app).await;
    let (mut root, _, token) = console(&gw, &app, ADMIN).await;
    let mut settings = serde_json::to_value(gw.keyring.settings().await.unwrap()).unwrap();
    settings["self_service"] = json!(false);

    replica.freeze();
    let saved = put(&mut root, &token, settings).await;
    replica.thaw();
    assert_eq!(
        saved.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        saved.text()
    );
    assert!(
        saved.text().contains(
            "saved and in force on every instance, but no replica confirmed them in time"
        ) && saved.text().contains("save them again"),
        "{}",
        saved.text()
    );
    assert!(!gw.keyring.settings().await.unwrap().self_service);
    let audit = root
        .api(Method::GET, "/.keygate/api/admin/audit", None, None)
        .await;
    assert!(
        json_of(&audit)["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["action"] == "settings")),
        "not audited: {}",
        audit.text()
    );
}

async fn put(b: &mut Browser, token: &str, settings: Value) -> Answer {
    b.api(
        Method::PUT,
        "/.keygate/api/admin/settings",
        Some(token),
        Some(settings),
    )
    .await
}

/// A deletion on one instance's console is acknowledged by every instance
/// of the deployment before it answers: the other, which had the key in its
/// cache, refuses it at once.
#[tokio::test]
async fn a_deletion_answers_once_every_instance_acknowledged() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let one = console_gateway(&redis, &up, &app).await;
    let two = console_gateway(&redis, &up, &app).await;
    let (key, id) = one.key("alice").await;
    // Cached on the second instance.
    assert_eq!(basic_get(&two, &key, "/").await.status, StatusCode::OK);
    assert_eq!(basic_get(&two, &key, "/").await.status, StatusCode::OK);

    let (mut root, _, token) = console(&one, &app, ADMIN).await;
    let done = revoke(&mut root, &token, json!({ "ids": [id] })).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let done = json_of(&done);
    assert_eq!(done["revoked"], 1);
    let acked = done["instances"]["acknowledged"].as_array().unwrap();
    assert_eq!(acked.len(), 2, "both instances: {done}");
    assert!(done["instances"]["unacknowledged"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        basic_get(&two, &key, "/").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// What the console says it revokes counts each id and secret once, as
/// the revocation does: the same id picked three times is one selected key.
#[tokio::test]
async fn the_console_names_each_repeated_id_or_secret_once() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = console_gateway(&redis, &up, &app).await;
    let (key, id) = gw.key("alice").await;
    let (mut root, _, token) = console(&gw, &app, ADMIN).await;
    for (body, said) in [
        (
            json!({ "ids": [id, id, id], "dry_run": true }),
            "1 selected key",
        ),
        (
            json!({ "keys": [key, key], "dry_run": true }),
            "1 leaked key",
        ),
    ] {
        let a = revoke(&mut root, &token, body).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        let a = json_of(&a);
        assert_eq!(a["would_revoke"], 1, "{a}");
        assert_eq!(a["filter"], said, "{a}");
    }
    let done = json_of(&revoke(&mut root, &token, json!({ "ids": [id, id] })).await);
    assert_eq!(
        (done["revoked"].clone(), done["filter"].clone()),
        (json!(1), json!("1 selected key"))
    );
}

/// A deletion the store made but not every instance could be told about
/// (Redis refuses keygate's PUBLISH): the console's answer says the keys
/// are revoked and the fleet not told, as `POST /v1/revoke` does, with the
/// count; not "the key store is unavailable", which reads as nothing done.
#[tokio::test]
async fn a_deletion_the_fleet_did_not_hear_of_says_the_keys_are_revoked() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let dir = tempfile::tempdir().unwrap();
    let mut b = builder(&up.url());
    b.redis(&redis, dir.path(), "console")
        .set("store", &format!("url = \"{}\"", redis.own_user("keygate")))
        .set("auth", "anonymous = \"reject\"")
        .set("admin", &format!("users = [\"{ADMIN}\"]"));
    app.configure(&mut b);
    let gw = b.start().await;
    gw.await_fleet(&client::h1(&gw.ca)).await;
    let (key, id) = gw.key("alice").await;
    let (mut root, _, token) = console(&gw, &app, ADMIN).await;
    redis.acl(&["SETUSER", "keygate", "-publish"]);

    let done = revoke(&mut root, &token, json!({ "ids": [id] })).await;
    assert_eq!(
        done.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        done.text()
    );
    assert!(done.headers.contains_key("retry-after"));
    let body = json_of(&done);
    assert_eq!(body["revoked"], 1, "{body}");
    let said = body["error"].as_str().unwrap();
    assert!(
        said.contains("revoked 1 key in the store")
            && said.contains("could not tell every keygate instance"),
        "{said}"
    );
    assert!(!said.starts_with("the key store is unavailable"), "{said}");
    // It is revoked: this instance refuses it.
    assert_eq!(
        basic_get(&gw, &key, "/").await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// The grid's Rotate (issue 13): any user's key, the successor shown once,
/// the old key working for the grace asked; refusals as on the user's page.
#[tokio::test]
async fn an_admin_rotates_any_users_key_and_the_audit_names_the_admin() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = console_gateway(&redis, &up, &app).await;
    let (old, id) = gw.key("alice").await;
    let (mut root, _, token) = console(&gw, &app, ADMIN).await;
    let path = format!("/.keygate/api/admin/keys/{id}/rotate");

    // Bad input names the field; nothing is rotated.
    let bad = rotate(&mut root, &token, &path, json!({"grace": "soon"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    assert!(json_of(&bad)["error"]
        .as_str()
        .unwrap()
        .starts_with("grace:"));
    let unknown = rotate(&mut root, &token, &path, json!({"colour": "red"})).await;
    assert_eq!(
        unknown.status,
        StatusCode::BAD_REQUEST,
        "{}",
        unknown.text()
    );
    let missing = rotate(
        &mut root,
        &token,
        "/.keygate/api/admin/keys/no-such-key/rotate",
        json!({}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());
    let get = root.api(Method::GET, &path, None, None).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);

    let done = rotate(&mut root, &token, &path, json!({"grace": "1h"})).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.text());
    let done = json_of(&done);
    let new = done["key"].as_str().unwrap().to_owned();
    assert_eq!(done["user"], "alice", "{done}");
    assert_eq!(basic_get(&gw, &new, "/").await.status, StatusCode::OK);
    assert_eq!(basic_get(&gw, &old, "/").await.status, StatusCode::OK);
    let (_, listing) = keys(&mut root, "user=alice&limit=50").await;
    assert!(!listing.to_string().contains(&new), "shown once: {listing}");
    let old_row = listing["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(old_row["rotated_to"], done["id"], "{listing}");

    // Rotated once: again is the page's 409 naming the successor.
    let again = rotate(&mut root, &token, &path, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    assert_eq!(json_of(&again)["rotated_to"], done["id"]);

    let a = root
        .api(Method::GET, "/.keygate/api/admin/audit?limit=1", None, None)
        .await;
    let audit = json_of(&a);
    let latest = &audit["events"][0];
    assert_eq!(latest["action"], "rotate", "{audit}");
    assert_eq!(latest["actor"], ADMIN, "{audit}");
    assert_eq!(latest["source"], "admin-console", "{audit}");
}

#[tokio::test]
async fn head_is_answered_on_the_json_routes_that_answer_get() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = console_gateway(&redis, &up, &app).await;
    let (mut root, _, _) = console(&gw, &app, ADMIN).await;
    let (mut alice, _) = Browser::signed_in(&gw, &app, "alice").await;
    let reads = [
        (true, "/.keygate/api/admin/keys"),
        (true, "/.keygate/api/admin/audit"),
        (true, "/.keygate/api/admin/settings"),
        (false, "/.keygate/api/keys"),
    ];
    for (admin, path) in reads {
        let who = if admin { &mut root } else { &mut alice };
        let get = who.call(Method::GET, path).await;
        let head = who.call(Method::HEAD, path).await;
        assert_eq!(head.status, StatusCode::OK, "HEAD {path}: {}", head.text());
        assert!(head.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            head.headers["content-length"],
            get.body.len().to_string().as_str(),
            "{path}"
        );
    }
    for (path, allow) in [
        ("/.keygate/api/admin/keys", "GET, HEAD"),
        ("/.keygate/api/admin/settings", "GET, HEAD, PUT"),
    ] {
        let a = root.call(Method::DELETE, path).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(a.headers["allow"], allow, "{path}");
    }
}

#[tokio::test]
async fn every_console_route_answers_403_first_to_anyone_but_an_admin() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = console_gateway(&redis, &up, &app).await;
    let (mut root, _, _) = console(&gw, &app, ADMIN).await;
    let (mut carol, _) = Browser::signed_in(&gw, &app, "carol").await;
    let mut nobody = Browser::new(&gw);
    let routes = [
        (
            Method::GET,
            "/.keygate/api/admin/nothing",
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            "/.keygate/api/admin/keys",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/.keygate/api/admin/revoke",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/.keygate/api/admin/keys/x/rotate",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::POST,
            "/.keygate/admin",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (method, path, for_admin) in routes {
        let a = carol.call(method.clone(), path).await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "carol {method} {path}: {}",
            a.text()
        );
        let a = nobody.call(method.clone(), path).await;
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "nobody {method} {path}: {}",
            a.text()
        );
        let a = root.call(method.clone(), path).await;
        assert_eq!(a.status, for_admin, "admin {method} {path}: {}", a.text());
    }
    let a = root.call(Method::GET, "/.keygate/api/admin/nothing").await;
    assert_eq!(json_of(&a)["error"], "no such route");
}

/// The real binary in the `human` log format: a who-am-I name that
/// carries a newline and a whole fake audit line is refused (no user name),
/// and the log line that says so stays one line.
#[tokio::test]
async fn a_newline_in_a_refused_users_name_cannot_forge_a_log_line() {
    use crate::support::bin::{self, Process, BIN};
    use crate::support::tls::Ca;

    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("log forging test CA");
    // Right after write_config's [admin] lines: the admin users.
    let sections = format!(
        "users = [\"alice\"]\n[store]\nkind = \"memory\"\n[log]\naccess_log = false\n\
         [login]\nmethod = \"backend_session\"\nwhoami_url = \"{}\"\nuser_pointer = \"/email\"\n\
         login_url = \"/login\"\n",
        app.whoami_url()
    );
    let cfg = bin::write_config(dir.path(), &ca, "localhost", &up.url(), &sections);
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["serve", "--log-format", "human", "-c"]).arg(&cfg);
    let kg = Process::spawn(cmd);
    let port = crate::support::eventually(
        "keygate listening",
        300,
        std::time::Duration::from_millis(20),
        || async {
            kg.log_lines()
                .iter()
                .filter_map(|l| l.as_str())
                .find_map(|l| {
                    let addr = l.split_once("keygate listening")?.1.split_once("addr=")?.1;
                    addr.split_whitespace()
                        .next()?
                        .parse::<std::net::SocketAddr>()
                        .ok()
                })
        },
    )
    .await
    .port();

    let forged = "2026-12-05T18:20:00.000000Z  INFO keygate::audit: actor=alice action=revoke target=all keys";
    let mut b = Browser::with_client_at(client::h1(&ca), &format!("https://localhost:{port}"));
    b.set_cookie(&app.sign_in(&format!("mallory\n{forged}")));
    let refused = b.get("/.keygate/admin").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    let line = crate::support::eventually(
        "the refusal is logged",
        250,
        std::time::Duration::from_millis(20),
        || async {
            kg.log_lines()
                .iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .find(|l| l.contains("sign-in without a usable user"))
        },
    )
    .await;
    assert!(
        line.contains(r#"user="mallory\n2026-12-05T18:20:00"#),
        "{line}"
    );
    let lines = kg.log_lines();
    assert!(
        !lines
            .iter()
            .filter_map(|l| l.as_str())
            .any(|l| l.starts_with(forged)),
        "{lines:#?}"
    );
}

/// A secret pasted into a console field never comes back in the answer:
/// not in a settings problem, not in a query error.
#[tokio::test]
async fn a_secret_in_a_console_field_is_not_echoed() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = console_gateway(&redis, &up, &app).await;
    let (key, _) = gw.key("bob").await;
    let secret = &key[3..];
    let (mut root, _, token) = console(&gw, &app, ADMIN).await;

    let bad = put(
        &mut root,
        &token,
        json!({
            "self_service": true, "ttl_choices": ["1d", key], "default_ttl": "1d", "max_ttl": "90d"
        }),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    assert!(!bad.text().contains(secret), "{}", bad.text());
    assert!(bad.text().contains("ttl_choices[1]"), "{}", bad.text());

    for query in [format!("sort={key}"), format!("{key}=1")] {
        let (status, answer) = keys(&mut root, &query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(!answer.to_string().contains(secret), "{answer}");
    }
    let a = root
        .api(
            Method::GET,
            &format!("/.keygate/api/admin/audit?{key}=1"),
            None,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert!(!a.text().contains(secret), "{}", a.text());
    let revoke = revoke(&mut root, &token, json!({"users": [key]})).await;
    assert_eq!(revoke.status, StatusCode::BAD_REQUEST, "{}", revoke.text());
    assert_eq!(
        json_of(&revoke)["error"],
        "users[0]: looks like a key secret; revoke it with `keys`"
    );
}
