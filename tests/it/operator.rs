//! What an operator reads: errors that say where to look (the store URL
//! tried, the key that chose a busy port, plain HTTP on the TLS port) and
//! logs that fit where they go (no colours in a pipe, short durations, each
//! listener named once, one warning per Redis outage).

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use http::StatusCode;

use crate::support::bin::{self, Process, BIN};
use crate::support::client::{self, get};
use crate::support::gateway::builder;
use crate::support::redis::{free_port, RedisServer};
use crate::support::tls::Ca;
use crate::support::upstream::Upstream;
use crate::support::{eventually, within};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A TLS config for the binary in `dir` with `sections` (at least `[store]`).
fn config(dir: &std::path::Path, upstream: &str, sections: &str) -> std::path::PathBuf {
    bin::write_config(dir, &Ca::new("operator CA"), "keygate", upstream, sections)
}

#[tokio::test]
async fn a_store_that_does_not_answer_is_named_by_its_url_and_key_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    let port = free_port();
    let store = format!(
        "[store]\nurl = \"redis://kg:hunter2pass@127.0.0.1:{port}/0\"\nsecret_file = \"{}\"\ntimeout = \"500ms\"\n",
        secret.display()
    );
    let cfg = config(dir.path(), "http://127.0.0.1:9", &store);
    let shown = format!("store.url = \"redis://kg:***@127.0.0.1:{port}/0\"");

    let out = Command::new(BIN)
        .args(["keys", "list", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&shown), "{err}");
    assert!(!err.contains("hunter2pass"), "{err}");

    let kg = Process::serve(&cfg);
    kg.logged("the key store does not answer").await;
    let line = kg
        .log_lines()
        .into_iter()
        .find(|l| l["message"] == "the key store does not answer; requests get 503 until it does")
        .unwrap();
    assert_eq!(line["tried"].as_str().unwrap(), shown);
    assert!(!format!("{:?}", kg.log_lines()).contains("hunter2pass"));
}

#[test]
fn a_busy_port_is_named_by_the_key_that_chose_it() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "http://127.0.0.1:9",
        "[store]\nkind = \"memory\"\n",
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    for (key, from, section) in [
        (
            "listen.addr",
            "[listen]\naddr = \"127.0.0.1:0\"",
            "[listen]\naddr",
        ),
        (
            "admin.addr",
            "[admin]\naddr = \"127.0.0.1:0\"",
            "[admin]\naddr",
        ),
    ] {
        assert!(text.contains(from));
        let one = text.replacen(from, &format!("{section} = \"127.0.0.1:{port}\""), 1);
        std::fs::write(&cfg, one).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "-c"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{key}");
        let err = stderr(&out);
        let expected =
            format!("keygate: {key}: cannot listen on 127.0.0.1:{port}: Address already in use");
        assert!(err.contains(&expected), "{err}");
        assert!(err.contains(&format!("sport = :{port}")), "{err}");
    }
    // An address this host does not have, and (for a user without the
    // privilege, as root is not) a port below 1024: each says what to do.
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let unprivileged_from: u16 =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .map_or(1024, |t| t.trim().parse().unwrap());
    let mut cases = vec![(
        "192.0.2.1:8443",
        "no interface of this host has that address",
    )];
    // As root the check runs as nobody (no capability); otherwise only
    // where this user cannot bind it either (CAP_NET_BIND_SERVICE would
    // let keygate start and serve, and the test wait for ever).
    if unprivileged_from > 1 && (root || std::net::TcpListener::bind("127.0.0.1:1").is_err()) {
        cases.push((
            "127.0.0.1:1",
            "a port below 1024 needs root or CAP_NET_BIND_SERVICE",
        ));
    }
    // nobody reads the test's files (a throwaway certificate and token).
    use std::os::unix::fs::PermissionsExt;
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path());
    for p in files.chain([dir.path().to_owned()]) {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    for (addr, hint) in cases {
        let one = text.replacen(
            "[listen]\naddr = \"127.0.0.1:0\"",
            &format!("[listen]\naddr = \"{addr}\""),
            1,
        );
        std::fs::write(&cfg, one).unwrap();
        let mut cmd = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
            c
        } else {
            Command::new(BIN)
        };
        let out = cmd.args(["serve", "-c"]).arg(&cfg).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{addr}: {err}");
        assert!(
            err.contains(&format!("keygate: listen.addr: cannot listen on {addr}: ")),
            "{err}"
        );
        assert!(err.contains(hint), "{addr}: {err}");
    }
    // keygate dev takes its addresses from flags, and names the flag.
    let out = Command::new(BIN)
        .args(["dev", "--addr", &format!("127.0.0.1:{port}")])
        .args(["--admin-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "keygate: --addr: cannot listen on 127.0.0.1:{port}"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_told_the_port_speaks_https() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    for addr in [gw.addr, gw.admin_addr] {
        let url = format!("http://127.0.0.1:{}/hello?x=1", addr.port());
        let crate::support::Curl {
            exit, status, body, ..
        } = crate::support::curl(&[&url]).await;
        assert_eq!(exit, Some(0), "curl got an answer, not a TLS alert: {body}");
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("this port speaks HTTPS"), "{body}");
        assert!(
            body.contains(&format!("Use https://127.0.0.1:{}/hello?x=1", addr.port())),
            "{body}"
        );
    }
    assert!(up.requests().is_empty(), "nothing went upstream");
    // TLS on the same port is untouched.
    let answer = get(&client::h1(&gw.ca), &gw.url("/hello")).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn human_logs_in_a_pipe_have_no_colours_short_durations_and_name_each_listener_once() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("human logs CA");
    let cfg = bin::write_config(
        dir.path(),
        &ca,
        "keygate",
        &up.url(),
        "[auth]\nanonymous = \"passthrough\"\n[store]\nkind = \"memory\"\n",
    );
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "-c"]).arg(&cfg).env_remove("NO_COLOR");
    let mut kg = Process::spawn(cmd);
    let text = |kg: &Process| -> Vec<String> {
        kg.log_lines()
            .iter()
            .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned))
            .collect()
    };
    let port: u16 = eventually(
        "the listening line",
        300,
        Duration::from_millis(20),
        || async {
            text(&kg).iter().find_map(|l| {
                let addr = l
                    .contains("keygate listening")
                    .then(|| l.split("addr=").nth(1))??;
                addr.split_whitespace()
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()
            })
        },
    )
    .await;
    let answer = get(&client::h1(&ca), &format!("https://127.0.0.1:{port}/hello")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let access = eventually(
        "the access line",
        250,
        Duration::from_millis(20),
        || async {
            text(&kg)
                .into_iter()
                .find(|l| l.contains("keygate::access"))
        },
    )
    .await;
    kg.signal("TERM");
    assert_eq!(within(20, "keygate exits", kg.wait(15)).await, 0);

    let lines = text(&kg);
    assert!(!lines.is_empty());
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "ANSI escapes in a pipe: {lines:?}"
    );
    let duration = access
        .split("duration_ms=")
        .nth(1)
        .and_then(|d| d.split_whitespace().next())
        .unwrap_or_else(|| panic!("no duration_ms in {access}"));
    let decimals = duration.split_once('.').map_or(0, |(_, d)| d.len());
    assert!(duration.parse::<f64>().is_ok() && decimals <= 3, "{access}");
    let closed: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("all connections closed"))
        .collect();
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert!(closed[0].contains("main listener"), "{closed:?}");
    assert!(closed[1].contains("admin listener"), "{closed:?}");
}

/// A stand-in for a Redis that is down: accepts and at once closes every
/// connection, counting them, so a test can wait for keygate's retries.
/// `Refuser::silent` keeps them open instead and never answers: a Redis
/// that hangs.
struct Refuser {
    attempts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    port: u16,
}

impl Refuser {
    fn on(port: u16) -> Refuser {
        Refuser::accepting(port, false)
    }

    fn silent(port: u16) -> Refuser {
        Refuser::accepting(port, true)
    }

    fn accepting(port: u16, hold: bool) -> Refuser {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (n, done) = (attempts.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !done.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        n.fetch_add(1, Ordering::Relaxed);
                        if hold {
                            held.push(conn);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Refuser {
            attempts,
            stop,
            port,
        }
    }

    async fn attempts_reach(&self, n: usize) {
        let what = format!("{n} attempts to reach Redis on port {}", self.port);
        eventually(&what, 500, Duration::from_millis(20), || async {
            (self.attempts.load(std::sync::atomic::Ordering::Relaxed) >= n).then_some(())
        })
        .await;
    }
}

impl Drop for Refuser {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Let the accept thread see it and drop the listener (it polls every 5 ms).
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_redis_outage_is_one_warning_not_one_per_retry() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = crate::support::redis::store_section(&redis, dir.path(), "outage");
    store.insert(0, "[store]".into());
    let sections = format!("{}\n[cache]\nlease = \"300ms\"\n", store.join("\n"));
    let cfg = config(dir.path(), "http://127.0.0.1:9", &sections);
    let kg = Process::serve(&cfg);
    kg.logged("joined the fleet").await;
    let lost = |kg: &Process| {
        kg.log_lines()
            .iter()
            .filter(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("lost touch with the fleet"))
            })
            .count()
    };

    for outage in 1..=2 {
        redis.kill();
        let down = Refuser::on(redis.port);
        // keygate retries at least every lease (300 ms): seconds of outage.
        down.attempts_reach(15).await;
        assert_eq!(lost(&kg), outage, "{:?}", kg.log_lines());
        drop(down);
        redis = RedisServer::start_on(redis.port);
        eventually("back in touch", 250, Duration::from_millis(20), || async {
            let back = kg
                .log_lines()
                .iter()
                .filter(|l| {
                    l["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("back in touch with the fleet"))
                })
                .count();
            (back == outage).then_some(())
        })
        .await;
    }
}

/// The expiry-notice chore and a webhook's delivery worker try every
/// second; in a Redis outage each says so once (then a reminder a minute),
/// as every outage warning does.
#[tokio::test]
async fn store_chores_in_a_redis_outage_are_one_warning_not_one_a_second() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut store = crate::support::redis::store_section(&redis, dir.path(), "notices");
    store.insert(0, "[store]".into());
    // A webhook's delivery worker reads its outbox every second too.
    let whsec = dir.path().join("whsec");
    std::fs::write(&whsec, crate::support::webhook_receiver::SECRET).unwrap();
    store.push(format!(
        "[[webhooks]]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_file = \"{}\"",
        whsec.display()
    ));
    let cfg = config(dir.path(), "http://127.0.0.1:9", &store.join("\n"));
    let kg = Process::serve(&cfg);
    kg.logged("joined the fleet").await;
    let said = |kg: &Process, text: &str| {
        kg.log_lines()
            .iter()
            .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(text)))
            .count()
    };

    redis.kill();
    let down = Refuser::on(redis.port);
    kg.logged("could not send due expiry notices").await;
    // Three more rounds of the chore (one a second) into the outage.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for chore in [
        "could not send due expiry notices",
        "could not read the webhook outbox",
    ] {
        assert_eq!(said(&kg, chore), 1, "{chore}: {:?}", kg.log_lines());
    }
    drop(down);
    let _redis = RedisServer::start_on(redis.port);
    kg.logged("sending due expiry notices again").await;
    kg.logged("reading the webhook outbox again").await;
}

/// A SIGHUP (a logrotate postrotate, a certbot hook) while `serve` still
/// waits for a slow Redis at start must not end it: SIGHUP's default
/// action is to terminate, so the handler is installed before that wait.
#[tokio::test]
async fn a_sighup_while_serve_waits_for_a_slow_store_does_not_end_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    let hanging = Refuser::silent(free_port());
    let store = format!(
        "[store]\nurl = \"redis://127.0.0.1:{}/0\"\nsecret_file = \"{}\"\ntimeout = \"2s\"\n",
        hanging.port,
        secret.display()
    );
    let cfg = config(dir.path(), "http://127.0.0.1:9", &store);
    let mut kg = Process::serve(&cfg);
    hanging.attempts_reach(1).await;
    kg.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(kg.exited(), None, "SIGHUP ended keygate while it started");
    kg.logged("the key store does not answer").await;
    kg.main_addr().await;
    assert_eq!(kg.exited(), None, "{:?}", kg.log_lines());
}

/// `RUST_LOG` overrides `[log] level` when it says something. An empty one
/// (`Environment=RUST_LOG=` in a unit, `-e RUST_LOG=`) is unset: taken as a
/// filter it allowed errors only, and keygate started without a line. One
/// that does not parse is said, not ignored in silence, and so is one that
/// parses but lets no keygate line through (`warning` names a target).
#[tokio::test]
async fn an_empty_or_unreadable_rust_log_leaves_the_configured_level_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "http://127.0.0.1:9",
        "[store]\nkind = \"memory\"\n",
    );
    for (value, said) in [("", false), ("keygate==loud", true), ("warning", true)] {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--log-format", "json", "-c"])
            .arg(&cfg)
            .env("RUST_LOG", value);
        let kg = Process::spawn(cmd);
        kg.main_addr().await;
        let warned = kg.log_lines().iter().any(|l| {
            l["message"] == "RUST_LOG is not a valid filter; using [log] level instead"
                && l["level"] == "WARN"
        });
        assert_eq!(warned, said, "RUST_LOG={value:?}: {:?}", kg.log_lines());
    }
}

/// tokio reads `TOKIO_WORKER_THREADS` itself and panicked on a value that
/// is not a whole number from 1 (a backtrace, exit 101): a usage error
/// naming the variable instead.
#[test]
fn a_bad_tokio_worker_threads_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "http://127.0.0.1:9",
        "[store]\nkind = \"memory\"\n",
    );
    for value in ["", "0", "four"] {
        let out = Command::new(BIN)
            .args(["serve", "-c"])
            .arg(&cfg)
            .env("TOKIO_WORKER_THREADS", value)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{value:?}: {err}");
        assert!(
            err.contains(&format!(
                "keygate: TOKIO_WORKER_THREADS: {value:?} is not a whole number from 1"
            )),
            "{value:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A Redis outage refuses every keyed request (503, fail closed) and says
/// so at most once a second, not once per request: each refusal is in a
/// line or counted in the next one's `unlogged`.
#[tokio::test]
async fn keyed_requests_refused_in_a_redis_outage_are_one_line_a_second_with_the_count() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("operator CA");
    let mut store = crate::support::redis::store_section(&redis, dir.path(), "refusals");
    store.insert(0, "[store]".into());
    // No cache: every request asks the store.
    let sections = format!(
        "{}\n[cache]\nenabled = false\n[auth]\nanonymous = \"reject\"\n",
        store.join("\n")
    );
    let cfg = bin::write_config(dir.path(), &ca, "keygate", "http://127.0.0.1:9", &sections);
    let out = Command::new(BIN)
        .args(["keys", "create", "--user", "alice", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let kg = Process::serve(&cfg);
    let url = format!("https://localhost:{}/", kg.main_addr().await.port());
    let c = client::h1(&ca);

    redis.kill();
    let ask = || async {
        let answer = within(
            5,
            "an answer in the outage",
            client::get_with_key(&c, &url, &key),
        )
        .await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    };
    // A burst of 20 at once, then one more after the period: that one is
    // said, with the burst's unsaid ones counted.
    futures_util::future::join_all((0..20).map(|_| ask())).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ask().await;
    let lines = eventually(
        "the last refusal said",
        250,
        Duration::from_millis(20),
        || async {
            let lines: Vec<u64> = kg
                .log_lines()
                .iter()
                .filter(|l| l["message"] == "key store unavailable; refusing (503)")
                .map(|l| l["unlogged"].as_u64().unwrap_or(0))
                .collect();
            let said: u64 = lines.iter().map(|unlogged| 1 + unlogged).sum();
            (said == 21).then_some(lines)
        },
    )
    .await;
    assert!(lines.len() <= 4, "{} lines for 21 refusals", lines.len());
}

/// A key's last use that Redis refuses to record (here its ACL user lost
/// HSET; in the field an OOM `noeviction` server or a custom ACL): the key
/// still works, and a warning says so, since `keys.revoke_unused_after`
/// would revoke keys in use. It was a debug line nobody saw.
#[tokio::test]
async fn a_last_use_the_store_refuses_to_record_is_a_warning() {
    let redis = RedisServer::start();
    let up = crate::support::upstream::Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = redis.own_user("kg");
    let mut store = crate::support::redis::store_section_for(&url, dir.path(), "lastuse");
    store.insert(0, "[store]".into());
    let ca = Ca::new("operator CA");
    let cfg = bin::write_config(dir.path(), &ca, "localhost", &up.url(), &store.join("\n"));
    let key = bin::cli(&cfg, &["keys", "create", "--user", "alice"]);
    let kg = Process::serve(&cfg);
    let addr = kg.main_addr().await;
    redis.acl(&["SETUSER", "kg", "-hset"]);

    let c = client::h1(&ca);
    let a = client::get_with_key(&c, &format!("https://127.0.0.1:{}/x", addr.port()), &key).await;
    assert_eq!(a.status, StatusCode::OK);
    let said = kg.logged("could not record a key's last use").await;
    assert_eq!(said["level"], "WARN", "{said}");
    assert!(
        said["error"]
            .as_str()
            .is_some_and(|e| e.contains("can't run this command")),
        "{said}"
    );
}
