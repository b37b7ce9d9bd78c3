//! `limits.header_read_timeout` for HTTP/1.1, counted from the head's first
//! byte.
//!
//! hyper arms its header-read timer whenever it waits for a request head,
//! and a keep-alive connection between two requests is waiting for one: with
//! hyper's own timer an idle HTTP/1.1 connection was closed after
//! `header_read_timeout` (10 s) rather than `limits.idle_timeout` (75 s).
//! This timer, handed to hyper per connection, starts its clock only when
//! bytes arrive after hyper armed it, as nginx's `client_header_timeout`
//! runs from the first byte of a keep-alive request. A connection's first
//! head is timed from when the connection began to wait for it (after the
//! TLS handshake), the listener's wait for the bytes that tell its HTTP
//! included, so a client that connects and sends nothing, or one byte and
//! then nothing, is cut at `header_read_timeout` from then, as nginx's
//! `client_header_timeout` runs from accept. Idle connections are the
//! watchdog's (`idle_timeout`).
//!
//! A head that arrives in one read is parsed before hyper ever polls the
//! timer, so no tokio timer is registered for it at all.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::ConnStats;

/// hyper's timer for one HTTP/1.1 connection.
pub struct HeadTimer {
    stats: Arc<ConnStats>,
    /// When the connection began to wait for its first request: the first
    /// head's clock runs from here.
    first_wait: Instant,
}

impl HeadTimer {
    pub fn new(stats: Arc<ConnStats>, first_wait: Instant) -> Self {
        HeadTimer { stats, first_wait }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let stats = self.stats.clone();
        let waits_for_first_byte = stats.started.load(Ordering::Relaxed);
        Box::pin(HeadSleep {
            armed_at_reads: stats.reads(),
            waits_for_first_byte,
            since: (!waits_for_first_byte).then_some(self.first_wait),
            stats,
            duration,
            clock: None,
        })
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep(deadline.saturating_duration_since(std::time::Instant::now()))
    }
}

pin_project_lite::pin_project! {
    /// Pending until its clock runs out; the clock runs from `since` (a
    /// connection's first head), or from the first read after arming
    /// (`waits_for_first_byte`).
    struct HeadSleep {
        stats: Arc<ConnStats>,
        armed_at_reads: u64,
        waits_for_first_byte: bool,
        since: Option<Instant>,
        duration: Duration,
        #[pin]
        clock: Option<tokio::time::Sleep>,
    }
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.clock.is_none() {
            // No byte yet: the read that brings one wakes the connection's
            // task, and hyper polls this again after parsing what came.
            if *this.waits_for_first_byte && this.stats.reads() == *this.armed_at_reads {
                return Poll::Pending;
            }
            let since = this.since.unwrap_or_else(Instant::now);
            this.clock
                .set(Some(tokio::time::sleep_until(since + *this.duration)));
        }
        this.clock
            .as_pin_mut()
            .expect("the clock was just set")
            .poll(cx)
    }
}

impl hyper::rt::Sleep for HeadSleep {}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer as _;

    fn stats() -> Arc<ConnStats> {
        Arc::new(ConnStats::new(None))
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_head_is_timed_from_the_connections_first_wait() {
        let timer = HeadTimer::new(stats(), Instant::now());
        // The listener waited 6 s for the bytes that told its HTTP.
        tokio::time::advance(Duration::from_secs(6)).await;
        let armed = Instant::now();
        let sleep = timer.sleep(Duration::from_secs(10));
        tokio::time::timeout(Duration::from_secs(11), sleep)
            .await
            .expect("a connection that sends nothing is cut");
        assert_eq!(
            armed.elapsed(),
            Duration::from_secs(4),
            "10 s from the first wait"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn between_requests_the_clock_waits_for_the_next_heads_first_byte() {
        let stats = stats();
        stats.started.store(true, Ordering::Relaxed);
        let timer = HeadTimer::new(stats.clone(), Instant::now());
        let mut sleep = timer.sleep(Duration::from_secs(10));
        let idle = tokio::time::timeout(Duration::from_secs(60), sleep.as_mut()).await;
        assert!(idle.is_err(), "an idle keep-alive connection is not timed");

        stats.read();
        let started = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(11), sleep)
            .await
            .expect("a head that started is timed");
        assert!(started.elapsed() >= Duration::from_secs(10));
    }
}
