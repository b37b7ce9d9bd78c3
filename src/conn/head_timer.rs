//! `limits.header_read_timeout` for HTTP/1.1, counted from the head's first
//! byte.
//!
//! hyper arms its header-read timer whenever it waits for a request head,
//! and a keep-alive connection between two requests is waiting for one: with
//! hyper's own timer an idle HTTP/1.1 connection was closed after
//! `header_read_timeout` (10 s) rather than `limits.idle_timeout` (75 s).
//! This timer, handed to hyper per connection, starts its clock only when
//! bytes arrive after hyper armed it, as nginx's `client_header_timeout`
//! runs from the first byte of a keep-alive request. A connection that has
//! not started a request yet is timed from the moment hyper arms the timer,
//! so a client that connects and sends nothing is cut as before. Idle
//! connections are the watchdog's (`idle_timeout`).
//!
//! A head that arrives in one read is parsed before hyper ever polls the
//! timer, so no tokio timer is registered for it at all.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::ConnStats;

/// hyper's timer for one HTTP/1.1 connection.
pub struct HeadTimer {
    stats: Arc<ConnStats>,
}

impl HeadTimer {
    pub fn new(stats: Arc<ConnStats>) -> Self {
        HeadTimer { stats }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let stats = self.stats.clone();
        let waits_for_first_byte = stats.started.load(Ordering::Relaxed);
        Box::pin(HeadSleep {
            armed_at_reads: stats.reads(),
            waits_for_first_byte,
            stats,
            duration,
            clock: None,
        })
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }
}

pin_project_lite::pin_project! {
    /// Pending until its clock runs out; the clock starts at once, or at the
    /// first read after arming (`waits_for_first_byte`).
    struct HeadSleep {
        stats: Arc<ConnStats>,
        armed_at_reads: u64,
        waits_for_first_byte: bool,
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
            this.clock.set(Some(tokio::time::sleep(*this.duration)));
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
    async fn before_the_first_request_the_clock_runs_from_arming() {
        let timer = HeadTimer::new(stats());
        let sleep = timer.sleep(Duration::from_secs(10));
        tokio::time::timeout(Duration::from_secs(11), sleep)
            .await
            .expect("a connection that sends nothing is cut");
    }

    #[tokio::test(start_paused = true)]
    async fn between_requests_the_clock_waits_for_the_next_heads_first_byte() {
        let stats = stats();
        stats.started.store(true, Ordering::Relaxed);
        let timer = HeadTimer::new(stats.clone());
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
