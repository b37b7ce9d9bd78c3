//! What crosses keygate between HTTP/1.1 or HTTP/2 clients and the
//! HTTP/1.1 backend when either side sends what a well-behaved HTTP library
//! would not: a backend whose answers are malformed or overreach (a raw
//! socket that sends fixed bytes), and HTTP/2 fields that HTTP/1.1 cannot
//! carry as they are.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::client::{self, get};
use crate::support::gateway::builder;

/// A backend that answers every request head with `answer`, on keep-alive
/// connections, until the test ends; the heads it got (any body left
/// unread, the tests send none but one) are recorded as text.
struct Answering {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answering(answer: &'static [u8]) -> Answering {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n @ 1..) = tcp.read(&mut buf).await else {
                        return;
                    };
                    head.extend_from_slice(&buf[..n]);
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        let one: Vec<u8> = head.drain(..end + 4).collect();
                        seen.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&one).into_owned());
                        if tcp.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Answering { addr, heads, task }
}

/// RFC 9112 §6.3: a response framed by `Transfer-Encoding` whose
/// `Content-Length` is wrong reaches the client whole, over both versions;
/// the stale length is not passed on to cut it short (HTTP/1.1) or to
/// break the stream (HTTP/2).
#[tokio::test]
async fn a_chunked_response_with_a_stale_content_length_arrives_whole() {
    let up = answering(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
          14\r\ntwenty bytes chunked\r\n0\r\n\r\n",
    )
    .await;
    let gw = builder(&format!("http://{}", up.addr)).start().await;
    for (name, client) in [("h1", client::h1(&gw.ca)), ("h2", client::h2(&gw.ca))] {
        let answer = get(&client, &gw.url("/both")).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}");
        assert_eq!(answer.text(), "twenty bytes chunked", "{name}");
        assert!(!answer.headers.contains_key("content-length"), "{name}");
    }
}

/// A `101 Switching Protocols` to a request that asked for no upgrade is
/// no answer: HTTP/2 has no 101 at all, and an HTTP/1.1 client would be
/// told of a switch that never happens. 502, over both versions.
#[tokio::test]
async fn a_switch_nobody_asked_for_is_502() {
    let up = answering(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    let gw = builder(&format!("http://{}", up.addr)).start().await;
    for (name, client) in [("h1", client::h1(&gw.ca)), ("h2", client::h2(&gw.ca))] {
        let answer = get(&client, &gw.url("/plain")).await;
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{name}");
        assert!(answer.text().contains("switched protocols"), "{name}");
    }
}

/// keygate's cookies are its own: the backend never sees them, and cannot
/// set them either (that would sign a browser into a self-service session of
/// the backend's choosing). The application's own cookies pass.
#[tokio::test]
async fn the_backend_cannot_set_keygates_own_cookies() {
    let up = answering(
        b"HTTP/1.1 200 OK\r\n\
          Set-Cookie: __Host-keygate-session=planted; Path=/; Secure; HttpOnly\r\n\
          Set-Cookie: app=1; Path=/\r\n\
          Set-Cookie: __host-KEYGATE-csrf=planted; Path=/; Secure\r\n\
          Set-Cookie: =__Host-keygate-oidc=planted; Path=/; Secure\r\n\
          Content-Length: 2\r\n\r\nok",
    )
    .await;
    let gw = builder(&format!("http://{}", up.addr)).start().await;
    for (name, client) in [("h1", client::h1(&gw.ca)), ("h2", client::h2(&gw.ca))] {
        let answer = get(&client, &gw.url("/cookies")).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}");
        let set: Vec<_> = answer.headers.get_all("set-cookie").iter().collect();
        assert_eq!(set, ["app=1; Path=/"], "{name}");
        assert_eq!(answer.text(), "ok", "{name}");
    }
}

/// The same `Content-Length` twice from an HTTP/2 client (HTTP/2 lets equal
/// ones through) reaches the HTTP/1.1 backend once: two fields read as
/// `2, 2`, which is no length (RFC 9110 §8.6), and a strict backend refuses it.
#[tokio::test]
async fn a_length_sent_twice_over_http2_reaches_the_backend_once() {
    let up =
        answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").await;
    let gw = builder(&format!("http://{}", up.addr)).start().await;
    let req = http::Request::post(gw.url("/twice"))
        .header("content-length", "2")
        .header("content-length", "2")
        .body(crate::support::body::full("ab"))
        .unwrap();
    let answer = client::send(&client::h2(&gw.ca), req).await;
    assert_eq!(answer.status, StatusCode::OK);
    let heads = up.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let lengths = heads[0]
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("content-length:"))
        .count();
    assert_eq!(lengths, 1, "{}", heads[0]);
}

/// RFC 9113 §8.2.3: the cookies an HTTP/2 client split into one field each
/// reach the HTTP/1.1 backend as one `Cookie`, joined with `; `.
#[tokio::test]
async fn cookies_split_over_http2_reach_the_backend_as_one_field() {
    let up = crate::support::upstream::Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let req = http::Request::get(gw.url("/crumbs"))
        .header("cookie", "a=1")
        .header("cookie", "b=2; c=3")
        .body(crate::support::body::empty())
        .unwrap();
    let answer = client::send(&client::h2(&gw.ca), req).await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen = up.last();
    let cookies: Vec<_> = seen.headers.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["a=1; b=2; c=3"]);
}
