//! The revoker's half of the protocol (see `fleet`): publish what to forget
//! and return only when every member has acknowledged it or its lease has
//! run out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::PubSub;
use serde::Serialize;
use tokio::time::{sleep_until, timeout_at};

use super::{bounded, parse_member, Fleet, Forget, Message, Why};
use crate::store::StoreError;

/// How a round went: which members forgot in time, which ran out their lease.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub acknowledged: Vec<String>,
    /// Members that did not answer: the round waited until their lease ran
    /// out, so they serve no cached entry from before it either.
    pub unacknowledged: Vec<String>,
    #[serde(skip)]
    pub waited: Duration,
}

/// Margin on a member's lease for clocks that run at slightly different rates.
const LEASE_MARGIN_DIVISOR: u32 = 10;

impl Fleet {
    /// Tell every member to forget, and wait for them (steps 1-4 of the
    /// protocol); a revocation also ends the keys' open tunnels everywhere.
    pub async fn forget(&self, forget: Forget, why: Why) -> Result<Report, StoreError> {
        let started = Instant::now();
        // 0. our own cache and tunnels, whatever happens to the publish:
        // this instance never serves what it has just deleted
        if let Some(cache) = &self.cache {
            forget.apply_to(cache);
        }
        if why == Why::Revoked {
            self.end_revoked_tunnels(&forget).await;
        }
        // 1. the members now; any later one cached nothing of what was deleted
        let mut pending: BTreeMap<String, Duration> = BTreeMap::new();
        for entry in self.store.members().await? {
            if let Some((lease, id)) = parse_member(&entry) {
                self.saw_lease(lease);
                let longest = pending.entry(id.to_owned()).or_default();
                *longest = (*longest).max(lease);
            }
        }
        // An epoch younger than a lease: the store was emptied (FLUSHALL)
        // or is new a moment ago, whoever made the epoch since (usually the
        // first member to notice), so the registry may miss members that
        // still cache. They find the epoch gone or another at their next
        // renewal, or their lease runs out: either way by the epoch's
        // creation + their lease. Wait that out rather than trust the
        // registry, assuming the longest lease we know of.
        let (_, age) = self.store.epoch(&crate::random::hex::<8>()).await?;
        let assumed = self.longest_lease();
        let emptied_until = (age < assumed)
            .then(|| Instant::now() + (assumed - age) + assumed / LEASE_MARGIN_DIVISOR);
        // No early return when the registry lists nobody: it may have lost
        // members that still cache (its key evicted, Redis' clock stepped
        // past their registrations); the publish's receivers tell (step 4).
        let longest_lease = pending.values().copied().max().unwrap_or_default();

        // 2. our reply channel, subscribed before anyone can answer on it
        let reply = self
            .store
            .channel(&format!("ack:{}", crate::random::hex::<8>()));
        // Without it the round still holds: it waits out every lease instead.
        let acks = match self.listen(&reply, started).await {
            Ok(acks) => Some(acks),
            Err(e) => {
                tracing::warn!(error = %e, "cannot hear acknowledgements; waiting out every instance's lease instead");
                None
            }
        };

        // 3. the invalidation
        let message = Message {
            reply,
            forget,
            refresh: why == Why::Refresh,
        };
        let message = serde_json::to_string(&message).expect("a fleet message serializes");
        let receivers = self
            .store
            .publish(&self.store.channel("invalidate"), &message)
            .await?;
        let published = Instant::now();
        let mut deadline = published + longest_lease + longest_lease / LEASE_MARGIN_DIVISOR;
        // More subscribers than registered members: some instance listens
        // (and so may cache) without being listed. Every subscriber
        // acknowledges; one that does not is waited out with the longest
        // lease we know of, as after an emptied store.
        let unlisted = receivers > pending.len() as u64;
        if unlisted {
            deadline = deadline.max(published + assumed + assumed / LEASE_MARGIN_DIVISOR);
        }
        let last = deadline.max(emptied_until.unwrap_or(deadline));

        // 4. every answer, or the end of every lease
        let mut report = Report::default();
        let Some(mut acks) = acks else {
            sleep_until(last.into()).await;
            return Ok(self.report(report, pending, started));
        };
        let mut stream = acks.on_message();
        // Every instance that answered, listed or not.
        let mut heard = std::collections::HashSet::new();
        while !pending.is_empty() || (heard.len() as u64) < receivers {
            match timeout_at(deadline.into(), stream.next()).await {
                Ok(Some(msg)) => {
                    let id: String = msg.get_payload().unwrap_or_default();
                    if heard.insert(id.clone()) {
                        pending.remove(&id);
                        report.acknowledged.push(id);
                    }
                }
                // The reply connection broke: we cannot hear answers, so
                // wait out every lease instead.
                Ok(None) => {
                    sleep_until(deadline.into()).await;
                    break;
                }
                Err(_) => {
                    if unlisted && (heard.len() as u64) < receivers {
                        tracing::warn!(
                            receivers,
                            acknowledged = heard.len(),
                            "more connections received a revocation than the fleet registry lists, and not all of them acknowledged; waited out the longest lease known, so an instance missing from the registry does not accept the revoked keys either"
                        );
                    }
                    break;
                }
            }
        }
        if let Some(until) = emptied_until {
            tracing::warn!(
                lease_ms = assumed.as_millis() as u64,
                "the key store was emptied or is new (its fleet epoch is younger than a lease): waiting out the longest lease known since the epoch was made, since instances that cached keys may be missing from the registry"
            );
            sleep_until(until.into()).await;
        }
        Ok(self.report(report, pending, started))
    }

    /// A connection subscribed to `reply`.
    async fn listen(&self, reply: &str, started: Instant) -> Result<PubSub, StoreError> {
        let mut acks = self.store.pubsub().await?;
        bounded(started + self.lease, self.lease, acks.subscribe(reply)).await?;
        Ok(acks)
    }

    fn report(
        &self,
        mut report: Report,
        pending: BTreeMap<String, Duration>,
        started: Instant,
    ) -> Report {
        report.unacknowledged = pending.into_keys().collect();
        report.waited = started.elapsed();
        if !report.unacknowledged.is_empty() {
            tracing::warn!(
                instances = ?report.unacknowledged,
                waited_ms = report.waited.as_millis() as u64,
                "instances did not acknowledge a revocation; waited until their cache lease ran out, so they do not accept the revoked keys either"
            );
        }
        report
    }
}
