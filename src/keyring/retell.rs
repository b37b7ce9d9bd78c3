//! Telling the fleet again: a rotation or revocation whose barrier round
//! failed has changed the store already, so instances that did not hear
//! may serve their cached copies until `cache.max_age`. The round is tried
//! again in the background until one gets through, or until no copy
//! cached before the change can be served any more
//! (`Fleet::cached_copies_gone_after`), whoever else retries: nobody does
//! for the idle-key sweep, and an API caller may not.

use std::time::Duration;

use crate::fleet::{Fleet, Forget, Why};

/// The wait between rounds after one fails, doubling up to
/// `FORGET_RETRY_MAX` (cached copies may outlive a short grace period
/// until one gets through).
const FORGET_RETRY_FIRST: Duration = Duration::from_secs(1);
const FORGET_RETRY_MAX: Duration = Duration::from_secs(30);

/// Tell the fleet to `forget` again, off the caller's task, after a failed
/// round; `what` names the change in the log (never a secret).
pub(super) fn keep_telling(fleet: Fleet, forget: Forget, why: Why, what: String) {
    let until = tokio::time::Instant::now() + fleet.cached_copies_gone_after();
    let span = tracing::info_span!("retell", about = %what);
    let retries = async move {
        let round = || fleet.forget(forget.clone(), why);
        match retry_until(until, round).await {
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
async fn retry_until<T, E, F, Fut>(until: tokio::time::Instant, mut round: F) -> Retried<E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut wait = FORGET_RETRY_FIRST;
    let mut failures = 1u32;
    loop {
        let now = tokio::time::Instant::now();
        tokio::time::sleep_until((now + wait).min(until)).await;
        match round().await {
            Ok(_) => return Retried::Heard { failures },
            Err(error) => {
                failures += 1;
                if tokio::time::Instant::now() >= until {
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

    #[tokio::test(start_paused = true)]
    async fn retries_stop_once_cached_copies_have_expired() {
        let start = tokio::time::Instant::now();
        let until = start + Duration::from_secs(300);
        let mut rounds = 0u32;
        let outcome = retry_until(until, || {
            rounds += 1;
            async { Err::<(), _>("no publish") }
        })
        .await;
        assert_eq!(
            outcome,
            Retried::Expired {
                failures: rounds + 1,
                error: "no publish"
            }
        );
        assert_eq!(
            tokio::time::Instant::now(),
            until,
            "the last try at `until`"
        );
        // 1, 2, 4, 8, 16 s, then every 30 s: 31 s, then 9 more to 301 s,
        // the last one cut to 300 s.
        assert_eq!(rounds, 5 + 9);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_end_when_a_round_gets_through() {
        let start = tokio::time::Instant::now();
        let mut rounds = 0u32;
        let outcome = retry_until(start + Duration::from_secs(300), || {
            rounds += 1;
            let ok = rounds == 3;
            async move {
                if ok {
                    Ok(())
                } else {
                    Err("no publish")
                }
            }
        })
        .await;
        assert_eq!(outcome, Retried::Heard { failures: 3 });
        assert_eq!(
            tokio::time::Instant::now() - start,
            Duration::from_secs(1 + 2 + 4)
        );
    }
}
