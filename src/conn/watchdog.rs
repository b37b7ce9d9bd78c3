//! A connection's watchdog: the listener's drain signal, the idle timeout
//! and the send timeout, in a task of their own.
//!
//! Why a task: `tokio::select!` polls every branch each time its task wakes,
//! and a connection's task wakes several times per request (the client's
//! bytes, the backend's answer, room to write). Inline, the three watches
//! were polled on each of those wakes, about a thousand instructions per
//! request for timers that fire once a connection's lifetime. In a task of
//! their own they run only when a timer fires or the listener drains. The
//! task leaves what it saw in an atomic and wakes the connection; the
//! connection reads the atomic on each of its wakes, which is cheaper than
//! polling the task's `JoinHandle` there (about 130 instructions a poll).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{idle_watch, send_stall, ConnStats};

/// What the watchdog saw first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// The listener is shutting down: finish in-flight requests, then close.
    Drain,
    /// No request and no bytes for `idle_timeout`: close gracefully.
    Idle,
    /// A response waited on its client longer than `send_timeout`: close now.
    Stalled,
}

/// The watchdog task; dropping it stops the task (the connection is gone).
pub struct Watchdog {
    task: JoinHandle<()>,
    raised: Arc<Raised>,
}

/// The alarm the task raised (`NONE` until then) and whom to wake for it.
#[derive(Default)]
struct Raised {
    alarm: AtomicU8,
    waker: AtomicWaker,
}

const NONE: u8 = 0;

/// The connection's own way to raise `Drain`, for its handlers: a request
/// whose answer is the last this peer gets (the auth listener's answer to
/// an address it does not trust) has the connection close once what is in
/// flight is answered: after this response on HTTP/1.1, by GOAWAY on
/// HTTP/2, where no `Connection: close` can say it.
#[derive(Clone, Default)]
pub struct Finish(Arc<Raised>);

impl Finish {
    pub fn after_this(&self) {
        self.0.raise(Alarm::Drain);
    }
}

// === impl Watchdog ===

impl Watchdog {
    /// Watch an open connection: drain, idle and send timeouts, and what
    /// its handlers ask through `finish`.
    pub fn open(
        mut drain: watch::Receiver<bool>,
        stats: Arc<ConnStats>,
        idle_timeout: Duration,
        send_timeout: Duration,
        finish: &Finish,
    ) -> Self {
        Self::spawn_raising(finish.0.clone(), async move {
            tokio::select! {
                biased;
                // A closed channel (the listener is gone) drains too.
                _ = drain.wait_for(|d| *d) => Alarm::Drain,
                () = send_stall::stalled(&stats.sends, send_timeout) => Alarm::Stalled,
                () = idle_watch(stats.clone(), idle_timeout) => Alarm::Idle,
            }
        })
    }

    /// Watch a connection that is already closing gracefully: a response
    /// stalled on its client, or no byte moving with nothing in flight,
    /// ends it. The second: h2 keeps a response's last chunk after its body
    /// is gone (no note, no request in flight), and a client that opens
    /// its window one byte and no more would hold the close for ever.
    pub fn closing(stats: Arc<ConnStats>, send_timeout: Duration) -> Self {
        Self::spawn(async move {
            tokio::select! {
                () = send_stall::stalled(&stats.sends, send_timeout) => Alarm::Stalled,
                () = idle_watch(stats.clone(), send_timeout) => Alarm::Stalled,
            }
        })
    }

    fn spawn(watch: impl Future<Output = Alarm> + Send + 'static) -> Self {
        Self::spawn_raising(Arc::default(), watch)
    }

    fn spawn_raising(
        raised: Arc<Raised>,
        watch: impl Future<Output = Alarm> + Send + 'static,
    ) -> Self {
        let task = tokio::spawn({
            // A watch that panics still ends the connection (`Stalled`),
            // rather than leave it with no timeouts at all.
            let guard = StalledIfDropped(raised.clone());
            async move {
                let alarm = watch.await;
                guard.0.raise(alarm);
            }
        });
        Watchdog { task, raised }
    }
}

impl Raised {
    /// The first alarm stays: a later one (the guard's) changes nothing.
    fn raise(&self, alarm: Alarm) {
        let raised = self.alarm.compare_exchange(
            NONE,
            alarm as u8 + 1,
            Ordering::Release,
            Ordering::Relaxed,
        );
        if raised.is_ok() {
            self.waker.wake();
        }
    }
}

/// Raises `Stalled` when the watch task ends without an alarm: it panicked
/// (or was aborted, when nobody listens any more).
struct StalledIfDropped(Arc<Raised>);

impl Drop for StalledIfDropped {
    fn drop(&mut self) {
        self.0.raise(Alarm::Stalled);
    }
}

impl Future for Watchdog {
    type Output = Alarm;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Alarm> {
        // Registered before the alarm is read: an alarm raised in between
        // still wakes this task.
        self.raised.waker.register(cx.waker());
        match self.raised.alarm.load(Ordering::Acquire) {
            NONE => Poll::Pending,
            a if a == Alarm::Drain as u8 + 1 => Poll::Ready(Alarm::Drain),
            a if a == Alarm::Idle as u8 + 1 => Poll::Ready(Alarm::Idle),
            _ => Poll::Ready(Alarm::Stalled),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> Arc<ConnStats> {
        Arc::new(ConnStats::new(None))
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_is_idle_and_a_drain_comes_first() {
        let (_tx, rx) = watch::channel(false);
        let long = Duration::from_secs(3600);
        let alarm = Watchdog::open(
            rx,
            stats(),
            Duration::from_secs(4),
            long,
            &Finish::default(),
        )
        .await;
        assert_eq!(alarm, Alarm::Idle);

        let (tx, rx) = watch::channel(false);
        let dog = Watchdog::open(
            rx,
            stats(),
            Duration::from_secs(4),
            long,
            &Finish::default(),
        );
        tx.send(true).unwrap();
        assert_eq!(dog.await, Alarm::Drain);
    }

    #[tokio::test]
    async fn a_handler_that_asks_drains_its_connection() {
        let (_tx, rx) = watch::channel(false);
        let long = Duration::from_secs(3600);
        let finish = Finish::default();
        let dog = Watchdog::open(rx, stats(), long, long, &finish);
        finish.after_this();
        let alarm = tokio::time::timeout(Duration::from_secs(5), dog).await;
        assert_eq!(alarm.expect("an alarm, not silence"), Alarm::Drain);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_the_connection_from_idling() {
        let (_tx, rx) = watch::channel(false);
        let busy = stats();
        busy.in_flight
            .store(1, std::sync::atomic::Ordering::Relaxed);
        let long = Duration::from_secs(3600);
        let dog = Watchdog::open(rx, busy, Duration::from_secs(4), long, &Finish::default());
        let waited = tokio::time::timeout(Duration::from_secs(60), dog).await;
        assert!(waited.is_err(), "no alarm while a request is in flight");
    }

    #[tokio::test]
    async fn a_watch_that_panics_still_ends_the_connection() {
        let dog = Watchdog::spawn(async { panic!("a watch's bug") });
        let alarm = tokio::time::timeout(Duration::from_secs(5), dog).await;
        assert_eq!(alarm.expect("an alarm, not silence"), Alarm::Stalled);
    }

    #[tokio::test]
    async fn dropping_the_watchdog_stops_its_task() {
        let (tx, rx) = watch::channel(false);
        let long = Duration::from_secs(3600);
        let dog = Watchdog::open(rx, stats(), long, long, &Finish::default());
        drop(dog);
        // The task held the only other receiver: once aborted, it is gone.
        tokio::time::timeout(Duration::from_secs(5), tx.closed())
            .await
            .expect("the aborted task dropped its receiver");
    }
}
