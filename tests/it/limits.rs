//! Limits and timeouts: every kind of stalled or oversized client is cut off
//! in bounded time; nothing hangs.

use std::time::Duration;

use futures_util::StreamExt;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::client::{self, get};
use crate::support::gateway::builder;
use crate::support::upstream::{self, Upstream};
use crate::support::{eventually, within};

/// Read until the peer closes; returns what was read.
async fn read_to_close(mut s: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_at_the_header_read_timeout() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("limits", "header_read_timeout = \"500ms\"")
        .start()
        .await;
    let tls = client::raw_tls(gw.addr, &gw.ca).await;
    let (rd, mut wr) = tokio::io::split(tls);
    wr.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    trickle_until_cut(rd, wr, "connection closed by keygate").await;
    assert!(up.requests().is_empty());
}

/// The header-read timeout times a request head from its first byte: a
/// keep-alive connection between requests is idle, and `idle_timeout` is
/// what closes it (hyper's own timer closed it at `header_read_timeout`).
#[tokio::test]
async fn a_keep_alive_connection_idle_past_the_header_read_timeout_stays_open() {
    let up = Upstream::start().await;
    let gw = timed_heads(&up).await;
    let mut tls = client::raw_tls(gw.addr, &gw.ca).await;
    for round in ["first", "after 1.2 s idle"] {
        get_ok(&mut tls, round).await;
        // Four header-read timeouts of nothing: the time is what is tested.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    assert_eq!(up.requests().len(), 2);
}

/// ... and a head that starts on a kept-alive connection is timed, as is a
/// connection that never sends one.
#[tokio::test]
async fn a_slow_second_head_and_a_silent_connection_are_cut_at_the_header_read_timeout() {
    let up = Upstream::start().await;
    let gw = timed_heads(&up).await;
    let silent = client::raw_tls(gw.addr, &gw.ca).await;
    // Without ALPN keygate reads the first bytes to tell the HTTP: timed too.
    let silent_no_alpn = tokio_rustls::TlsConnector::from(gw.ca.client_config(&[]))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            TcpStream::connect(gw.addr).await.unwrap(),
        )
        .await
        .expect("TLS handshake without ALPN");
    let mut tls = client::raw_tls(gw.addr, &gw.ca).await;
    get_ok(&mut tls, "first").await;
    let (rd, mut wr) = tokio::io::split(tls);
    wr.write_all(b"GET /second HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    trickle_until_cut(rd, wr, "the slow second head is cut").await;
    within(5, "the silent connection is cut", read_to_close(silent)).await;
    within(
        5,
        "the silent connection without ALPN is cut",
        read_to_close(silent_no_alpn),
    )
    .await;
    assert_eq!(
        up.requests().len(),
        1,
        "the second request never reached the backend"
    );
}

/// A plaintext connection is told HTTP/2 from HTTP/1.1 by its first bytes,
/// also when HTTP/2's preface arrives in two pieces; one that sends nothing
/// is closed at the header-read timeout, as over TLS.
#[tokio::test]
async fn a_plaintext_connection_is_served_by_its_first_bytes_and_a_silent_one_is_cut() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .plaintext()
        .set("limits", "header_read_timeout = \"500ms\"")
        .start()
        .await;
    let silent = TcpStream::connect(gw.addr).await.unwrap();

    let mut h1 = TcpStream::connect(gw.addr).await.unwrap();
    h1.write_all(b"GET /plain-h1 HTTP/1.1\r\nHost: app\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = within(5, "HTTP/1.1 answer", h1.read(&mut buf))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{}/plain-h2", gw.addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let answer = within(5, "HTTP/2 answer", h2.send_request(req))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.version(), http::Version::HTTP_2);
    assert_eq!(up.last().uri.path(), "/plain-h2");

    // The preface cut after its first line, then the rest with an empty
    // SETTINGS frame: keygate answers with HTTP/2 SETTINGS of its own. (The
    // pause only keeps the two writes apart; nothing on our side to wait for.)
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut cut = TcpStream::connect(gw.addr).await.unwrap();
    cut.write_all(&PREFACE[..16]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    cut.write_all(&PREFACE[16..]).await.unwrap();
    cut.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let mut frame_head = [0u8; 9];
    within(5, "HTTP/2 SETTINGS", cut.read_exact(&mut frame_head))
        .await
        .unwrap();
    assert_eq!(
        frame_head[3], 4,
        "the first frame is SETTINGS: {frame_head:?}"
    );

    let cut_off = within(5, "the silent connection is cut", read_to_close(silent)).await;
    assert!(cut_off.is_empty(), "nothing is said to a silent connection");
}

/// The first head's header-read timeout runs from the connection's start,
/// the wait for the bytes that tell its HTTP included: a client that waits,
/// sends one byte and stalls is cut `header_read_timeout` after it
/// connected, not that long after its byte (nginx's client_header_timeout).
#[tokio::test]
async fn a_first_head_is_timed_from_the_connections_start() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .plaintext()
        .set("limits", "header_read_timeout = \"3s\"")
        .start()
        .await;
    let connected = std::time::Instant::now();
    let mut late = TcpStream::connect(gw.addr).await.unwrap();
    // The scenario itself: most of the budget spent saying nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    late.write_all(b"G").await.unwrap();
    within(8, "the stalled first head is cut", read_to_close(late)).await;
    let took = connected.elapsed();
    // From its byte the budget would end at 5.5 s; from the start at 3 s.
    // The 2 s between them is slack for a loaded test machine.
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(5),
        "cut after {took:?}, not header_read_timeout (3 s) after connecting"
    );
    assert!(up.requests().is_empty());
}

/// Connection timeouts of 100 years, the longest the config takes, mean no
/// deadline, not a panic per connection: over TLS and on plaintext, where
/// the first bytes are waited for under the header-read timeout too.
#[tokio::test]
async fn the_longest_connection_timeouts_are_no_deadline() {
    let up = Upstream::start().await;
    let limits = "header_read_timeout = \"100y\"\n\
                  tls_handshake_timeout = \"100y\"\n\
                  idle_timeout = \"100y\"\n\
                  send_timeout = \"100y\"";
    let tls = builder(&up.url()).set("limits", limits).start().await;
    let answer = within(
        10,
        "answer over TLS",
        get(&client::h1(&tls.ca), &tls.url("/")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let plain = builder(&up.url())
        .plaintext()
        .set("limits", limits)
        .start()
        .await;
    let mut h1 = TcpStream::connect(plain.addr).await.unwrap();
    h1.write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = within(5, "answer on plaintext", h1.read(&mut buf))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("limits", "idle_timeout = \"400ms\"")
        .start()
        .await;
    let mut tls = client::raw_tls(gw.addr, &gw.ca).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = within(5, "response", tls.read(&mut buf)).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Nothing more is sent: keygate closes the connection on its own.
    within(5, "idle connection closed", read_to_close(tls)).await;
}

#[tokio::test]
async fn a_client_that_never_completes_the_tls_handshake_is_dropped() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("limits", "tls_handshake_timeout = \"300ms\"")
        .start()
        .await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    within(5, "handshake timeout closes the socket", read_to_close(tcp)).await;
}

#[tokio::test]
async fn oversized_request_headers_get_431() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("limits", "max_header_bytes = 8192")
        .start()
        .await;
    let mut tls = client::raw_tls(gw.addr, &gw.ca).await;
    let big = "a".repeat(20_000);
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = tls.write_all(req.as_bytes()).await;
    let answer = within(5, "431 and close", read_to_close(tls)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 431"), "got {text:?}");
    assert!(up.requests().is_empty());

    // Headers under the limit still pass.
    let c = client::h1(&gw.ca);
    assert_eq!(get(&c, &gw.url("/")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_requests_get_400_not_a_hang() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    for garbage in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ] {
        let mut tls = client::raw_tls(gw.addr, &gw.ca).await;
        let _ = tls.write_all(garbage).await;
        let answer = within(5, "answer to garbage", read_to_close(tls)).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 400"),
            "got {text:?}"
        );
    }
    assert!(up.requests().is_empty());
}

type TlsConnect =
    tokio::task::JoinHandle<std::io::Result<tokio_rustls::client::TlsStream<TcpStream>>>;

/// A TLS handshake with the gateway, in a task (it may have to wait for a slot).
fn spawn_tls_connect(gw: &crate::support::gateway::TestGateway) -> TlsConnect {
    let (addr, cfg) = (gw.addr, gw.ca.client_config(&[b"http/1.1"]));
    tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await?;
        tokio_rustls::TlsConnector::from(cfg)
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
    })
}

/// Assert that `connect` is still waiting half a second later.
async fn assert_waiting(connect: &TlsConnect, served: &str) {
    let waited = tokio::time::timeout(Duration::from_millis(500), async {
        while !connect.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_err(), "{served}");
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("limits", "max_connections = 2")
        .start()
        .await;
    let first = client::raw_tls(gw.addr, &gw.ca).await;
    let _second = client::raw_tls(gw.addr, &gw.ca).await;
    served_once_closed(
        &gw,
        first,
        "a third connection was served beyond max_connections = 2",
    )
    .await;
}

/// A new connection waits while `holder` holds the last free slot, and is
/// served as soon as `holder` is closed.
async fn served_once_closed<T>(
    gw: &crate::support::gateway::TestGateway,
    holder: T,
    while_held: &str,
) {
    let next = spawn_tls_connect(gw);
    assert_waiting(&next, while_held).await;
    drop(holder);
    let tls = within(5, "the waiting connection served", next)
        .await
        .unwrap();
    assert!(tls.is_ok());
}

/// A connection keygate has closed still holds its slot while it lingers
/// (reading what the client still sends, so that no reset destroys the
/// answer in flight), as nginx counts it; it is freed when the client
/// closes its side.
#[tokio::test]
async fn a_lingering_close_holds_its_slot_until_the_client_closes() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("limits", "max_connections = 1")
        .start()
        .await;
    let mut first = client::raw_tls(gw.addr, &gw.ca).await;
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        .await
        .unwrap();
    // keygate answers 400 and closes its side; the client keeps its own open.
    let answer = within(5, "answer to garbage", read_to_close(&mut first)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "got {text:?}");
    let closed = std::time::Instant::now();
    served_once_closed(
        &gw,
        first,
        "a second connection was served while the first lingered, beyond max_connections = 1",
    )
    .await;
    // Freed by the client's close, not by the linger's 2 s running out.
    assert!(
        closed.elapsed() < Duration::from_millis(1800),
        "served {:?} after keygate closed the first connection",
        closed.elapsed()
    );
    assert!(up.requests().is_empty());
}

/// A gateway with `[limits] limits` in front of a WebSocket echo backend.
async fn websocket_gateway(limits: &str) -> crate::support::gateway::TestGateway {
    let ws_addr = upstream::websocket_echo().await;
    builder(&format!("http://{ws_addr}"))
        .set("limits", limits)
        .start()
        .await
}

#[tokio::test]
async fn a_websocket_tunnel_keeps_its_connection_slot() {
    let gw = websocket_gateway("max_connections = 1").await;
    let mut ws = upstream::websocket_via(gw.addr, &gw.ca).await;
    upstream::websocket_echoes(&mut ws, "tunnel open").await;
    // hyper has handed the connection over to the tunnel; the slot stays
    // taken, and the gauge still counts it.
    let admin = client::h1(&gw.ca);
    assert_eq!(gw.metric(&admin, "keygate_open_connections").await, 1.0);
    let next = spawn_tls_connect(&gw);
    assert_waiting(
        &next,
        "a connection was served beside an open tunnel with max_connections = 1",
    )
    .await;
    upstream::websocket_close(ws).await;
    let tls = within(5, "connection served after the tunnel closed", next).await;
    assert!(tls.unwrap().is_ok());
}

#[tokio::test]
async fn a_quiet_websocket_tunnel_is_closed_at_the_idle_timeout() {
    let gw = websocket_gateway("idle_timeout = \"400ms\"\nmax_connections = 1").await;
    let mut ws = upstream::websocket_via(gw.addr, &gw.ca).await;
    // Traffic keeps it open past the timeout ...
    for i in 0..6 {
        upstream::websocket_echoes(&mut ws, &format!("message {i}")).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // ... silence ends it, and frees its slot.
    let ended = within(5, "quiet tunnel closed", async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(m)) if m.is_close() => break,
                Some(Ok(_)) => {}
            }
        }
    });
    ended.await;
    let tls = within(5, "the slot is free again", spawn_tls_connect(&gw)).await;
    assert!(tls.unwrap().is_ok());
}

/// A client that stops reading a response (its TCP window never opens
/// again) is disconnected after `limits.send_timeout`, freeing the upstream
/// connection the response held, instead of holding both for ever.
#[tokio::test]
async fn a_client_that_stops_reading_a_response_is_cut_off_at_the_send_timeout() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("limits", "send_timeout = \"400ms\"")
        .set("limits", "idle_timeout = \"1h\"")
        .start()
        .await;
    let metrics = client::h1(&gw.ca);
    let mut tls = client::raw_tls(gw.addr, &gw.ca).await;
    tls.write_all(b"GET /download/1073741824 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    within(5, "response starts", tls.read_exact(&mut head))
        .await
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // Not reading any further: keygate's writes stall, then it lets go.
    crate::support::eventually(
        "the stalled connection is closed",
        50,
        Duration::from_millis(100),
        || async { (gw.metric(&metrics, "keygate_open_connections").await == 0.0).then_some(()) },
    )
    .await;
    let rest = within(10, "the rest, then EOF", read_to_close(tls)).await;
    assert!(
        rest.len() < 64 * 1024 * 1024,
        "{} bytes of a 1 GiB response got through a client that stopped reading",
        rest.len()
    );
}

/// A TLS connection to `gw` offering `alpn`, whose receive buffer is
/// small: a client that does not read fills keygate's socket fast.
async fn tight_tls(
    gw: &crate::support::gateway::TestGateway,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    tight_tls_to(gw, gw.addr, alpn).await
}

async fn tight_tls_to(
    gw: &crate::support::gateway::TestGateway,
    addr: std::net::SocketAddr,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(gw.ca.client_config(&[alpn]))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake with keygate")
}

/// `keygate_open_connections` reaches 0 within 5 s.
async fn all_connections_close(gw: &crate::support::gateway::TestGateway, what: &str) {
    let metrics = client::h1(&gw.ca);
    crate::support::eventually(what, 50, Duration::from_millis(100), || async {
        (gw.metric(&metrics, "keygate_open_connections").await == 0.0).then_some(())
    })
    .await;
}

/// An HTTP/2 client that never opens its stream windows holds keygate's own
/// answer (a 401: no key needed) as well as an upstream download: it is
/// cut off at the send timeout, not left holding its connection's slot
/// for ever (no request is in flight for the idle timeout to close either).
#[tokio::test]
async fn an_http2_client_that_never_opens_its_window_on_a_401_is_cut_off() {
    let up = Upstream::start().await;
    let gw = window_gateway(&up, "1h").await;
    let conn = a_401_behind_a_window(&gw, gw.addr, gw.url("/"), 0).await;
    all_connections_close(&gw, "the connection stalled on a 401 is closed").await;
    within(5, "the client sees its connection end", conn)
        .await
        .unwrap()
        .ok();
}

/// A window of one byte: keygate sends that byte, h2 keeps the rest of the
/// 401 after its body is gone (no request in flight, no note), and the
/// idle timeout's graceful close waited on it for ever. A closing
/// connection where nothing moves ends at the send timeout.
#[tokio::test]
async fn an_http2_client_that_opens_one_byte_of_window_is_cut_off() {
    let up = Upstream::start().await;
    let gw = window_gateway(&up, "600ms").await;
    let conn = a_401_behind_a_window(&gw, gw.addr, gw.url("/"), 1).await;
    all_connections_close(
        &gw,
        "the connection holding a 401 behind one byte of window is closed",
    )
    .await;
    within(5, "the client sees its connection end", conn)
        .await
        .unwrap()
        .ok();
}

/// The same on the admin listener, whose answers carry no access-log line:
/// its idle timeout closed such a connection gracefully, and the graceful
/// close then waited on the stalled answer for ever.
#[tokio::test]
async fn an_http2_client_that_never_opens_its_window_on_the_admin_listener_is_cut_off() {
    let up = Upstream::start().await;
    let gw = window_gateway(&up, "1h").await;
    let conn = a_401_behind_a_window(&gw, gw.admin_addr, gw.admin_url("/v1/keys"), 0).await;
    within(5, "keygate ends the stalled admin connection", conn)
        .await
        .unwrap()
        .ok();
}

/// A gateway that refuses requests without a key, with a short send timeout.
async fn window_gateway(up: &Upstream, idle: &str) -> crate::support::gateway::TestGateway {
    builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .set("limits", "send_timeout = \"400ms\"")
        .set("limits", &format!("idle_timeout = \"{idle}\""))
        .start()
        .await
}

/// An HTTP/2 client with `window` bytes of stream window asks `url` on
/// `addr` and gets a 401's head; its connection's task, to see it end.
async fn a_401_behind_a_window(
    gw: &crate::support::gateway::TestGateway,
    addr: std::net::SocketAddr,
    url: String,
    window: u32,
) -> tokio::task::JoinHandle<hyper::Result<()>> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tls = tight_tls_to(gw, addr, b"h2").await;
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(window)
        .handshake(TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(url)
        .body(crate::support::body::empty())
        .unwrap();
    let resp = within(5, "the 401's head", send.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    conn
}

/// A full listener says so, once a minute, not once per client: without it
/// an operator saw clients time out and nothing in the log.
#[tokio::test]
async fn reaching_max_connections_is_logged_once() {
    use crate::support::bin::{self, Process};
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::support::tls::Ca::new("max connections CA");
    let cfg = bin::write_config(
        dir.path(),
        &ca,
        "keygate test",
        &up.url(),
        "[store]\nkind = \"memory\"\n[limits]\nmax_connections = 1\ntls_handshake_timeout = \"300ms\"\n",
    );
    let kg = Process::serve(&cfg);
    let addr = kg.main_addr().await;
    let said = "limits.max_connections reached";
    // Each connection says nothing and holds the only slot until its
    // handshake time is up; the next waits in the accept queue.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    kg.logged(said).await;
    for c in held {
        within(5, "each waiting client is served in turn", read_to_close(c)).await;
    }
    let lines = kg
        .log_lines()
        .into_iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(said)))
        .count();
    assert_eq!(
        lines, 1,
        "one line for the full listener, not one per client"
    );
}

/// A burst of pipelined requests whose answers the client never reads: hyper
/// has taken every answer's body, so only the full socket shows the stall.
#[tokio::test]
async fn a_client_that_pipelines_requests_and_never_reads_is_cut_off() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .set("limits", "send_timeout = \"400ms\"")
        .set("limits", "idle_timeout = \"1h\"")
        .start()
        .await;
    let tls = tight_tls(&gw, b"http/1.1").await;
    let (_rd, mut wr) = tokio::io::split(tls);
    // Bounded: at most 100,000 requests (about 30 MB of 401s, far more than
    // the sockets' buffers), until keygate stops reading and closes.
    let writer = tokio::spawn(async move {
        let burst = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
        for _ in 0..100 {
            if wr.write_all(&burst).await.is_err() {
                return;
            }
        }
    });
    all_connections_close(&gw, "the connection that never reads is closed").await;
    within(5, "the writer sees the connection end", writer)
        .await
        .unwrap();
}

/// Keep trickling header lines on `wr`, far slower than a real client,
/// until keygate closes the connection, which `rd` must see within 5 s.
async fn trickle_until_cut<R, W>(mut rd: R, mut wr: W, what: &str)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let trickle = tokio::spawn(async move {
        for i in 0..100 {
            if wr
                .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0u8; 1024];
    within(5, what, async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue, // a 408 before closing is fine
            }
        }
    })
    .await;
    trickle.abort();
}

/// One GET on a raw HTTP/1.1 connection, answered 200.
async fn get_ok<S>(tls: &mut S, what: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = within(5, "response", tls.read(&mut buf)).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{what}: {head:?}");
}

/// A gateway whose header-read timeout (300 ms) is far shorter than its idle timeout.
async fn timed_heads(up: &Upstream) -> crate::support::gateway::TestGateway {
    builder(&up.url())
        .set(
            "limits",
            "header_read_timeout = \"300ms\"\nidle_timeout = \"1h\"",
        )
        .start()
        .await
}

/// Backend connections are bounded by `limits.max_connections`, as the
/// open-file limit keygate raises assumes: one HTTP/2 client with more
/// streams than that waits for a free connection within
/// `upstream.connect_timeout`, then gets 502; one that comes free while a
/// request waits (back to the pool, not closed) serves it.
#[tokio::test]
async fn backend_connections_are_bounded_by_max_connections() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("limits", "max_connections = 2")
        .set("upstream", "connect_timeout = \"1s\"")
        .start()
        .await;
    let c = client::h2(&gw.ca);
    let mut holding = Vec::new();
    for _ in 0..2 {
        let (c, url) = (c.clone(), gw.url("/hold"));
        holding.push(tokio::spawn(async move { get(&c, &url).await }));
        within(
            5,
            "a request held at the backend",
            up.shared.held.notified(),
        )
        .await;
    }
    let third = within(5, "the third request's answer", get(&c, &gw.url("/"))).await;
    assert_eq!(third.status, StatusCode::BAD_GATEWAY, "{}", third.text());

    // A fourth waits; one held request ends meanwhile and its connection
    // goes back to the pool, still open: the waiting request takes it.
    let (c4, url) = (c.clone(), gw.url("/"));
    let fourth = tokio::spawn(async move { get(&c4, &url).await });
    // Well inside the 1 s the fourth may wait; were it not waiting yet, it
    // would find the connection in the pool: 200 either way, 502 only if a
    // returned connection is never handed to a waiting request.
    tokio::time::sleep(Duration::from_millis(200)).await;
    up.shared.release.notify_one();
    let fourth = within(5, "the fourth request's answer", fourth)
        .await
        .unwrap();
    assert_eq!(fourth.status, StatusCode::OK, "{}", fourth.text());

    up.shared.release.notify_one();
    for held in holding {
        let answer = within(5, "a held request's answer", held).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
    }
}

/// A WebSocket tunnel's backend connection counts among the backend
/// connections `limits.max_connections` bounds, for the tunnel's life:
/// with 2, a tunnel and a held request take both, a further request waits
/// `upstream.connect_timeout` then gets 502; once the tunnel closes it is
/// served. (Its slot was given back at the upgrade: a client could open
/// tunnels beyond the bound the open-file limit is raised for.)
#[tokio::test]
async fn a_websocket_tunnels_backend_connection_counts_until_it_closes() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("limits", "max_connections = 2")
        .set("upstream", "connect_timeout = \"300ms\"")
        .start()
        .await;
    let mut ws = upstream::websocket_via(gw.addr, &gw.ca).await;
    upstream::websocket_echoes(&mut ws, "tunnel open").await;
    let c = client::h2(&gw.ca);
    let (c2, url) = (c.clone(), gw.url("/hold"));
    let holding = tokio::spawn(async move { get(&c2, &url).await });
    within(
        5,
        "a request held at the backend",
        up.shared.held.notified(),
    )
    .await;
    let third = within(5, "the third request's answer", get(&c, &gw.url("/"))).await;
    assert_eq!(
        third.status,
        StatusCode::BAD_GATEWAY,
        "a third backend connection beside a tunnel and a held request: {}",
        third.text()
    );
    upstream::websocket_close(ws).await;
    let after = eventually(
        "a request served once the tunnel closed",
        50,
        Duration::from_millis(100),
        || async {
            let a = get(&c, &gw.url("/")).await;
            (a.status == StatusCode::OK).then_some(a)
        },
    )
    .await;
    assert_eq!(after.text(), "ok");
    up.shared.release.notify_one();
    let held = within(5, "the held request's answer", holding)
        .await
        .unwrap();
    assert_eq!(held.status, StatusCode::OK);
}
