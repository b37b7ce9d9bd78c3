//! The fleet: every keygate instance sharing one Redis deployment, and the
//! protocol that lets them cache key records yet stop a revoked key on all
//! of them before the revocation answers.
//!
//! # Protocol
//!
//! *Members.* An instance with `cache.enabled` subscribes to
//! `<ns>:fleet:invalidate`, then registers in the sorted set
//! `<ns>:fleet:members` as `<lease ms>:<instance id>`, scored by an expiry of
//! twice its lease in Redis' clock (`HEARTBEAT` in `store/redis/fleet.rs`).
//! Every lease/3 it sends a PING on its subscription, re-registers,
//! publishes a probe through its command connection and waits for it on its
//! subscription (`<ns>:fleet:ack:probe:<instance id>`, subscribed with the
//! invalidations, under the reply channels' names so that it needs no ACL
//! permission of its own: a member that cannot publish cannot acknowledge)
//! and checks the store's epoch `<ns>:fleet:epoch`,
//! made if missing when it joined: a store emptied in place (FLUSHALL,
//! FLUSHDB) loses it. The probe's return proves that the subscription is
//! on the server the commands reach: after a failover behind one address
//! (a load balancer, a virtual IP) a subscription made again can land on
//! another server than a command connection still open, and the PING
//! there proves nothing about the revocations published here.
//!
//! *Lease.* Redis answers a PING on a subscribed connection after every
//! message published before it, so when the PONG arrives every invalidation
//! published before the PING was sent has been applied. The member then
//! serves its cache until `ping sent + lease` (`KeyCache::renew`). A ping,
//! registration or publish (an acknowledgement too) that fails, a probe
//! that does not come back within the lease, an epoch
//! that is gone or another, or the subscription dropping, empties the
//! cache and stops caching (`KeyCache::suspend`) until the next renewal:
//! meanwhile every request asks the store. So a member never serves an entry
//! that an invalidation published more than one lease ago should have
//! removed, and one that loses touch with Redis trusts nothing it cached.
//!
//! *Barrier.* A revocation (admin API, CLI, self-service page) first deletes
//! the records in the store, then (`barrier.rs`):
//! 0. empties its own cache of what it revoked (even if step 3 fails);
//! 1. reads the live members, and the epoch with its age by Redis' clock:
//!    an epoch younger than a lease (made just now by this call, or by a
//!    member that noticed a FLUSHALL first) means the store was emptied or
//!    is new, so the registry may miss members that still cache. Such a
//!    member finds the epoch gone or another at its next renewal, or its
//!    lease runs out, by the epoch's creation + its lease; so step 4 also
//!    waits until then (+ a tenth), whoever is registered, with the longest
//!    lease this process knows: its own, or any seen in the registry since
//!    it started (each renewal's `HEARTBEAT` answers the longest registered
//!    one). Instances should all use the same `cache.lease`: one with a
//!    longer lease that no other instance has seen registered yet (it
//!    joined less than a renewal before the flush) is not covered;
//! 2. subscribes to its own reply channel `<ns>:fleet:ack:<round>` (if
//!    it cannot, it goes on and waits out every lease in step 4);
//! 3. publishes what to forget (ids, users or everything) with that channel;
//!    each member applies it to its cache, then publishes its instance id
//!    on the reply channel;
//! 4. waits until every member read in step 1 has answered, or until the
//!    longest lease among them has passed since the publish was answered;
//!    and until as many instances answered as the publish reached (Redis
//!    counts the subscribers it delivered to), else the longest lease this
//!    process knows: a registry that lists fewer members than listen (its
//!    key evicted, Redis' clock stepped past the registrations) hides
//!    instances that cache.
//!
//! When the revocation returns, every member has forgotten the keys, or its
//! lease has run out since the invalidation was published: either way none
//! of them accepts a revoked key. A member that registered after step 1
//! enabled its cache after the records were deleted, so it never cached
//! them. The answer names the members that did not acknowledge; a live one
//! serves from the store until its next ping succeeds, a dead one drops out
//! of the registry within two leases.
//!
//! *Tunnels* (`tunnels`). A revocation (not a rotation's refresh, marked
//! `"refresh": true`; a message without the mark, an older instance's, is
//! a revocation) also ends the open WebSocket tunnels of the keys it
//! names: the revoker's in step 0, each member's before it acknowledges.
//! A member that may have missed messages (its session broke) checks its
//! key tunnels' keys in the store when it breaks and once back in touch;
//! an instance without the cache, no member, checks them every lease.
//!
//! Store reads that race an invalidation are never cached (the cache's
//! epoch, see `cache`). If the publish itself fails the revocation is
//! reported as not propagated: retrying it publishes again.

mod barrier;
pub mod cache;
mod member;
pub(crate) mod outage;
pub mod tunnels;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::barrier::Report;
use self::cache::KeyCache;
pub use self::member::Member;
use self::tunnels::Tunnels;
use crate::store::RedisStore;

/// Above this many ids a round tells members to forget everything instead.
const MAX_IDS_PER_ROUND: usize = 10_000;

/// What members must forget.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "forget", rename_all = "lowercase")]
pub enum Forget {
    Ids { ids: Vec<String> },
    Users { users: Vec<String> },
    All,
}

impl Forget {
    /// Make `cache` forget what this names.
    fn apply_to(&self, cache: &KeyCache) {
        match self {
            Forget::Ids { ids } => cache.invalidate_ids(ids.iter().map(String::as_str)),
            Forget::Users { users } => cache.invalidate_users(users),
            Forget::All => cache.invalidate_all(),
        }
    }

    /// Whether this names key `key_id` of `user` (an open tunnel's).
    fn names(&self, key_id: &str, user: &str) -> bool {
        match self {
            Forget::Ids { ids } => ids.iter().any(|id| id == key_id),
            Forget::Users { users } => users.iter().any(|u| u == user),
            Forget::All => true,
        }
    }

    /// Ids, or everything when the list is too long for one message.
    pub fn ids(ids: Vec<String>) -> Forget {
        if ids.len() > MAX_IDS_PER_ROUND {
            Forget::All
        } else {
            Forget::Ids { ids }
        }
    }
}

/// Why members forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Why {
    /// The keys are revoked: their open tunnels end too.
    Revoked,
    /// Only cached copies go (a rotation: the old key stays valid through
    /// its grace period, its tunnels with it).
    Refresh,
}

/// One invalidation as published on `<ns>:fleet:invalidate`.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    /// Where members acknowledge.
    reply: String,
    #[serde(flatten)]
    forget: Forget,
    /// Only a cache refresh (a rotation). Absent in a revocation, and in
    /// every message of an older instance: those end tunnels too (an older
    /// instance's rotation then ends the old key's tunnels, which is safe).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    refresh: bool,
}

/// This process's handle on the fleet of one Redis deployment.
#[derive(Clone)]
pub struct Fleet {
    store: RedisStore,
    /// `<host>-<pid>-<random>`: unique among members, readable in answers and logs.
    instance: String,
    lease: Duration,
    /// `cache.max_age`: no cached entry is served longer after it was filled.
    max_age: Duration,
    /// This instance's own cache (with `cache.enabled`): a revocation made
    /// here empties it before it publishes, so this instance never serves a
    /// key it has just deleted, even when the publish fails.
    cache: Option<Arc<KeyCache>>,
    /// The longest lease (ms) seen in the registry since this process
    /// started (shared by every clone): after the store was emptied the
    /// registry no longer shows who caches, so a revoker assumes this one.
    longest_seen: Arc<AtomicU64>,
    /// This process's open key tunnels: a revocation ends theirs.
    tunnels: Tunnels,
}

impl Fleet {
    pub fn new(
        store: RedisStore,
        lease: Duration,
        max_age: Duration,
        cache: Option<Arc<KeyCache>>,
        tunnels: Tunnels,
    ) -> Fleet {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let host = if host.is_empty() {
            "keygate".into()
        } else {
            host
        };
        let instance = format!(
            "{host}-{}-{}",
            std::process::id(),
            crate::random::hex::<3>()
        );
        Fleet {
            store,
            instance,
            lease,
            max_age,
            cache,
            longest_seen: Arc::new(AtomicU64::new(0)),
            tunnels,
        }
    }

    /// How long after a change to a key record no instance can serve a copy
    /// it cached before (whether or not it heard of the change): a store
    /// read in flight at the change fills the cache by the store timeout,
    /// an entry is served at most `cache.max_age` after its fill, plus the
    /// longest lease we know of as a margin. Assumes the fleet shares
    /// `cache.max_age` (and `store.timeout`).
    pub fn cached_copies_gone_after(&self) -> Duration {
        self.store.timeout() + self.max_age + self.longest_lease()
    }

    /// Remember a lease seen in the registry.
    fn saw_lease(&self, lease: Duration) {
        let ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        self.longest_seen.fetch_max(ms, Ordering::Relaxed);
    }

    /// The lease a member missing from the registry may hold: the longest of
    /// our own and every lease seen in the registry since we started.
    fn longest_lease(&self) -> Duration {
        self.lease.max(Duration::from_millis(
            self.longest_seen.load(Ordering::Relaxed),
        ))
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The registry entry: the lease travels with the name so that a revoker
    /// waits out the longest lease of the fleet, whatever its own config says.
    fn member_name(&self) -> String {
        format!("{}:{}", self.lease.as_millis(), self.instance)
    }
}

/// A Redis call that must finish by `deadline` (`lease` names the bound in the error).
async fn bounded<T>(
    deadline: std::time::Instant,
    lease: Duration,
    fut: impl std::future::Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, crate::store::StoreError> {
    match tokio::time::timeout_at(deadline.into(), fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(crate::store::StoreError::Timeout(lease)),
    }
}

/// Split a registry entry into (lease, instance id).
fn parse_member(entry: &str) -> Option<(Duration, &str)> {
    let (ms, id) = entry.split_once(':')?;
    Some((Duration::from_millis(ms.parse().ok()?), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_long_id_lists_become_forget_all() {
        let m = Message {
            reply: "ns:fleet:ack:1".into(),
            forget: Forget::Users {
                users: vec!["ann lee".into()],
            },
            refresh: false,
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"reply":"ns:fleet:ack:1","forget":"users","users":["ann lee"]}"#
        );
        let back: Message = serde_json::from_str(&text).unwrap();
        assert_eq!(back.forget, m.forget);
        assert!(!back.refresh, "an older instance's message is a revocation");
        let refresh = Message {
            refresh: true,
            ..back
        };
        let text = serde_json::to_string(&refresh).unwrap();
        assert!(text.ends_with(r#","refresh":true}"#), "{text}");
        assert!(serde_json::from_str::<Message>(&text).unwrap().refresh);
        let all: Message = serde_json::from_str(r#"{"reply":"r","forget":"all"}"#).unwrap();
        assert_eq!(all.forget, Forget::All);

        assert_eq!(
            Forget::ids(vec!["a".into(); MAX_IDS_PER_ROUND + 1]),
            Forget::All
        );
        assert!(matches!(Forget::ids(vec!["a".into()]), Forget::Ids { .. }));
    }

    #[test]
    fn registry_entries_carry_the_lease() {
        assert_eq!(
            parse_member("3000:host-12-abcdef"),
            Some((Duration::from_secs(3), "host-12-abcdef"))
        );
        assert_eq!(parse_member("junk"), None);
    }
}
