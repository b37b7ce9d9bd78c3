//! hyper_floor: the cost floor of the hyper + tokio stack keygate is built on,
//! measured beside nginx in the bench rig (bench/peers/hyper-floor.sh); not a
//! product.
//!
//!     hyper_floor LISTEN_ADDR UPSTREAM_HOST:PORT [CERT_PEM KEY_PEM]
//!
//! The smallest reverse proxy made of keygate's parts: a tokio current-thread
//! runtime, hyper-util's auto server (HTTP/1.1, and HTTP/2 over TLS by ALPN),
//! rustls with keygate's own server config (`keygate::tls::server_config`:
//! ring, TLS 1.2 + 1.3, ALPN h2 + http/1.1, stateless tickets), mimalloc as in
//! keygate's binary, and HTTP/1.1 to the upstream over a stack of idle
//! keep-alive connections (a simpler `src/upstream/pool.rs`). No auth, no header
//! rewriting beyond what HTTP/2 -> HTTP/1.1 needs, no timeouts, no limits, no
//! logs, no metrics; an upstream error is a 502 with an empty body.

use std::convert::Infallible;
use std::error::Error;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn Error + Send + Sync>;
type ProxyBody = Either<PooledBody, Empty<Bytes>>;

/// Idle keep-alive connections to the one upstream, most recently used on top.
struct Pool {
    upstream: String,
    idle: Mutex<Vec<SendRequest<Incoming>>>,
}

impl Pool {
    async fn checkout(&self) -> Result<SendRequest<Incoming>, BoxError> {
        loop {
            let popped = self.idle.lock().unwrap().pop();
            let Some(mut sender) = popped else { break };
            // Fails at once for a closed connection; waits for one that is
            // still finishing its previous response.
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        let tcp = TcpStream::connect(&self.upstream).await?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    async fn send(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<PooledBody>, BoxError> {
        let mut sender = self.checkout().await?;
        let resp = sender.send_request(req).await?;
        Ok(resp.map(|body| PooledBody::new(body, sender, self.clone())))
    }
}

/// The upstream's response body, streamed; its connection goes back to the
/// pool when the body has been read to the end (dropped with it otherwise).
struct PooledBody {
    body: Incoming,
    lease: Option<(SendRequest<Incoming>, Arc<Pool>)>,
}

impl PooledBody {
    fn new(body: Incoming, sender: SendRequest<Incoming>, pool: Arc<Pool>) -> Self {
        let mut this = PooledBody {
            body,
            lease: Some((sender, pool)),
        };
        // hyper never polls a body that is empty from the start.
        if this.body.is_end_stream() {
            this.release();
        }
        this
    }

    fn release(&mut self) {
        if let Some((sender, pool)) = self.lease.take() {
            pool.idle.lock().unwrap().push(sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        // hyper stops polling once `is_end_stream` says so: release on the last frame.
        let done = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.body.is_end_stream(),
            _ => false,
        };
        if done {
            this.release();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

async fn proxy(
    pool: Arc<Pool>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    if req.version() == Version::HTTP_2 {
        if let Some(host) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(HOST, host);
        }
    }
    // Origin form (`/path?query`) for the upstream; HTTP/1.1 requests usually have it already.
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let pq = req
            .uri()
            .path_and_query()
            .map_or_else(|| PathAndQuery::from_static("/"), |pq| pq.clone());
        *req.uri_mut() = Uri::from(pq);
    }
    *req.version_mut() = Version::HTTP_11;
    Ok(match pool.send(req).await {
        Ok(resp) => resp.map(Either::Left),
        Err(_) => {
            let mut resp = Response::new(Either::Right(Empty::new()));
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            resp
        }
    })
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, upstream, tls) = match &args[1..] {
        [listen, upstream] => (listen, upstream, None),
        [listen, upstream, cert, key] => (listen, upstream, Some((cert, key))),
        _ => {
            eprintln!("usage: hyper_floor LISTEN_ADDR UPSTREAM_HOST:PORT [CERT_PEM KEY_PEM]");
            std::process::exit(2);
        }
    };
    let acceptor = tls
        .map(|(cert, key)| keygate::tls::server_config(cert.as_ref(), key.as_ref()))
        .transpose()?
        .map(tokio_rustls::TlsAcceptor::from);
    let pool = Arc::new(Pool {
        upstream: upstream.clone(),
        idle: Mutex::new(Vec::new()),
    });
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = rt.block_on(TcpListener::bind(listen.as_str()))?;
    rt.block_on(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (pool, builder, acceptor) = (pool.clone(), builder.clone(), acceptor.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let service = hyper::service::service_fn(move |req| proxy(pool.clone(), req));
                let _ = match acceptor {
                    None => builder.serve_connection(TokioIo::new(tcp), service).await,
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                        Err(_) => Ok(()),
                    },
                };
            });
        }
    })
}
