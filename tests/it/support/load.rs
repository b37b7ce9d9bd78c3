//! Requests under load around a revocation, and the proof the revocation
//! tests share: no request that started after the revocation answered got
//! in with a revoked key (the fleet's instances, each external-auth proxy).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;

/// One request as the load saw it.
pub struct Sent {
    pub started: Instant,
    /// Which instance (or proxy) it went to.
    pub instance: usize,
    /// Sent with a key that is to be revoked.
    pub victim: bool,
    pub status: StatusCode,
}

/// Enough traffic after the answer to prove something: wait (10 s at
/// most, however busy the machine) until `n` requests with the victim's
/// keys and `n` with others' that started after `answered` are answered.
pub async fn await_traffic_after(log: &Mutex<Vec<Sent>>, answered: Instant, n: usize) {
    super::eventually(
        &format!("{n} requests of each kind after the revocation answered"),
        500,
        Duration::from_millis(20),
        || async {
            let log = log.lock().unwrap();
            let after = |victim: bool| {
                log.iter()
                    .filter(|s| s.victim == victim && s.started > answered)
                    .count()
            };
            (after(true) >= n && after(false) >= n).then_some(())
        },
    )
    .await;
}

/// Stop the load and wait for it: every request it sent.
pub async fn finish(
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    log: Arc<Mutex<Vec<Sent>>>,
) -> Vec<Sent> {
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    std::mem::take(&mut *log.lock().unwrap())
}

/// The proof: no request that started after the answer got in with a
/// revoked key, and enough of them were sent to show it. Answers how many
/// requests with other users' keys got in after the answer.
pub fn no_revoked_key_after(log: &[Sent], answered: Instant) -> usize {
    let after: Vec<&Sent> = log.iter().filter(|s| s.started > answered).collect();
    let leaked = after
        .iter()
        .filter(|s| s.victim && s.status == StatusCode::OK)
        .count();
    assert_eq!(
        leaked, 0,
        "revoked keys got in after the revocation answered"
    );
    assert!(
        after.iter().filter(|s| s.victim).count() > 30,
        "too little traffic after the answer to prove anything"
    );
    after
        .iter()
        .filter(|s| !s.victim && s.status == StatusCode::OK)
        .count()
}
