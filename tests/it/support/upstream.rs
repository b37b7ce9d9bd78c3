//! A real HTTP/1.1 backend on 127.0.0.1:0 that records what it received and
//! offers the routes the proxy tests need.
//!
//! | path | answer |
//! |---|---|
//! | `/download/N` | N bytes, streamed in 64 KiB chunks |
//! | `/download-gated` | one chunk, then the rest only after `release()` |
//! | `/upload` | reads the body (signalling the first chunk), answers its size |
//! | `/hold` | signals `held`, answers only after `release()` |
//! | `/slow` | never answers |
//! | `/hop` | a response carrying hop-by-hop headers |
//! | `/close` | `Connection: close`: the upstream ends the connection |
//! | `/reset` | one chunk, then the connection is aborted |
//! | `/socket` | a WebSocket handshake: 101, then an echo (as `websocket_echo`) |
//! | anything else | 200 `ok` |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::body::{self, TestBody};

pub const CHUNK: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct Recorded {
    /// The keygate-side address of the connection the request came on.
    pub peer: SocketAddr,
    pub uri: http::Uri,
    pub version: http::Version,
    pub headers: HeaderMap,
}

#[derive(Default)]
pub struct Shared {
    pub requests: Mutex<Vec<Recorded>>,
    /// Signalled when `/hold` or `/upload` has its request (first chunk for uploads).
    pub held: Notify,
    /// Releases `/hold` and `/download-gated`.
    pub release: Notify,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let task = super::serve_http1(listener, move |peer, req| answer(s.clone(), peer, req));
        Upstream { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the upstream received a request")
    }
}

/// `/socket`: the 101 to a WebSocket handshake, the echo in a task.
fn websocket_answer(mut req: Request<Incoming>) -> Response<TestBody> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return status(400, "no Sec-WebSocket-Key");
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(body::empty())
        .unwrap()
}

/// A WebSocket echo backend on 127.0.0.1:0: text and binary messages come back.
pub async fn websocket_echo() -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A WebSocket through keygate at `gateway` (TLS, trusted by `ca`), handshake done.
pub async fn websocket_via(
    gateway: SocketAddr,
    ca: &super::tls::Ca,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tls = super::client::raw_tls(gateway, ca).await;
    let url = format!("wss://localhost:{}/socket", gateway.port());
    let (ws, resp) = super::within(
        10,
        "WebSocket handshake",
        tokio_tungstenite::client_async(url, tls),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    ws
}

/// Send `text` on `ws` and assert that it comes back.
pub async fn websocket_echoes<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, text: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(text)).await.unwrap();
    let echoed = super::within(10, "echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), text);
}

/// Close `ws` as a browser does: send Close, read until the server's Close
/// and the end of the stream, then drop the connection.
pub async fn websocket_close<S>(mut ws: tokio_tungstenite::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    ws.close(None).await.unwrap();
    super::within(10, "WebSocket closing handshake", async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Serve `svc` over TLS with `leaf` on 127.0.0.1:0 (an https upstream).
pub async fn start_tls(leaf: &super::tls::Leaf) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(
        rustls_pki_types::pem::PemObject::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
    );
    let cfg = keygate::tls::from_der(vec![leaf.der.clone()], key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::new(Shared::default());
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            let (acceptor, s) = (acceptor.clone(), shared.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| answer(s.clone(), peer, req));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

async fn answer(
    s: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    s.requests.lock().unwrap().push(Recorded {
        peer,
        uri: req.uri().clone(),
        version: req.version(),
        headers: req.headers().clone(),
    });
    let path = req.uri().path().to_owned();
    let resp = match path.as_str() {
        "/upload" => {
            let mut body = req.into_body();
            let mut n = 0u64;
            let mut first = true;
            use http_body_util::BodyExt;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Some(d) = f.data_ref() {
                            n += d.len() as u64;
                            if first && !d.is_empty() {
                                first = false;
                                s.held.notify_one();
                            }
                        }
                    }
                    Err(_) => return Ok(status(499, "client went away")),
                }
            }
            Response::new(body::full(n.to_string()))
        }
        "/socket" => websocket_answer(req),
        "/hold" => {
            s.held.notify_one();
            s.release.notified().await;
            Response::new(body::full("released"))
        }
        "/slow" => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        "/close" => Response::builder()
            .header("connection", "close")
            .body(body::full("bye"))
            .unwrap(),
        "/hop" => Response::builder()
            .header("connection", "x-up-hop")
            .header("x-up-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("x-up-end", "kept")
            .body(body::full("hop"))
            .unwrap(),
        "/download-gated" => {
            let (tx, b) = body::channel();
            let s2 = s.clone();
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from(vec![b'a'; CHUNK]))).await;
                s2.release.notified().await;
                let _ = tx.send(Ok(Bytes::from(vec![b'b'; CHUNK]))).await;
            });
            Response::new(b)
        }
        "/reset" => {
            let (tx, b) = body::channel();
            tokio::spawn(async move {
                let _ = tx.send(Ok(Bytes::from(vec![b'a'; CHUNK]))).await;
                let _ = tx.send(Err(std::io::Error::other("upstream aborts"))).await;
            });
            Response::builder()
                .header("content-length", (10 * CHUNK).to_string())
                .body(b)
                .unwrap()
        }
        p if p.starts_with("/download/") => {
            let total: usize = p["/download/".len()..].parse().unwrap();
            let (tx, b) = body::channel();
            tokio::spawn(async move {
                let mut left = total;
                let chunk = Bytes::from(vec![b'x'; CHUNK]);
                while left > 0 {
                    let n = left.min(CHUNK);
                    if tx.send(Ok(chunk.slice(..n))).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
            Response::builder()
                .header("content-length", total.to_string())
                .body(b)
                .unwrap()
        }
        _ => Response::new(body::full("ok")),
    };
    Ok(resp)
}

fn status(code: u16, text: &'static str) -> Response<TestBody> {
    let mut r = Response::new(body::full(text));
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap();
    r
}
