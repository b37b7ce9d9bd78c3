//! The real binary with an auth listener, as an operator watches it: the
//! address it logs at start, one access line per check naming the original
//! request (never its query, never a secret), and the checks counted by
//! route and status class in /metrics, apart from the main listener's.

use std::time::Duration;

use crate::support::bin::{self, Process};
use crate::support::client::{self, get};
use crate::support::curl;
use crate::support::eventually;
use crate::support::redis::{store_section, RedisServer};
use crate::support::tls::Ca;
use crate::support::upstream::Upstream;

#[tokio::test]
async fn checks_are_logged_as_the_original_request_and_counted_by_route() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("authz binary CA");
    let store = store_section(&redis, dir.path(), "authz-binary").join("\n");
    let cfg = bin::write_config(
        dir.path(),
        &ca,
        "authz",
        &up.url(),
        &format!(
            "[store]\n{store}\n[authz]\naddr = \"127.0.0.1:0\"\nplaintext = true\n\
             trusted_proxies = [\"127.0.0.1/32\"]\n"
        ),
    );
    let key = bin::cli(&cfg, &["keys", "create", "--user", "alice"]);

    let kg = Process::serve(&cfg);
    let authz = kg.authz_addr().await;
    assert!(authz.ip().is_loopback() && authz.port() != 0, "{authz}");
    let url = |path: &str| format!("http://{authz}{path}");
    let user = format!("apikey:{key}");
    let forward = [
        "-H",
        "X-Forwarded-Method: POST",
        "-H",
        "X-Forwarded-Uri: /orders?token=q-secret",
    ];
    let mut allowed = vec!["-u", &user];
    allowed.extend(forward);
    let fa = url("/authz/forward-auth");
    allowed.push(&fa);
    assert_eq!(curl(&allowed).await.status, 200);
    let ar = url("/authz/auth-request");
    let refused = [
        "-u",
        "apikey:kg_wrong",
        "-H",
        "X-Original-Method: GET",
        "-H",
        "X-Original-URI: /reports",
        &ar,
    ];
    assert_eq!(curl(&refused).await.status, 401);
    let undescribed = ["-u", &user, &ar];
    assert_eq!(curl(&undescribed).await.status, 400);
    let ea = url("/authz/ext-authz/items/7");
    assert_eq!(curl(&["-X", "DELETE", "-u", &user, &ea]).await.status, 200);

    let access = || {
        kg.log_lines()
            .into_iter()
            .filter(|l| l["target"] == "keygate::access")
            .collect::<Vec<_>>()
    };
    eventually(
        "every check has its access line",
        250,
        Duration::from_millis(20),
        || async { (access().len() >= 4).then_some(()) },
    )
    .await;
    let lines = access();
    let line = |path: &str| {
        lines
            .iter()
            .find(|l| l["path"] == path)
            .unwrap_or_else(|| panic!("no access line for {path}: {lines:?}"))
    };
    let orders = line("/orders");
    assert_eq!(orders["method"], "POST");
    assert_eq!(orders["status"], 200);
    assert_eq!(orders["user"], "alice");
    assert_eq!(orders["key_id"].as_str().map(str::len), Some(12));
    assert_eq!(line("/reports")["status"], 401);
    assert_eq!(line("/reports")["user"], "-");
    let items = line("/items/7");
    assert_eq!(
        (&items["method"], &items["status"]),
        (&"DELETE".into(), &200.into())
    );
    // No original request named: the check's own method and path.
    assert_eq!(line("/authz/auth-request")["status"], 400);
    let all: Vec<String> = kg.log_lines().iter().map(|l| l.to_string()).collect();
    for line in &all {
        assert!(
            !line.contains("q-secret"),
            "a query string is logged: {line}"
        );
        assert!(
            !line.contains(&key[key.len() - 43..]),
            "a key is logged: {line}"
        );
    }

    let admin = client::h1(&ca);
    let metrics = get(
        &admin,
        &format!("https://{}/metrics", kg.admin_addr().await),
    )
    .await
    .text();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    let checks = |route: &str, class: &str| {
        value(&format!(
            "keygate_authz_checks_total{{route=\"{route}\",class=\"{class}\"}}"
        ))
    };
    assert_eq!(checks("forward_auth", "2xx"), 1.0);
    assert_eq!(checks("auth_request", "4xx"), 2.0);
    assert_eq!(checks("ext_authz", "2xx"), 1.0);
    assert_eq!(checks("none", "4xx"), 0.0);
    // The main listener answered nothing.
    for class in ["2xx", "4xx"] {
        assert_eq!(
            value(&format!("keygate_http_requests_total{{class=\"{class}\"}}")),
            0.0
        );
    }
    // The key check's own outcomes are the gateway's.
    assert_eq!(value("keygate_auth_total{outcome=\"ok\"}"), 2.0);
    assert_eq!(value("keygate_auth_total{outcome=\"malformed\"}"), 1.0);
}

/// Checks from a peer not in `authz.trusted_proxies` (a proxy the operator
/// forgot to list: every check fails): a warning, once a minute with the
/// count since, not an info line per check.
#[tokio::test]
async fn checks_from_an_untrusted_peer_are_one_warning_a_minute() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("authz binary CA");
    let cfg = bin::write_config(
        dir.path(),
        &ca,
        "authz",
        &up.url(),
        "[store]\nkind = \"memory\"\n[authz]\naddr = \"127.0.0.1:0\"\nplaintext = true\n\
         trusted_proxies = [\"192.0.2.0/24\"]\n",
    );
    let kg = Process::serve(&cfg);
    let authz = kg.authz_addr().await;
    let url = format!("http://{authz}/authz/auth-request");
    for _ in 0..3 {
        assert_eq!(curl(&[url.as_str()]).await.status, 403);
    }
    kg.logged("refused a check from an address not in authz.trusted_proxies")
        .await;
    let said: Vec<_> = kg
        .log_lines()
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("refused a check from an address not in"))
        })
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0]["level"], "WARN", "{}", said[0]);
    assert_eq!(said[0]["client"], "127.0.0.1", "{}", said[0]);
}
