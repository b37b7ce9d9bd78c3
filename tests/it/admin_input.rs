//! Client input the admin API refuses, or reads as the standards say: names
//! that would forge log lines, secrets pasted into the wrong field (never
//! echoed back, never audited in clear), padded user names, duplicates in a
//! revocation, RFC 3339 offsets, HEAD, the bearer scheme's case.

use std::time::Duration;

use http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::admin::{call, create_key, json_of};
use crate::support::client::{self, HttpsClient};
use crate::support::gateway::{builder, TestGateway};
use crate::support::redis::RedisServer;
use crate::support::upstream::Upstream;
use crate::support::ADMIN_TOKEN;

async fn setup() -> (Upstream, TestGateway, HttpsClient) {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    (up, gw, c)
}

/// A call that must be 400: its error message.
async fn refused(
    c: &HttpsClient,
    gw: &TestGateway,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> String {
    let a = call(c, gw, method, path, body.clone()).await;
    assert_eq!(
        a.status,
        StatusCode::BAD_REQUEST,
        "{path} {body:?}: {}",
        a.text()
    );
    json_of(&a)["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn control_characters_in_names_to_revoke_are_refused_naming_the_field() {
    let (_up, gw, c) = setup().await;
    let forged = "nobody\n2026-12-05T18:11:00.000000Z  INFO keygate::audit: actor=alice";
    let cases = [
        (
            json!({"users": ["bob", forged]}),
            "users[1]: contains a control character: a user name is 1-256 bytes of UTF-8",
        ),
        (
            json!({"filter": {"user": "zz\r\nFAKE LINE"}}),
            "filter.user: contains a control character: a user name is 1-256 bytes of UTF-8",
        ),
        (
            json!({"filter": {"label": "a\u{1b}[31m"}, "dry_run": true}),
            "filter.label: must not contain control characters",
        ),
    ];
    for (body, expected) in cases {
        let err = refused(&c, &gw, Method::POST, "/v1/revoke", Some(body)).await;
        assert!(err.starts_with(expected), "{err}");
    }
    let audit = json_of(&call(&c, &gw, Method::GET, "/v1/audit", None).await);
    assert!(!audit.to_string().contains("FAKE"), "{audit}");
}

/// `{"filter": {"label": ""}}` (a script's unset variable) would match
/// every key without a label: refused, and nothing revoked.
#[tokio::test]
async fn an_empty_label_filter_revokes_nothing_and_is_refused() {
    let (_up, gw, c) = setup().await;
    let (_, id) = gw.key("alice").await;
    for body in [
        json!({"filter": {"label": ""}}),
        json!({"filter": {"label": "", "user": "alice"}, "dry_run": true}),
    ] {
        let err = refused(&c, &gw, Method::POST, "/v1/revoke", Some(body)).await;
        assert!(err.starts_with("filter.label: must not be empty"), "{err}");
    }
    let listed = json_of(&call(&c, &gw, Method::GET, "/v1/keys", None).await);
    assert_eq!(listed["keys"][0]["id"], id.as_str(), "{listed}");
}

#[tokio::test]
async fn a_secret_is_never_echoed_in_an_error_nor_audited_in_clear() {
    let (_up, gw, c) = setup().await;
    let (key, _) = create_key(&c, &gw, "alice").await;
    let bodies = [
        (
            "/v1/revoke",
            json!({"keys": key}),
            "keys: invalid type: string",
        ),
        (
            "/v1/revoke",
            json!({"ids": ["x"], key.as_str(): true}),
            "unknown field",
        ),
        (
            "/v1/keys",
            json!({"user": "a", "ttl": key}),
            "ttl: invalid duration",
        ),
        ("/v1/keys", json!({"user": "a", "scope": key}), "scope: "),
        (
            "/v1/keys",
            json!({"user": key, "label": 5}),
            "label: invalid type",
        ),
    ];
    for (path, body, names) in bodies {
        let err = refused(&c, &gw, Method::POST, path, Some(body.clone())).await;
        assert!(
            err.contains(names) && !err.contains(&key[3..]),
            "{body}: {err}"
        );
    }
    for query in [
        format!("sort={key}"),
        format!("{key}=1"),
        format!("order={key}"),
    ] {
        let err = refused(&c, &gw, Method::GET, &format!("/v1/keys?{query}"), None).await;
        assert!(
            err.contains("[redacted key]") && !err.contains(&key[3..]),
            "{query}: {err}"
        );
    }
    let err = refused(&c, &gw, Method::GET, &format!("/v1/audit?{key}=1"), None).await;
    assert!(!err.contains(&key[3..]), "{err}");
    let settings =
        json!({"self_service": true, "ttl_choices": [key], "default_ttl": "1d", "max_ttl": "90d"});
    let err = refused(&c, &gw, Method::PUT, "/v1/settings", Some(settings)).await;
    assert!(
        err.contains("ttl_choices[0]") && !err.contains(&key[3..]),
        "{err}"
    );

    // Pasted where a user name or a label goes: refused, not audited.
    let misplaced = [
        (json!({"users": ["bob", format!(" {key} ")]}), "users[1]"),
        (json!({"ids": ["AAAAAAAAAAAA", key]}), "ids[1]"),
        (json!({"filter": {"user": key}}), "filter.user"),
        (
            json!({"filter": {"label": key}, "dry_run": true}),
            "filter.label",
        ),
    ];
    for (body, field) in misplaced {
        let err = refused(&c, &gw, Method::POST, "/v1/revoke", Some(body)).await;
        assert_eq!(
            err,
            format!("{field}: looks like a key secret; revoke it with `keys`")
        );
    }
    // Pasted as a new key's owner or label: refused too, or it would be
    // audited, announced and sent upstream as the user's name.
    let created = [
        (
            json!({ "user": key }),
            "user: looks like a key secret; give the name of the key's owner",
        ),
        (
            json!({ "user": "bob", "label": format!("ci {key}") }),
            "label: looks like a key secret; a label is shown in listings and logs",
        ),
    ];
    for (body, said) in created {
        let err = refused(&c, &gw, Method::POST, "/v1/keys", Some(body)).await;
        assert_eq!(err, said);
    }
    let audit = json_of(&call(&c, &gw, Method::GET, "/v1/audit", None).await);
    assert!(!audit.to_string().contains(&key[3..]), "{audit}");
}

#[tokio::test]
async fn a_user_name_padded_with_spaces_is_refused() {
    let (_up, gw, c) = setup().await;
    for user in ["  bob  ", " bob", "bob "] {
        let err = refused(
            &c,
            &gw,
            Method::POST,
            "/v1/keys",
            Some(json!({ "user": user })),
        )
        .await;
        assert!(
            err.starts_with("user: starts or ends with white space: a user name is 1-256 bytes")
                && err.ends_with("(it is sent to the application as an HTTP header value)"),
            "{err}"
        );
    }
    create_key(&c, &gw, "bob smith").await;
}

#[tokio::test]
async fn a_dry_run_counts_repeated_ids_and_users_once_as_the_revocation_does() {
    let (_up, gw, c) = setup().await;
    let (_, id) = create_key(&c, &gw, "one").await;
    create_key(&c, &gw, "dup").await;
    create_key(&c, &gw, "dup").await;
    let revoke = |body: Value| {
        let (c, gw) = (&c, &gw);
        async move {
            let a = call(c, gw, Method::POST, "/v1/revoke", Some(body)).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text());
            json_of(&a)
        }
    };
    let ids = json!([id, id, id]);
    let users = json!(["dup", "dup"]);
    assert_eq!(
        revoke(json!({"ids": ids, "dry_run": true})).await["would_revoke"],
        1
    );
    assert_eq!(
        revoke(json!({"users": users, "dry_run": true})).await["would_revoke"],
        2
    );
    assert_eq!(revoke(json!({"ids": ids})).await["revoked"], 1);
    assert_eq!(revoke(json!({"users": users})).await["revoked"], 2);
    let audit = json_of(&call(&c, &gw, Method::GET, "/v1/audit", None).await);
    let targets: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "revoke")
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, [format!("key {id}"), "users dup".to_owned()]);
}

#[tokio::test]
async fn rfc3339_times_with_an_offset_or_in_lower_case_are_read() {
    let (_up, gw, c) = setup().await;
    let (_, id) = create_key(&c, &gw, "alice").await;
    let expires = json_of(&call(&c, &gw, Method::GET, "/v1/keys", None).await)["keys"][0]
        ["expires_at"]
        .as_str()
        .unwrap()
        .to_owned();
    // One second after the key expires: in UTC-05:00 (read with the wrong
    // sign, ten hours before it), and in UTC with a lower-case t and z.
    let second_after = humantime::parse_rfc3339(&expires).unwrap() + Duration::from_secs(1);
    let utc = humantime::format_rfc3339_seconds(second_after).to_string();
    let five_hours_west =
        humantime::format_rfc3339_seconds(second_after - Duration::from_secs(5 * 3600))
            .to_string()
            .replace('Z', "-05:00");
    let after = five_hours_west.clone();
    for t in [five_hours_west, utc.replace('T', "t").replace('Z', "z")] {
        let page = json_of(
            &call(
                &c,
                &gw,
                Method::GET,
                &format!("/v1/keys?expires_before={}", t.replace('+', "%2B")),
                None,
            )
            .await,
        );
        assert_eq!(page["keys"][0]["id"], id.as_str(), "{t}: {page}");
    }
    let page = json_of(
        &call(
            &c,
            &gw,
            Method::GET,
            "/v1/keys?expires_before=2000-01-01T00:00:00%2B01:00",
            None,
        )
        .await,
    );
    assert_eq!(page["keys"], json!([]), "{page}");
    let dry = json_of(
        &call(
            &c,
            &gw,
            Method::POST,
            "/v1/revoke",
            Some(json!({"filter": {"expires_before": after}, "dry_run": true})),
        )
        .await,
    );
    assert_eq!(dry["would_revoke"], 1, "{dry}");
    let audit = call(
        &c,
        &gw,
        Method::GET,
        "/v1/audit?since=2000-01-01t00:00:00%2B01:00",
        None,
    )
    .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text());

    let err = refused(
        &c,
        &gw,
        Method::GET,
        "/v1/keys?expires_before=2027-01-01T00:00:00%2B0500",
        None,
    )
    .await;
    assert!(err.starts_with("expires_before: "), "{err}");
    let err = refused(&c, &gw, Method::GET, "/v1/audit?since=soon", None).await;
    assert!(err.starts_with("since: "), "{err}");
    let err = refused(
        &c,
        &gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({"filter": {"expires_before": "2027-01-01T00:00:00+25:00"}})),
    )
    .await;
    assert!(err.starts_with("filter.expires_before: "), "{err}");
}

#[tokio::test]
async fn head_is_answered_wherever_get_is_and_listed_in_allow() {
    let (_up, gw, c) = setup().await;
    create_key(&c, &gw, "alice").await;
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/openapi.json",
        "/v1/keys",
        "/v1/audit",
        "/v1/settings",
    ] {
        let get = call(&c, &gw, Method::GET, path, None).await;
        let head = call(&c, &gw, Method::HEAD, path, None).await;
        assert_eq!(head.status, StatusCode::OK, "HEAD {path}: {}", head.text());
        assert!(head.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            head.headers["content-type"], get.headers["content-type"],
            "{path}"
        );
        if path != "/metrics" && path != "/readyz" {
            assert_eq!(
                head.headers["content-length"],
                get.body.len().to_string().as_str(),
                "{path}"
            );
        }
    }
    for (method, path, allow) in [
        (Method::PUT, "/healthz", "GET, HEAD"),
        (Method::DELETE, "/v1/keys", "GET, HEAD, POST"),
        (Method::POST, "/v1/audit", "GET, HEAD"),
        (Method::POST, "/v1/settings", "GET, HEAD, PUT"),
        (Method::HEAD, "/v1/revoke", "POST"),
    ] {
        let a = call(&c, &gw, method.clone(), path, None).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(a.headers["allow"], allow, "{method} {path}");
    }
    // HEAD needs the token as GET does.
    let req = http::Request::head(gw.admin_url("/v1/keys"))
        .body(crate::support::body::empty())
        .unwrap();
    assert_eq!(client::send(&c, req).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_bearer_scheme_is_read_in_any_case_and_only_once() {
    let (_up, gw, c) = setup().await;
    for scheme in ["BEARER", "bearer", "bEaReR"] {
        let req = http::Request::get(gw.admin_url("/v1/keys"))
            .header(
                "authorization",
                format!("{scheme} {}", crate::support::ADMIN_TOKEN),
            )
            .body(crate::support::body::empty())
            .unwrap();
        assert_eq!(
            client::send(&c, req).await.status,
            StatusCode::OK,
            "{scheme}"
        );
    }
    // Two Authorization headers, a good one first: which names the admin
    // is a guess, so neither does.
    let req = http::Request::get(gw.admin_url("/v1/keys"))
        .header(
            "authorization",
            format!("Bearer {}", crate::support::ADMIN_TOKEN),
        )
        .header("authorization", "Bearer someone-else")
        .body(crate::support::body::empty())
        .unwrap();
    assert_eq!(client::send(&c, req).await.status, StatusCode::UNAUTHORIZED);
}

/// Emoji, their joiners and variation selectors are a label's own, unlike
/// a user name's (`keys::user`): only what reorders the text is refused.
#[tokio::test]
async fn a_label_may_hold_emoji_sequences() {
    let (_up, gw, c) = setup().await;
    let label = "\u{1F469}\u{200D}\u{1F4BB} laptop \u{2764}\u{FE0F}";
    let a = call(
        &c,
        &gw,
        Method::POST,
        "/v1/keys",
        Some(json!({"user": "alice", "label": label})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    assert_eq!(json_of(&a)["label"], label);
}

#[tokio::test]
async fn an_audit_target_names_users_so_one_cannot_read_as_another() {
    let (_up, gw, c) = setup().await;
    let revoke = |body: Value| {
        let (c, gw) = (&c, &gw);
        async move {
            let a = call(c, gw, Method::POST, "/v1/revoke", Some(body)).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        }
    };
    // One user named "alice, bob", then the two users alice and bob; a
    // user filter holding what reads as a label filter, then both filters.
    revoke(json!({"users": ["alice, bob"]})).await;
    revoke(json!({"users": ["alice", "bob"]})).await;
    revoke(json!({"filter": {"user": "x, label=\"prod\""}})).await;
    revoke(json!({"filter": {"user": "x", "label": "prod"}})).await;
    let audit = json_of(&call(&c, &gw, Method::GET, "/v1/audit", None).await);
    let targets: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets.len(), 4, "{targets:?}");
    assert_ne!(targets[0], targets[1], "{targets:?}");
    assert_ne!(targets[2], targets[3], "{targets:?}");
    // Plain names stay as they were.
    assert_eq!(targets[1], "users alice, bob");
    assert_eq!(targets[3], "keys matching user=x, label=\"prod\"");
}

#[tokio::test]
async fn every_audit_action_is_one_the_openapi_document_lists() {
    let (_up, gw, c) = setup().await;
    let (_, id) = create_key(&c, &gw, "ada").await;
    let a = call(
        &c,
        &gw,
        Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        Some(json!({})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let settings = json_of(&call(&c, &gw, Method::GET, "/v1/settings", None).await);
    let a = call(&c, &gw, Method::PUT, "/v1/settings", Some(settings)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let a = call(
        &c,
        &gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({"users": ["ada"]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());

    let doc = json_of(&call(&c, &gw, Method::GET, "/v1/openapi.json", None).await);
    let listed: Vec<&str> = doc["components"]["schemas"]["AuditEvent"]["properties"]["action"]
        ["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let audit = json_of(&call(&c, &gw, Method::GET, "/v1/audit", None).await);
    let mut seen: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    seen.dedup();
    assert_eq!(seen, ["create", "rotate", "settings", "revoke"]);
    for action in seen {
        assert!(
            listed.contains(&action),
            "the audit log has action {action:?}, which the document's AuditEvent does not list ({listed:?})"
        );
    }
}

#[tokio::test]
async fn the_audit_log_pages_by_event_id_without_repeats_or_gaps() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start().await;
    let in_memory = builder(&up.url()).start().await;
    let in_redis = builder(&up.url())
        .redis(&redis, dir.path(), "pager")
        .start()
        .await;
    for gw in [in_memory, in_redis] {
        pages_by_event_id(&client::h1(&gw.ca), &gw).await;
    }
}

/// Six creations, read four at a time: the same events as in one read
/// (creations come faster than one a millisecond, so `since` could not).
async fn pages_by_event_id(c: &HttpsClient, gw: &TestGateway) {
    for i in 0..6 {
        create_key(c, gw, &format!("pager{i}")).await;
    }
    let everything = json_of(&call(c, gw, Method::GET, "/v1/audit", None).await);
    let everything = everything["events"].as_array().unwrap().clone();
    assert_eq!(everything.len(), 6);
    let mut read = Vec::new();
    let mut path = "/v1/audit?limit=4".to_owned();
    for _ in 0..10 {
        let a = call(c, gw, Method::GET, &path, None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        let page = json_of(&a)["events"].as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        path = format!("/v1/audit?limit=4&after={}", last["id"].as_str().unwrap());
        read.extend(page);
    }
    assert_eq!(read, everything);

    for (query, field) in [
        ("after=soon", "after: not an event id"),
        (
            "after=1-0&since=2026-01-01T00:00:00Z",
            "after: give since or after",
        ),
    ] {
        let err = refused(c, gw, Method::GET, &format!("/v1/audit?{query}"), None).await;
        assert!(err.starts_with(field), "{query}: {err}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_an_answer_the_openapi_document_lists() {
    let (_up, gw, c) = setup().await;
    let doc = json_of(&call(&c, &gw, Method::GET, "/v1/openapi.json", None).await);
    // A JSON string longer than the admin API's 8 MiB.
    let huge = json!({ "user": "a".repeat(9 << 20) });
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            let m: Method = method.to_uppercase().parse().unwrap();
            let concrete = path.replace("{id}", "AAAAAAAAAAAA");
            let a = call(&c, &gw, m, &concrete, Some(huge.clone())).await;
            assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{method} {path}");
            assert!(
                op["responses"].get("413").is_some(),
                "{method} {path} answers 413, which the document does not list"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 4,
        "POST /v1/keys, /v1/revoke, rotate, PUT /v1/settings"
    );
}

#[tokio::test]
async fn a_revocation_of_several_ids_names_them_in_the_audit_log() {
    let (_up, gw, c) = setup().await;
    let (_, one) = create_key(&c, &gw, "ids").await;
    let (_, two) = create_key(&c, &gw, "ids").await;
    let revoked = revoke_and_audit(&c, &gw, json!({"ids": [one, two, one]}), 2).await;
    assert_eq!(revoked["target"], format!("keys {one}, {two}"), "{revoked}");
    assert_eq!(revoked["count"], 2);
}

/// Each secret counted once (the same secret twice is one leaked secret).
#[tokio::test]
async fn a_revocation_of_one_leaked_secret_twice_is_audited_as_one() {
    let (_up, gw, c) = setup().await;
    let (secret, id) = create_key(&c, &gw, "twice").await;
    let body = json!({"keys": [secret, format!(" {secret} ")]});
    let revoked = revoke_and_audit(&c, &gw, body, 1).await;
    assert_eq!(
        revoked["target"],
        format!("1 leaked secret: key {id}"),
        "{revoked}"
    );
}

#[tokio::test]
async fn a_revocation_of_leaked_secrets_names_the_keys_by_id_never_by_secret() {
    let (_up, gw, c) = setup().await;
    let (secret, id) = create_key(&c, &gw, "leaky").await;
    let body = json!({"keys": [secret, secret, "kg_junk"]});
    let revoked = revoke_and_audit(&c, &gw, body, 1).await;
    assert_eq!(
        revoked["target"],
        format!("2 leaked secrets: key {id}"),
        "{revoked}"
    );
    assert!(!revoked.to_string().contains(&secret[secret.len() - 20..]));
}

/// Revoke `body`, which must revoke `count` keys: the audit event it wrote.
async fn revoke_and_audit(c: &HttpsClient, gw: &TestGateway, body: Value, count: u64) -> Value {
    let a = call(c, gw, Method::POST, "/v1/revoke", Some(body)).await;
    assert_eq!(json_of(&a)["revoked"], count, "{}", a.text());
    let audit = json_of(&call(c, gw, Method::GET, "/v1/audit", None).await);
    audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "revoke")
        .unwrap()
        .clone()
}

/// An admin JSON body that starts and never ends is answered 408 naming
/// the problem within half of `leaks.answer_within`, as a body sent to
/// `/.keygate/revoke` is: no idle timeout runs while a request is in
/// flight, so it held its connection for ever.
#[tokio::test]
async fn a_json_body_that_never_ends_is_408_naming_the_problem() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("leaks", "answer_within = \"2s\"")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let req = Request::post(gw.admin_url("/v1/keys"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    let a = client::send_unfinished(&c, req, b"{\"user\": ").await;
    client::assert_slow_body(&a);
}
