//! The accept loop shared by the main and admin listeners: a cap on open
//! connections (held from accept to close, so it also covers TLS handshakes,
//! and kept by a WebSocket tunnel until the tunnel closes), a handshake
//! deadline, an idle watchdog, and a graceful drain on shutdown. It knows
//! connections, not HTTP: each request goes to the listener's `Handler`
//! (`crate::conn`) with its connection's context.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::conn::h2_guard::Guard as H2Guard;
use crate::conn::head_timer::HeadTimer;
use crate::conn::replay::{read_first_bytes, Http, H2_PREFACE};
use crate::conn::serving::{Serving, Watch};
use crate::conn::watchdog::Watchdog;
use crate::conn::{ConnCtx, ConnStats, Handler, Slot};
use crate::metrics::Metrics;
use crate::telemetry::throttle::Throttled;
use crate::tls::TlsSource;

#[derive(Clone)]
pub struct Settings {
    /// Which listener this is in its log lines ("main", "admin").
    pub name: &'static str,
    /// `None` = plaintext.
    pub tls: Option<TlsSource>,
    pub max_connections: usize,
    pub tls_handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub send_timeout: Duration,
    pub h2: crate::config::Http2Limits,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// Open connections and responses are counted here when set.
    pub metrics: Option<Arc<Metrics>>,
}

/// Serve `listener` until `shutdown` resolves, then stop accepting and let
/// open connections finish within `shutdown_grace`. Returns whether they all did.
pub async fn run<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let settings = Arc::new(settings);
    let http = Arc::new(http_builders(&settings));
    // Held by every connection from accept to close.
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    let (drain_tx, drain_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    let name = settings.name;
    // Said at most once a minute each: a full listener or a process out of
    // file descriptors is one condition, not one log line per client.
    let mut full_log = Throttled::each_minute();
    let mut accept_log = AcceptErrors::each_minute();

    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if let Some(before) = full_log.due(std::time::Instant::now()) {
                    tracing::warn!(listener = name, max_connections = settings.max_connections, times_since_last_said = before, "{name} listener: limits.max_connections reached; new clients wait in the kernel's accept queue until a connection closes");
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    match accept_log.due(&e, std::time::Instant::now()) {
                        Some((AcceptError::OutOfDescriptors, before)) => tracing::warn!(listener = name, error = %e, times_since_last_said = before, "{name} listener: out of file descriptors; new clients wait in the kernel's accept queue: raise the open-file hard limit (systemd LimitNOFILE=, docker --ulimit nofile=) or lower limits.max_connections"),
                        Some((AcceptError::Other, before)) => tracing::warn!(listener = name, error = %e, times_since_last_said = before, "{name} listener: accept failed"),
                        None => {}
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(5);
        // A dual-stack listener (`[::]`) sees IPv4 peers as `::ffff:a.b.c.d`:
        // as their IPv4 address they match `trusted_proxies` written in
        // IPv4, and logs and `X-Forwarded-For` name them as they are.
        let peer = std::net::SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let conn = Connection {
            handler: handler.clone(),
            settings: settings.clone(),
            http: http.clone(),
            drain: drain_rx.clone(),
        };
        tokio::spawn(conn.run(tcp, peer, permit));
    }

    drop(listener);
    let _ = drain_tx.send(true);
    let all = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(settings.shutdown_grace, permits.acquire_many(all))
        .await
        .is_ok();
    if drained {
        tracing::info!(listener = name, "{name} listener: all connections closed");
    } else {
        tracing::warn!(listener = name, grace = ?settings.shutdown_grace, "{name} listener: grace period over; closing the remaining connections");
    }
    drained
}

/// What an accept error is, as its log line tells it.
#[derive(Debug, PartialEq, Eq)]
enum AcceptError {
    /// EMFILE (this process) or ENFILE (the system): what operators must
    /// act on.
    OutOfDescriptors,
    /// Anything else, mostly harmless (a client that aborted its
    /// connection before it was accepted).
    Other,
}

/// Accept errors said at most once a minute, each kind on its own: a
/// harmless error said just before cannot hide the first line about running
/// out of file descriptors for a minute.
struct AcceptErrors {
    out_of_descriptors: Throttled,
    other: Throttled,
}

impl AcceptErrors {
    fn each_minute() -> AcceptErrors {
        AcceptErrors {
            out_of_descriptors: Throttled::each_minute(),
            other: Throttled::each_minute(),
        }
    }

    /// `e` at `now`: its kind and the times unsaid since the last line of
    /// that kind, when one is due.
    fn due(&mut self, e: &io::Error, now: std::time::Instant) -> Option<(AcceptError, u64)> {
        // ENFILE and EMFILE: the same numbers on Linux, macOS and the BSDs.
        const ENFILE: i32 = 23;
        const EMFILE: i32 = 24;
        let (kind, log) = match e.raw_os_error() {
            Some(ENFILE | EMFILE) => (AcceptError::OutOfDescriptors, &mut self.out_of_descriptors),
            _ => (AcceptError::Other, &mut self.other),
        };
        log.due(now).map(|before| (kind, before))
    }
}

/// hyper's builders for the two HTTPs a connection may speak (`Http`).
struct HttpBuilders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

fn http_builders(settings: &Settings) -> HttpBuilders {
    let mut h1 = http1::Builder::new();
    // The timer is set per connection (`conn::head_timer`, in `serve`).
    h1.header_read_timeout(settings.header_read_timeout)
        // hyper answers 431 when the request head does not fit.
        .max_buf_size(settings.max_header_bytes.max(8192));
    let limits = &settings.h2;
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    // Every HTTP/2 limit set from `[limits] h2_*`, none left to hyper's defaults.
    h2.timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_list_size)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(limits.max_local_error_reset_streams)
        .max_send_buf_size(limits.max_send_buf_size);
    HttpBuilders { h1, h2 }
}

/// Over TLS, the HTTP its ALPN protocol names.
fn from_alpn(alpn: Option<&[u8]>) -> Option<Http> {
    match alpn {
        Some(b"h2") => Some(Http::Two),
        Some(b"http/1.1") => Some(Http::One),
        _ => None,
    }
}

struct Connection<H> {
    handler: Arc<H>,
    settings: Arc<Settings>,
    http: Arc<HttpBuilders>,
    /// Turns true when the listener shuts down: finish in-flight requests, then close.
    drain: watch::Receiver<bool>,
}

/// What a connection speaks, as the listener found out before serving it,
/// and since when it has waited for its first request (the first head's
/// `header_read_timeout` runs from then: `conn::head_timer`).
struct Speaks {
    tls: bool,
    http: Http,
    first_wait: tokio::time::Instant,
}

// === impl Connection ===

impl<H: Handler> Connection<H> {
    async fn run(self, tcp: TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit) {
        let _ = tcp.set_nodelay(true);
        let metrics = self.settings.metrics.clone();
        let slot = Slot::new(slot, metrics.clone());
        let stats = Arc::new(ConnStats::new(metrics));
        let mut io = Tracked {
            inner: tcp,
            stats: stats.clone(),
        };
        match self.settings.tls.clone() {
            None => {
                // The first head's header_read_timeout runs from accept.
                let first_wait = tokio::time::Instant::now();
                let speaks = |http| Speaks {
                    tls: false,
                    http,
                    first_wait,
                };
                // Told by the first bytes: peeked when they suffice (nothing
                // then stands between hyper and the socket), else read.
                let mut first = [0u8; H2_PREFACE.len()];
                let peeked = match self
                    .in_head_time(first_wait, io.inner.peek(&mut first))
                    .await
                {
                    Some(Ok(n)) if n > 0 => Http::from_first_bytes(&first[..n]),
                    _ => return,
                };
                if let Some(http) = peeked {
                    return self.spawn_serving(io, speaks(http), peer, stats, slot);
                }
                let Some(Ok((http, io))) =
                    self.in_head_time(first_wait, read_first_bytes(io)).await
                else {
                    return;
                };
                self.spawn_serving(io, speaks(http), peer, stats, slot);
            }
            Some(tls) => {
                // A plain HTTP request gets a 400 that says so, not a TLS alert.
                let limit = self.settings.tls_handshake_timeout;
                let deadline = tokio::time::Instant::now() + limit;
                if crate::plain_http::answered(&mut io.inner, limit).await {
                    return;
                }
                let handshake = tls.acceptor().accept(io);
                // The stream is taken out of the match before it is served: a
                // match's scrutinee would stay in this future beside it.
                let stream = match tokio::time::timeout_at(deadline, handshake).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(client = %peer, "TLS handshake timed out");
                        return;
                    }
                };
                // The first head's header_read_timeout runs from the handshake's end.
                let first_wait = tokio::time::Instant::now();
                let speaks = |http| Speaks {
                    tls: true,
                    http,
                    first_wait,
                };
                if let Some(http) = from_alpn(stream.get_ref().1.alpn_protocol()) {
                    return self.spawn_serving(stream, speaks(http), peer, stats, slot);
                }
                // No ALPN: told by the first bytes, read (a TLS stream has no peek).
                let Some(Ok((http, stream))) = self
                    .in_head_time(first_wait, read_first_bytes(stream))
                    .await
                else {
                    return;
                };
                self.spawn_serving(stream, speaks(http), peer, stats, slot);
            }
        }
    }

    /// `step` (waiting for a connection's first bytes) within the first
    /// head's `limits.header_read_timeout`, counted from `first_wait` as
    /// hyper's timer then goes on counting it; `None` when the time is up or
    /// the listener drains first.
    async fn in_head_time<F: Future>(
        &self,
        first_wait: tokio::time::Instant,
        step: F,
    ) -> Option<F::Output> {
        let mut drain = self.drain.clone();
        let deadline = first_wait + self.settings.header_read_timeout;
        tokio::select! {
            biased;
            _ = drain.wait_for(|draining| *draining) => None,
            done = tokio::time::timeout_at(deadline, step) => done.ok(),
        }
    }

    /// Serve the connection: hyper's connection for the protocol it speaks,
    /// beside its watchdog, in a task of its own sized for that protocol.
    /// This task, which held the handshake and the first-bytes wait (and a
    /// copy of the stream for each way it may be served), ends here and its
    /// memory is freed: an idle HTTP/1.1 connection keeps only its own
    /// future of about 2 KiB (BENCHMARKS.md, idle connections).
    fn spawn_serving<IO>(
        &self,
        io: IO,
        speaks: Speaks,
        peer: SocketAddr,
        stats: Arc<ConnStats>,
        slot: Slot,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Speaks {
            tls,
            http,
            first_wait,
        } = speaks;
        let ctx = Arc::new(ConnCtx::new(
            peer,
            tls,
            stats.clone(),
            self.settings.idle_timeout,
            slot,
        ));
        let finish = ctx.finish.clone();
        let (io, closer) = H2Guard::new(io, self.settings.h2.max_control_frames, ctx.clone());
        let handler = self.handler.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            // Boxed: hyper keeps an HTTP/1.1 connection's slot for this future
            // allocated while the connection idles, sized for the future (the
            // handler's, ~3 KiB); boxed, the slot holds a pointer and the
            // handler's state lives only while a request does (BENCHMARKS.md,
            // idle connections).
            let fut = Box::pin(handler.clone().handle(req, ctx.clone()));
            async move { Ok::<_, Infallible>(fut.await) }
        });
        let io = TokioIo::new(io);
        let send_timeout = self.settings.send_timeout;
        let watch = Watch {
            watchdog: Watchdog::open(
                self.drain.clone(),
                stats.clone(),
                self.settings.idle_timeout,
                send_timeout,
                &finish,
            ),
            closer,
            stats,
            peer,
            send_timeout,
        };
        // HTTP/1.1's only timer, the header-read timeout, starts at the head's
        // first byte (`conn::head_timer`): one per connection, on a copy of
        // the builder.
        match http {
            Http::One => tokio::spawn(Serving::new(
                self.http
                    .h1
                    .clone()
                    .timer(HeadTimer::new(watch.stats.clone(), first_wait))
                    .serve_connection(io, service)
                    .with_upgrades(),
                |c: Pin<&mut _>| c.graceful_shutdown(),
                watch,
            )),
            Http::Two => tokio::spawn(Serving::new(
                self.http.h2.serve_connection(io, service),
                |c: Pin<&mut _>| c.graceful_shutdown(),
                watch,
            )),
        };
    }
}

pin_project_lite::pin_project! {
    /// A socket that marks its connection as active on every byte moved,
    /// and notes when it refuses writes (`conn::send_stall`).
    struct Tracked {
        #[pin]
        inner: TcpStream,
        stats: Arc<ConnStats>,
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if buf.filled().len() != before {
            this.stats.read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, buf);
        this.stats.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        this.stats.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn running_out_of_descriptors_is_said_even_just_after_another_accept_error() {
        let mut log = AcceptErrors::each_minute();
        let t0 = Instant::now();
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(log.due(&aborted, t0), Some((AcceptError::Other, 0)));
        let emfile = io::Error::from_raw_os_error(24);
        let at = t0 + Duration::from_secs(1);
        assert_eq!(
            log.due(&emfile, at),
            Some((AcceptError::OutOfDescriptors, 0))
        );
        // Each kind is still said once a minute, with the count between.
        assert_eq!(log.due(&emfile, at + Duration::from_secs(1)), None);
        assert_eq!(log.due(&aborted, at + Duration::from_secs(1)), None);
        let enfile = io::Error::from_raw_os_error(23);
        assert_eq!(
            log.due(&enfile, at + Duration::from_secs(60)),
            Some((AcceptError::OutOfDescriptors, 1))
        );
    }
}
