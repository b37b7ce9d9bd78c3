//! Keep-alive connections to the backend, without a task per request.
//!
//! hyper-util's legacy `Client` spawns a task per HTTP/1 request to notice
//! when the connection is idle again, and hashes a pool key per request.
//! keygate has one backend, so the pool is a stack of idle senders: a
//! connection goes back on it when its response body has been read to the
//! end (see `Lease`), and the most recently used one is taken first (warm).

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::uri::Authority;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

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
    /// A permit per backend connection open (`Slot`): as many as
    /// `limits.max_connections`, the bound the open-file limit is raised
    /// for (`fd_limit`). Without it one HTTP/2 client could open a backend
    /// connection per stream, and clients enough all the descriptors.
    open: Arc<Semaphore>,
    max_open: usize,
    /// A connection came back to the idle stack: a request waiting for a
    /// free one looks again.
    returned: Notify,
}

/// A backend connection's place under `max_open`, held by its task and by
/// whoever uses the connection: free once all of them let go. A WebSocket
/// tunnel holds it after the task has ended at the upgrade (`Lease::into_slot`).
pub type Slot = Arc<OwnedSemaphorePermit>;

struct Idle {
    sender: SendRequest<Incoming>,
    /// Weak: a connection that closed while idle gives its place back at once.
    slot: Weak<OwnedSemaphorePermit>,
    since: Instant,
}

/// A connection in use; `release` puts it back once its response is complete.
pub struct Lease {
    sender: SendRequest<Incoming>,
    slot: Slot,
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
            returned: Notify::new(),
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
    pub fn checkout(&self, now: Instant) -> Option<(SendRequest<Incoming>, Slot)> {
        let mut idle = self.idle.lock().expect("pool lock");
        let mut at = idle.len();
        while at > 0 {
            at -= 1;
            let i = &idle[at];
            if i.sender.is_closed() || now.saturating_duration_since(i.since) >= self.idle_timeout {
                idle.remove(at);
            } else if i.sender.is_ready() {
                let i = idle.remove(at);
                // None: its task ended meanwhile (closed).
                if let Some(slot) = i.slot.upgrade() {
                    return Some((i.sender, slot));
                }
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Incoming>, slot: &Slot) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < self.max_idle {
            idle.push(Idle {
                sender,
                slot: Arc::downgrade(slot),
                since: Instant::now(),
            });
            drop(idle);
            self.returned.notify_one();
        }
    }

    /// A connection for a request the idle stack had none for: a new one
    /// (TCP, then TLS for https), or, while `max_open` are open, the first
    /// that comes back to the stack or closes, all within the connect
    /// timeout. `true` with one from the stack.
    pub async fn connect(&self) -> std::io::Result<(SendRequest<Incoming>, Slot, bool)> {
        let c = &self.connector;
        let deadline = tokio::time::Instant::now() + c.connect_timeout;
        let permit = loop {
            // Enabled first: a connection returned between the look at the
            // stack and the wait still wakes it.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Ok(p) = self.open.clone().try_acquire_owned() {
                break p;
            }
            if let Some((sender, slot)) = self.checkout(Instant::now()) {
                return Ok((sender, slot, true));
            }
            tokio::select! {
                p = self.open.clone().acquire_owned() => break p.expect("never closed"),
                () = returned => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "limits.max_connections ({}) backend connections are open, and none came free within {:?}",
                            self.max_open, c.connect_timeout
                        ),
                    ))
                }
            }
        };
        let connect = async {
            let tcp = TcpStream::connect(c.authority.as_str()).await?;
            tcp.set_nodelay(true)?;
            match &c.tls {
                None => handshake(tcp, permit).await,
                Some((tls, name)) => handshake(tls.connect(name.clone(), tcp).await?, permit).await,
            }
        };
        let (sender, slot) = tokio::time::timeout_at(deadline, connect)
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", c.connect_timeout),
                )
            })??;
        Ok((sender, slot, false))
    }
}

/// Most bytes read from a backend connection at once, and so the largest
/// body chunk handed on. hyper's default (about 400 KiB) held that much per
/// response waiting on a slow client, on top of the HTTP/2 stream's send
/// buffer: a client with 128 stalled streams made keygate hold about
/// 180 MiB for the send timeout.
const UPSTREAM_READ_BUF: usize = 64 * 1024;

/// The connection's `Slot` is held by its task until the connection ends
/// (or is upgraded), and by each `Lease` of it.
async fn handshake<IO>(
    io: IO,
    permit: OwnedSemaphorePermit,
) -> std::io::Result<(SendRequest<Incoming>, Slot)>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(UPSTREAM_READ_BUF)
        .handshake(TokioIo::new(io))
        .await
        .map_err(std::io::Error::other)?;
    let slot = Arc::new(permit);
    let open = slot.clone();
    tokio::spawn(async move {
        let _open = open;
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok((sender, slot))
}

// === impl Lease ===

impl Lease {
    pub fn new(sender: SendRequest<Incoming>, slot: Slot, pool: Arc<Pool>) -> Lease {
        Lease { sender, slot, pool }
    }

    /// The response was read to its end: the connection can serve another request.
    pub fn release(self) {
        self.pool.checkin(self.sender, &self.slot);
    }

    /// The connection switched protocols (a WebSocket tunnel): it serves no
    /// other request, and its place is the tunnel's until the tunnel ends.
    pub fn into_slot(self) -> Slot {
        self.slot
    }
}
