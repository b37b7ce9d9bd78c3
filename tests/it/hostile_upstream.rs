//! A backend whose answers are malformed or overreach: what keygate passes
//! on to HTTP/1.1 and HTTP/2 clients. The backend is a raw socket that sends
//! fixed bytes, as no well-behaved HTTP library would.

use std::net::SocketAddr;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::client::{self, get};
use crate::support::gateway::builder;

/// A backend that answers every request (a head without a body) with
/// `answer`, on keep-alive connections, until the test ends.
async fn answering(answer: &'static [u8]) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n @ 1..) = tcp.read(&mut buf).await else {
                        return;
                    };
                    head.extend_from_slice(&buf[..n]);
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        if tcp.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

/// RFC 9112 §6.3: a response framed by `Transfer-Encoding` whose
/// `Content-Length` is wrong reaches the client whole, over both versions;
/// the stale length is not passed on to cut it short (HTTP/1.1) or to
/// break the stream (HTTP/2).
#[tokio::test]
async fn a_chunked_response_with_a_stale_content_length_arrives_whole() {
    let (up, task) = answering(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
          14\r\ntwenty bytes chunked\r\n0\r\n\r\n",
    )
    .await;
    let gw = builder(&format!("http://{up}")).start().await;
    for (name, client) in [("h1", client::h1(&gw.ca)), ("h2", client::h2(&gw.ca))] {
        let answer = get(&client, &gw.url("/both")).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}");
        assert_eq!(answer.text(), "twenty bytes chunked", "{name}");
        assert!(!answer.headers.contains_key("content-length"), "{name}");
    }
    task.abort();
}

/// A `101 Switching Protocols` to a request that asked for no upgrade is
/// no answer: HTTP/2 has no 101 at all, and an HTTP/1.1 client would be
/// told of a switch that never happens. 502, over both versions.
#[tokio::test]
async fn a_switch_nobody_asked_for_is_502() {
    let (up, task) = answering(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    let gw = builder(&format!("http://{up}")).start().await;
    for (name, client) in [("h1", client::h1(&gw.ca)), ("h2", client::h2(&gw.ca))] {
        let answer = get(&client, &gw.url("/plain")).await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{name}");
        assert!(answer.text().contains("switched protocols"), "{name}");
    }
    task.abort();
}

/// keygate's cookies are its own: the backend never sees them, and cannot
/// set them either (that would sign a browser into a self-service session of
/// the backend's choosing). The application's own cookies pass.
#[tokio::test]
async fn the_backend_cannot_set_keygates_own_cookies() {
    let (up, task) = answering(
        b"HTTP/1.1 200 OK\r\n\
          Set-Cookie: __Host-keygate-session=planted; Path=/; Secure; HttpOnly\r\n\
          Set-Cookie: app=1; Path=/\r\n\
          Set-Cookie: __host-KEYGATE-csrf=planted; Path=/; Secure\r\n\
          Set-Cookie: =__Host-keygate-oidc=planted; Path=/; Secure\r\n\
          Content-Length: 2\r\n\r\nok",
    )
    .await;
    let gw = builder(&format!("http://{up}")).start().await;
    for (name, client) in [("h1", client::h1(&gw.ca)), ("h2", client::h2(&gw.ca))] {
        let answer = get(&client, &gw.url("/cookies")).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}");
        let set: Vec<_> = answer.headers.get_all("set-cookie").iter().collect();
        assert_eq!(set, ["app=1; Path=/"], "{name}");
        assert_eq!(answer.text(), "ok", "{name}");
    }
    task.abort();
}
