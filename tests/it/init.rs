//! `keygate init DIR`: from nothing to a gateway that serves, as an operator
//! would go: init, point the config at Redis, serve, mint a key with the
//! admin token, call through with curl trusting the self-signed certificate.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::bin::{Process, BIN};
use crate::support::redis::RedisServer;
use crate::support::upstream::Upstream;

fn init(args: &[&str]) -> Output {
    Command::new(BIN).arg("init").args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// curl with the self-signed certificate as the only trust anchor: (status, body).
async fn curl(cert: &Path, args: &[&str]) -> (u16, String) {
    let cacert = cert.to_str().unwrap();
    let out = crate::support::curl(&[&["--cacert", cacert], args].concat()).await;
    (out.status, format!("{}{}", out.body, out.stderr))
}

#[tokio::test]
async fn init_writes_a_config_that_serves_with_its_secret_token_and_certificate() {
    let (up, redis) = (Upstream::start().await, RedisServer::start());
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc/keygate");
    let out = init(&[
        etc.to_str().unwrap(),
        "--upstream",
        &up.url(),
        "--self-signed",
        "localhost,127.0.0.1",
        "--admin-name",
        "ops",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("keygate check passes on it now"), "{said}");
    assert!(said.contains("[store] url: your Redis"), "{said}");
    assert!(
        !said.contains("[upstream] url"),
        "given, so not a step: {said}"
    );

    // Secrets are the owner's alone, and well formed.
    for file in ["secret", "admin-token", "tls/key.pem"] {
        assert_eq!(mode(&etc.join(file)), 0o600, "{file}");
    }
    let secret = std::fs::read_to_string(etc.join("secret")).unwrap();
    assert!(secret.trim().len() == 64 && secret.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    let token_line = std::fs::read_to_string(etc.join("admin-token")).unwrap();
    let token = token_line
        .trim()
        .strip_prefix("ops:")
        .expect("a named token");
    assert_eq!(token.len(), 64);
    assert!(
        !said.contains(token) && !said.contains(secret.trim()),
        "secrets printed: {said}"
    );

    // The operator's steps: Redis, and (here) ports of the test's own.
    let config = etc.join("keygate.toml");
    let edited = std::fs::read_to_string(&config)
        .unwrap()
        .replace("redis://127.0.0.1:6379/0", &redis.url())
        .replace("0.0.0.0:8443", "127.0.0.1:0")
        .replace("127.0.0.1:9443", "127.0.0.1:0");
    std::fs::write(&config, edited).unwrap();
    let kg = Process::serve(&config);
    let (main, admin) = (kg.main_addr().await, kg.admin_addr().await);

    let cert = etc.join("tls/fullchain.pem");
    let (status, body) = curl(
        &cert,
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"user":"alice"}"#,
            &format!("https://127.0.0.1:{}/v1/keys", admin.port()),
        ],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let key = serde_json::from_str::<serde_json::Value>(&body).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = curl(
        &cert,
        &[
            "-u",
            &format!("apikey:{key}"),
            &format!("https://localhost:{}/hello", main.port()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(up.last().headers["x-remote-user"], "alice");
    // The audit log names the token by the name init gave it.
    crate::support::eventually(
        "an audit line",
        250,
        std::time::Duration::from_millis(20),
        || async {
            kg.log_lines()
                .into_iter()
                .find(|l| l["target"] == "keygate::audit" && l["action"] == "create")
        },
    )
    .await
    .get("actor")
    .map(|a| assert_eq!(a, "ops"))
    .expect("the audit line names its actor");
}

#[test]
fn init_never_overwrites_and_refuses_bad_input_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("kg");
    let out = init(&[etc.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    // No certificate asked for: check says which files are still missing.
    assert!(said.contains("listen.tls_cert: cannot read"), "{said}");
    assert!(said.contains("[upstream] url: the application"), "{said}");
    let secret = std::fs::read(etc.join("secret")).unwrap();

    let again = init(&[etc.to_str().unwrap(), "--self-signed", "localhost"]);
    assert_eq!(again.status.code(), Some(2));
    let err = text(&again.stderr);
    assert!(
        err.contains(&format!("{}/secret", etc.display())) && err.contains("never overwrites"),
        "{err}"
    );
    assert_eq!(std::fs::read(etc.join("secret")).unwrap(), secret);
    assert!(
        !etc.join("tls/key.pem").exists(),
        "nothing written on refusal"
    );

    let other = dir.path().join("other");
    for (args, flag) in [
        (vec!["--upstream", "http://app:8080/base"], "--upstream:"),
        (vec!["--admin-name", "ops team"], "--admin-name:"),
        // rcgen takes any text as a DNS name: no client would match these.
        (
            vec!["--self-signed", "kg example"],
            "--self-signed: \"kg example\" is neither",
        ),
        (
            vec!["--self-signed", "kg.example.org:8443"],
            "--self-signed:",
        ),
        (
            vec!["--self-signed", "kg.example.org,"],
            "--self-signed: \"\" is neither",
        ),
        (
            vec!["--upstream", "http://app:HUNTER2pw@127.0.0.1:8080"],
            "--upstream: a user name or password in the URL is not supported",
        ),
    ] {
        let out = init(&[&[other.to_str().unwrap()], args.as_slice()].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains(flag), "{}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("HUNTER2pw"),
            "{}",
            text(&out.stderr)
        );
        assert!(!other.exists(), "nothing written for {args:?}");
    }
}
