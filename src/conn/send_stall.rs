//! `[limits] send_timeout`: a client that stops taking a response's bytes
//! (an HTTP/2 window left at zero, a TCP window that never opens) would hold
//! the response, the upstream connection behind it and the connection's
//! slot under `max_connections`, for ever. Two notes catch it:
//!
//! - each response body notes when it handed a chunk to hyper and clears
//!   the note when hyper comes back for the next one (hyper only does once
//!   the client has room for it). Per response, not per connection: a
//!   client that keeps one stream moving (or sends PINGs) cannot hide
//!   another that it stalls. keygate's own answers (a 401) count too: an
//!   HTTP/2 client that opens no window holds one as well as a download.
//! - the socket notes when a write found it full, and clears the note when
//!   a write goes through: what hyper has already taken from every body (a
//!   burst of pipelined requests whose answers the client never reads) has
//!   no body left to note it.
//!
//! A connection with a note older than `send_timeout` is closed, as nginx's
//! `send_timeout` does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The responses of one connection that may be waiting on its client.
#[derive(Default)]
pub struct Sends {
    waiting: Mutex<Vec<Weak<Waiting>>>,
    /// Since when the socket has refused writes (`clock()`), or 0.
    socket_full: AtomicU64,
}

/// One response body's note: when it handed a chunk that hyper has not
/// come back after (milliseconds on `clock()`), or 0.
#[derive(Default)]
pub struct Waiting(AtomicU64);

// === impl Sends ===

impl Sends {
    /// A note for one response body, watched until the body is dropped.
    pub fn track(&self) -> Arc<Waiting> {
        let note = Arc::new(Waiting::default());
        let mut waiting = self.waiting.lock().expect("never poisoned");
        if waiting.len() >= 32 {
            waiting.retain(|w| w.strong_count() > 0);
        }
        waiting.push(Arc::downgrade(&note));
        note
    }

    /// A write found the socket full: the client is not taking bytes.
    /// The first refusal stays until a write goes through.
    pub fn socket_full(&self) {
        if self.socket_full.load(Ordering::Relaxed) == 0 {
            let _ =
                self.socket_full
                    .compare_exchange(0, clock(), Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// A write went through.
    pub fn socket_took(&self) {
        if self.socket_full.load(Ordering::Relaxed) != 0 {
            self.socket_full.store(0, Ordering::Relaxed);
        }
    }

    /// How long the response (or the socket) that waited longest has been waiting.
    fn longest_wait(&self) -> Duration {
        let now = clock();
        let mut waiting = self.waiting.lock().expect("never poisoned");
        waiting.retain(|w| w.strong_count() > 0);
        let oldest = waiting
            .iter()
            .filter_map(|w| w.upgrade())
            .map(|n| n.0.load(Ordering::Relaxed))
            .chain([self.socket_full.load(Ordering::Relaxed)])
            .filter(|since| *since != 0)
            .min();
        oldest.map_or(Duration::ZERO, |since| {
            Duration::from_millis(now.saturating_sub(since))
        })
    }
}

// === impl Waiting ===

impl Waiting {
    /// A chunk went to hyper: waiting until it asks for the next.
    pub fn handed(&self) {
        self.0.store(clock(), Ordering::Relaxed);
    }

    /// hyper asked for more: the client took the last chunk.
    pub fn taken(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// Milliseconds since the first call, from 1 (0 means "not waiting").
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let ms = START.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX - 1) + 1
}

/// Resolves once a response of `sends` has waited on its client longer than
/// `limit` (checked in quarters: within 1.25 × limit).
pub async fn stalled(sends: &Sends, limit: Duration) {
    let tick = limit / 4;
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    loop {
        interval.tick().await;
        if sends.longest_wait() > limit {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_response_left_waiting_is_found_one_that_moves_is_not() {
        let sends = Sends::default();
        let moving = sends.track();
        let stuck = sends.track();
        stuck.handed();
        // `clock` is real time: hand the chunk "long ago" by hand.
        stuck.0.store(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(30));
        moving.handed();
        moving.taken();
        assert!(sends.longest_wait() >= Duration::from_millis(25));
        tokio::time::timeout(
            Duration::from_secs(1),
            stalled(&sends, Duration::from_millis(20)),
        )
        .await
        .expect("the stalled response is found");
        drop(stuck);
        assert_eq!(
            sends.longest_wait(),
            Duration::ZERO,
            "a dropped body no longer counts"
        );
    }

    #[test]
    fn a_full_socket_waits_until_a_write_goes_through() {
        let sends = Sends::default();
        sends.socket_full();
        // Refused "long ago"; a later refusal keeps the first time.
        sends.socket_full.store(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(30));
        sends.socket_full();
        assert!(sends.longest_wait() >= Duration::from_millis(25));
        sends.socket_took();
        assert_eq!(sends.longest_wait(), Duration::ZERO);
    }
}
