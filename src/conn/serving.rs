//! One hyper connection run beside its watchdog until it ends.
//!
//! A future of its own rather than an async fn: an async fn keeps its
//! arguments apart from what it moves them into, so each level of async
//! nesting between accept and hyper held one more copy of the connection
//! (the task of a TLS connection measured 10 KiB, most of it copies of a
//! 2-3 KiB hyper connection). Here the connection is stored once.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::h2_guard::{self, Closer};
use super::watchdog::{Alarm, Watchdog};
use super::ConnStats;

pin_project_lite::pin_project! {
    /// Runs `conn` until it ends; on the watchdog's drain or idle alarm asks
    /// it to finish what is in flight (`graceful`), on a stalled send closes it.
    pub struct Serving<C, G> {
        #[pin]
        conn: C,
        graceful: G,
        watch: Watch,
    }
}

/// What a connection needs beside hyper's connection itself.
pub struct Watch {
    pub watchdog: Watchdog,
    pub closer: Closer,
    pub stats: Arc<ConnStats>,
    pub peer: SocketAddr,
    pub send_timeout: Duration,
}

// === impl Serving ===

impl<C, G, E> Serving<C, G>
where
    C: Future<Output = Result<(), E>>,
    G: FnMut(Pin<&mut C>),
    E: Display,
{
    pub fn new(conn: C, graceful: G, watch: Watch) -> Self {
        Serving {
            conn,
            graceful,
            watch,
        }
    }
}

impl<C, G, E> Future for Serving<C, G>
where
    C: Future<Output = Result<(), E>>,
    G: FnMut(Pin<&mut C>),
    E: Display,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let watch = this.watch;
        loop {
            // The connection first: it is what wakes on every request.
            if let Poll::Ready(result) = this.conn.as_mut().poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(client = %watch.peer, error = %e, "connection ended with an error");
                }
                return Poll::Ready(());
            }
            match Pin::new(&mut watch.watchdog).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Alarm::Stalled) => {
                    tracing::info!(client = %watch.peer, "closing a connection whose client stopped taking a response (limits.send_timeout)");
                    // The guard tells an HTTP/2 client with a GOAWAY as it closes.
                    watch.closer.close_because(h2_guard::SEND_TIMEOUT);
                    return Poll::Ready(());
                }
                Poll::Ready(alarm) => {
                    if alarm == Alarm::Idle {
                        tracing::debug!(client = %watch.peer, "closing idle connection");
                    }
                    (this.graceful)(this.conn.as_mut());
                    watch.watchdog = Watchdog::closing(watch.stats.clone(), watch.send_timeout);
                    // Round again: the connection drives its own shutdown.
                }
            }
        }
    }
}
