//! `POST /.keygate/api/rotate`: a key rotates itself with nothing but the
//! key, in each form the gateway accepts; a read key stays read; a chain
//! never outlives `keys.max_ttl` from its first key; a bad key gets the
//! gateway's own 401; off unless `keys.self_rotation = true`.

use std::time::Duration;

use http::{Request, StatusCode};
use keygate::keyring::Ttl;
use keygate::keys::Scope;
use serde_json::Value;

use super::{listed, unix};
use crate::leaks::{basic, fleet, Fleet};
use crate::support::admin::json_of;
use crate::support::body;
use crate::support::client::{send, Answer};

/// `POST /.keygate/api/rotate` on instance `i` with `auth` as the header
/// `(name, value)` and `body` (none: an empty body).
async fn self_rotate(f: &Fleet, i: usize, auth: (&str, String), body: Option<&str>) -> Answer {
    let mut req = Request::post(f.gateways[i].url("/.keygate/api/rotate")).header(auth.0, auth.1);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(body.map_or_else(body::empty, |b| body::full(b.to_owned())))
        .unwrap();
    crate::support::within(10, "an answer", send(&f.clients[i], req)).await
}

fn created(a: &Answer) -> Value {
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    json_of(a)
}

#[tokio::test]
async fn a_read_key_rotates_itself_in_every_credential_form_and_stays_read() {
    let f = fleet(2, "selfrot", |b| {
        b.set("keys", "self_rotation = true");
    })
    .await;
    let gw = &f.gateways[0];
    let (key, id) = gw.key_with("hank", Ttl::Default, Scope::Read).await;

    // Basic, no body: the default grace.
    let v = created(&self_rotate(&f, 1, ("authorization", basic(&key)), None).await);
    assert_eq!(v["rotated_from"], id.as_str());
    assert_eq!(v["scope"], "read");
    assert_eq!(v["user"], "hank");
    let key2 = v["key"].as_str().unwrap().to_owned();
    let id2 = v["id"].as_str().unwrap().to_owned();
    // Both work during the grace period; the new one can only read.
    assert_eq!(f.status(0, &key).await, StatusCode::OK);
    assert_eq!(f.status(1, &key2).await, StatusCode::OK);
    let post = Request::post(gw.url("/"))
        .header("authorization", basic(&key2))
        .body(body::empty())
        .unwrap();
    assert_eq!(
        send(&f.clients[0], post).await.status,
        StatusCode::FORBIDDEN
    );

    // The apikey header, with a grace of nothing: the old key stops at once.
    let v = created(&self_rotate(&f, 0, ("apikey", key2.clone()), Some(r#"{"grace":"0s"}"#)).await);
    let key3 = v["key"].as_str().unwrap().to_owned();
    for i in 0..2 {
        assert_eq!(f.status(i, &key2).await, StatusCode::UNAUTHORIZED);
        assert_eq!(f.status(i, &key3).await, StatusCode::OK);
    }
    // Bearer.
    let v = created(&self_rotate(&f, 1, ("authorization", format!("Bearer {key3}")), None).await);
    assert_eq!(v["scope"], "read");
    let sources: Vec<String> = crate::leaks::audit_events(&f.clients[0], gw, "rotate")
        .await
        .iter()
        .map(|e| e["source"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sources, ["self-rotation"; 3]);
    // A key in its grace period asked again: 409 naming its successor.
    let a = self_rotate(&f, 0, ("authorization", basic(&key)), None).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    assert_eq!(json_of(&a)["rotated_to"], id2.as_str());
    assert_eq!(
        listed(&f, "hank").await.len(),
        3,
        "the first, the third, the fourth key"
    );

    // A bad key gets exactly the gateway's 401.
    // The last character changed (to another one: never the same key).
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let bad = format!("{}{last}", &key[..key.len() - 1]);
    let rotate = self_rotate(&f, 0, ("authorization", basic(&bad)), None).await;
    let get = crate::support::client::get_with_key(&f.clients[0], &gw.url("/"), &bad).await;
    assert_eq!(rotate.status, StatusCode::UNAUTHORIZED);
    assert_eq!(rotate.text(), get.text());
    assert_eq!(
        rotate.headers.get("www-authenticate"),
        get.headers.get("www-authenticate")
    );
    let none = Request::post(gw.url("/.keygate/api/rotate"))
        .body(body::empty())
        .unwrap();
    assert_eq!(
        send(&f.clients[0], none).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A bad body names its field.
    let a = self_rotate(
        &f,
        0,
        ("authorization", basic(&key3)),
        Some(r#"{"grace":"forever"}"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        json_of(&a)["error"].as_str().unwrap().starts_with("grace"),
        "{}",
        a.text()
    );
    // The key pasted where a duration goes is not repeated back.
    let pasted = format!(r#"{{"grace":"{key3}"}}"#);
    let a = self_rotate(&f, 0, ("authorization", basic(&key3)), Some(&pasted)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let said = json_of(&a)["error"].as_str().unwrap().to_owned();
    assert!(
        said.starts_with("grace") && !said.contains(&key3[3..]),
        "{said}"
    );
}

#[tokio::test]
async fn a_chain_of_self_rotations_ends_max_ttl_after_its_first_key() {
    let f = fleet(1, "selfrot-chain", |b| {
        b.set("keys", "self_rotation = true")
            .set("keys", "max_ttl = \"1h\"")
            .set("keys", "default_ttl = \"1h\"");
    })
    .await;
    let gw = &f.gateways[0];
    let (key, _) = gw
        .key_with("ivy", Ttl::For(Duration::from_secs(3600)), Scope::Full)
        .await;
    let first = listed(&f, "ivy").await[0].clone();
    let chain_end = unix(&first["created_at"]) + 3600;
    let mut key = key;
    for _ in 0..2 {
        // Each successor would live an hour from now; the chain caps it.
        let a = self_rotate(
            &f,
            0,
            ("authorization", basic(&key)),
            Some(r#"{"ttl":"1h"}"#),
        )
        .await;
        let v = created(&a);
        assert_eq!(unix(&v["expires_at"]), chain_end, "{v}");
        key = v["key"].as_str().unwrap().to_owned();
    }
    // An admin's rotation vouches anew: a new chain, a full hour.
    let id = listed(&f, "ivy")
        .await
        .iter()
        .find(|k| k.get("rotated_to").is_none())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = super::rotated(&super::rotate(&f, 0, &id, serde_json::json!({"ttl": "1h"})).await);
    assert!(unix(&v["expires_at"]) >= unix(&v["created_at"]) + 3599);
}

#[tokio::test]
async fn self_rotation_is_off_unless_configured() {
    let f = fleet(1, "selfrot-off", |_| {}).await;
    let (key, _) = f.gateways[0].key("jack").await;
    let a = self_rotate(&f, 0, ("authorization", basic(&key)), None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    assert!(json_of(&a)["error"]
        .as_str()
        .unwrap()
        .contains("self_rotation"));
    assert_eq!(listed(&f, "jack").await.len(), 1);
    let get = Request::get(f.gateways[0].url("/.keygate/api/rotate"))
        .body(body::empty())
        .unwrap();
    assert_eq!(
        send(&f.clients[0], get).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

/// The cron recipe of docs/key-lifecycle.md, run as written with sh, curl
/// and a `.netrc`: the file ends up holding the successor, which works, and
/// the old key works on through its grace period.
#[tokio::test]
async fn the_documented_cron_recipe_swaps_the_key_in_netrc() {
    let f = fleet(1, "selfrot-cron", |b| {
        b.set("keys", "self_rotation = true");
    })
    .await;
    let gw = &f.gateways[0];
    let (old, _) = gw.key("olga").await;
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/key-lifecycle.md"
    ))
    .unwrap();
    let after = &doc[doc.find("### A cron job").expect("the recipe's heading")..];
    let start = after.find("```sh\n").unwrap() + "```sh\n".len();
    let script = &after[start..start + after[start..].find("```").unwrap()];

    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("rotate-keygate-key");
    std::fs::write(&path, script).unwrap();
    let ca = home.path().join("ca.pem");
    std::fs::write(&ca, gw.ca.pem()).unwrap();
    let netrc = home.path().join(".netrc");
    std::fs::write(
        &netrc,
        format!("machine other.example.org login apikey password keep-me\nmachine 127.0.0.1 login apikey password {old}\n"),
    )
    .unwrap();
    let base = gw.url("");
    let out = tokio::process::Command::new("sh")
        .arg(&path)
        .arg("127.0.0.1")
        .arg(base.trim_end_matches('/'))
        .env("HOME", home.path())
        .env("CURL_CA_BUNDLE", &ca)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("rotated; old key works until 20"),
        "{stdout}"
    );

    let text = std::fs::read_to_string(&netrc).unwrap();
    assert!(
        text.contains("machine other.example.org login apikey password keep-me"),
        "{text}"
    );
    let new = text
        .lines()
        .find_map(|l| l.strip_prefix("machine 127.0.0.1 login apikey password "))
        .expect("the gateway's line")
        .to_owned();
    assert!(new.starts_with("kg_") && new != old, "{text}");
    assert!(!text.contains(&old), "the old key is gone from .netrc");
    assert_eq!(f.status(0, &new).await, StatusCode::OK);
    assert_eq!(
        f.status(0, &old).await,
        StatusCode::OK,
        "the old key's grace period"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&netrc).unwrap().permissions().mode() & 0o077,
        0
    );
}

/// A script that rotates in a loop makes no more keys an hour than
/// `self_service.creates_per_hour`.
#[tokio::test]
async fn self_rotations_count_against_creates_per_hour() {
    let f = fleet(2, "selfrot-limit", |b| {
        b.set("keys", "self_rotation = true")
            .set("self_service", "creates_per_hour = 2");
    })
    .await;
    let (mut key, _) = f.gateways[0].key("pia").await;
    for i in 0..2 {
        let v = created(&self_rotate(&f, i, ("authorization", basic(&key)), None).await);
        key = v["key"].as_str().unwrap().to_owned();
    }
    let a = self_rotate(&f, 1, ("authorization", basic(&key)), None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text());
    assert!(json_of(&a)["error"]
        .as_str()
        .unwrap()
        .contains("creates_per_hour"));
    let wait: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait));
    assert_eq!(
        listed(&f, "pia").await.len(),
        3,
        "no key made past the limit"
    );
    assert_eq!(f.status(0, &key).await, StatusCode::OK);
}

/// A rotation that makes no key costs no quota: a script retrying after
/// a lost answer gets 409 over and over, and those 409s left its owner
/// unable to make the new key the 409 asks for (429 for up to an hour).
#[tokio::test]
async fn a_refused_self_rotation_costs_no_quota() {
    let f = fleet(2, "selfrot-refund", |b| {
        b.set("keys", "self_rotation = true")
            .set("self_service", "creates_per_hour = 2");
    })
    .await;
    let (old, _) = f.gateways[0].key("quinn").await;
    let v = created(&self_rotate(&f, 0, ("authorization", basic(&old)), None).await);
    let new = v["key"].as_str().unwrap().to_owned();
    for i in 0..3 {
        let a = self_rotate(&f, i % 2, ("authorization", basic(&old)), None).await;
        assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    }
    // One made, one left this hour, whatever the 409s.
    created(&self_rotate(&f, 1, ("authorization", basic(&new)), None).await);
    assert_eq!(listed(&f, "quinn").await.len(), 3);
}

/// A browser holds a Basic credential a person typed at keygate's 401
/// prompt and sends it along with another site's form (Chromium does, see
/// below): such a request must not rotate the key, whose successor would
/// be shown in a tab or frame the person may never look at while the old
/// key stops after its grace period. What a browser sends from another
/// site (a form, a fetch with a `text/plain` body that could even ask for
/// `grace` 0), with and without `Sec-Fetch-Site`, is refused before the
/// credential is looked at; a script's request, or one a browser marks
/// same-origin, still rotates.
#[tokio::test]
async fn a_browser_on_another_site_cannot_rotate_the_key_it_remembers() {
    let f = fleet(1, "selfrot-csrf", |b| {
        b.set("keys", "self_rotation = true");
    })
    .await;
    let gw = &f.gateways[0];
    let (key, _) = gw.key("quinn").await;
    let own = gw.url("");
    let own = own.trim_end_matches('/');
    let browser = |headers: &[(&str, &str)]| {
        let mut req = Request::post(gw.url("/.keygate/api/rotate"))
            .header("authorization", basic(&key))
            .header("content-type", "text/plain;charset=UTF-8");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(body::full(r#"{"grace":"0s"}"#.to_owned()))
            .unwrap()
    };
    for (what, headers) in [
        (
            "a cross-site form",
            vec![
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate"),
            ],
        ),
        (
            "a sibling host's fetch",
            vec![
                ("origin", "https://app.127.0.0.1.nip.io"),
                ("sec-fetch-site", "same-site"),
                ("sec-fetch-mode", "no-cors"),
            ],
        ),
        (
            "a browser without Sec-Fetch-*",
            vec![("origin", "https://evil.example")],
        ),
        ("an opaque origin", vec![("origin", "null")]),
    ] {
        let a = send(&f.clients[0], browser(&headers)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{what}: {}", a.text());
        assert!(
            !a.headers.contains_key("www-authenticate"),
            "{what}: no prompt that makes the browser send its credential"
        );
        assert!(
            json_of(&a)["error"]
                .as_str()
                .unwrap()
                .contains("another site"),
            "{what}: {}",
            a.text()
        );
        assert_eq!(f.status(0, &key).await, StatusCode::OK, "{what}");
    }
    assert_eq!(listed(&f, "quinn").await.len(), 1, "nothing rotated");

    // The page's own origin, as the browser marks it: rotated.
    let same = send(
        &f.clients[0],
        browser(&[("origin", own), ("sec-fetch-site", "same-origin")]),
    )
    .await;
    created(&same);
    assert_eq!(f.status(0, &key).await, StatusCode::UNAUTHORIZED);
}

/// `/.keygate/api/rotate` is under `/.keygate/` and answers with a key
/// secret: its answers carry the headers of every keygate page (no
/// framing, no sniffing, no referrer, not stored), as the page's own
/// Rotate does.
#[tokio::test]
async fn self_rotation_answers_carry_keygates_own_headers() {
    let f = fleet(1, "selfrot-headers", |b| {
        b.set("keys", "self_rotation = true");
    })
    .await;
    let (key, _) = f.gateways[0].key("sam").await;
    let rotated = self_rotate(&f, 0, ("authorization", basic(&key)), None).await;
    created(&rotated);
    let refused = self_rotate(&f, 0, ("authorization", basic("kg_nope")), None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    for a in [&rotated, &refused] {
        let h = &a.headers;
        assert_eq!(h["x-frame-options"], "DENY", "{h:?}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{h:?}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{h:?}");
        assert_eq!(h["cache-control"], "no-store", "{h:?}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }
}

/// The same in Chromium: a person typed the key at keygate's Basic prompt
/// (here: in the URL), then opened another site, whose form posts to
/// `/.keygate/api/rotate`; the browser sends the credential it remembers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn another_sites_form_in_chromium_cannot_rotate_the_remembered_key() {
    let f = fleet(1, "selfrot-chromium", |b| {
        b.set("keys", "self_rotation = true");
    })
    .await;
    let gw = &f.gateways[0];
    let (key, _) = gw.key("rita").await;
    let other_site = crate::support::upstream::Upstream::start().await;
    let browser = crate::support::browser::Browser::start().await;
    let with_key = gw
        .url("/")
        .replacen("https://", &format!("https://apikey:{key}@"), 1);
    browser.goto(&with_key).await;
    browser.goto(&other_site.url()).await;
    let form = r#"
        var f = document.createElement("form");
        f.method = "POST";
        f.action = arguments[0];
        f.enctype = "text/plain";
        document.body.appendChild(f);
        f.submit();
        return "sent";
    "#;
    let rotate = gw.url("/.keygate/api/rotate");
    browser
        .client
        .execute(form, vec![rotate.clone().into()])
        .await
        .unwrap();
    browser.wait_url(&rotate).await;
    let answer = browser
        .wait_text("body", "the answer", |t| !t.is_empty())
        .await;
    assert!(answer.contains("another site"), "{answer}");
    assert!(!answer.contains("kg_"), "{answer}");
    assert_eq!(listed(&f, "rita").await.len(), 1, "nothing rotated");
    assert_eq!(f.status(0, &key).await, StatusCode::OK);
}

/// A self-rotation body that starts and never ends is answered 408 naming
/// the problem within half of `leaks.answer_within`, and the key is not
/// rotated: the key's holder could otherwise hold a connection for ever.
#[tokio::test]
async fn a_body_that_never_ends_is_408_and_rotates_nothing() {
    let f = fleet(1, "selfrot-stall", |b| {
        b.set("keys", "self_rotation = true")
            .set("leaks", "answer_within = \"2s\"");
    })
    .await;
    let gw = &f.gateways[0];
    let (key, _) = gw.key("ivy").await;
    let req = Request::post(gw.url("/.keygate/api/rotate")).header("authorization", basic(&key));
    let a = crate::support::client::send_unfinished(&f.clients[0], req, b"{\"grace\": ").await;
    crate::support::client::assert_slow_body(&a);
    assert_eq!(gw.keyring.list(Some("ivy")).await.unwrap().len(), 1);
}

/// A key picks its successor's lifetime only among `ttl_choices`, as the
/// page's Rotate does: a lifetime the page does not offer (here 2d and 7d,
/// within `max_ttl`) is 400 naming `ttl`, and no key is made. Without a
/// `ttl` the successor keeps the old key's lifetime, offered or not.
#[tokio::test]
async fn a_self_rotation_takes_only_an_offered_lifetime() {
    let f = fleet(1, "selfrot-choices", |b| {
        b.set("keys", "self_rotation = true")
            .set("keys", "default_ttl = \"1d\"")
            .set("keys", "max_ttl = \"30d\"");
    })
    .await;
    let gw = &f.gateways[0];
    let (key, _) = gw
        .key_with(
            "rory",
            Ttl::For(Duration::from_secs(3 * 86_400)),
            Scope::Full,
        )
        .await;
    for ttl in ["2d", "7d", "172800s"] {
        let body = format!(r#"{{"ttl":"{ttl}"}}"#);
        let a = self_rotate(&f, 0, ("authorization", basic(&key)), Some(&body)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{ttl}: {}", a.text());
        let said = json_of(&a)["error"].as_str().unwrap().to_owned();
        assert!(
            said.starts_with("ttl") && said.contains("offered"),
            "{said}"
        );
    }
    assert_eq!(listed(&f, "rory").await.len(), 1, "no key made");
    assert_eq!(f.status(0, &key).await, StatusCode::OK);
    // An offered lifetime (the defaults offer 1d and 30d here).
    let v = created(
        &self_rotate(
            &f,
            0,
            ("authorization", basic(&key)),
            Some(r#"{"ttl":"1d"}"#),
        )
        .await,
    );
    assert_eq!(unix(&v["expires_at"]), unix(&v["created_at"]) + 86_400);
    // No ttl: the old key's own 3 days, which no choice names.
    let (other, _) = gw
        .key_with(
            "rory",
            Ttl::For(Duration::from_secs(3 * 86_400)),
            Scope::Full,
        )
        .await;
    let v = created(&self_rotate(&f, 0, ("authorization", basic(&other)), None).await);
    assert_eq!(unix(&v["expires_at"]), unix(&v["created_at"]) + 3 * 86_400);
}

/// A self-rotated key near its chain's end lives only what is left of the
/// chain. The documented way out (a person or an admin rotates it: a new
/// chain) must not inherit that remainder as "the old key's own lifetime":
/// otherwise a script's key shrinks with each chain and a weekly rotation
/// finds it dead. The new chain's first key gets at least `default_ttl`.
#[tokio::test]
async fn a_new_chain_does_not_inherit_the_remainder_of_the_old_one() {
    let f = fleet(1, "selfrot-newchain", |b| {
        b.set("keys", "self_rotation = true")
            .set("keys", "max_ttl = \"1m\"")
            .set("keys", "default_ttl = \"1m\"");
    })
    .await;
    let (key, _) = f.gateways[0]
        .key_with("sven", Ttl::For(Duration::from_secs(60)), Scope::Full)
        .await;
    let first = listed(&f, "sven").await[0].clone();
    let started = unix(&first["created_at"]);
    // Real time must pass for the chain to have less than a lifetime left.
    let waited = std::time::Instant::now();
    while keygate::keys::unix_now() < started + 3 {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the clock moves"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cut = created(&self_rotate(&f, 0, ("authorization", basic(&key)), None).await);
    assert_eq!(
        unix(&cut["expires_at"]),
        started + 60,
        "cut at the chain's end: {cut}"
    );
    assert!(unix(&cut["expires_at"]) - unix(&cut["created_at"]) <= 57);
    // An admin's rotation without a ttl: a new chain, a full default_ttl.
    let id = cut["id"].as_str().unwrap();
    let v = super::rotated(&super::rotate(&f, 0, id, serde_json::json!({})).await);
    assert_eq!(
        unix(&v["expires_at"]) - unix(&v["created_at"]),
        60,
        "a new chain's first key: {v}"
    );
}
