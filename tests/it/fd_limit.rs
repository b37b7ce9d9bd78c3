//! `[limits] max_connections` is reachable without raising the open-file
//! limit by hand: keygate raises its soft limit to the hard one at start
//! and says so.

use std::process::Command;

use crate::support::bin::{self, Process};
use crate::support::tls::Ca;
use crate::support::upstream::Upstream;

/// (soft, hard) "Max open files" of a running process.
fn open_files(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    (cols[3].to_owned(), cols[4].to_owned())
}

/// `keygate serve` (memory store, in front of `up`) started by a shell
/// after `ulimit`, a `ulimit` command setting its open-file limits.
fn serve_under(dir: &std::path::Path, up: &Upstream, ulimit: &str) -> Process {
    let cfg = bin::write_config(
        dir,
        &Ca::new("fd limit CA"),
        "keygate",
        &up.url(),
        "[store]\nkind = \"memory\"\n",
    );
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!("{ulimit} && exec \"$0\" serve --log-format json -c \"$1\""),
        bin::BIN,
    ])
    .arg(&cfg);
    Process::spawn(cmd)
}

#[tokio::test]
async fn the_soft_open_file_limit_is_raised_to_the_hard_one_at_start() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Started with a soft limit of 256 (the hard one as it is).
    let kg = serve_under(dir.path(), &up, "ulimit -Sn 256");
    kg.main_addr().await;

    let (soft, hard) = open_files(kg.pid());
    assert_eq!(soft, hard, "soft limit raised to the hard one");
    assert_ne!(soft, "256");
    let said = kg
        .log_lines()
        .into_iter()
        .find(|l| {
            l["message"].as_str().is_some_and(|m| {
                m.starts_with("open-file limit (RLIMIT_NOFILE) raised from 256 to")
            })
        })
        .expect("a log line says what was set");
    assert_eq!(said["from"], 256);
    assert_eq!(said["to"].to_string(), soft);
}

/// A process out of file descriptors says so in its own log line, naming
/// what to raise: clients beyond the open-file limit wait in the kernel's
/// accept queue. (It has its own once-a-minute allowance: another accept
/// error just before cannot hide it; see `listener`'s unit test.)
#[tokio::test]
async fn running_out_of_file_descriptors_is_logged_as_such() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Soft and hard limit 64: far fewer descriptors than connections below.
    let kg = serve_under(dir.path(), &up, "ulimit -n 64");
    let addr = kg.main_addr().await;
    let mut clients = Vec::new();
    for _ in 0..100 {
        if let Ok(tcp) = tokio::net::TcpStream::connect(addr).await {
            clients.push(tcp);
        }
    }
    let said = kg.logged("main listener: out of file descriptors").await;
    assert_eq!(said["level"], "WARN", "{said}");
    assert!(
        said["message"].as_str().unwrap().contains("LimitNOFILE"),
        "{said}"
    );
}
