//! Telling the fleet again: a rotation or revocation whose barrier round
//! failed has changed the store already, so instances that did not hear
//! may serve their cached copies until `cache.max_age`. The round is tried
//! again in the background until one gets through, or until no copy
//! cached before the change can be served any more
//! (`Fleet::cached_copies_gone_after`), whoever else retries: nobody does
//! for the idle-key sweep, and an API caller may not. One change is told
//! by one task, however often its round failed (a client retrying a
//! revocation through an outage).

use std::collections::hash_map::{Entry, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::fleet::{Fleet, Forget, Why};

/// The wait between rounds after one fails, doubling up to
/// `FORGET_RETRY_MAX` (cached copies may outlive a short grace period
/// until one gets through).
const FORGET_RETRY_FIRST: Duration = Duration::from_secs(1);
const FORGET_RETRY_MAX: Duration = Duration::from_secs(30);

/// The changes told again in the background, each with the time its
/// telling may stop (shared by every clone).
pub(super) type Retelling = Pending<(Forget, Why)>;

/// Tell the fleet to `forget` again, off the caller's task, after a failed
/// round; `what` names the change in the log (never a secret). If the
/// same change is being told already, that task goes on until the later
/// of the two ends instead.
pub(super) fn keep_telling(
    pending: &Retelling,
    fleet: Fleet,
    forget: Forget,
    why: Why,
    what: String,
) {
    let until = Instant::now() + fleet.cached_copies_gone_after();
    let key = (forget, why);
    if !pending.claim(&key, until) {
        tracing::info!("{what}: already being told again in the background");
        return;
    }
    let span = tracing::info_span!("retell", about = %what);
    let pending = pending.clone();
    let retries = async move {
        let round = || fleet.forget(key.0.clone(), key.1);
        match pending.tell(&key, round).await {
            Retried::Heard { failures } => {
                tracing::info!(failures, "every instance has heard of {what} now");
            }
            Retried::Expired { failures, error } => {
                tracing::warn!(failures, error = %error, "stopped telling the instances about {what}: any copy they cached before it has expired by now (cache.max_age + cache.lease since)");
            }
        }
    };
    tokio::spawn(tracing::Instrument::instrument(retries, span));
}

/// What is being told again, each with the time its telling may stop.
#[derive(Clone)]
pub(super) struct Pending<K>(Arc<Mutex<HashMap<K, Instant>>>);

impl<K> Default for Pending<K> {
    fn default() -> Self {
        Pending(Arc::default())
    }
}

impl<K: Hash + Eq + Clone> Pending<K> {
    /// Whether the caller is to tell `key` (nobody does yet); else the
    /// task telling it goes on until `until` if that is later.
    fn claim(&self, key: &K, until: Instant) -> bool {
        match self.0.lock().expect("not poisoned").entry(key.clone()) {
            Entry::Occupied(mut told) => {
                let later = (*told.get()).max(until);
                told.insert(later);
                false
            }
            Entry::Vacant(new) => {
                new.insert(until);
                true
            }
        }
    }

    /// Run `round` until it gets through or `key`'s end has passed; once
    /// more when the same change failed again meanwhile (its own round may
    /// have come after this one got through). Gives `key` up at the end.
    async fn tell<T, E, F, Fut>(&self, key: &K, mut round: F) -> Retried<E>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut until = self.end(key);
        loop {
            let outcome = retry_until(until, &mut round).await;
            // Decided under the lock: a claim after it starts a task of its own.
            let mut pending = self.0.lock().expect("not poisoned");
            match pending.get(key) {
                Some(end) if *end != until => until = *end,
                _ => {
                    pending.remove(key);
                    return outcome;
                }
            }
        }
    }

    fn end(&self, key: &K) -> Instant {
        // Claimed before the task that tells it starts; only that task gives it up.
        self.0.lock().expect("not poisoned")[key]
    }
}

/// How the background retries of a round went.
#[derive(Debug, PartialEq)]
enum Retried<E> {
    /// A round got through after `failures` failed ones.
    Heard { failures: u32 },
    /// `until` passed first; `error` is the last round's.
    Expired { failures: u32, error: E },
}

/// Try `round` again after 1 s, doubling the wait up to 30 s, until it
/// succeeds or `until` has passed (the last try at `until`). Counts the
/// first, failed, round made before.
async fn retry_until<T, E, F, Fut>(until: Instant, mut round: F) -> Retried<E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut wait = FORGET_RETRY_FIRST;
    let mut failures = 1u32;
    loop {
        let now = Instant::now();
        tokio::time::sleep_until((now + wait).min(until)).await;
        match round().await {
            Ok(_) => return Retried::Heard { failures },
            Err(error) => {
                failures += 1;
                if Instant::now() >= until {
                    return Retried::Expired { failures, error };
                }
                if wait == FORGET_RETRY_MAX || failures % 10 == 0 {
                    tracing::error!(error = %error, failures, "still cannot tell every instance about a rotation or revocation: they may accept the keys from their cache; trying again");
                }
            }
        }
        wait = (wait * 2).min(FORGET_RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round of the fleet's: through, or failed for want of a publish.
    async fn round(ok: bool) -> Result<(), &'static str> {
        if ok {
            Ok(())
        } else {
            Err("no publish")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_once_cached_copies_have_expired() {
        let start = Instant::now();
        let until = start + Duration::from_secs(300);
        let mut rounds = 0u32;
        let outcome = retry_until(until, || {
            rounds += 1;
            round(false)
        })
        .await;
        assert_eq!(
            outcome,
            Retried::Expired {
                failures: rounds + 1,
                error: "no publish"
            }
        );
        assert_eq!(Instant::now(), until, "the last try at `until`");
        // 1, 2, 4, 8, 16 s, then every 30 s: 31 s, then 9 more to 301 s,
        // the last one cut to 300 s.
        assert_eq!(rounds, 5 + 9);
    }

    /// A change that failed again while it was being told is told by the
    /// same task, until the later end; a second task would double every
    /// round (and every round ends tunnels).
    #[tokio::test(start_paused = true)]
    async fn the_same_change_failing_again_extends_its_telling_not_a_second_one() {
        let start = Instant::now();
        let pending = Pending::<&str>::default();
        assert!(pending.claim(&"revoke k1", start + Duration::from_secs(300)));
        let rounds = std::rc::Rc::new(std::cell::Cell::new(0u32));
        let counted = rounds.clone();
        let telling = pending.tell(&"revoke k1", move || {
            counted.set(counted.get() + 1);
            round(false)
        });
        let again = async {
            tokio::time::sleep(Duration::from_secs(100)).await;
            // The same change fails 100 s in: no second task, a later end.
            assert!(!pending.claim(&"revoke k1", Instant::now() + Duration::from_secs(300)));
            // Another change is another task.
            assert!(pending.claim(&"revoke k2", Instant::now() + Duration::from_secs(300)));
        };
        let (outcome, ()) = tokio::join!(telling, again);
        assert!(matches!(outcome, Retried::Expired { .. }));
        assert_eq!(
            Instant::now() - start,
            Duration::from_secs(400),
            "until the later end"
        );
        // 14 rounds to 300 s, then rounds again from 1 s on to the new end
        // (1, 2, 4, 8, 16 s, then every 30 s): 5 + 3 more to 400 s.
        assert_eq!(rounds.get(), 14 + 5 + 3);
        // Given up at its end: the next failure starts a task again.
        assert!(pending.claim(&"revoke k1", Instant::now() + Duration::from_secs(1)));
    }

    /// A round that got through before the same change failed again does
    /// not end the telling: that failure's own round may have been the
    /// later one, so one more round is made after it.
    #[tokio::test(start_paused = true)]
    async fn a_failure_after_a_round_got_through_gets_one_more_round() {
        let start = Instant::now();
        let pending = Pending::<&str>::default();
        assert!(pending.claim(&"rotate k1", start + Duration::from_secs(300)));
        let rounds = std::rc::Rc::new(std::cell::Cell::new(0u32));
        let counted = rounds.clone();
        let claimed = pending.clone();
        let outcome =
            pending
                .tell(&"rotate k1", move || {
                    counted.set(counted.get() + 1);
                    // The first round fails; as the second goes out, the same
                    // change fails again elsewhere.
                    if counted.get() == 2 {
                        assert!(
                            !claimed.claim(&"rotate k1", Instant::now() + Duration::from_secs(300))
                        );
                    }
                    let ok = counted.get() >= 2;
                    round(ok)
                })
                .await;
        assert_eq!(outcome, Retried::Heard { failures: 1 });
        assert_eq!(rounds.get(), 3, "one more round after the second failure");
        assert_eq!(Instant::now() - start, Duration::from_secs(1 + 2 + 1));
        assert!(
            pending.claim(&"rotate k1", Instant::now() + Duration::from_secs(1)),
            "given up"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_end_when_a_round_gets_through() {
        let start = Instant::now();
        let mut rounds = 0u32;
        let outcome = retry_until(start + Duration::from_secs(300), || {
            rounds += 1;
            let ok = rounds == 3;
            round(ok)
        })
        .await;
        assert_eq!(outcome, Retried::Heard { failures: 3 });
        assert_eq!(Instant::now() - start, Duration::from_secs(1 + 2 + 4));
    }
}
