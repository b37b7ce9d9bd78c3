//! The real binary under signals: SIGTERM drains in-flight requests and
//! open WebSocket tunnels and exits 0; SIGHUP swaps the certificate (and keeps the old one when the new
//! pair is bad); memory stays flat under a 1 GiB streamed upload; one
//! access-log line per request.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use http::StatusCode;
use tokio::net::TcpStream;

use crate::support::bin::{self, Process};
use crate::support::client::{self, get};
use crate::support::eventually;
use crate::support::tls::Ca;
use crate::support::upstream::{self, Upstream};
use crate::support::within;

/// Write a TLS config for the binary; returns (config path, ca).
fn write_config(dir: &Path, upstream: &str, extra: &str) -> (std::path::PathBuf, Ca) {
    let ca = Ca::new("lifecycle CA");
    let sections =
        format!("[auth]\nanonymous = \"passthrough\"\n[store]\nkind = \"memory\"\n{extra}");
    let cfg = bin::write_config(dir, &ca, "first", upstream, &sections);
    (cfg, ca)
}

/// SIGTERM, then wait until the main listener at `addr` refuses connections.
async fn terminate(kg: &Process, addr: std::net::SocketAddr) {
    kg.signal("TERM");
    eventually(
        "listener closed after SIGTERM",
        250,
        Duration::from_millis(20),
        || async { TcpStream::connect(addr).await.is_err().then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, ca) = write_config(
        dir.path(),
        &up.url(),
        "[runtime]\nshutdown_grace = \"20s\"\n",
    );
    let mut kg = Process::serve(&cfg);
    let addr = kg.main_addr().await;
    let url = format!("https://127.0.0.1:{}/hold", addr.port());

    let c = client::h1(&ca);
    let in_flight = tokio::spawn(async move { get(&c, &url).await });
    within(
        10,
        "request reached the upstream",
        up.shared.held.notified(),
    )
    .await;

    // New connections are refused once the listener is closed ...
    terminate(&kg, addr).await;
    // ... while the request in flight still completes.
    up.shared.release.notify_one();
    let answer = within(10, "in-flight answer", in_flight).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "released");
    assert_eq!(kg.wait(10).await, 0);
}

#[tokio::test]
async fn sigterm_waits_for_an_open_websocket_tunnel() {
    let ws_addr = upstream::websocket_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, ca) = write_config(
        dir.path(),
        &format!("http://{ws_addr}"),
        "[runtime]\nshutdown_grace = \"20s\"\n",
    );
    let mut kg = Process::serve(&cfg);
    let addr = kg.main_addr().await;
    let mut ws = upstream::websocket_via(addr, &ca).await;

    terminate(&kg, addr).await;
    // The tunnel still carries messages while keygate drains ...
    upstream::websocket_echoes(&mut ws, "still open during the drain").await;
    assert_eq!(kg.exited(), None, "keygate exited with a tunnel open");
    // ... and keygate exits once it closes.
    upstream::websocket_close(ws).await;
    assert_eq!(kg.wait(10).await, 0);
}

/// The CN of the certificate keygate presents to a new client.
async fn served_cn(addr: std::net::SocketAddr, ca: &Ca) -> Option<String> {
    let tls = tokio::time::timeout(Duration::from_secs(5), client::raw_tls_result(addr, ca))
        .await
        .ok()?
        .ok()?;
    let (_, conn) = tls.get_ref();
    let der = conn.peer_certificates()?.first()?.clone();
    let text = String::from_utf8_lossy(der.as_ref()).into_owned();
    ["first", "second"]
        .iter()
        .find(|cn| text.contains(*cn))
        .map(|s| s.to_string())
}

#[tokio::test]
async fn sighup_swaps_the_certificate_and_keeps_it_when_the_new_pair_is_bad() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, ca) = write_config(dir.path(), &up.url(), "");
    let kg = Process::serve(&cfg);
    let addr = kg.main_addr().await;
    assert_eq!(served_cn(addr, &ca).await.as_deref(), Some("first"));

    ca.leaf("second").write(dir.path());
    kg.signal("HUP");
    eventually(
        "new clients see the second certificate",
        250,
        Duration::from_millis(20),
        || async { (served_cn(addr, &ca).await.as_deref() == Some("second")).then_some(()) },
    )
    .await;

    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    kg.signal("HUP");
    kg.logged("TLS reload failed").await;
    assert_eq!(served_cn(addr, &ca).await.as_deref(), Some("second"));
}

#[tokio::test]
async fn sighup_rereads_the_admin_tokens_and_keeps_them_when_the_file_is_bad() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, ca) = write_config(dir.path(), &up.url(), "");
    let kg = Process::serve(&cfg);
    let admin = kg.admin_addr().await;
    let c = client::h1(&ca);
    let status_with = |token: &'static str| {
        let c = c.clone();
        async move {
            let req = http::Request::get(format!("https://127.0.0.1:{}/v1/keys", admin.port()))
                .header("authorization", format!("Bearer {token}"))
                .body(crate::support::body::empty())
                .unwrap();
            crate::support::client::send(&c, req).await.status
        }
    };
    assert_eq!(
        status_with(crate::support::ADMIN_TOKEN).await,
        StatusCode::OK
    );

    const ROTATED: &str = "rotated-token-0123456789abcdef";
    std::fs::write(
        dir.path().join("admin-token"),
        format!("rotated:{ROTATED}\n"),
    )
    .unwrap();
    kg.signal("HUP");
    eventually(
        "the rotated token works",
        250,
        Duration::from_millis(20),
        || async { (status_with(ROTATED).await == StatusCode::OK).then_some(()) },
    )
    .await;
    assert_eq!(
        status_with(crate::support::ADMIN_TOKEN).await,
        StatusCode::UNAUTHORIZED,
        "the old token still works"
    );

    std::fs::write(dir.path().join("admin-token"), "broken:tiny-secret\n").unwrap();
    kg.signal("HUP");
    kg.logged("admin token reload failed").await;
    assert_eq!(
        status_with(ROTATED).await,
        StatusCode::OK,
        "a bad file must keep the last good tokens"
    );
    assert!(
        !kg.log_lines()
            .iter()
            .any(|l| l.to_string().contains("tiny-secret")),
        "the token file's content reached the log"
    );
}

#[tokio::test]
async fn a_1_gib_streamed_upload_passes_with_flat_memory() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, ca) = write_config(dir.path(), &up.url(), "[log]\naccess_log = false\n");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let kg = Process::serve(&cfg);
    let addr = kg.main_addr().await;
    let before = kg.peak_rss_kib();

    let script = format!(
        "head -c 1073741824 /dev/zero | curl -sS --fail --cacert {} -T - https://127.0.0.1:{}/upload",
        ca_file.display(),
        addr.port()
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sh").args(["-c", &script]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1073741824");
    let peak = kg.peak_rss_kib();
    assert!(
        peak < before + 64 * 1024,
        "keygate's peak RSS grew from {before} KiB to {peak} KiB for a 1 GiB upload"
    );
}

#[tokio::test]
async fn each_request_writes_one_access_log_line_without_the_query() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, ca) = write_config(dir.path(), &up.url(), "");
    let kg = Process::serve(&cfg);
    let addr = kg.main_addr().await;
    let answer = get(
        &client::h1(&ca),
        &format!("https://127.0.0.1:{}/report?token=s3cr3t", addr.port()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let line = eventually(
        "access log line",
        250,
        Duration::from_millis(20),
        || async {
            kg.log_lines()
                .into_iter()
                .find(|l| l["target"] == "keygate::access")
        },
    )
    .await;
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/report");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes"], 2);
    // Milliseconds to the microsecond: "0.073", not "0.073227".
    let duration = line["duration_ms"].to_string();
    assert!(line["duration_ms"].as_f64().is_some(), "{line}");
    assert!(
        duration.split_once('.').is_none_or(|(_, d)| d.len() <= 3),
        "{line}"
    );
    assert!(line["timestamp"].is_string());
    assert!(!kg
        .log_lines()
        .iter()
        .any(|l| l.to_string().contains("s3cr3t")));
}
