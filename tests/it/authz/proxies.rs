//! Through real proxies (support::front: nginx, Caddy, Traefik, Envoy with
//! the configurations of deploy/), as a user with curl sees it and as the
//! app behind them sees it: no key is a 401 whose challenge reaches curl; a
//! key, in each credential form, reaches the app as its user, without the
//! credential; a client's own identity headers never reach the app; a read
//! key cannot POST; a key over its rate, or a client guessing keys (whatever
//! X-Forwarded-For it sends), gets a 429 with Retry-After; a Redis outage is
//! a 503, never a pass; a revocation is obeyed by the next request, under
//! load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keygate::keyring::Ttl;
use keygate::keys::Scope;

use crate::support::admin::call;
use crate::support::body;
use crate::support::client::{self, basic};
use crate::support::front::{Front, Kind};
use crate::support::gateway::{builder, Builder, TestGateway};
use crate::support::load::{await_traffic_after, finish, no_revoked_key_after, Sent};
use crate::support::redis::RedisServer;
use crate::support::upstream::Upstream;
use crate::support::{curl, eventually, within, Curl};

/// A proxy of `kind` asking a gateway's auth listener, in front of `up`.
struct Setup {
    up: Upstream,
    gw: TestGateway,
    front: Front,
    redis: Option<RedisServer>,
    _dir: tempfile::TempDir,
}

/// `shape` adds to the gateway's config; `redis` puts its keys in a real Redis.
async fn setup(kind: Kind, redis: bool, shape: impl FnOnce(&mut Builder)) -> Setup {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let redis = redis.then(RedisServer::start);
    let mut b = builder(&up.url());
    b.set("auth", "anonymous = \"reject\"")
        .set("authz", "addr = \"127.0.0.1:0\"")
        .set("authz", "trusted_proxies = [\"127.0.0.1/32\"]");
    if !kind.tls() {
        b.set("authz", "plaintext = true");
    }
    if let Some(redis) = &redis {
        b.redis(redis, dir.path(), "authz-proxy");
    }
    shape(&mut b);
    let gw = b.start().await;
    let front = Front::start(kind, &gw, &up.url());
    within(15, "the proxy routes requests", front.ready()).await;
    Setup {
        up,
        gw,
        front,
        redis,
        _dir: dir,
    }
}

/// Response headers as curl printed them (`-i`), lower-cased.
fn head(c: &Curl) -> String {
    c.body.to_lowercase()
}

/// The values the app received for `name` on its last request to `path`.
fn received(up: &Upstream, path: &str, name: &str) -> Vec<String> {
    let last = up
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.uri.path() == path)
        .unwrap_or_else(|| panic!("the app never got {path}"));
    last.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn reached(up: &Upstream, path: &str) -> bool {
    up.requests().iter().any(|r| r.uri.path() == path)
}

async fn no_key_is_a_401_whose_challenge_reaches_curl(kind: Kind) {
    let s = setup(kind, false, |_| {}).await;
    for extra in [vec![], vec!["-u", "apikey:kg_not_a_key"]] {
        let mut args = vec!["-i"];
        args.extend(extra);
        let url = s.front.url("/secret");
        args.push(&url);
        let out = curl(&args).await;
        assert_eq!(out.status, 401, "{kind:?}: {}", out.body);
        assert!(
            head(&out).contains("www-authenticate: basic realm=\"keygate\""),
            "{kind:?}: no challenge in\n{}",
            out.body
        );
    }
    assert!(
        !reached(&s.up, "/secret"),
        "{kind:?} forwarded a refused request"
    );
}

/// Spoofed copies of keygate's headers, in the spellings proxies pass on:
/// CGI and PHP read any mix of `-` and `_` (and PHP `.`) as the same name.
const SPOOFED: [&str; 16] = [
    "-H",
    "X-Remote-User: mallory",
    "-H",
    "X_Remote_User: mallory",
    "-H",
    "X-Remote_User: mallory",
    "-H",
    "X.Remote.User: mallory",
    "-H",
    "X-Keygate-Key-Id: forged",
    "-H",
    "X_Keygate_Key_Id: forged",
    "-H",
    "X-Keygate_Key-Id: forged",
    "-H",
    "x.keygate.key.id: forged",
];

/// None of the spoofed values, under any spelling, reached the app.
fn no_spoofed_header(up: &Upstream, path: &str, kind: Kind) {
    for name in [
        "x-remote-user",
        "x_remote_user",
        "x-remote_user",
        "x.remote.user",
        "x-keygate-key-id",
        "x_keygate_key_id",
        "x-keygate_key-id",
        "x.keygate.key.id",
    ] {
        let values = received(up, path, name);
        assert!(
            values.iter().all(|v| v != "mallory" && v != "forged"),
            "{kind:?}: the app got the client's {name}: {values:?}"
        );
    }
}

async fn a_key_reaches_the_app_as_its_user_without_the_credential(kind: Kind) {
    let s = setup(kind, false, |_| {}).await;
    let (key, id) = s.gw.key("alice@example.org").await;
    let user = format!("apikey:{key}");
    let apikey = format!("apikey: {key}");
    let bearer = format!("Authorization: Bearer {key}");
    for (i, credential) in [["-u", &user], ["-H", &apikey], ["-H", &bearer]]
        .iter()
        .enumerate()
    {
        let path = format!("/data/{i}");
        let url = s.front.url(&format!("{path}?page=2"));
        let mut args = vec!["-i"];
        args.extend(credential);
        args.extend(SPOOFED);
        args.push(&url);
        let out = curl(&args).await;
        assert_eq!(out.status, 200, "{kind:?}: {}", out.body);
        assert!(out.body.ends_with("ok"), "the app's answer: {}", out.body);
        assert_eq!(
            received(&s.up, &path, "x-remote-user"),
            ["alice@example.org"]
        );
        assert_eq!(received(&s.up, &path, "x-keygate-key-id"), [id.as_str()]);
        for credential in ["authorization", "apikey"] {
            assert!(
                received(&s.up, &path, credential).is_empty(),
                "{kind:?}: the app got the key in {credential}"
            );
        }
        no_spoofed_header(&s.up, &path, kind);
    }
}

/// A client's `Connection` header names keygate's headers as hop-by-hop:
/// the proxy must not drop what keygate set, or the app gets a keyed
/// request from nobody (keygate's own listener ignores such names too).
async fn a_clients_connection_header_cannot_name_the_identity_away(kind: Kind) {
    let s = setup(kind, false, |_| {}).await;
    let (key, id) = s.gw.key("carol").await;
    let user = format!("apikey:{key}");
    let url = s.front.url("/hop");
    for connection in [
        "X-Remote-User, X-Keygate-Key-Id",
        "keep-alive, x_remote_user,X-KEYGATE-KEY-ID",
    ] {
        let header = format!("Connection: {connection}");
        let out = curl(&["-i", "-u", &user, "-H", &header, &url]).await;
        assert_eq!(out.status, 200, "{kind:?}: {}", out.body);
        assert_eq!(
            received(&s.up, "/hop", "x-remote-user"),
            ["carol"],
            "{kind:?}: {connection}"
        );
        assert_eq!(
            received(&s.up, "/hop", "x-keygate-key-id"),
            [id.as_str()],
            "{kind:?}: {connection}"
        );
    }
}

async fn a_clients_identity_header_never_reaches_the_app(kind: Kind) {
    // Passthrough: requests without a key go through, as nobody.
    let s = setup(kind, false, |b| {
        b.set("auth", "anonymous = \"passthrough\"");
    })
    .await;
    let url = s.front.url("/anonymous");
    let mut args = vec![];
    args.extend(SPOOFED);
    args.push(&url);
    let out = curl(&args).await;
    assert_eq!(out.status, 200, "{kind:?}: {}", out.body);
    no_spoofed_header(&s.up, "/anonymous", kind);
    for name in ["x-remote-user", "x-keygate-key-id"] {
        // Caddy 2.6 sets a header copy_headers names to "" when keygate's
        // answer has none: the app sees nobody either way.
        let values = received(&s.up, "/anonymous", name);
        assert!(
            values.iter().all(String::is_empty),
            "{kind:?}: {name}: {values:?}"
        );
    }
}

/// With `[login] method = "trusted_header"` trusting the proxy's own
/// address (it is the one that asks), the login header is the proxy's
/// word, never the client's: the shipped configurations clear a client's
/// copy before asking, so a forged SSO user is no one.
async fn a_clients_sso_header_is_no_one(kind: Kind) {
    let s = setup(kind, false, |b| {
        b.set("login", "method = \"trusted_header\"")
            .set("login", "header = \"X-Remote-User\"")
            .set("login", "trusted_proxies = [\"127.0.0.1/32\"]")
            .set("login", "public_url = \"https://app.example.org\"");
    })
    .await;
    let url = s.front.url("/admin");
    let out = curl(&[
        "-i",
        "-X",
        "DELETE",
        "-H",
        "X-Remote-User: admin@example.org",
        &url,
    ])
    .await;
    assert_eq!(out.status, 401, "{kind:?}: {}", out.body);
    assert!(
        !reached(&s.up, "/admin"),
        "{kind:?}: a forged SSO user got through"
    );
}

async fn a_read_key_gets_403_on_post(kind: Kind) {
    let s = setup(kind, false, |_| {}).await;
    let (key, _) = s.gw.key_with("reader", Ttl::Default, Scope::Read).await;
    let user = format!("apikey:{key}");
    let url = s.front.url("/items");
    let post = curl(&["-i", "-X", "POST", "-d", "x=1", "-u", &user, &url]).await;
    assert_eq!(post.status, 403, "{kind:?}: {}", post.body);
    let delete = curl(&["-X", "DELETE", "-u", &user, &url]).await;
    assert_eq!(delete.status, 403, "{kind:?}");
    // Nor a GET that an app honouring method overrides runs as a DELETE.
    for name in [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
    ] {
        let header = format!("{name}: DELETE");
        let out = curl(&["-i", "-u", &user, "-H", &header, &url]).await;
        assert_eq!(out.status, 403, "{kind:?} {name}: {}", out.body);
    }
    assert!(!reached(&s.up, "/items"), "{kind:?} forwarded a write");
    let get = curl(&["-u", &user, &url]).await;
    assert_eq!(get.status, 200, "{kind:?}: {}", get.body);
}

async fn a_redis_outage_is_a_503(kind: Kind) {
    let mut s = setup(kind, true, |b| {
        b.set("cache", "enabled = false");
    })
    .await;
    let (key, _) = s.gw.key("frank").await;
    let user = format!("apikey:{key}");
    let url = s.front.url("/during-outage");
    assert_eq!(curl(&["-u", &user, &url]).await.status, 200);
    s.redis.as_mut().unwrap().kill();
    for _ in 0..3 {
        let out = curl(&["-i", "-u", &user, &url]).await;
        assert_eq!(out.status, 503, "{kind:?}: {}\n{}", out.body, s.front.log());
        // Any 5xx from an auth service is an error to Envoy: its own
        // `status_on_error`, without keygate's headers (docs/external-auth.md).
        let envoys_own = kind == Kind::Envoy && head(&out).contains("server: envoy");
        assert!(
            head(&out).contains("retry-after: 5") || envoys_own,
            "{kind:?}: {}",
            out.body
        );
    }
    let before = s.up.requests().len();
    assert_eq!(curl(&["-u", &user, &url]).await.status, 503);
    assert_eq!(
        s.up.requests().len(),
        before,
        "{kind:?} forwarded during the outage"
    );
}

/// The `Retry-After` seconds of a response curl printed with `-i`.
fn retry_after(out: &Curl) -> u64 {
    head(out)
        .lines()
        .find_map(|l| l.strip_prefix("retry-after:"))
        .unwrap_or_else(|| panic!("no Retry-After in\n{}", out.body))
        .trim()
        .parse()
        .unwrap()
}

async fn rate_limits_are_429s_with_retry_after(kind: Kind) {
    let s = setup(kind, false, |b| {
        b.set("rate_limit", "requests_per_second = 1")
            .set("rate_limit", "failed_auth_per_minute = 3");
    })
    .await;
    // A key over its request rate.
    let (key, _) = s.gw.key("busy").await;
    let user = format!("apikey:{key}");
    let url = s.front.url("/busy");
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let out = curl(&["-i", "-u", &user, &url]).await;
        statuses.push(out.status);
        if out.status == 429 {
            limited = Some(out);
        }
    }
    let limited = limited.unwrap_or_else(|| panic!("{kind:?}: no 429 in {statuses:?}"));
    assert!(
        (1..=2).contains(&retry_after(&limited)),
        "{kind:?}: {}",
        limited.body
    );
    let forwarded =
        s.up.requests()
            .iter()
            .filter(|r| r.uri.path() == "/busy")
            .count();
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert!(allowed >= 1, "{kind:?}: {statuses:?}");
    assert_eq!(forwarded, allowed, "{kind:?} forwarded a limited request");

    // Failed authentications from one client (the proxy names it in
    // X-Forwarded-For): the fourth is refused before any key check.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(curl(&["-u", "apikey:kg_guess", &url]).await.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429], "{kind:?}");
    let out = curl(&["-i", "-u", "apikey:kg_guess", &url]).await;
    assert_eq!(out.status, 429, "{kind:?}: {}", out.body);
    assert!(retry_after(&out) >= 1, "{kind:?}: {}", out.body);
    // Nor can the client reset its budget with an X-Forwarded-For of its
    // own: keygate reads the address the proxy added.
    let forged = ["-u", "apikey:kg_guess", "-H", "X-Forwarded-For: 192.0.2.1"];
    let out = curl(&[&forged[..], &[url.as_str()]].concat()).await;
    assert_eq!(out.status, 429, "{kind:?}: {}", out.body);
}

async fn a_revocation_is_obeyed_by_the_next_request_under_load(kind: Kind) {
    let s = setup(kind, true, |b| {
        // Revoked keys must see 401s, not the failed-auth limit's 429s.
        b.set("rate_limit", "failed_auth_per_minute = 0");
    })
    .await;
    let (victim, victim_id) = s.gw.key("victim").await;
    let (bystander, _) = s.gw.key("bystander").await;
    let http = Client::builder(TokioExecutor::new()).build_http::<body::TestBody>();
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let keys = [(basic(&victim), true), (basic(&bystander), false)];
        let (http, url, stop, log) = (
            http.clone(),
            s.front.url("/load"),
            stop.clone(),
            log.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                let (credential, victim) = &keys[n % 2];
                n += 1;
                let req = Request::get(&url)
                    .header("authorization", credential)
                    .body(body::empty())
                    .unwrap();
                let started = Instant::now();
                let status = http.request(req).await.expect("the proxy answers").status();
                log.lock().unwrap().push(Sent {
                    started,
                    instance: 0,
                    victim: *victim,
                    status,
                });
            }
        }));
    }
    eventually(
        "the victim's key works through the proxy",
        200,
        Duration::from_millis(25),
        || async {
            let log = log.lock().unwrap();
            (log.iter()
                .filter(|s| s.victim && s.status == StatusCode::OK)
                .count()
                >= 20)
                .then_some(())
        },
    )
    .await;

    let admin = client::h1(&s.gw.ca);
    let answer = call(
        &admin,
        &s.gw,
        Method::DELETE,
        &format!("/v1/keys/{victim_id}"),
        None,
    )
    .await;
    let answered = Instant::now();
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    await_traffic_after(&log, answered, 40).await;
    let log = finish(&stop, tasks, log).await;
    let bystanders = no_revoked_key_after(&log, answered);
    assert!(
        bystanders > 0,
        "{kind:?}: the bystander's key stopped working too"
    );
    let refused = log
        .iter()
        .filter(|s| s.started > answered && s.victim)
        .all(|s| s.status == StatusCode::UNAUTHORIZED);
    assert!(
        refused,
        "{kind:?}: the revoked key got something else than 401"
    );
}

/// Every scenario through each proxy, as its own test.
macro_rules! through {
    ($($proxy:ident => $kind:expr),* $(,)?) => {$(
        mod $proxy {
            use super::*;

            const KIND: Kind = $kind;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs nginx, Caddy, Traefik and Envoy: run through scripts/test.sh"]
            async fn no_key_is_a_401_whose_challenge_reaches_curl() {
                super::no_key_is_a_401_whose_challenge_reaches_curl(KIND).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs nginx, Caddy, Traefik and Envoy: run through scripts/test.sh"]
            async fn a_key_reaches_the_app_as_its_user_without_the_credential() {
                super::a_key_reaches_the_app_as_its_user_without_the_credential(KIND).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs nginx, Caddy, Traefik and Envoy: run through scripts/test.sh"]
            async fn a_clients_identity_header_never_reaches_the_app() {
                super::a_clients_identity_header_never_reaches_the_app(KIND).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs nginx, Caddy, Traefik and Envoy: run through scripts/test.sh"]
            async fn a_clients_connection_header_cannot_name_the_identity_away() {
                super::a_clients_connection_header_cannot_name_the_identity_away(KIND).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs nginx, Caddy, Traefik and Envoy: run through scripts/test.sh"]
            async fn a_clients_sso_header_is_no_one() {
                super::a_clients_sso_header_is_no_one(KIND).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs nginx, Caddy, Traefik and Envoy: run through scripts/test.sh"]
            async fn a_read_key_gets_403_on_post() {
                super::a_read_key_gets_403_on_post(KIND).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs nginx, Caddy, Traefik and Envoy: run through scripts/test.sh"]
            async fn rate_limits_are_429s_with_retry_after() {
                super::rate_limits_are_429s_with_retry_after(KIND).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs nginx, Caddy, Traefik and Envoy: run through scripts/test.sh"]
            async fn a_redis_outage_is_a_503() {
                super::a_redis_outage_is_a_503(KIND).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs nginx, Caddy, Traefik and Envoy: run through scripts/test.sh"]
            async fn a_revocation_is_obeyed_by_the_next_request_under_load() {
                super::a_revocation_is_obeyed_by_the_next_request_under_load(KIND).await;
            }
        }
    )*};
}

through!(
    nginx => Kind::Nginx,
    caddy => Kind::Caddy,
    traefik => Kind::Traefik,
    envoy => Kind::Envoy,
);

/// nginx, with deploy/nginx/keygate.conf, passes keygate's
/// `KeyGate-Key-Expires` on to the client for a key expiring soon, and
/// sends none for a key with longer to live. (Caddy and Traefik copy auth
/// answers onto the request to the app, not onto the client's response.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx, Caddy, Traefik and Envoy: run through scripts/test.sh"]
async fn nginx_tells_the_client_when_its_key_expires() {
    use keygate::keys::{rfc3339, unix_now};
    let s = setup(Kind::Nginx, false, |b| {
        b.set("keys", "warn_before = [\"1d\"]");
    })
    .await;
    let day = Duration::from_secs(86400);
    let earliest = unix_now() + day.as_secs() / 2;
    let (soon, _) = s.gw.key_with("nora", Ttl::For(day / 2), Scope::Full).await;
    let latest = unix_now() + day.as_secs() / 2;
    let (later, _) = s.gw.key_with("nora", Ttl::For(day * 30), Scope::Full).await;
    let url = s.front.url("/expiring");
    let head_of = |key: String| {
        let user = format!("apikey:{key}");
        let url = url.clone();
        async move {
            let out = curl(&["-i", "-u", &user, &url]).await;
            assert_eq!(out.status, 200, "{}", out.body);
            out.body.to_ascii_lowercase()
        }
    };
    let head = head_of(soon).await;
    let said = head
        .lines()
        .find_map(|l| l.strip_prefix("keygate-key-expires: "))
        .unwrap_or_else(|| panic!("no keygate-key-expires in {head}"));
    assert!(
        (earliest..=latest).any(|t| rfc3339(t).to_ascii_lowercase() == said.trim()),
        "{said} is not the key's expiry"
    );
    let head = head_of(later).await;
    assert!(!head.contains("keygate-key-expires"), "{head}");
}
