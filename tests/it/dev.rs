//! `keygate dev` works as the README says: one command, then curl.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::bin::BIN;

#[test]
fn keygate_dev_serves_the_echo_upstream_over_tls() {
    let mut child = Command::new(BIN)
        .args(["dev", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut banner = String::new();
    let mut url = None;
    for line in BufReader::new(stdout).lines().take(50) {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if let Some(rest) = line.trim().strip_prefix("gateway:") {
            url = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no gateway URL in the banner:\n{banner}"));
    assert!(banner.contains("NEVER FOR PRODUCTION"), "{banner}");

    let out = Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--max-time",
            "10",
            "-H",
            "X-Remote-User: mallory",
        ])
        .arg(format!("{url}/hello"))
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("GET /hello"), "{text}");
    assert!(text.contains("x-forwarded-proto: https"), "{text}");
    assert!(
        !text.contains("mallory"),
        "the forged identity reached the echo upstream: {text}"
    );
}
