//! What the listener hands to the layers above it: the `Handler` that
//! answers a listener's requests, and what a request knows about the
//! connection it came on (`ConnCtx`, with the connection's bookkeeping in
//! `ConnStats`). The listener makes these; the HTTP layer, the upstream's
//! tunnels and the access log read them, without depending on the listener.
//!
//! Also the connection-level defences hyper leaves to its user, which the
//! listener wraps every connection in: HTTP/2 control-frame floods and a
//! close the client can read (`h2_guard`), and clients that stop taking
//! responses (`send_stall`).

pub mod h2_guard;
pub mod head_timer;
pub mod replay;
pub mod send_stall;
pub mod serving;
pub mod watchdog;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::sync::OwnedSemaphorePermit;

use crate::metrics::Metrics;
use watchdog::Finish;

/// Answers the requests of one listener.
pub trait Handler: Send + Sync + 'static {
    type Body: http_body::Body<Data = Bytes, Error = hyper::Error> + Send + 'static;

    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        conn: Arc<ConnCtx>,
    ) -> impl Future<Output = Response<Self::Body>> + Send;
}

/// What a handler knows about the connection a request came on.
pub struct ConnCtx {
    pub peer: SocketAddr,
    /// The peer's IP as a header value, made once per connection (X-Forwarded-For).
    pub peer_ip_header: http::HeaderValue,
    pub tls: bool,
    pub stats: Arc<ConnStats>,
    /// `limits.idle_timeout`: also closes a WebSocket tunnel with no bytes moving.
    pub idle_timeout: Duration,
    /// Close the connection once what is in flight is answered.
    pub finish: Finish,
    /// The connection's place under `max_connections` and in the open
    /// connections gauge, given back when the last holder of this context is
    /// gone: the connection, its lingering close (up to 2 s), or a WebSocket
    /// tunnel that outlives it (which the shutdown drain then waits for too).
    _slot: Slot,
}

/// What an open connection holds until it is gone.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _open: OpenGuard,
}

/// Decrements the open-connections gauge however the connection ends.
struct OpenGuard(Option<Arc<Metrics>>);

/// Per-connection bookkeeping for the idle watchdog and the metrics.
pub struct ConnStats {
    /// Requests whose response has not finished yet; a connection with one is never idle.
    pub in_flight: AtomicUsize,
    /// Set on every read or write; the watchdog clears it on each tick.
    touched: AtomicBool,
    /// Reads that brought bytes: a request head's clock starts at one (`head_timer`).
    reads: AtomicU64,
    /// Whether a request has started on this connection (`head_timer`).
    pub started: AtomicBool,
    /// Where responses are counted (the main listener only).
    pub metrics: Option<Arc<Metrics>>,
    /// Responses that may be waiting on the client (`limits.send_timeout`).
    pub sends: send_stall::Sends,
}

// === impl ConnCtx ===

impl ConnCtx {
    pub fn new(
        peer: SocketAddr,
        tls: bool,
        stats: Arc<ConnStats>,
        idle_timeout: Duration,
        slot: Slot,
    ) -> Self {
        ConnCtx {
            peer,
            peer_ip_header: http::HeaderValue::try_from(peer.ip().to_string())
                .expect("an IP is a valid header value"),
            tls,
            stats,
            idle_timeout,
            finish: Finish::default(),
            _slot: slot,
        }
    }
}

// === impl Slot ===

impl Slot {
    /// Hold `permit` and count the connection as open in `metrics`, until dropped.
    pub fn new(permit: OwnedSemaphorePermit, metrics: Option<Arc<Metrics>>) -> Self {
        if let Some(m) = &metrics {
            m.open_connections.inc();
        }
        Slot {
            _permit: permit,
            _open: OpenGuard(metrics),
        }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        if let Some(m) = &self.0 {
            m.open_connections.dec();
        }
    }
}

// === impl ConnStats ===

impl ConnStats {
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        ConnStats {
            in_flight: AtomicUsize::new(0),
            touched: AtomicBool::new(false),
            reads: AtomicU64::new(0),
            started: AtomicBool::new(false),
            metrics,
            sends: Default::default(),
        }
    }

    /// Bytes moved on the connection.
    pub fn touch(&self) {
        self.touched.store(true, Ordering::Relaxed);
    }

    /// What a write to the socket gave: bytes moved, or a full socket
    /// (`send_stall`).
    pub fn wrote(&self, polled: &std::task::Poll<std::io::Result<usize>>) {
        match polled {
            std::task::Poll::Ready(Ok(n)) if *n > 0 => {
                self.touch();
                self.sends.socket_took();
            }
            std::task::Poll::Pending => self.sends.socket_full(),
            _ => {}
        }
    }

    /// Bytes came in from the client.
    pub fn read(&self) {
        self.touch();
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// How many reads have brought bytes so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

/// Resolves once the connection has had no request in flight and no bytes
/// moving for `idle` (checked in quarters, so it fires within 1.25 × idle).
/// Bytes of a WebSocket tunnel count: it runs on the same socket.
pub async fn idle_watch(stats: Arc<ConnStats>, idle: Duration) {
    const TICKS: u32 = 4;
    let tick = idle / TICKS;
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    let mut quiet = 0;
    loop {
        interval.tick().await;
        let touched = stats.touched.swap(false, Ordering::Relaxed);
        if touched || stats.in_flight.load(Ordering::Relaxed) > 0 {
            quiet = 0;
        } else {
            quiet += 1;
            if quiet >= TICKS {
                return;
            }
        }
    }
}
