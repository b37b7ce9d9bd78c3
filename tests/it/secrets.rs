//! No key secret in any log line: the real binary at debug level, fed valid,
//! wrong, revoked and malformed keys in every credential form.

use std::time::Duration;

use base64::Engine;
use http::Request;

use crate::support::bin::{self, Process};
use crate::support::body;
use crate::support::client::{self, send};
use crate::support::eventually;
use crate::support::redis::{store_section, RedisServer};
use crate::support::tls::Ca;
use crate::support::upstream::Upstream;

#[tokio::test]
async fn no_secret_reaches_any_log_line() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("secrets CA");
    let store = store_section(&redis, dir.path(), "secrets").join("\n");
    let cfg = bin::write_config(
        dir.path(),
        &ca,
        "secrets",
        &up.url(),
        &format!("[store]\n{store}\n[log]\nlevel = \"debug\"\n"),
    );
    let valid = bin::cli(&cfg, &["keys", "create", "--user", "alice"]);
    let revoked = bin::cli(&cfg, &["keys", "create", "--user", "bob"]);
    bin::cli(&cfg, &["keys", "revoke", "--user", "bob"]);
    let mut wrong = valid.clone();
    wrong.replace_range(20..24, "ZZZZ");

    let kg = Process::serve(&cfg);
    let addr = kg.main_addr().await;
    let c = client::h1(&ca);
    let b64 = |k: &str| base64::engine::general_purpose::STANDARD.encode(format!("apikey:{k}"));
    let mut sent = 0;
    for k in [&valid, &revoked, &wrong] {
        for (name, value) in [
            ("authorization", format!("Basic {}", b64(k))),
            ("authorization", format!("Bearer {k}")),
            ("apikey", k.to_string()),
        ] {
            let req = Request::get(format!("https://127.0.0.1:{}/p?key={k}", addr.port()))
                .header(name, value)
                .body(body::empty())
                .unwrap();
            send(&c, req).await;
            sent += 1;
        }
    }
    // A key where no credential goes: in the path (a client's mistake, a
    // link), in headers keygate does not read, as another user's password.
    for k in [&valid, &revoked, &wrong] {
        for (path, name, value) in [
            (
                format!("/p/{k}"),
                "referer",
                format!("https://a.example/?key={k}"),
            ),
            (format!("/files/{k}.txt"), "user-agent", format!("curl {k}")),
            (format!("/p;k={k}"), "x-forwarded-for", k.to_string()),
            // Percent-encoded, as a client library may write it.
            (
                format!("/e/{}", k.replace('_', "%5F")),
                "accept",
                "text/plain".to_owned(),
            ),
            (
                "/p".to_owned(),
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("bob:{k}"))
                ),
            ),
            (
                "/p".to_owned(),
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{k}:"))
                ),
            ),
        ] {
            let req = Request::get(format!("https://127.0.0.1:{}{path}", addr.port()))
                .header(name, value)
                .body(body::empty())
                .unwrap();
            send(&c, req).await;
            sent += 1;
        }
    }
    eventually(
        "every request has its access line",
        250,
        Duration::from_millis(20),
        || async {
            (kg.log_lines()
                .iter()
                .filter(|l| l["target"] == "keygate::access")
                .count()
                >= sent)
                .then_some(())
        },
    )
    .await;

    // The access line of an authenticated request names the user and the key id.
    let authenticated = kg
        .log_lines()
        .into_iter()
        .find(|l| l["target"] == "keygate::access" && l["status"] == 200)
        .expect("an access line for the valid key");
    assert_eq!(authenticated["user"], "alice");
    assert_eq!(
        authenticated["key_id"].as_str().map(str::len),
        Some(12),
        "{authenticated}"
    );
    let refused = kg
        .log_lines()
        .into_iter()
        .find(|l| l["target"] == "keygate::access" && l["status"] == 401)
        .expect("an access line for a refused key");
    assert_eq!(refused["user"], "-");

    assert!(
        kg.log_lines()
            .iter()
            .any(|l| l["target"] == "keygate::access" && l["path"] == "/files/[redacted-key].txt"),
        "a key in the path is redacted, the rest of the path kept"
    );

    let logs: Vec<String> = kg.log_lines().iter().map(|l| l.to_string()).collect();
    assert!(
        logs.iter().any(|l| l.contains("authentication failed")),
        "failures are logged"
    );
    for secret in [&valid, &revoked, &wrong] {
        let tail = &secret[secret.len() - 43..];
        for line in &logs {
            assert!(!line.contains(tail), "a key secret is in the log: {line}");
            assert!(
                !line.contains(&b64(secret)),
                "an encoded key is in the log: {line}"
            );
        }
    }
}

/// A key made on the self-service page, its CSRF token and cookie: none of
/// them in any log line of the real binary at debug level; the audit line
/// names the source.
#[tokio::test]
async fn no_self_service_secret_reaches_any_log_line() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("self-service secrets CA");
    let cfg = bin::write_config(
        dir.path(),
        &ca,
        "secrets",
        &up.url(),
        "[store]\nkind = \"memory\"\n[log]\nlevel = \"debug\"\n\
         [login]\nmethod = \"trusted_header\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    );
    let kg = Process::serve(&cfg);
    let base = format!("https://127.0.0.1:{}", kg.main_addr().await.port());
    let c = client::h1(&ca);
    let page = send(
        &c,
        Request::get(format!("{base}/.keygate/keys"))
            .header("x-remote-user", "alice")
            .body(body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let at = html.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    let token = html[at..at + html[at..].find('"').unwrap()].to_owned();
    let cookie = page.headers["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let created = send(
        &c,
        Request::post(format!("{base}/.keygate/api/keys"))
            .header("x-remote-user", "alice")
            .header("origin", &base)
            .header("cookie", &cookie)
            .header("x-csrf-token", &token)
            .header("content-type", "application/json")
            .body(body::full(r#"{"label":"ci","ttl":"1d"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let json: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
    let secret = json["key"].as_str().unwrap().to_owned();

    eventually(
        "the create is audited",
        250,
        Duration::from_millis(20),
        || async {
            kg.log_lines()
                .into_iter()
                .find(|l| l["target"] == "keygate::audit" && l["action"] == "create")
        },
    )
    .await;
    let audit = kg
        .log_lines()
        .into_iter()
        .find(|l| l["target"] == "keygate::audit")
        .unwrap();
    assert_eq!(audit["source"], "self-service", "{audit}");
    let access = eventually(
        "the page's access line",
        250,
        Duration::from_millis(20),
        || async {
            kg.log_lines()
                .into_iter()
                .find(|l| l["target"] == "keygate::access" && l["path"] == "/.keygate/api/keys")
        },
    )
    .await;
    assert_eq!(
        access["user"], "alice",
        "the access log names the signed-in user: {access}"
    );
    assert_eq!(audit["actor"], "alice", "{audit}");
    let id_value = cookie.split('=').nth(1).unwrap();
    for line in kg.log_lines().iter().map(|l| l.to_string()) {
        assert!(
            !line.contains(&secret[secret.len() - 43..]),
            "the key is in the log: {line}"
        );
        assert!(
            !line.contains(&token),
            "the CSRF token is in the log: {line}"
        );
        assert!(
            !line.contains(id_value),
            "the CSRF cookie is in the log: {line}"
        );
    }
}

/// Another deployment's secret, for the secret-claim tests.
const OTHER: &str = "fedcba9876543210fedcba9876543210-other-secret";

/// A deployment on its own Redis, namespace `ns`: its config, and where
/// its secret is.
struct Deployment {
    redis: RedisServer,
    _up: Upstream,
    dir: tempfile::TempDir,
    ca: Ca,
    cfg: std::path::PathBuf,
    ns: &'static str,
}

impl Deployment {
    async fn start(ns: &'static str) -> Deployment {
        let redis = RedisServer::start();
        let up = Upstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("secrets CA");
        let store = store_section(&redis, dir.path(), ns).join("\n");
        let cfg = bin::write_config(
            dir.path(),
            &ca,
            ns,
            &up.url(),
            &format!("[store]\n{store}\n"),
        );
        Deployment {
            redis,
            _up: up,
            dir,
            ca,
            cfg,
            ns,
        }
    }

    fn secret_file(&self) -> std::path::PathBuf {
        self.dir.path().join(format!("secret-{}", self.ns))
    }

    /// The store's claim (`<ns>:secret-check`), if any.
    fn claim(&self) -> Option<String> {
        crate::support::deploy::query::<Option<String>>(
            self.redis.port,
            redis::cmd("GET").arg(format!("{}:secret-check", self.ns)),
        )
        .unwrap()
    }
}

/// Every instance and command of a deployment shares the store secret. One
/// given another (a typo, another host's `KEYGATE_SECRET`) would refuse
/// every key as mismatched, answer a scanner's report of a live key
/// `false_positive` and leave it live, and make keys no other instance
/// takes: it stops instead, naming the setting and never a secret, at
/// start or, when the store was down then, once it answers.
#[tokio::test]
async fn another_secret_than_the_stores_keys_were_made_with_stops_keygate() {
    let mut d = Deployment::start("other").await;
    let cfg = d.cfg.clone();
    let alice = bin::cli(&cfg, &["keys", "create", "--user", "alice"]);
    let secret_file = d.secret_file();
    let ours = std::fs::read_to_string(&secret_file).unwrap();
    std::fs::write(&secret_file, format!("{OTHER}\n")).unwrap();

    let refused = |out: &std::process::Output| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("store.secret_file") && err.contains("other:secret-check"),
            "{err}"
        );
        assert!(!err.contains(OTHER) && !err.contains(ours.trim()), "{err}");
    };
    let create = std::process::Command::new(bin::BIN)
        .args(["keys", "create", "-c"])
        .arg(&cfg)
        .args(["--user", "mallory"])
        .output()
        .unwrap();
    refused(&create);

    let mut kg = Process::serve(&cfg);
    assert_eq!(kg.wait(10).await, 1);
    let logged = format!("{:?}", kg.log_lines());
    assert!(logged.contains("other:secret-check"), "{logged}");
    assert!(!logged.contains("keygate listening"), "{logged}");

    // The store down at start: keygate serves (503s), then stops once it answers.
    d.redis.stop_saved();
    let mut kg = Process::serve(&cfg);
    kg.main_addr().await;
    d.redis.start_saved();
    assert_eq!(kg.wait(15).await, 1);
    let logged = format!("{:?}", kg.log_lines());
    assert!(logged.contains("another secret"), "{logged}");
    assert!(!logged.contains(OTHER), "{logged}");

    // With its own secret back, the deployment's key works and none was made.
    std::fs::write(&secret_file, ours).unwrap();
    let listed = bin::cli(&cfg, &["keys", "list", "--json"]);
    let users: Vec<String> = serde_json::from_str::<serde_json::Value>(&listed).unwrap()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["user"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(users, ["alice"]);
    assert!(alice.starts_with("kg_"));
}

/// A store with keys and no claim (from before keygate claimed stores, or
/// one that lost the claim) is not claimed by whoever comes first: a
/// command with another secret cannot tell and goes on, and the claim is
/// written by the first process that verifies one of the store's keys.
/// From then on the other secret is refused.
#[tokio::test]
async fn an_unclaimed_store_with_keys_is_claimed_only_by_a_secret_that_verifies_a_key() {
    let d = Deployment::start("unclaimed").await;
    let (cfg, ca, redis) = (&d.cfg, &d.ca, &d.redis);
    let alice = bin::cli(cfg, &["keys", "create", "--user", "alice"]);
    let alice_made = keygate::keys::unix_now();
    let claim = || d.claim();
    assert!(
        claim().is_some(),
        "an empty store is claimed by its first key's maker"
    );
    crate::support::deploy::query::<()>(
        redis.port,
        redis::cmd("DEL").arg("unclaimed:secret-check"),
    )
    .unwrap();

    let secret_file = d.secret_file();
    let ours = std::fs::read_to_string(&secret_file).unwrap();
    std::fs::write(&secret_file, format!("{OTHER}\n")).unwrap();
    bin::cli(cfg, &["keys", "list"]);
    assert_eq!(
        claim(),
        None,
        "a secret that verified nothing claimed the store"
    );
    // Nor does a key made with the other secret once it found the store
    // unclaimed: it proves nothing of the keys made before.
    {
        let kg = Process::serve(cfg);
        let url = format!("https://localhost:{}/", kg.main_addr().await.port());
        let bob = bin::cli(cfg, &["keys", "create", "--user", "bob"]);
        let answer = client::get_with_key(&client::h1(ca), &url, &bob).await;
        assert_eq!(answer.status, http::StatusCode::OK);
        let alice_refused = client::get_with_key(&client::h1(ca), &url, &alice).await;
        assert_eq!(alice_refused.status, http::StatusCode::UNAUTHORIZED);
        assert_eq!(claim(), None, "a key made since claimed the store");
    }

    // Keys made in an earlier second than the next start's look.
    eventually("a new second", 60, Duration::from_millis(20), || async {
        (keygate::keys::unix_now() > alice_made).then_some(())
    })
    .await;
    std::fs::write(&secret_file, &ours).unwrap();
    let kg = Process::serve(cfg);
    let url = format!("https://localhost:{}/", kg.main_addr().await.port());
    assert_eq!(claim(), None, "started, verified nothing yet");
    let answer = client::get_with_key(&client::h1(ca), &url, &alice).await;
    assert_eq!(answer.status, http::StatusCode::OK);
    eventually(
        "the store claimed",
        250,
        Duration::from_millis(20),
        || async { claim().map(|_| ()) },
    )
    .await;

    std::fs::write(&secret_file, format!("{OTHER}\n")).unwrap();
    let out = std::process::Command::new(bin::BIN)
        .args(["keys", "list", "-c"])
        .arg(cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unclaimed:secret-check"), "{err}");
}

/// An operator's first `keygate keys list` (or revocation) on a new store,
/// with a secret that is not the gateways' (another host's file, a typo),
/// does not claim the store: the gateways that start after it serve, and
/// the first process that makes a key claims it.
#[tokio::test]
async fn listing_or_revoking_with_another_secret_does_not_claim_an_empty_store() {
    let d = Deployment::start("fresh").await;
    let (cfg, ca) = (&d.cfg, &d.ca);
    let claim = || d.claim();
    let secret_file = d.secret_file();
    let ours = std::fs::read_to_string(&secret_file).unwrap();
    std::fs::write(&secret_file, format!("{OTHER}\n")).unwrap();
    bin::cli(cfg, &["keys", "list"]);
    bin::cli(cfg, &["keys", "revoke", "--all", "--dry-run"]);
    bin::cli(cfg, &["keys", "revoke", "--user", "alice"]);
    assert_eq!(
        claim(),
        None,
        "a command that made no key claimed the store"
    );

    std::fs::write(&secret_file, &ours).unwrap();
    let kg = Process::serve(cfg);
    let url = format!("https://localhost:{}/", kg.main_addr().await.port());
    let alice = bin::cli(cfg, &["keys", "create", "--user", "alice"]);
    let answer = client::get_with_key(&client::h1(ca), &url, &alice).await;
    assert_eq!(answer.status, http::StatusCode::OK);
    assert!(claim().is_some(), "the gateway's secret claimed the store");
}
