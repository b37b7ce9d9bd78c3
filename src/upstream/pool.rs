//! Keep-alive connections to the backend, without a task per request.
//!
//! hyper-util's legacy `Client` spawns a task per HTTP/1 request to notice
//! when the connection is idle again, and hashes a pool key per request.
//! keygate has one backend, so the pool is a stack of idle senders: a
//! connection goes back on it when its response body has been read to the
//! end (see `Lease`), and the most recently used one is taken first (warm).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::Authority;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How to reach the backend.
pub struct Connector {
    pub authority: Authority,
    /// `Some` for an https:// backend.
    pub tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    pub connect_timeout: Duration,
}

pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    connector: Connector,
    max_idle: usize,
    idle_timeout: Duration,
    /// A permit per backend connection open, held by its task: as many as
    /// `limits.max_connections`, the bound the open-file limit is raised
    /// for (`fd_limit`). Without it one HTTP/2 client could open a backend
    /// connection per stream, and clients enough all the descriptors.
    open: Arc<Semaphore>,
    max_open: usize,
}

struct Idle {
    sender: SendRequest<Incoming>,
    since: Instant,
}

/// A connection in use; `release` puts it back once its response is complete.
pub struct Lease {
    sender: SendRequest<Incoming>,
    pool: Arc<Pool>,
}

// === impl Pool ===

impl Pool {
    pub fn new(
        connector: Connector,
        max_idle: usize,
        idle_timeout: Duration,
        max_open: usize,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            idle: Mutex::new(Vec::new()),
            connector,
            max_idle,
            idle_timeout,
            open: Arc::new(Semaphore::new(max_open)),
            max_open,
        })
    }

    /// An idle connection that is still open, if there is one. `now` is the
    /// caller's clock reading (one fewer per request).
    ///
    /// Only one that can take a request now: a backend may answer before it
    /// has read the request body (a 401 of its own, a redirect) and then
    /// read the rest before its next request, and the client may still be
    /// sending that body, as slowly as it likes. Such a connection comes
    /// back here when its response ends, but a request given to it would
    /// wait behind that body until `upstream.response_timeout` (a 504 for
    /// someone else). It stays, skipped, until it is free or gone.
    pub fn checkout(&self, now: Instant) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().expect("pool lock");
        let mut at = idle.len();
        while at > 0 {
            at -= 1;
            let i = &idle[at];
            if i.sender.is_closed() || now.saturating_duration_since(i.since) >= self.idle_timeout {
                idle.remove(at);
            } else if i.sender.is_ready() {
                return Some(idle.remove(at).sender);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < self.max_idle {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Open a new connection (TCP, then TLS for https) within the connect
    /// timeout, which also bounds the wait for a free one when
    /// `max_open` are open.
    pub async fn connect(&self) -> std::io::Result<SendRequest<Incoming>> {
        let c = &self.connector;
        let mut full = false;
        let connect = async {
            let permit = match self.open.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    full = true;
                    self.open
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("never closed")
                }
            };
            let tcp = TcpStream::connect(c.authority.as_str()).await?;
            tcp.set_nodelay(true)?;
            match &c.tls {
                None => handshake(tcp, permit).await,
                Some((tls, name)) => handshake(tls.connect(name.clone(), tcp).await?, permit).await,
            }
        };
        let connected = tokio::time::timeout(c.connect_timeout, connect).await;
        connected.map_err(|_| {
            let why = match full {
                true => format!(
                    "limits.max_connections ({}) backend connections are open, and none closed within {:?}",
                    self.max_open, c.connect_timeout
                ),
                false => format!("no connection within {:?}", c.connect_timeout),
            };
            std::io::Error::new(std::io::ErrorKind::TimedOut, why)
        })?
    }
}

/// Most bytes read from a backend connection at once, and so the largest
/// body chunk handed on. hyper's default (about 400 KiB) held that much per
/// response waiting on a slow client, on top of the HTTP/2 stream's send
/// buffer: a client with 128 stalled streams made keygate hold about
/// 180 MiB for the send timeout.
const UPSTREAM_READ_BUF: usize = 64 * 1024;

/// `permit` is held by the connection's task, until the connection ends.
async fn handshake<IO>(
    io: IO,
    permit: OwnedSemaphorePermit,
) -> std::io::Result<SendRequest<Incoming>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(UPSTREAM_READ_BUF)
        .handshake(TokioIo::new(io))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _open = permit;
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

// === impl Lease ===

impl Lease {
    pub fn new(sender: SendRequest<Incoming>, pool: Arc<Pool>) -> Lease {
        Lease { sender, pool }
    }

    /// The response was read to its end: the connection can serve another request.
    pub fn release(self) {
        self.pool.checkin(self.sender);
    }
}
