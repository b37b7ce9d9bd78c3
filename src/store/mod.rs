//! Where keys live: Redis (shared by every instance of a deployment) or
//! memory (one process, for `keygate dev`). One contract, two
//! implementations, one conformance suite (`tests/it/store_conformance.rs`).
//!
//! Contract:
//! * `insert` stores a record whose lifetime is its `expires_at` (Redis TTL);
//!   an expired key is gone, not flagged: `get` answers `None`.
//! * `get` is the request path's only call; it never writes.
//! * revocations delete records and answer how many live keys they removed.
//! * every error (`StoreError`: `Unavailable`, `Closed`, `Timeout`, or
//!   `Corrupt` for a record keygate cannot read) means the caller cannot
//!   know whether a key is valid and must refuse (fail closed).
//! * a restart or failover that the store survives fails no call: a call
//!   whose connection is found dead (closed while idle) is sent again, once,
//!   on a fresh connection when it is safe to repeat:
//!   - reads: `get`, `list`, `audit_from`, `settings`, `ping`, and the
//!     fleet's registry (`members`);
//!   - writes idempotent by design: `insert` (the same record under a fresh
//!     id), `touch` (the same time, only on a record that exists),
//!     `put_settings`, the revocations (deleting again deletes nothing more;
//!     after a reply lost with its connection, keys the lost attempt removed
//!     are not counted again), the fleet's registration and its messages
//!     (forgetting or acknowledging twice changes nothing);
//!   - never `count_in_window` (an INCR would count one event twice), nor
//!     `give_back_in_window` (a DECR twice would give back two), nor
//!     `append_audit` (the event would be in the stream twice): they go only
//!     on a connection a PING has just checked (and replaced if dead), and
//!     if it dies while they are on the way the error stays (503; a lost
//!     audit entry is logged). In a Redis Cluster redis-rs itself resends
//!     any command after a node's connection dropped, so there a creation
//!     may count twice (a user reaches `creates_per_hour` one early at
//!     worst) or be given back twice (one late at worst) and an audit entry may be in the stream twice.
//!
//!   A timeout is never repeated (the command may still run).
//! * the webhook outbox (`outbox.rs`): pushing, removing and rescheduling a
//!   message are repeated like the idempotent writes; a claim is not (it
//!   counts an attempt), it goes on a checked connection.
//! * rotation, expiry notices and chore leases (`lifecycle.rs`) keep a
//!   contract of their own, repeats included.
//!
//! Only the keyring (`crate::keyring`) holds a store at run time; `open`
//! makes one from `[store]`. Redis deployments (standalone, `rediss://`,
//! Cluster, Sentinel), the key layout and replication: `store/redis/mod.rs`.

mod lifecycle;
pub mod listing;
mod memory;
mod outbox;
mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use self::lifecycle::{Lineage, MemoryLifecycle, Notice, Rotated, MAX_LINEAGE};
pub use self::listing::{KeyFilter, Listed, Order, Position, Sort};
pub use self::memory::MemoryStore;
pub use self::outbox::{Claim, Claimed, MemoryOutbox};
pub use self::redis::{parse_url as parse_redis_url, RedisStore, Target as RedisTarget};
use crate::audit::Event;
use crate::config;
use crate::keys::{KeyId, KeyRecord};

/// What a store says of this process's secret (`Store::check_secret`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretCheck {
    /// Claimed for it.
    Ours,
    /// Claimed by no secret yet (a store from before the claim, or one
    /// that lost it): it cannot tell.
    Unclaimed,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the key store is unavailable: {0}")]
    Unavailable(#[source] ::redis::RedisError),
    #[error("the key store closed the connection")]
    Closed,
    #[error("the key store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the key store holds a record keygate cannot read (key id {0})")]
    Corrupt(String),
    /// The fleet's epoch key is gone or another one: the store was emptied
    /// in place (FLUSHALL, FLUSHDB) behind keygate's back. (Eviction shows
    /// only if it takes the epoch itself, which `volatile-*` policies never
    /// do: the epoch has no TTL.)
    #[error("the key store was emptied outside keygate (its fleet epoch is gone or new)")]
    Emptied,
    /// A fleet member's probe, published through its command connection,
    /// did not come back on its subscription within a lease: the two reach
    /// different Redis servers (a failover behind one address moved one of
    /// them), so the subscription hears no revocation of this store.
    /// `ns:secret-check` (named) was written by an instance with another
    /// deployment secret: this one would refuse every stored key.
    #[error("store.secret_file (or KEYGATE_SECRET) is not the secret the keys in this store were made with ({0} was written by a process with another secret, which verified one of the keys or found the store empty): every instance and keygate command of a deployment needs the same one; with another, every key would be refused and new keys would work nowhere else. Delete {0} only if the secret was changed on purpose and every existing key is to stop working")]
    OtherSecret(String),
    #[error("the fleet subscription did not receive this instance's own probe within {0:?}: it is on another Redis server than the commands (a failover behind the same address?)")]
    ProbeUnheard(Duration),
}

impl StoreError {
    /// Redis refused the command for the ACL user (NOPERM): a configuration
    /// error, not an outage. A command a Lua script calls is refused with
    /// `ERR The user executing the script can't run this command…` (Redis
    /// 7.0) instead: that is one too.
    pub fn is_no_permission(&self) -> bool {
        let StoreError::Unavailable(e) = self else {
            return false;
        };
        e.code() == Some("NOPERM")
            || e.detail().is_some_and(|d| {
                // Redis 7.0; Redis 7.2+ and Valkey.
                d.contains("The user executing the script can't run")
                    || d.contains("ACL failure in script")
            })
    }
}

/// Where a read of the audit stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFrom {
    /// At unix millisecond `ms`, its own events included.
    Since(u64),
    /// Just after the event at position `(ms, seq)`: the next page of a
    /// reader that has seen it (several events may share a millisecond).
    After(u64, u64),
}

/// The store `[store]` describes, not dialled yet: the first call connects,
/// and calls fail (503) while it is down. `Store::ready` finishes the start.
pub fn open(config: &config::Store) -> Result<Store, StoreError> {
    match config {
        config::Store::Memory => Ok(Store::memory()),
        config::Store::Redis {
            url,
            namespace,
            timeout,
            ca_file,
            secret: _,
        } => {
            let ca = match ca_file {
                Some(path) => Some(std::fs::read(path).map_err(::redis::RedisError::from)?),
                None => None,
            };
            let store = RedisStore::open(url, namespace, *timeout, ca.as_deref())?;
            Ok(Store::Redis(store))
        }
    }
}

/// The configured store; cheap to clone.
#[derive(Clone)]
pub enum Store {
    Memory(Arc<MemoryStore>),
    Redis(RedisStore),
}

// === impl Store ===

impl Store {
    pub fn memory() -> Store {
        Store::Memory(MemoryStore::new())
    }

    pub async fn redis(url: &str, namespace: &str, timeout: Duration) -> Result<Store, StoreError> {
        Ok(Store::Redis(
            RedisStore::connect(url, namespace, timeout).await?,
        ))
    }

    /// The store answers and is ready for use (Redis: the first key layout
    /// is moved, once); for a store opened without dialling.
    pub async fn ready(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(r) => r.ready().await,
        }
    }

    /// Whether the store's keys were made with the secret `check` is
    /// derived from, as far as the store can say (Redis: its claim; a
    /// memory store lives and dies with its process's secret).
    pub async fn check_secret(&self, check: &str) -> Result<SecretCheck, StoreError> {
        match self {
            Store::Memory(_) => Ok(SecretCheck::Ours),
            Store::Redis(r) => r.check_secret(check).await,
        }
    }

    /// Claim the store for the secret `check` is derived from.
    pub async fn claim_secret(&self, check: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(r) => r.claim_secret(check).await,
        }
    }

    /// The Redis store, for what only Redis offers (pub/sub).
    pub fn as_redis(&self) -> Option<&RedisStore> {
        match self {
            Store::Memory(_) => None,
            Store::Redis(r) => Some(r),
        }
    }

    pub async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.insert(record.clone());
                Ok(())
            }
            Store::Redis(r) => r.insert(record).await,
        }
    }

    /// Many records as `insert` writes them, in as few round trips as the
    /// deployment allows; for filling a store no instance serves yet
    /// (Redis: `RedisStore::insert_many`).
    pub async fn insert_many(&self, records: &[KeyRecord]) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                for r in records {
                    m.insert(r.clone());
                }
                Ok(())
            }
            Store::Redis(r) => r.insert_many(records).await,
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.get(id)),
            Store::Redis(r) => r.get(id).await,
        }
    }

    /// Live keys, newest first; of one user if given. Every page of them:
    /// for a user's own keys (a few), and the command line.
    pub async fn list(&self, user: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let filter = KeyFilter {
            user: user.map(str::to_owned),
            ..KeyFilter::default()
        };
        let mut keys = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .page(Order::default(), &filter, after.as_ref(), 1000)
                .await?;
            keys.extend(page.keys);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// One page of live keys that match `filter`, in `order`, after
    /// `after` (`listing.rs`: the cost is the page's, not the store's).
    pub async fn page(
        &self,
        order: Order,
        filter: &KeyFilter,
        after: Option<&Position>,
        limit: usize,
    ) -> Result<Listed, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.page(order, filter, after, limit)),
            Store::Redis(r) => r.page(order, filter, after, limit).await,
        }
    }

    /// How many live keys match `filter` (a dry run's count).
    pub async fn count(&self, filter: &KeyFilter) -> Result<u64, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.count(filter)),
            Store::Redis(r) => r.count(filter).await,
        }
    }

    pub async fn revoke_ids(&self, ids: &[KeyId]) -> Result<u64, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.revoke_ids(ids)),
            Store::Redis(r) => r.revoke_ids(ids).await,
        }
    }

    pub async fn revoke_users(&self, users: &[String]) -> Result<u64, StoreError> {
        match self {
            Store::Memory(m) => Ok(users
                .iter()
                .map(|u| {
                    let filter = KeyFilter {
                        user: Some(u.clone()),
                        ..KeyFilter::default()
                    };
                    m.revoke_matching(&filter).len() as u64
                })
                .sum()),
            Store::Redis(r) => r.revoke_users(users).await,
        }
    }

    /// Revoke every key that exists when the call starts.
    pub async fn revoke_all(&self) -> Result<u64, StoreError> {
        self.revoke_matching(&KeyFilter::default()).await
    }

    /// Revoke every live key that matches `filter` and exists when the call
    /// starts (give or take `listing::CLOCK_SKEW`), in batches.
    pub async fn revoke_matching(&self, filter: &KeyFilter) -> Result<u64, StoreError> {
        Ok(self.revoke_matching_ids(filter).await?.len() as u64)
    }

    /// `revoke_matching`, answering the ids of the live keys it revoked
    /// (their expiry notices are dropped by id).
    pub async fn revoke_matching_ids(&self, filter: &KeyFilter) -> Result<Vec<KeyId>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.revoke_matching(filter)),
            Store::Redis(r) => r.revoke_matching(filter).await,
        }
    }

    /// Record the last use of a key; never brings a revoked or expired key back.
    pub async fn touch(&self, id: &KeyId, at: u64) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.touch(id, at);
                Ok(())
            }
            Store::Redis(r) => r.touch(id, at).await,
        }
    }

    /// Append to the capped audit stream.
    pub async fn append_audit(&self, event: &Event) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.append_audit(event.clone());
                Ok(())
            }
            Store::Redis(r) => r.append_audit(event).await,
        }
    }

    /// Audit events from `from`, oldest first, at most `limit`, each with
    /// its position (`ms-seq`).
    pub async fn audit_from(
        &self,
        from: AuditFrom,
        limit: usize,
    ) -> Result<Vec<(String, Event)>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.audit_from(from, limit)),
            Store::Redis(r) => r.audit_from(from, limit).await,
        }
    }

    /// Audit events before the position `before` (`(ms, seq)`, as the
    /// answers write it `ms-seq`), newest first, at most `limit`.
    pub async fn audit_before(
        &self,
        before: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<(String, Event)>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.audit_before(before, limit)),
            Store::Redis(r) => r.audit_before(before, limit).await,
        }
    }

    /// Count one event of `user` in a fixed window of `window` that starts
    /// with the first one: how many so far (this one included), and how
    /// long until the window ends. Shared by every instance (self-service's
    /// `creates_per_hour`).
    pub async fn count_in_window(
        &self,
        user: &str,
        window: Duration,
    ) -> Result<(u64, Duration), StoreError> {
        match self {
            Store::Memory(m) => Ok(m.count_in_window(user, window)),
            Store::Redis(r) => r.count_in_window(user, window).await,
        }
    }

    /// Take back one count of `user` from the window `count_in_window`
    /// answered `left` for: the event it counted did not happen (a refused
    /// creation), so only what was made counts, and the limit stays exact
    /// for every instance (a count is held while its creation is under
    /// way). A window begun since is left alone (it has more left).
    pub async fn give_back_in_window(&self, user: &str, left: Duration) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.give_back_in_window(user, left);
                Ok(())
            }
            Store::Redis(r) => r.give_back_in_window(user, left).await,
        }
    }

    /// The runtime settings as stored (JSON), if an admin ever set them.
    pub async fn settings(&self) -> Result<Option<String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.settings()),
            Store::Redis(r) => r.settings().await,
        }
    }

    /// Save the runtime settings; once written they are in force, whether
    /// or not a replica confirmed them (`Saved`).
    pub async fn put_settings(&self, json: &str) -> Result<Saved, StoreError> {
        match self {
            Store::Memory(m) => {
                m.put_settings(json);
                Ok(Saved::Confirmed)
            }
            Store::Redis(r) => r.put_settings(json).await,
        }
    }

    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(r) => r.ping().await,
        }
    }
}

/// Settings written to the store, and so in force on every instance.
#[derive(Debug)]
pub enum Saved {
    /// A replica has them too (or there is none).
    Confirmed,
    /// No replica confirmed them in time, or the check failed (the
    /// error says which): a failover now could undo them.
    Unconfirmed(StoreError),
}
