//! The admin API as docs/reference.md's table fixes it: routes, status codes, errors that
//! name the field, bearer tokens, pagination, health and the OpenAPI document.

use std::collections::HashSet;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::admin::{call, json_of, NEW_KEY_FIELDS};
use crate::support::body;
use crate::support::client::{self, get, send, HttpsClient};
use crate::support::gateway::{builder, TestGateway};
use crate::support::redis::RedisServer;
use crate::support::upstream::Upstream;
use crate::support::{eventually, within, ADMIN_TOKEN};

async fn setup() -> (Upstream, TestGateway, HttpsClient) {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .set("keys", "max_ttl = \"90d\"")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    (up, gw, c)
}

#[tokio::test]
async fn a_key_created_through_the_api_authenticates_and_deleting_it_stops_it() {
    let (up, gw, c) = setup().await;
    let a = call(
        &c,
        &gw,
        Method::POST,
        "/v1/keys",
        Some(json!({"user": "alice", "ttl": "7d", "label": "ci", "scope": "full"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let created = json_of(&a);
    for field in NEW_KEY_FIELDS {
        assert!(created.get(field).is_some(), "missing {field}: {created}");
    }
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let req = Request::get(gw.url("/"))
        .header("apikey", key)
        .body(body::empty())
        .unwrap();
    assert_eq!(send(&c, req).await.status, StatusCode::OK);
    assert_eq!(up.last().headers["x-remote-user"], "alice");

    assert_eq!(
        call(&c, &gw, Method::DELETE, &format!("/v1/keys/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let req = Request::get(gw.url("/"))
        .header("apikey", key)
        .body(body::empty())
        .unwrap();
    assert_eq!(
        send(&c, req).await.status,
        StatusCode::UNAUTHORIZED,
        "a deleted key still works"
    );
    assert_eq!(
        call(&c, &gw, Method::DELETE, &format!("/v1/keys/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&c, &gw, Method::DELETE, "/v1/keys/no-such-id", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let never = call(
        &c,
        &gw,
        Method::POST,
        "/v1/keys",
        Some(json!({"user": "bob"})),
    )
    .await;
    assert_eq!(json_of(&never)["scope"], "full");
    assert!(
        json_of(&never)["expires_at"].is_string(),
        "default_ttl applies"
    );
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field() {
    let (_up, gw, c) = setup().await;
    let cases = [
        (
            json!({"user": "a", "ttl": "100d"}),
            "ttl: 100d is longer than max_ttl (90d)",
        ),
        (
            json!({"user": "a", "ttl": "0s"}),
            "ttl: must be greater than zero",
        ),
        (
            json!({"user": "a", "ttl": "1500ms"}),
            "ttl: must be a whole number of seconds",
        ),
        (json!({"user": "a", "ttl": "soon"}), "ttl: invalid duration"),
        (
            json!({"user": "a", "ttl": "300000000000y"}),
            "ttl: duration \"300000000000y\" is longer than 100 years",
        ),
        (
            json!({"user": "a", "ttl": "never"}),
            "ttl: \"never\" is not allowed",
        ),
        (
            json!({"user": "a", "scope": "write"}),
            "scope: \"write\" is not one of",
        ),
        (json!({"user": 5}), "user: invalid type: integer"),
        (
            json!({"user": "a", "colour": "red"}),
            "unknown field `colour`",
        ),
        (json!({"ttl": "1d"}), "missing field `user`"),
        (
            json!({"user": ""}),
            "user: must not be empty: a user name is 1-256 bytes",
        ),
        (
            json!({"user": "a\nb"}),
            "user: contains a control character: a user name is 1-256 bytes",
        ),
        // A direction override could turn around the sentence a label is shown in.
        (
            json!({"user": "a", "label": "ci \u{202E}pot"}),
            "label: must be at most 200 characters without control characters or direction overrides",
        ),
        // serde would read a struct's fields from an array, in order.
        (
            json!(["a", "1d", "", "full"]),
            "invalid JSON body: expected an object",
        ),
    ];
    for (body, expected) in cases {
        let a = call(&c, &gw, Method::POST, "/v1/keys", Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        let err = json_of(&a)["error"].as_str().unwrap().to_owned();
        assert!(
            err.contains(expected),
            "{body}: {err:?} does not contain {expected:?}"
        );
    }
    // Cut short: in a field's value, or after it (where serde's path is lost).
    for (cut, said) in [
        ("{\"user\": ", "user: EOF while parsing a value"),
        (
            "{\"user\": \"a\"",
            "invalid JSON body: EOF while parsing an object",
        ),
    ] {
        let req = Request::post(gw.admin_url("/v1/keys"))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .header("content-type", "application/json")
            .body(body::full(cut))
            .unwrap();
        let a = send(&c, req).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        let err = json_of(&a)["error"].as_str().unwrap().to_owned();
        assert!(err.starts_with(said), "{cut}: {err}");
    }

    let req = Request::post(gw.admin_url("/v1/keys"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "text/plain")
        .body(body::full("{\"user\":\"a\"}"))
        .unwrap();
    assert_eq!(
        send(&c, req).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        call(&c, &gw, Method::PUT, "/v1/keys", None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        call(&c, &gw, Method::GET, "/v1/revoke", None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        call(&c, &gw, Method::GET, "/v1/nothing", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&c, &gw, Method::GET, "/v1/keys?limit=0", None)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&c, &gw, Method::GET, "/v1/keys?colour=red", None)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let (_up, gw, c) = setup().await;
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some("Basic dGVzdA=="),
    ] {
        let mut req = Request::get(gw.admin_url("/v1/keys"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let a = send(&c, req.body(body::empty()).unwrap()).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert!(json_of(&a)["error"].is_string());
    }
}

#[tokio::test]
async fn listing_pages_by_cursor_and_never_shows_a_secret() {
    let (_up, gw, c) = setup().await;
    let mut secrets = Vec::new();
    for i in 0..5 {
        let a = call(
            &c,
            &gw,
            Method::POST,
            "/v1/keys",
            Some(json!({"user": if i < 3 { "carol" } else { "dave" }})),
        )
        .await;
        secrets.push(json_of(&a)["key"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/v1/keys?limit=2&cursor={c}"),
            None => "/v1/keys?limit=2".into(),
        };
        let a = call(&c, &gw, Method::GET, &path, None).await;
        assert_eq!(a.status, StatusCode::OK);
        for s in &secrets {
            assert!(!a.text().contains(&s[s.len() - 40..]), "a secret is listed");
        }
        let page = json_of(&a);
        assert!(page["keys"].as_array().unwrap().len() <= 2);
        seen.extend(
            page["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_str().unwrap().to_owned()),
        );
        // A key created mid-listing must not disturb the pages already served.
        if cursor.is_none() {
            call(
                &c,
                &gw,
                Method::POST,
                "/v1/keys",
                Some(json!({"user": "erin"})),
            )
            .await;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an id was listed twice");
    assert!(seen.len() >= 5, "listed {} of at least 5", seen.len());
    let carol = json_of(&call(&c, &gw, Method::GET, "/v1/keys?user=carol", None).await);
    assert_eq!(carol["keys"].as_array().unwrap().len(), 3);
    assert!(carol["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["user"] == "carol"));
}

#[tokio::test]
async fn bulk_revocation_by_users_leaked_keys_and_all() {
    let (_up, gw, c) = setup().await;
    let mk = |user: &'static str| {
        let (c, gw) = (&c, &gw);
        async move {
            json_of(&call(c, gw, Method::POST, "/v1/keys", Some(json!({"user": user}))).await)
                ["key"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let _f1 = mk("frank").await;
    let _f2 = mk("frank").await;
    let g = mk("grace").await;
    let _h = mk("heidi").await;
    let revoke = |body: Value| {
        let (c, gw) = (&c, &gw);
        async move { call(c, gw, Method::POST, "/v1/revoke", Some(body)).await }
    };
    assert_eq!(
        json_of(&revoke(json!({"users": ["frank"]})).await)["revoked"],
        2
    );
    assert_eq!(
        json_of(&revoke(json!({"keys": [g, "kg_junk", "not a key"]})).await)["revoked"],
        1
    );
    assert_eq!(
        json_of(&revoke(json!({"ids": ["AAAAAAAAAAAA"]})).await)["revoked"],
        0,
        "an id no key has is no error"
    );
    let typo = revoke(json!({"ids": ["AAAAAAAAAAAA", "bad/id"]})).await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(&typo)["error"],
        "ids[1]: not a key id (12 letters and digits, as GET /v1/keys lists it)"
    );
    assert_eq!(
        revoke(json!({"users": ["x"], "all": true})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        revoke(json!({"all": false})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(revoke(json!({})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&revoke(json!({"all": true})).await)["revoked"], 1);
    let after = mk("ivan").await;
    let req = Request::get(gw.url("/"))
        .header("apikey", &after)
        .body(body::empty())
        .unwrap();
    assert_eq!(
        send(&c, req).await.status,
        StatusCode::OK,
        "a key created after revoke-all works"
    );
}

#[tokio::test]
async fn health_and_readiness_need_no_token_and_follow_the_store() {
    let mut redis = RedisServer::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = builder(&up.url())
        .redis(&redis, dir.path(), "health")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    assert_eq!(
        get(&c, &gw.admin_url("/healthz")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&c, &gw.admin_url("/readyz")).await.status,
        StatusCode::OK
    );
    redis.kill();
    let a = within(
        5,
        "readyz with the store down",
        get(&c, &gw.admin_url("/readyz")),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        get(&c, &gw.admin_url("/healthz")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn readiness_turns_503_as_soon_as_shutdown_starts_draining() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let c = client::h1(&gw.ca);
    // The memory store has no fleet to be in touch with: nothing said of one.
    let ready = get(&c, &gw.admin_url("/readyz")).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(json_of(&ready), serde_json::json!({ "status": "ready" }));
    let in_flight = tokio::spawn({
        let (c, url) = (c.clone(), gw.url("/hold"));
        async move { get(&c, &url).await }
    });
    within(
        10,
        "request held at the upstream",
        up.shared.held.notified(),
    )
    .await;
    let admin_url = gw.admin_url("/readyz");
    let stopping = tokio::spawn(gw.stop());
    eventually(
        "readyz says draining",
        250,
        Duration::from_millis(20),
        || async {
            (get(&c, &admin_url).await.status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
        },
    )
    .await;
    up.shared.release.notify_one();
    assert_eq!(
        within(10, "held request", in_flight).await.unwrap().status,
        StatusCode::OK
    );
    assert!(within(10, "shutdown", stopping).await.unwrap());
}

#[tokio::test]
async fn every_route_in_the_openapi_document_exists() {
    let (_up, gw, c) = setup().await;
    let a = get(&c, &gw.admin_url("/v1/openapi.json")).await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = json_of(&a);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/v1/keys",
        "/v1/keys/{id}",
        "/v1/revoke",
        "/healthz",
        "/readyz",
        "/v1/openapi.json",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let m: Method = method.to_uppercase().parse().unwrap();
            let concrete = path.replace("{id}", "AAAAAAAAAAAA");
            let body = (m == Method::POST || m == Method::PUT).then(|| json!({}));
            let a = call(&c, &gw, m.clone(), &concrete, body).await;
            let documented: Vec<u16> = ops[method]["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            assert!(
                documented.contains(&a.status.as_u16()),
                "{method} {path} answered {} which the document does not list ({documented:?})",
                a.status
            );
        }
    }
}

#[tokio::test]
async fn a_dry_run_counts_without_revoking_and_listing_filters_by_label_and_expiry() {
    let (_up, gw, c) = setup().await;
    let mk = |user: &'static str, label: &'static str, ttl: &'static str| {
        let (c, gw) = (&c, &gw);
        async move {
            let a = call(
                c,
                gw,
                Method::POST,
                "/v1/keys",
                Some(json!({"user": user, "label": label, "ttl": ttl})),
            )
            .await;
            json_of(&a)["key"].as_str().unwrap().to_owned()
        }
    };
    let k1 = mk("judy", "ci", "1d").await;
    mk("judy", "laptop", "60d").await;
    mk("mallory", "ci", "60d").await;

    for (body, would) in [
        (json!({"users": ["judy"], "dry_run": true}), 2),
        (json!({"keys": [k1.clone(), "kg_junk"], "dry_run": true}), 1),
        (json!({"all": true, "dry_run": true}), 3),
    ] {
        let a = call(&c, &gw, Method::POST, "/v1/revoke", Some(body.clone())).await;
        assert_eq!(a.status, StatusCode::OK);
        let v = json_of(&a);
        assert_eq!(v["would_revoke"], would, "{body}");
        assert_eq!(v["revoked"], 0, "{body}");
    }
    let all = json_of(&call(&c, &gw, Method::GET, "/v1/keys", None).await);
    assert_eq!(
        all["keys"].as_array().unwrap().len(),
        3,
        "a dry run revoked something"
    );

    let ci = json_of(&call(&c, &gw, Method::GET, "/v1/keys?label=ci", None).await);
    assert_eq!(ci["keys"].as_array().unwrap().len(), 2);
    let in_a_week = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + Duration::from_secs(7 * 86_400),
    );
    let soon = json_of(
        &call(
            &c,
            &gw,
            Method::GET,
            &format!("/v1/keys?expires_before={in_a_week}"),
            None,
        )
        .await,
    );
    let soon = soon["keys"].as_array().unwrap();
    assert_eq!(soon.len(), 1);
    assert_eq!(soon[0]["label"], "ci");
    assert_eq!(
        call(
            &c,
            &gw,
            Method::GET,
            "/v1/keys?expires_before=tomorrow",
            None
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn metrics_count_requests_auth_outcomes_and_key_changes() {
    let (_up, gw, c) = setup().await;
    let created = json_of(
        &call(
            &c,
            &gw,
            Method::POST,
            "/v1/keys",
            Some(json!({"user": "kim"})),
        )
        .await,
    );
    let key = created["key"].as_str().unwrap();
    let ok = Request::get(gw.url("/"))
        .header("apikey", key)
        .body(body::empty())
        .unwrap();
    assert_eq!(send(&c, ok).await.status, StatusCode::OK);
    let bad = Request::get(gw.url("/"))
        .header("apikey", "kg_nope")
        .body(body::empty())
        .unwrap();
    assert_eq!(send(&c, bad).await.status, StatusCode::UNAUTHORIZED);
    call(
        &c,
        &gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({"users": ["kim"]})),
    )
    .await;

    let a = get(&c, &gw.admin_url("/metrics")).await;
    assert_eq!(a.status, StatusCode::OK, "no token needed");
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics-text"));
    let text = a.text();
    for line in [
        "keygate_http_requests_total{class=\"2xx\"} 1",
        "keygate_http_requests_total{class=\"4xx\"} 1",
        "keygate_auth_total{outcome=\"ok\"} 1",
        "keygate_auth_total{outcome=\"malformed\"} 1",
        "keygate_keys_created_total 1",
        "keygate_keys_revoked_total 1",
        "keygate_upstream_response_seconds_count 1",
        "keygate_store_lookup_seconds_count 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(text.contains("keygate_open_connections"));
    assert!(
        !text.contains(&key[key.len() - 30..]),
        "a secret in the metrics"
    );
}

#[tokio::test]
async fn every_change_is_in_the_audit_stream_with_who_what_and_how_many() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = builder(&up.url())
        .redis(&redis, dir.path(), "audit")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let created = json_of(
        &call(
            &c,
            &gw,
            Method::POST,
            "/v1/keys",
            Some(json!({"user": "lena"})),
        )
        .await,
    );
    call(
        &c,
        &gw,
        Method::POST,
        "/v1/keys",
        Some(json!({"user": "lena"})),
    )
    .await;
    call(
        &c,
        &gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({"users": ["lena"]})),
    )
    .await;
    call(
        &c,
        &gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({"all": true, "dry_run": true})),
    )
    .await;

    let a = call(&c, &gw, Method::GET, "/v1/audit", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let events = json_of(&a)["events"].as_array().unwrap().clone();
    let summary: Vec<(String, String, u64)> = events
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("tester".into(), "create".into(), 1),
            ("tester".into(), "create".into(), 1),
            ("tester".into(), "revoke".into(), 2)
        ],
        "a dry run is not a change"
    );
    assert!(events[0]["target"]
        .as_str()
        .unwrap()
        .contains(created["id"].as_str().unwrap()));
    assert_eq!(events[0]["client"], "127.0.0.1");
    assert!(events.iter().all(|e| !e
        .to_string()
        .contains(&created["key"].as_str().unwrap()[20..])));

    let later =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(60));
    let none = json_of(
        &call(
            &c,
            &gw,
            Method::GET,
            &format!("/v1/audit?since={later}"),
            None,
        )
        .await,
    );
    assert!(none["events"].as_array().unwrap().is_empty());
    assert_eq!(
        call(&c, &gw, Method::GET, "/v1/audit?since=yesterday", None)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

/// schemathesis (from PyPI, installed by scripts/test.sh into
/// target/schemathesis-venv) generates requests from the OpenAPI document:
/// no 500, no answer outside the document, 405 with `Allow`, schema-violating
/// input refused. Business rules that the schema cannot state (a TTL over
/// keys.max_ttl, an unknown key id) are legitimately 400/404, so
/// `positive_data_acceptance` is left out. Its cache goes to a temp dir.
#[tokio::test]
#[ignore = "needs schemathesis: run through scripts/test.sh"]
async fn schemathesis_finds_no_500_and_no_answer_outside_the_schema() {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/schemathesis-venv/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test.sh",
        bin.display()
    );
    let (_up, gw, _c) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, gw.ca.pem()).unwrap();
    let url = format!("https://127.0.0.1:{}/v1/openapi.json", gw.admin_addr.port());
    let out = tokio::process::Command::new(&bin)
        .current_dir(dir.path())
        .args([
            "run",
            &url,
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "-n",
            "60",
        ])
        .args(["-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        // A fixed seed keeps CI reproducible; set KEYGATE_FUZZ_SEED to explore.
        .args([
            "--seed",
            &std::env::var("KEYGATE_FUZZ_SEED").unwrap_or_else(|_| "20261127".into()),
        ])
        .arg("--tls-verify")
        .arg(&ca)
        .kill_on_drop(true)
        .output();
    let out = within(300, "schemathesis run", out).await.unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}

#[tokio::test]
async fn settings_are_validated_shared_by_every_instance_and_rule_new_keys() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let one = builder(&up.url())
        .set("keys", "max_ttl = \"90d\"")
        .redis(&redis, dir.path(), "settings")
        .start()
        .await;
    let two = builder(&up.url())
        .set("keys", "max_ttl = \"90d\"")
        .redis(&redis, dir.path(), "settings")
        .start()
        .await;
    let c1 = client::h1(&one.ca);
    let c2 = client::h1(&two.ca);

    let initial = json_of(&call(&c1, &one, Method::GET, "/v1/settings", None).await);
    assert_eq!(initial["max_ttl"], "90d");
    assert_eq!(initial["default_ttl"], "30d");
    assert_eq!(initial["self_service"], true);

    let bad = call(&c1, &one, Method::PUT, "/v1/settings", Some(json!({
        "self_service": true, "ttl_choices": ["1d", "never", "soon"], "default_ttl": "100d", "max_ttl": "90d"
    }))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let err = json_of(&bad)["error"].as_str().unwrap().to_owned();
    for field in ["default_ttl:", "ttl_choices[1]:", "ttl_choices[2]:"] {
        assert!(err.contains(field), "{field} not named in {err:?}");
    }
    let unknown = call(
        &c1,
        &one,
        Method::PUT,
        "/v1/settings",
        Some(json!({"colour": "red"})),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);

    let new = json!({"self_service": false, "ttl_choices": ["1d", "7d"], "default_ttl": "1d", "max_ttl": "7d"});
    let put = call(&c1, &one, Method::PUT, "/v1/settings", Some(new.clone())).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    // The other instance reads the same settings and applies them.
    assert_eq!(
        json_of(&call(&c2, &two, Method::GET, "/v1/settings", None).await),
        new
    );
    let too_long = call(
        &c2,
        &two,
        Method::POST,
        "/v1/keys",
        Some(json!({"user": "nina", "ttl": "30d"})),
    )
    .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert!(json_of(&too_long)["error"]
        .as_str()
        .unwrap()
        .contains("longer than max_ttl (7d)"));
    let default = json_of(
        &call(
            &c2,
            &two,
            Method::POST,
            "/v1/keys",
            Some(json!({"user": "nina"})),
        )
        .await,
    );
    let created = humantime::parse_rfc3339(default["created_at"].as_str().unwrap()).unwrap();
    let expires = humantime::parse_rfc3339(default["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.duration_since(created).unwrap(),
        Duration::from_secs(86_400)
    );

    let audit = json_of(&call(&c1, &one, Method::GET, "/v1/audit", None).await);
    assert!(audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "settings"));
}

/// `GET /v1/keys/{id}`: the key an id from the access log or a webhook
/// names, as a listing shows it (whose it is, when it expires), never its
/// secret; 404 once it is revoked, and for anything that is no live key's
/// id (a pasted secret included, not echoed); HEAD as GET; other methods
/// 405 naming what the route answers.
#[tokio::test]
async fn one_key_is_read_by_its_id_without_its_secret() {
    let (_up, gw, c) = setup().await;
    let made = json_of(
        &call(
            &c,
            &gw,
            Method::POST,
            "/v1/keys",
            Some(json!({"user": "ivy", "label": "ci deploy"})),
        )
        .await,
    );
    let (id, secret) = (made["id"].as_str().unwrap(), made["key"].as_str().unwrap());
    let path = format!("/v1/keys/{id}");

    let a = call(&c, &gw, Method::GET, &path, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let listed = json_of(&call(&c, &gw, Method::GET, "/v1/keys?user=ivy", None).await);
    assert_eq!(json_of(&a), listed["keys"][0], "as the listing shows it");
    assert!(
        !a.text().contains(&secret[secret.len() - 20..]),
        "{}",
        a.text()
    );
    let head = call(&c, &gw, Method::HEAD, &path, None).await;
    assert_eq!((head.status, head.body.is_empty()), (StatusCode::OK, true));
    let put = call(&c, &gw, Method::PUT, &path, None).await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.headers["allow"], "DELETE, GET, HEAD");

    let by_secret = call(&c, &gw, Method::GET, &format!("/v1/keys/{secret}"), None).await;
    assert_eq!(by_secret.status, StatusCode::NOT_FOUND);
    assert!(!by_secret.text().contains(&secret[secret.len() - 20..]));
    for other in ["/v1/keys/AAAAAAAAAAAA", "/v1/keys/nope", "/v1/keys/"] {
        let a = call(&c, &gw, Method::GET, other, None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{other}: {}", a.text());
    }
    let gone = call(&c, &gw, Method::DELETE, &path, None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let a = call(&c, &gw, Method::GET, &path, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    assert!(a.text().contains("no such key"), "{}", a.text());
}
