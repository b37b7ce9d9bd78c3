//! Every client connection's bytes pass here between TLS and hyper, for two
//! jobs hyper does not do:
//!
//! 1. **Control-frame floods** (HTTP/2 only). hyper and h2 already answer a
//!    burst of streams reset before they are accepted, endless
//!    CONTINUATION, oversized or abusive header lists and too many refused
//!    streams with GOAWAY (their limits are set in `[limits] h2_*`). PING,
//!    SETTINGS, PRIORITY, WINDOW_UPDATE and RST_STREAM of accepted streams
//!    are answered or acted on without a bound, each costing keygate work
//!    (a reset of an accepted stream costs an upstream request). Each such
//!    frame spends one token of an allowance of `h2_max_control_frames`,
//!    refilled by a tenth of it per second and by the traffic that explains
//!    control frames: two per DATA frame keygate sends (the client's stream
//!    and connection WINDOW_UPDATE), one per response completed. A client
//!    that runs out gets GOAWAY `ENHANCE_YOUR_CALM` and is disconnected.
//! 2. **A close the client can read** (both protocols). Closing a socket
//!    with unread input makes the kernel send a TCP reset, which can destroy
//!    the GOAWAY or last response still in flight to the client. So the
//!    connection is taken over when hyper lets go of it: GOAWAY when keygate
//!    ends it for a reason of its own (`Closer`), then TLS close_notify and
//!    FIN, then input is read and dropped for a short while (nginx's
//!    lingering close) before the socket is closed.

mod budget;
mod close;
pub mod frames;

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use self::budget::Budget;
use self::frames::{Head, Scanner};
use super::ConnCtx;

/// Why keygate ended a connection; sent as the GOAWAY's debug data.
pub const TOO_MANY_CONTROL_FRAMES: &str = "too_many_control_frames";
pub const SEND_TIMEOUT: &str = "send_timeout";

/// Lets the connection's owner name the reason it drops the connection,
/// so that the client is told with a GOAWAY.
#[derive(Clone, Default)]
pub struct Closer(Arc<Mutex<Option<&'static str>>>);

// === impl Closer ===

impl Closer {
    pub fn close_because(&self, reason: &'static str) {
        *self.0.lock().expect("never poisoned") = Some(reason);
    }

    fn reason(&self) -> Option<&'static str> {
        *self.0.lock().expect("never poisoned")
    }
}

enum Mode {
    /// Comparing the first bytes with the HTTP/2 preface; this many matched.
    Sniffing(usize),
    Http1,
    Http2,
}

/// What the frames seen so far say about the connection.
struct Meter {
    budget: Budget,
    /// The highest stream the client opened: the GOAWAY's last stream id.
    last_stream: u32,
    /// hyper has sent a GOAWAY of its own.
    goaway_sent: bool,
    abuse: Option<&'static str>,
}

/// Bounds of the stream under the guard: it is handed to a task of its own
/// when the connection ends.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

pub struct Guard<IO: Stream> {
    io: Option<IO>,
    mode: Mode,
    incoming: Scanner,
    outgoing: Scanner,
    meter: Meter,
    /// The client closed its side (read EOF): nothing left to tell it.
    peer_closed: bool,
    /// hyper shut the stream down (close_notify and FIN already sent).
    shut_down: bool,
    closer: Closer,
    /// The connection's context: the lingering close holds it too, and with
    /// it the connection's slot under `max_connections` (nginx counts a
    /// lingering connection as one of its connections too).
    conn: Option<Arc<ConnCtx>>,
}

// === impl Guard ===

impl<IO: Stream> Guard<IO> {
    /// `max_control_frames`: the allowance of `[limits] h2_max_control_frames`.
    pub fn new(io: IO, max_control_frames: u32, conn: Arc<ConnCtx>) -> (Self, Closer) {
        let closer = Closer::default();
        let guard = Guard {
            io: Some(io),
            mode: Mode::Sniffing(0),
            incoming: Scanner::default(),
            outgoing: Scanner::default(),
            meter: Meter {
                budget: Budget::new(max_control_frames),
                last_stream: 0,
                goaway_sent: false,
                abuse: None,
            },
            peer_closed: false,
            shut_down: false,
            closer: closer.clone(),
            conn: Some(conn),
        };
        (guard, closer)
    }

    fn io(&mut self) -> Pin<&mut IO> {
        Pin::new(self.io.as_mut().expect("present until dropped"))
    }

    fn inspect_incoming(&mut self, mut bytes: &[u8]) {
        if let Mode::Sniffing(matched) = self.mode {
            let n = (frames::PREFACE.len() - matched).min(bytes.len());
            if bytes[..n] != frames::PREFACE[matched..matched + n] {
                self.mode = Mode::Http1;
                return;
            }
            bytes = &bytes[n..];
            self.mode = if matched + n == frames::PREFACE.len() {
                Mode::Http2
            } else {
                Mode::Sniffing(matched + n)
            };
        }
        if let Mode::Http2 = self.mode {
            let meter = &mut self.meter;
            self.incoming.scan(bytes, |h| meter.client_frame(h));
        }
    }

    fn inspect_outgoing(&mut self, bytes: &[u8]) {
        if let Mode::Http2 = self.mode {
            let meter = &mut self.meter;
            self.outgoing.scan(bytes, |h| meter.server_frame(h));
        }
    }

    fn refused(&self) -> Option<io::Error> {
        self.meter
            .abuse
            .map(|reason| io::Error::new(io::ErrorKind::ConnectionAborted, reason))
    }
}

/// When hyper lets go: GOAWAY if keygate ends the connection for a reason,
/// then the lingering close, on a task of its own.
impl<IO: Stream> Drop for Guard<IO> {
    fn drop(&mut self) {
        let Some(io) = self.io.take() else { return };
        if self.peer_closed {
            return;
        }
        let reason = self.meter.abuse.or_else(|| self.closer.reason());
        let goaway = match (reason, &self.mode) {
            (Some(reason), Mode::Http2)
                if !self.meter.goaway_sent && self.outgoing.at_boundary() =>
            {
                Some(frames::goaway(
                    self.meter.last_stream,
                    frames::ENHANCE_YOUR_CALM,
                    reason.as_bytes(),
                ))
            }
            _ => None,
        };
        if let Some(reason) = reason {
            tracing::info!(reason, "keygate ends a connection that misbehaved");
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let conn = self.conn.take();
            let shut_down = self.shut_down;
            rt.spawn(async move {
                close::linger(io, goaway, shut_down).await;
                drop(conn);
            });
        }
    }
}

// === impl Meter ===

impl Meter {
    fn client_frame(&mut self, h: Head) {
        use frames::*;
        match h.kind {
            HEADERS => self.last_stream = self.last_stream.max(h.stream),
            DATA | CONTINUATION | GOAWAY => {}
            SETTINGS | PING if h.flags & FLAG_ACK != 0 => {}
            // PRIORITY, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE, unknown types.
            _ => {
                if self.abuse.is_none() && !self.budget.spend() {
                    self.abuse = Some(TOO_MANY_CONTROL_FRAMES);
                }
            }
        }
    }

    fn server_frame(&mut self, h: Head) {
        use frames::*;
        let ends_stream = h.flags & FLAG_END_STREAM != 0;
        match h.kind {
            DATA => self.budget.earn(2 + u32::from(ends_stream)),
            HEADERS if ends_stream => self.budget.earn(1),
            GOAWAY => self.goaway_sent = true,
            _ => {}
        }
    }
}

impl<IO: Stream> AsyncRead for Guard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.refused() {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        ready!(this.io().poll_read(cx, buf))?;
        if buf.filled().len() == before {
            this.peer_closed = true;
            return Poll::Ready(Ok(()));
        }
        this.inspect_incoming(&buf.filled()[before..]);
        if let Some(e) = this.refused() {
            // The flood stops here: hyper never sees these bytes.
            buf.set_filled(before);
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: Stream> AsyncWrite for Guard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.refused() {
            return Poll::Ready(Err(e));
        }
        let n = ready!(this.io().poll_write(cx, buf))?;
        this.inspect_outgoing(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.refused() {
            return Poll::Ready(Err(e));
        }
        let n = ready!(this.io().poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            let take = left.min(b.len());
            this.inspect_outgoing(&b[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.io().poll_shutdown(cx))?;
        this.shut_down = true;
        Poll::Ready(Ok(()))
    }
}
