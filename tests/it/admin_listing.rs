//! The admin API's listing and filtered revocation under bad or stale input,
//! on a real Redis: a filter that matches nothing, a page revoked by someone
//! else in the meantime, cursors that were forged or made for another
//! listing, page sizes out of bounds.

use http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::admin::{call, json_of};
use crate::support::body;
use crate::support::client::{self, send, Answer, HttpsClient};
use crate::support::gateway::{builder, TestGateway};
use crate::support::redis::RedisServer;
use crate::support::upstream::Upstream;

/// A gateway on `redis` (namespace `ns`) that rejects requests without a key.
async fn gateway(up: &Upstream, redis: &RedisServer, dir: &std::path::Path) -> TestGateway {
    builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .redis(redis, dir, "listing")
        .start()
        .await
}

/// An upstream, a Redis, and a gateway on it with a client.
struct Setup {
    up: Upstream,
    redis: RedisServer,
    dir: tempfile::TempDir,
    gw: TestGateway,
    c: HttpsClient,
}

async fn setup() -> Setup {
    let (up, redis, dir) = (
        Upstream::start().await,
        RedisServer::start(),
        tempfile::tempdir().unwrap(),
    );
    let gw = gateway(&up, &redis, dir.path()).await;
    let c = client::h1(&gw.ca);
    Setup {
        up,
        redis,
        dir,
        gw,
        c,
    }
}

/// `POST /v1/keys`: the secret and the id.
async fn mint(c: &HttpsClient, gw: &TestGateway, user: &str, label: &str) -> (String, String) {
    let a = call(
        c,
        gw,
        Method::POST,
        "/v1/keys",
        Some(json!({"user": user, "label": label, "ttl": "30d"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let v = json_of(&a);
    (
        v["key"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    )
}

/// What the main listener answers a request carrying `key`.
async fn status_with(c: &HttpsClient, gw: &TestGateway, key: &str) -> StatusCode {
    let req = Request::get(gw.url("/"))
        .header("apikey", key)
        .body(body::empty())
        .unwrap();
    send(c, req).await.status
}

async fn revoke(c: &HttpsClient, gw: &TestGateway, body: Value) -> Answer {
    call(c, gw, Method::POST, "/v1/revoke", Some(body)).await
}

/// The `error` of a 400, asserted to be one.
fn bad_request(a: &Answer, what: &str) -> String {
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", a.text());
    json_of(a)["error"].as_str().unwrap().to_owned()
}

fn ids_of(page: &Value) -> Vec<String> {
    page["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_filter_that_matches_nothing_counts_zero_and_revokes_nothing() {
    // The upstream, Redis and folder stay in `s` until the end.
    let s = setup().await;
    let (gw, c) = (s.gw, s.c);
    let (alice, _) = mint(&c, &gw, "alice", "ci").await;
    let (bob, _) = mint(&c, &gw, "bob", "laptop").await;

    for filter in [
        json!({"user": "nobody"}),
        json!({"label": "no such label"}),
        json!({"user": "alice", "label": "laptop"}),
        json!({"expires_before": "1970-01-02T00:00:00Z"}),
    ] {
        let dry = revoke(&c, &gw, json!({"filter": filter, "dry_run": true})).await;
        assert_eq!(dry.status, StatusCode::OK, "{filter}: {}", dry.text());
        assert_eq!(json_of(&dry)["would_revoke"], 0, "{filter}");
        let done = revoke(&c, &gw, json!({ "filter": filter })).await;
        assert_eq!(done.status, StatusCode::OK, "{filter}: {}", done.text());
        assert_eq!(json_of(&done)["revoked"], 0, "{filter}");

        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                filter
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k, v.as_str().unwrap())),
            )
            .finish();
        let page = json_of(&call(&c, &gw, Method::GET, &format!("/v1/keys?{query}"), None).await);
        assert_eq!(page["keys"], json!([]), "{filter}");
        assert_eq!(page["next_cursor"], Value::Null, "{filter}");
    }
    assert_eq!(status_with(&c, &gw, &alice).await, StatusCode::OK);
    assert_eq!(status_with(&c, &gw, &bob).await, StatusCode::OK);

    // No filter at all is not "match everything": that is {"all": true}.
    let err = bad_request(
        &revoke(&c, &gw, json!({"filter": {}})).await,
        "empty filter",
    );
    assert!(
        err.starts_with("filter:") && err.contains("\"all\""),
        "{err}"
    );
    let err = bad_request(
        &revoke(&c, &gw, json!({"filter": {"expires_before": "soon"}})).await,
        "bad time",
    );
    assert!(err.starts_with("filter.expires_before:"), "{err}");
    let err = bad_request(
        &revoke(&c, &gw, json!({"filter": {"colour": "red"}})).await,
        "unknown filter field",
    );
    assert!(err.contains("filter") && err.contains("colour"), "{err}");
    let err = bad_request(
        &revoke(
            &c,
            &gw,
            json!({"filter": {"user": "alice"}, "users": ["alice"]}),
        )
        .await,
        "two kinds",
    );
    assert!(err.contains("exactly one"), "{err}");
    assert_eq!(
        status_with(&c, &gw, &alice).await,
        StatusCode::OK,
        "a refused revocation revoked"
    );
}

#[tokio::test]
async fn a_stale_page_revokes_what_is_left_and_says_how_many() {
    // Two instances on one store: two admins, each on their own.
    let Setup {
        up,
        redis,
        dir,
        gw: one,
        c,
    } = setup().await;
    let other = gateway(&up, &redis, dir.path()).await;
    let c2 = client::h1(&other.ca);
    let mut secrets = Vec::new();
    for i in 0..6 {
        secrets.push(mint(&c, &one, "carol", if i % 2 == 0 { "ci" } else { "laptop" }).await);
    }
    let page = json_of(&call(&c, &one, Method::GET, "/v1/keys?user=carol&limit=4", None).await);
    let shown = ids_of(&page);
    assert_eq!(shown.len(), 4);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();

    // Meanwhile the other admin revokes two of the rows on screen.
    let gone = revoke(&c2, &other, json!({"ids": [shown[0], shown[1]]})).await;
    assert_eq!(json_of(&gone)["revoked"], 2, "{}", gone.text());

    // The stale page: a dry run and the revocation count what is left.
    let dry = revoke(&c, &one, json!({"ids": shown, "dry_run": true})).await;
    assert_eq!(json_of(&dry)["would_revoke"], 2, "{}", dry.text());
    let done = revoke(&c, &one, json!({ "ids": shown })).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(json_of(&done)["revoked"], 2);
    let again = revoke(&c, &one, json!({ "ids": shown })).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(
        json_of(&again)["revoked"],
        0,
        "revoking twice is not an error"
    );

    // The cursor of the stale page outlives the keys it passed.
    let rest = call(
        &c,
        &one,
        Method::GET,
        &format!("/v1/keys?user=carol&limit=4&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text());
    let rest = ids_of(&json_of(&rest));
    assert_eq!(rest.len(), 2);
    assert!(
        rest.iter().all(|id| !shown.contains(id)),
        "a page repeated a row"
    );

    // A filtered revocation after the other admin took part of it.
    let laptop: Vec<&String> = secrets
        .iter()
        .filter(|(_, id)| rest.contains(id))
        .map(|(key, _)| key)
        .collect();
    assert_eq!(laptop.len(), 2);
    let part = revoke(&c2, &other, json!({"keys": [laptop[0]]})).await;
    assert_eq!(json_of(&part)["revoked"], 1, "{}", part.text());
    let filter = json!({"filter": {"user": "carol"}});
    let done = revoke(&c, &one, filter.clone()).await;
    assert_eq!(json_of(&done)["revoked"], 1, "{}", done.text());
    assert_eq!(json_of(&revoke(&c, &one, filter).await)["revoked"], 0);
    for (key, _) in &secrets {
        assert_eq!(status_with(&c, &one, key).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            status_with(&c2, &other, key).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn a_forged_or_foreign_cursor_is_400_naming_cursor() {
    let Setup {
        up,
        redis,
        dir: _dir,
        gw,
        c,
    } = setup().await;
    for user in ["dave", "dave", "dave", "erin", "erin"] {
        mint(&c, &gw, user, "ci").await;
    }
    let page = json_of(&call(&c, &gw, Method::GET, "/v1/keys?user=dave&limit=1", None).await);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let ok = call(
        &c,
        &gw,
        Method::GET,
        &format!("/v1/keys?user=dave&limit=1&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(
        ok.status,
        StatusCode::OK,
        "the cursor's own listing: {}",
        ok.text()
    );

    // Flip one character of the position, then of the signature.
    let flip = |at: usize| {
        let mut b = cursor.clone().into_bytes();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let dot = cursor.find('.').expect("position.signature");
    let bad = [
        ("user=dave", flip(2), "a changed position"),
        ("user=dave", flip(dot + 3), "a changed signature"),
        ("user=dave", "AbCdEfGhIjKl".to_owned(), "a key id"),
        ("user=dave", "not a cursor".to_owned(), "junk"),
        ("user=erin", cursor.clone(), "another user"),
        ("", cursor.clone(), "no filter"),
        ("user=dave&label=ci", cursor.clone(), "one more filter"),
        ("user=dave&sort=expires", cursor.clone(), "another sort"),
        ("user=dave&order=asc", cursor.clone(), "another order"),
    ];
    for (query, cursor, what) in bad {
        let cursor: String = form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
        let a = call(
            &c,
            &gw,
            Method::GET,
            &format!("/v1/keys?{query}&limit=1&cursor={cursor}"),
            None,
        )
        .await;
        let err = bad_request(&a, what);
        assert!(err.starts_with("cursor:"), "{what}: {err}");
    }

    // Another deployment (its own secret) on the same Redis.
    let other_dir = tempfile::tempdir().unwrap();
    let secret = other_dir.path().join("other-secret");
    std::fs::write(&secret, "another-deployment-secret-0123456789abcdef\n").unwrap();
    let other = builder(&up.url())
        .redis(&redis, other_dir.path(), "other")
        .set("store", &format!("secret_file = \"{}\"", secret.display()))
        .start()
        .await;
    let a = call(
        &client::h1(&other.ca),
        &other,
        Method::GET,
        &format!("/v1/keys?user=dave&limit=1&cursor={cursor}"),
        None,
    )
    .await;
    assert!(bad_request(&a, "another deployment").starts_with("cursor:"));
}

#[tokio::test]
async fn a_page_size_outside_1_to_1000_is_400_naming_limit() {
    // The upstream, Redis and folder stay in `s` until the end.
    let s = setup().await;
    let (gw, c) = (s.gw, s.c);
    for _ in 0..3 {
        mint(&c, &gw, "frank", "").await;
    }
    for limit in ["0", "1001", "-1", "ten", "", "1.5", "99999999999999999999"] {
        for route in ["/v1/keys", "/v1/audit"] {
            let path = format!("{route}?limit={limit}");
            let err = bad_request(&call(&c, &gw, Method::GET, &path, None).await, &path);
            assert!(
                err.starts_with("limit:") && err.contains("1000"),
                "{path}: {err}"
            );
        }
    }
    for (limit, shown) in [("1", 1), ("1000", 3)] {
        let a = call(
            &c,
            &gw,
            Method::GET,
            &format!("/v1/keys?limit={limit}"),
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_eq!(ids_of(&json_of(&a)).len(), shown, "limit={limit}");
    }
}

/// A `user` to list by that no key can have is 400 naming `user`, as the
/// same user is in a revocation's `filter.user` and `keygate keys list
/// --user`: an unset variable in a script (`?user=`) or a pasted secret
/// must not read as "this user has no keys". The value is not echoed.
#[tokio::test]
async fn a_user_no_key_can_have_is_400_naming_user_not_an_empty_listing() {
    let s = setup().await;
    let (gw, c) = (s.gw, s.c);
    let (secret, _) = mint(&c, &gw, "grace", "").await;
    for (user, why) in [
        ("", "must not be empty"),
        ("%20grace", "white space"),
        ("grace%0A", "control"),
        (secret.as_str(), "looks like a key secret"),
    ] {
        let path = format!("/v1/keys?user={user}");
        let err = bad_request(&call(&c, &gw, Method::GET, &path, None).await, &path);
        assert!(
            err.starts_with("user: ") && err.contains(why),
            "{path}: {err}"
        );
        assert!(!err.contains(&secret), "{err}");
    }
    let a = call(&c, &gw, Method::GET, "/v1/keys?user=grace", None).await;
    assert_eq!(ids_of(&json_of(&a)).len(), 1, "{}", a.text());
}
