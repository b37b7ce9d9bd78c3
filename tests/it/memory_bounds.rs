//! Memory that grows with what clients send is bounded (docs/memory.md):
//! the tables of client addresses behind the failed-authentication limit
//! hold at most `rate_limit.max_tracked_clients` addresses, however many
//! distinct addresses fail; a good key is never refused for it.

use http::{Request, StatusCode};

use crate::support::body;
use crate::support::client::{self, send, Answer, HttpsClient};
use crate::support::gateway::{builder, TestGateway};
use crate::support::upstream::Upstream;

const TRACKED: usize = 40;
const CLIENTS: usize = 400;

async fn from(c: &HttpsClient, gw: &TestGateway, client: &str, key: &str) -> Answer {
    let req = Request::get(gw.url("/"))
        .header("x-forwarded-for", client)
        .header("apikey", key)
        .body(body::empty())
        .unwrap();
    send(c, req).await
}

#[tokio::test]
async fn failed_authentications_remember_at_most_max_tracked_clients_addresses() {
    let up = Upstream::start().await;
    // One failure a minute per address: nothing a client did here recovers
    // during the test, so no address can be pruned to make room.
    let gw = builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .set("listen", "trusted_proxies = [\"127.0.0.1/32\"]")
        .set("rate_limit", "failed_auth_per_minute = 1")
        .set("rate_limit", &format!("max_tracked_clients = {TRACKED}"))
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("owner").await;

    let mut statuses = Vec::new();
    for i in 0..CLIENTS {
        // One /64 each: an IPv6 client counts by its /64.
        let client = format!("2001:db8:{:x}::1", i + 1);
        statuses.push(from(&c, &gw, &client, "kg_guess").await);
    }
    let refused = statuses
        .iter()
        .filter(|a| a.status == StatusCode::UNAUTHORIZED)
        .count();
    let limited: Vec<_> = statuses
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        refused, TRACKED,
        "each of the first {TRACKED} addresses gets its one 401 and is remembered"
    );
    assert_eq!(
        limited.len(),
        CLIENTS - TRACKED,
        "every further address is limited: the table is full"
    );
    assert!(limited
        .iter()
        .all(|a| a.headers.contains_key("retry-after")));
    // The first addresses are still remembered (their second try is limited),
    // and a good key from a new address is not affected by the full table.
    assert_eq!(
        from(&c, &gw, "2001:db8:1::1", "kg_guess").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let owner = from(&c, &gw, "2001:db8:ffff::1", &key).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.text());
}

#[test]
fn max_tracked_clients_is_validated_by_name() {
    let (code, err) = crate::config_check::check_text("[rate_limit]\nmax_tracked_clients = 0\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("rate_limit.max_tracked_clients: 0 is not between 1 and 100000000"),
        "{err}"
    );
}

/// An HTTP/2 client that opens every window wide, asks for large downloads
/// on all its streams and never reads: keygate holds each stream's
/// `h2_max_send_buf_size`, the chunk waiting for room and what it read
/// from the backend, until `limits.send_timeout`. What it read from the
/// backend was up to hyper's default buffer (about 400 KiB) per response:
/// about 180 MiB per such connection, 1.4 MiB per stream.
#[tokio::test]
async fn stalled_http2_downloads_hold_a_bounded_amount_per_connection() {
    use crate::support::bin::{self, Process};
    use tokio::io::AsyncWriteExt;
    const STREAMS: u32 = 128;
    const CONNECTIONS: usize = 2;
    const BOUND_MIB_PER_CONNECTION: u64 = 130;

    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::support::tls::Ca::new("stalled downloads CA");
    let cfg = bin::write_config(
        dir.path(),
        &ca,
        "localhost",
        &up.url(),
        "[store]\nkind = \"memory\"\n[auth]\nanonymous = \"passthrough\"\n",
    );
    let kg = Process::serve(&cfg);
    let addr = kg.main_addr().await;
    let before = rss_kib(kg.pid());

    let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend([kind, flags]);
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    };
    let path = b"/download/4194304";
    let mut hpack = vec![0x82, 0x87, 0x04, path.len() as u8];
    hpack.extend(path);
    hpack.extend([0x01, 9]);
    hpack.extend(b"localhost");
    let mut attack = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE = 2^31 - 1, and the connection window too.
    attack.extend(frame(0x4, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
    attack.extend(frame(0x8, 0, 0, &(0x7fff_ffffu32 - 65_535).to_be_bytes()));
    for i in 0..STREAMS {
        attack.extend(frame(0x1, 0x5, 1 + 2 * i, &hpack));
    }
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(ca.client_config(&[b"h2"]))
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        tls.write_all(&attack).await.unwrap();
        held.push(tls);
    }
    // Until what keygate holds stops growing: every stream has its fill.
    let mut last = 0;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = kg.peak_rss_kib();
        if now == last && now > before + 10 * 1024 {
            break;
        }
        last = now;
    }
    let grown_mib = (kg.peak_rss_kib() - before) / 1024;
    eprintln!("{CONNECTIONS} stalled connections: {grown_mib} MiB");
    assert!(
        grown_mib < BOUND_MIB_PER_CONNECTION * CONNECTIONS as u64,
        "{CONNECTIONS} stalled HTTP/2 connections made keygate grow by {grown_mib} MiB"
    );
    drop(held);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
