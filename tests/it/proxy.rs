//! Forwarding: HTTP/1.1 and HTTP/2 over TLS, streaming both ways, WebSocket,
//! hop-by-hop headers, X-Forwarded-*, identity-header stripping, upstream failures.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use tokio_tungstenite::tungstenite::Message;

use crate::support::body::{self, count};
use crate::support::client::{self, get, send};
use crate::support::gateway::builder;
use crate::support::tls::Ca;
use crate::support::upstream::{self, Upstream, CHUNK};
use crate::support::within;

#[tokio::test]
async fn http1_over_tls_reaches_the_upstream_with_forwarded_headers() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let answer = get(&client::h1(&gw.ca), &gw.url("/some/path?q=1")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.version, Version::HTTP_11);
    assert_eq!(answer.text(), "ok");
    let seen = up.last();
    assert_eq!(
        seen.uri.path_and_query().unwrap().as_str(),
        "/some/path?q=1"
    );
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(
        seen.headers["x-forwarded-host"],
        format!("127.0.0.1:{}", gw.addr.port())
    );
    assert_eq!(
        seen.headers["host"],
        format!("127.0.0.1:{}", gw.addr.port())
    );
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn_and_reaches_the_upstream_as_http1() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let answer = get(&client::h2(&gw.ca), &gw.url("/h2")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.version, Version::HTTP_2);
    let seen = up.last();
    assert_eq!(seen.version, Version::HTTP_11);
    // HTTP/2 has no Host header; the backend still gets one.
    assert_eq!(
        seen.headers["host"],
        format!("127.0.0.1:{}", gw.addr.port())
    );
}

/// keygate serves a TLS connection by its ALPN protocol; one that names
/// none is told by its first bytes, HTTP/1.1 or HTTP/2 with prior knowledge.
#[tokio::test]
async fn a_tls_client_without_alpn_is_served_by_its_first_bytes() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(gw.ca.client_config(&[]))
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .expect("TLS handshake with keygate");
        assert_eq!(tls.get_ref().1.alpn_protocol(), None, "no protocol named");
        TokioIo::new(tls)
    };
    let req = || {
        Request::get(format!("https://localhost:{}/no-alpn", gw.addr.port()))
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap()
    };

    let (mut h1, conn) = hyper::client::conn::http1::handshake(connect().await)
        .await
        .unwrap();
    tokio::spawn(conn);
    let answer = within(10, "HTTP/1.1 answer", h1.send_request(req()))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.version(), Version::HTTP_11);

    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), connect().await)
            .await
            .unwrap();
    tokio::spawn(conn);
    let answer = within(10, "HTTP/2 answer", h2.send_request(req()))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.version(), Version::HTTP_2);
    assert_eq!(up.last().uri.path(), "/no-alpn");
}

#[tokio::test]
async fn upload_is_streamed_to_the_upstream_before_the_client_finishes() {
    for client in ["h1", "h2"] {
        let up = Upstream::start().await;
        let gw = builder(&up.url()).start().await;
        let c = client::by_name(client, &gw.ca);
        let (tx, b) = body::channel();
        let req = Request::post(gw.url("/upload")).body(b).unwrap();
        let pending = tokio::spawn(async move { send(&c, req).await });
        tx.send(Ok(Bytes::from(vec![1u8; CHUNK]))).await.unwrap();
        // The first chunk reaches the backend while the client still holds the rest.
        within(
            10,
            "first upload chunk at the upstream",
            up.shared.held.notified(),
        )
        .await;
        for _ in 0..15 {
            tx.send(Ok(Bytes::from(vec![2u8; CHUNK]))).await.unwrap();
        }
        drop(tx);
        let answer = within(10, "upload answer", pending).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{client}");
        assert_eq!(answer.text(), (16 * CHUNK).to_string(), "{client}");
    }
}

#[tokio::test]
async fn download_is_streamed_to_the_client_before_the_upstream_finishes() {
    for client in ["h1", "h2"] {
        let up = Upstream::start().await;
        let gw = builder(&up.url()).start().await;
        let c = client::by_name(client, &gw.ca);
        let resp = within(
            10,
            "response headers",
            c.request(
                Request::get(gw.url("/download-gated"))
                    .body(body::empty())
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
        let mut b = resp.into_body();
        let first = within(10, "first chunk before the upstream is released", b.frame())
            .await
            .unwrap()
            .unwrap();
        assert!(!first.into_data().unwrap().is_empty(), "{client}");
        up.shared.release.notify_one();
        let rest = within(10, "rest of the body", count(b)).await.unwrap();
        assert!(rest > 0, "{client}");
    }
}

#[tokio::test]
async fn large_bodies_pass_intact_both_ways_over_http1_and_http2() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let size = 32 * 1024 * 1024;
    for c in [client::h1(&gw.ca), client::h2(&gw.ca)] {
        let resp = c
            .request(
                Request::get(gw.url(&format!("/download/{size}")))
                    .body(body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            within(60, "download", count(resp.into_body()))
                .await
                .unwrap(),
            size as u64
        );

        let (tx, b) = body::channel();
        tokio::spawn(async move {
            for _ in 0..size / CHUNK {
                if tx.send(Ok(Bytes::from(vec![7u8; CHUNK]))).await.is_err() {
                    return;
                }
            }
        });
        let answer = within(
            60,
            "upload",
            send(&c, Request::post(gw.url("/upload")).body(b).unwrap()),
        )
        .await;
        assert_eq!(answer.text(), size.to_string());
    }
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled_both_ways() {
    let ws_addr = upstream::websocket_echo().await;
    let gw = builder(&format!("http://{ws_addr}")).start().await;
    let mut ws = upstream::websocket_via(gw.addr, &gw.ca).await;
    for text in ["hello", "through keygate"] {
        upstream::websocket_echoes(&mut ws, text).await;
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let echoed = within(10, "binary echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(echoed.into_data(), vec![0u8, 1, 2, 255]);
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let req = Request::get(gw.url("/hop"))
        .header("connection", "x-client-hop")
        .header("x-client-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("x-client-end", "kept")
        .body(body::empty())
        .unwrap();
    let answer = send(&client::h1(&gw.ca), req).await;
    let seen = up.last();
    for gone in ["x-client-hop", "keep-alive", "te", "proxy-authorization"] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone} reached the upstream"
        );
    }
    assert_eq!(seen.headers["x-client-end"], "kept");
    for gone in ["x-up-hop", "keep-alive"] {
        assert!(
            !answer.headers.contains_key(gone),
            "{gone} reached the client"
        );
    }
    assert_eq!(answer.headers["x-up-end"], "kept");
}

/// What a client's `Connection` names is hop-by-hop, but never what keygate
/// itself sets for the backend (the identity, the key id, the forwarded
/// address) nor `Host`: admission runs after the client's hop-by-hop
/// headers are gone.
#[tokio::test]
async fn connection_cannot_name_away_what_keygate_sets() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let (key, id) = gw.key("alice").await;
    let req = Request::get(gw.url("/named"))
        .header("apikey", &key)
        .header(
            "connection",
            "X-Remote-User, X-Keygate-Key-Id, Host, X-Forwarded-For",
        )
        .body(body::empty())
        .unwrap();
    assert_eq!(send(&client::h1(&gw.ca), req).await.status, StatusCode::OK);
    let seen = up.last();
    assert_eq!(seen.headers["x-remote-user"], "alice");
    assert_eq!(seen.headers["x-keygate-key-id"], id.as_str());
    assert_eq!(
        seen.headers["host"],
        format!("127.0.0.1:{}", gw.addr.port())
    );
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
}

/// One request on a fresh plaintext connection, as the bytes go: its
/// answer's text, once keygate has closed the connection.
async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    within(10, "the answer", tcp.read_to_end(&mut answer))
        .await
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// RFC 9112 §3.2: one Host, which an HTTP/1.1 request must carry, and the
/// request target's authority over it; CONNECT asks for a tunnel, which
/// keygate does not make; `*` is OPTIONS's target only, and a bare
/// authority CONNECT's. Nothing malformed reaches the backend.
#[tokio::test]
async fn the_backend_gets_one_host_and_the_targets_authority_wins() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).plaintext().start().await;
    for (request, status) in [
        (
            "GET /two HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
            "400",
        ),
        ("GET /none HTTP/1.1\r\nConnection: close\r\n\r\n", "400"),
        (
            "GET /at HTTP/1.1\r\nHost: good.example@evil.example\r\nConnection: close\r\n\r\n",
            "400",
        ),
        (
            "GET /path HTTP/1.1\r\nHost: evil.example/x?\r\nConnection: close\r\n\r\n",
            "400",
        ),
        (
            "GET /space HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
            "400",
        ),
        (
            "GET * HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
            "400",
        ),
        (
            "GET a.example:80 HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
            "400",
        ),
        (
            "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nConnection: close\r\n\r\n",
            "501",
        ),
    ] {
        let answer = exchange(gw.addr, request).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?}: {answer}"
        );
    }
    assert!(
        up.requests().is_empty(),
        "a malformed request was forwarded"
    );

    let answer = exchange(
        gw.addr,
        "GET http://target.example/abs HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let seen = up.last();
    assert_eq!(seen.uri, "/abs");
    assert_eq!(seen.headers["host"], "target.example");
    assert_eq!(seen.headers["x-forwarded-host"], "target.example");
    // HTTP/1.0 needs no Host: the backend gets the upstream's own.
    let answer = exchange(gw.addr, "GET /old HTTP/1.0\r\n\r\n").await;
    assert!(answer.contains(" 200 "), "{answer}");
    assert_eq!(
        up.last().headers["host"],
        up.url().trim_start_matches("http://")
    );
    // `*` is OPTIONS's own target, and goes on as it came.
    let answer = exchange(
        gw.addr,
        "OPTIONS * HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert_eq!(up.last().uri, "*");
}

/// A request body that breaks the chunked framing is the client's fault: 400,
/// not the 502 that blames the backend.
#[tokio::test]
async fn a_malformed_request_body_is_400() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).plaintext().start().await;
    let answer = exchange(
        gw.addr,
        "POST /bad HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}

/// Only WebSocket is tunnelled: an `h2c` upgrade (a known way to smuggle
/// requests past a proxy's checks) reaches the backend as a plain request,
/// its upgrade headers gone.
#[tokio::test]
async fn only_a_websocket_upgrade_is_forwarded() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).plaintext().start().await;
    let answer = exchange(
        gw.addr,
        "GET /h2c HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let seen = up.last();
    for gone in ["upgrade", "http2-settings"] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone} reached the upstream"
        );
    }
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_client_is_replaced() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let req = Request::get(gw.url("/"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=6.6.6.6")
        .body(body::empty())
        .unwrap();
    send(&client::h1(&gw.ca), req).await;
    let seen = up.last();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(
        seen.headers["x-forwarded-host"],
        format!("127.0.0.1:{}", gw.addr.port())
    );
    assert!(!seen.headers.contains_key("forwarded"));
}

#[tokio::test]
async fn x_forwarded_for_from_a_trusted_proxy_is_extended() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("listen", "trusted_proxies = [\"127.0.0.0/8\"]")
        .start()
        .await;
    let req = Request::get(gw.url("/"))
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-host", "app.example.org")
        .body(body::empty())
        .unwrap();
    send(&client::h1(&gw.ca), req).await;
    let seen = up.last();
    assert_eq!(seen.headers["x-forwarded-for"], "198.51.100.7, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-host"], "app.example.org");
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream_in_any_spelling() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    for c in [client::h1(&gw.ca), client::h2(&gw.ca)] {
        let req = Request::get(gw.url("/"))
            .header("X-Remote-User", "mallory")
            .header("x_remote_user", "mallory")
            .header("X.Remote.User", "mallory")
            .header("X-KEYGATE-KEY-ID", "forged")
            .header("x_keygate_key_id", "forged")
            .body(body::empty())
            .unwrap();
        assert_eq!(send(&c, req).await.status, StatusCode::OK);
        let seen = up.last();
        for (name, value) in &seen.headers {
            assert_ne!(value, "mallory", "{name} reached the upstream");
            assert_ne!(value, "forged", "{name} reached the upstream");
        }
    }
}

#[tokio::test]
async fn keygate_paths_are_never_forwarded() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let answer = get(&client::h1(&gw.ca), &gw.url("/.keygate/anything")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn without_a_key_reject_mode_answers_401_with_a_basic_challenge() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .start()
        .await;
    let answer = get(&client::h1(&gw.ca), &gw.url("/")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.headers["www-authenticate"],
        "Basic realm=\"keygate\", charset=\"UTF-8\""
    );
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_dead_upstream_is_502_and_a_slow_one_504() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gw = builder(&format!("http://{dead}")).start().await;
    let answer = within(10, "502", get(&client::h1(&gw.ca), &gw.url("/"))).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);

    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("upstream", "response_timeout = \"300ms\"")
        .start()
        .await;
    let answer = within(10, "504", get(&client::h1(&gw.ca), &gw.url("/slow"))).await;
    assert_eq!(answer.status, StatusCode::GATEWAY_TIMEOUT);
    // The gateway is still healthy afterwards.
    assert_eq!(
        get(&client::h1(&gw.ca), &gw.url("/")).await.status,
        StatusCode::OK
    );
}

/// A response timeout of 100 years, the longest the config takes, means
/// no deadline, not a panic per request.
#[tokio::test]
async fn the_longest_response_timeout_is_no_deadline() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("upstream", "response_timeout = \"100y\"")
        .start()
        .await;
    let answer = within(10, "answer", get(&client::h1(&gw.ca), &gw.url("/"))).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn an_upstream_reset_mid_response_aborts_only_that_response() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let c = client::h1(&gw.ca);
    // The upstream dies after one chunk of a 640 KiB body: the client must
    // see a failure (no response, or a body that errors), never a complete answer.
    let outcome = within(10, "aborted response", async {
        let resp = c
            .request(Request::get(gw.url("/reset")).body(body::empty()).unwrap())
            .await?;
        count(resp.into_body()).await.map_err(Into::into)
    })
    .await;
    let outcome: Result<u64, Box<dyn std::error::Error + Send + Sync>> = outcome;
    assert!(
        outcome.is_err(),
        "a truncated body looked complete: {outcome:?}"
    );
    assert_eq!(get(&c, &gw.url("/")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_stops_mid_upload_leaves_the_gateway_healthy() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let c = client::h1(&gw.ca);
    let (tx, b) = body::channel();
    let req = Request::post(gw.url("/upload"))
        .header("content-length", "10000000")
        .body(b)
        .unwrap();
    let pending = tokio::spawn({
        let c = c.clone();
        async move { c.request(req).await }
    });
    tx.send(Ok(Bytes::from(vec![1u8; CHUNK]))).await.unwrap();
    within(10, "first chunk at the upstream", up.shared.held.notified()).await;
    tx.send(Err(std::io::Error::other("client gives up")))
        .await
        .unwrap();
    let _ = within(10, "aborted request ends", pending).await;
    assert_eq!(get(&c, &gw.url("/")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_https_upstream_is_verified_with_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let upstream_ca = Ca::new("upstream CA");
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_file, upstream_ca.pem()).unwrap();
    let (addr, _task) = upstream::start_tls(&upstream_ca.leaf("upstream")).await;
    let url = format!("https://127.0.0.1:{}", addr.port());

    let gw = builder(&url)
        .set("upstream", &format!("ca_file = \"{}\"", ca_file.display()))
        .start()
        .await;
    assert_eq!(
        get(&client::h1(&gw.ca), &gw.url("/")).await.status,
        StatusCode::OK
    );

    // Without the CA the upstream's certificate is not trusted: 502, never a silent downgrade.
    let gw = builder(&url).start().await;
    assert_eq!(
        get(&client::h1(&gw.ca), &gw.url("/")).await.status,
        StatusCode::BAD_GATEWAY
    );
}

#[tokio::test]
async fn a_plaintext_listener_says_http_and_drains_on_shutdown() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).plaintext().start().await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /plain HTTP/1.1\r\nHost: app\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = within(5, "plaintext answer", tcp.read(&mut buf))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(up.last().headers["x-forwarded-proto"], "http");
    // An idle keep-alive connection does not hold up shutdown.
    assert!(within(10, "graceful stop", gw.stop()).await);
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_closed_ones_not_reused() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let c = client::h1(&gw.ca);
    for _ in 0..5 {
        assert_eq!(get(&c, &gw.url("/")).await.status, StatusCode::OK);
    }
    let peers: std::collections::HashSet<_> = up.requests().iter().map(|r| r.peer).collect();
    assert_eq!(
        peers.len(),
        1,
        "sequential requests should share one upstream connection"
    );

    // A backend that closes after each answer: every request still succeeds.
    for _ in 0..5 {
        let answer = within(
            10,
            "answer after a closed upstream connection",
            get(&c, &gw.url("/close")),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text(), "bye");
    }
    assert_eq!(get(&c, &gw.url("/")).await.status, StatusCode::OK);
}

/// A backend that answers each request at once, before reading its body,
/// then reads the body before the next request on the connection (as Go's
/// net/http does with a small unread body). Raw TCP: hyper's server closes
/// such a connection instead.
async fn early_answering_backend() -> String {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut tcp = BufReader::new(tcp);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if tcp.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                len = value.trim().parse().unwrap();
                            }
                        }
                    }
                    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if tcp.get_mut().write_all(ok).await.is_err() {
                        return;
                    }
                    let mut body = vec![0u8; len];
                    if tcp.read_exact(&mut body).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// A client that sends its request body slowly, to a backend that answered
/// before reading it, keeps that upstream connection busy after its response
/// ended: keygate must not hand it to the next request, which would wait
/// behind the body until the response timeout (a 504 for a bystander).
#[tokio::test]
async fn a_request_body_still_being_sent_does_not_hold_up_the_next_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = early_answering_backend().await;
    let gw = builder(&up)
        .set("upstream", "response_timeout = \"3s\"")
        .start()
        .await;
    let mut slow = client::raw_tls(gw.addr, &gw.ca).await;
    slow.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    within(5, "the early answer", slow.read_exact(&mut head))
        .await
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // The other 999 bytes never come (while this test runs).
    let c = client::h1(&gw.ca);
    for i in 0..3 {
        let started = std::time::Instant::now();
        let answer = within(10, "a bystander's answer", get(&c, &gw.url("/"))).await;
        assert_eq!(answer.status, StatusCode::OK, "request {i}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "request {i} waited {:?} behind another client's body",
            started.elapsed()
        );
    }
    drop(slow);
}

#[tokio::test]
async fn an_upstream_that_never_accepts_is_502_after_the_connect_timeout() {
    // A listener whose accept queue is full: the kernel drops further SYNs,
    // so a connect hangs instead of failing fast.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let gw = builder(&format!("http://{addr}"))
        .set("upstream", "connect_timeout = \"300ms\"")
        .set("upstream", "response_timeout = \"3s\"")
        .start()
        .await;
    let started = std::time::Instant::now();
    let answer = within(
        10,
        "502 after the connect timeout",
        get(&client::h1(&gw.ca), &gw.url("/")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    drop((listener, fillers));
}
