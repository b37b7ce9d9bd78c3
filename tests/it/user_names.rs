//! User names that are not ASCII (docs/reference.md, "User names"): a key
//! for `zoë` or `josé@例え.jp` is made, listed, revoked and sent upstream as
//! the name's UTF-8 bytes, over HTTP/1.1 and HTTP/2, on a real Redis; names
//! a listing could not show for what they are are refused, naming the field.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::admin::{call, create_key, json_of};
use crate::support::client::{self, get_with_key, HttpsClient};
use crate::support::gateway::{builder, TestGateway};
use crate::support::redis::RedisServer;
use crate::support::upstream::Upstream;

/// Names an SSO gives that are not ASCII, and one with a Redis Cluster
/// hash tag's braces (the store's key names carry a tag of their own first).
const NAMES: [&str; 4] = ["zoë", "josé@例え.jp", "Jürgen", "ops{team}"];

async fn on_redis(redis: &RedisServer, dir: &std::path::Path) -> (Upstream, TestGateway) {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .redis(redis, dir, "utf8")
        .start()
        .await;
    (up, gw)
}

/// `GET /v1/keys?user=<percent-encoded UTF-8>`: the users of the keys listed.
async fn listed(c: &HttpsClient, gw: &TestGateway, user: &str) -> Vec<String> {
    let q: String = form_urlencoded::byte_serialize(user.as_bytes()).collect();
    let a = call(c, gw, Method::GET, &format!("/v1/keys?user={q}"), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    json_of(&a)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["user"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_utf8_users_key_reaches_the_backend_as_its_bytes_and_is_listed_and_revoked_by_user() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (up, gw) = on_redis(&redis, dir.path()).await;
    let admin = client::h1(&gw.ca);
    for user in NAMES {
        let (key, id) = create_key(&admin, &gw, user).await;
        for proto in ["h1", "h2"] {
            let c = client::by_name(proto, &gw.ca);
            let a = get_with_key(&c, &gw.url("/whoami"), &key).await;
            assert_eq!(
                a.status,
                StatusCode::OK,
                "{user} over {proto}: {}",
                a.text()
            );
            let seen = up.last().headers;
            let sent: Vec<&[u8]> = seen
                .get_all("x-remote-user")
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            assert_eq!(sent, [user.as_bytes()], "{user} over {proto}");
            assert_eq!(seen["x-keygate-key-id"], id.as_str());
        }
        // The listing filter is the name's UTF-8, percent-encoded.
        assert_eq!(listed(&admin, &gw, user).await, [user]);
    }
    // Bytes, not look-alikes: the NFD spelling of zoë is another user.
    assert!(listed(&admin, &gw, "zoe\u{308}").await.is_empty());
    assert_eq!(listed(&admin, &gw, "Jürgen").await, ["Jürgen"]);

    // Revoked by user, the name as given.
    let (key, _) = create_key(&admin, &gw, "zoë").await;
    let a = call(
        &admin,
        &gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({"users": ["zoë", "josé@例え.jp"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(json_of(&a)["revoked"], 3);
    let a = get_with_key(&client::h1(&gw.ca), &gw.url("/"), &key).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(listed(&admin, &gw, "zoë").await.is_empty());
    assert_eq!(listed(&admin, &gw, "Jürgen").await, ["Jürgen"]);
    // And in the audit log as it is.
    let audit = json_of(&call(&admin, &gw, Method::GET, "/v1/audit", None).await);
    assert!(audit.to_string().contains("josé@例え.jp"), "{audit}");
}

/// A 400 from the admin API: its error.
async fn refused(c: &HttpsClient, gw: &TestGateway, path: &str, body: Value) -> String {
    let a = call(c, gw, Method::POST, path, Some(body.clone())).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
    json_of(&a)["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn names_a_listing_cannot_show_as_they_are_are_400_naming_user() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let c = client::h1(&gw.ca);
    let long = "é".repeat(129);
    let cases: [(&str, &str); 9] = [
        ("a\nb", "contains a control character"),
        ("a\u{0}b", "contains a control character"),
        ("a\u{85}b", "contains a control character"),
        (
            "ali\u{202E}ecnarf",
            "contains an invisible or direction-changing",
        ),
        ("zo\u{200B}ë", "contains an invisible or direction-changing"),
        (" zoë", "starts or ends with white space"),
        ("zoë ", "starts or ends with white space"),
        (&long, "is longer than 256 bytes"),
        ("", "must not be empty"),
    ];
    for (user, why) in cases {
        let err = refused(&c, &gw, "/v1/keys", json!({ "user": user })).await;
        assert!(err.starts_with(&format!("user: {why}")), "{user:?}: {err}");
        assert!(err.contains("1-256 bytes of UTF-8"), "{err}");
        let err = refused(&c, &gw, "/v1/revoke", json!({ "users": ["bob", user] })).await;
        assert!(
            err.starts_with(&format!("users[1]: {why}")),
            "{user:?}: {err}"
        );
    }
    let err = refused(
        &c,
        &gw,
        "/v1/revoke",
        json!({"filter": {"user": "a\u{202E}b"}}),
    )
    .await;
    assert!(
        err.starts_with("filter.user: contains an invisible"),
        "{err}"
    );
    // 128 × é is 256 bytes: the longest name.
    create_key(&c, &gw, &"é".repeat(128)).await;
    let keys = json_of(&call(&c, &gw, Method::GET, "/v1/keys", None).await);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
}
