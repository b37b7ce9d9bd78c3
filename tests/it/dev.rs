//! `keygate dev` works as the README and its banner say: one command, then
//! the printed curl commands and .netrc line work as printed.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::support::bin::BIN;

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn keygate_dev_prints_a_demo_key_that_works_as_printed() {
    // Where dev writes its admin token file (std::env::temp_dir).
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .env("TMPDIR", tmp.path())
        .args([
            "dev",
            "--addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut banner = String::new();
    for line in BufReader::new(stdout).lines().take(60) {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Stop with Ctrl-C") {
            break;
        }
    }
    let find = |prefix: &str| -> String {
        banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {prefix:?} line in the banner:\n{banner}"))
    };
    let url = find("gateway:")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let netrc_line = format!("machine {}", find("machine "));
    let key = netrc_line.split_whitespace().last().unwrap().to_owned();
    assert!(banner.contains("NEVER FOR PRODUCTION"), "{banner}");
    assert!(key.starts_with("kg_"), "{banner}");

    let (ok, text) = curl(&[
        "-u",
        &format!("apikey:{key}"),
        "-H",
        "X-Remote-User: mallory",
        &format!("{url}/hello"),
    ]);
    assert!(ok);
    assert!(text.contains("GET /hello"), "{text}");
    assert!(text.contains("x-remote-user: demo"), "{text}");
    assert!(text.contains("x-forwarded-proto: https"), "{text}");
    assert!(
        !text.contains("mallory") && !text.contains("authorization"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let netrc = dir.path().join("netrc");
    std::fs::write(&netrc, format!("{netrc_line}\n")).unwrap();
    let (_, text) = curl(&[
        "--netrc-file",
        netrc.to_str().unwrap(),
        &format!("{url}/hello"),
    ]);
    assert!(
        text.contains("x-remote-user: demo"),
        "the printed .netrc line did not work: {text}"
    );

    let (_, text) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{url}/hello"),
    ]);
    assert_eq!(text, "401", "no key must be refused");

    // The self-service page works out of the box, signed in as the demo user.
    let page = format!("{url}/.keygate/keys");
    assert!(banner.contains(&page), "{banner}");
    let (ok, html) = curl(&[&page]);
    assert!(ok);
    assert!(html.contains("<strong id=\"user\">demo</strong>"), "{html}");
    assert!(html.contains("Generate API Key"), "{html}");
    // demo is an admin: the link on the page, and the console itself.
    assert!(
        html.contains("href=\"/.keygate/admin\">External Tool Settings"),
        "{html}"
    );
    let console = format!("{url}/.keygate/admin");
    assert!(banner.contains(&console), "{banner}");
    let (ok, html) = curl(&[&console]);
    assert!(ok);
    assert!(html.contains("<h1>External Tool Settings</h1>"), "{html}");

    // The admin token is in an owner-only file while dev runs...
    let files: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{files:?}");

    // ...and gone after Ctrl-C, as the banner says to stop it.
    let stopped = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = (0..250)
        .find_map(|_| {
            let status = child.try_wait().unwrap();
            if status.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            status
        })
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!("keygate dev did not stop within 5 s of Ctrl-C")
        });
    assert!(status.success(), "{status:?}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `dev` has flags, not a file: two listeners on one port are named by
/// the flags that chose them, not by TOML keys the operator never wrote.
#[test]
fn keygate_dev_names_clashing_ports_by_their_flags() {
    let port = crate::support::redis::free_port();
    let addr = format!("127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["dev", "--addr", &addr, "--admin-addr", &addr])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "--admin-addr: {addr} clashes with --addr = \"{addr}\""
        )),
        "{err}"
    );
    assert!(
        !err.contains("listen.addr") && !err.contains("admin.addr"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the admin token file was left: {left:?}");
}

/// `--addr 0.0.0.0:PORT` (to try it from another machine): the banner's
/// URLs and `.netrc` line named `0.0.0.0`, which is no address to dial
/// (browsers refuse it); they name this host's loopback, and the banner
/// says where it listens.
#[test]
fn keygate_dev_on_every_interface_prints_urls_a_client_can_dial() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .env("TMPDIR", tmp.path())
        .args(["dev", "--addr", "0.0.0.0:0", "--admin-addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .take(60)
    {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Stop with Ctrl-C") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!banner.contains("https://0.0.0.0"), "{banner}");
    assert!(!banner.contains("machine 0.0.0.0"), "{banner}");
    assert!(
        banner.contains("machine 127.0.0.1 login apikey"),
        "{banner}"
    );
    let url = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("gateway:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{banner}"));
    assert!(url.starts_with("https://127.0.0.1:"), "{banner}");
    let port = url.rsplit(':').next().unwrap();
    assert!(
        banner.contains(&format!("listening on 0.0.0.0:{port}")),
        "{banner}"
    );
}
