//! A key's life after its creation, in the store: rotation, the schedule of
//! expiry notices, and leases for fleet-wide chores.
//!
//! Contract (both stores, `tests/it/store_conformance.rs`):
//! * `rotate` stores the successor and shortens the old key's life to
//!   `old_until`, marking it `rotated_to`, in one atomic step: of two
//!   rotations of one key, one makes the successor and the other finds it
//!   (`Rotated::Already`); a key that is gone is `Rotated::Gone`.
//! * `schedule` files notices about a key: each `(before, at)` is due at
//!   unix second `at` (`before` = 0 is the expiry itself), filed again with
//!   a new time when scheduled again; `about` is what they say of the key
//!   (JSON, never a secret), kept until the expiry notice has been sent or
//!   `unschedule` drops it (a revocation). A notice whose key has no `about`
//!   is dropped when it comes due.
//! * `claim_notices` hands out up to `max` notices due at `now`, earliest
//!   first, and makes each due again only `lease` later: while one instance
//!   sends a notice no other one claims it, and a notice whose sender died
//!   comes due again. `notice_sent` removes it.
//! * `unscheduled` names the keys `schedule` never filed notices for.
//! * lineages: `rotate` also links the old key to its successor, with the
//!   old key's digest, in the old key's lineage (the keys that descend by
//!   rotation, of any kind, from one first key). A link outlives the old
//!   record: it is kept while any key of its lineage may live, i.e. until
//!   the latest expiry (or grace end) of a key rotated into it (never, if
//!   one never expires), give or take `CLOCK_SKEW`; then the lineage's
//!   links go together. `lineage` answers a rotated key's digest and
//!   every successor after it, in order (live or not), so that a leaked
//!   key's successors can be found and revoked after its own record is
//!   gone: at most `MAX_LINEAGE` from the key on, then (a longer lineage)
//!   up to `MAX_LINEAGE` more back from the lineage's newest key, which
//!   `rotate` records, so that the newest key and those still in their
//!   grace are never cut off. Rotations made before keygate kept links
//!   have none.
//! * `lease` grants a named chore to `holder` for `ttl` if no other holder
//!   has it (renewing its own).
//!
//! Repeats: `rotate` is sent again only when its connection was found dead
//! before it ran (a repeat finds `Already` at worst); `schedule`,
//! `notice_sent`, `unschedule`, `unscheduled` and `lease` are idempotent; `claim_notices`
//! goes on a checked connection (a repeat would only lease again);
//! `lineage` is a read. A rotation's link is written by its own atomic
//! step; removing an ended lineage's links (after a later rotation in the
//! slot) is idempotent.
//! Redis layout: `store/redis/lifecycle.rs`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Store, StoreError};
use crate::keys::{Digest, KeyId, KeyRecord};

/// What an atomic rotation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotated {
    /// The successor is stored and the old key lives until `old_until`.
    Done,
    /// `Done`, but no replica confirmed it in time (Redis with replicas): a
    /// failover now could undo it, the old key keeping its former expiry.
    Unconfirmed,
    /// No live key by that id (never issued, expired, revoked).
    Gone,
    /// Rotated before: this is its successor.
    Already(KeyId),
}

/// Successors followed at most from one rotated key. A lineage longer than
/// this (e.g. one self-rotating hourly for more than a year) is also
/// followed back from its newest key, as far again: the keys that may
/// live are at its end.
pub const MAX_LINEAGE: usize = 10_000;

/// A cut lineage followed back from its newest rotated key (both stores):
/// that key's successor, then it and the keys before it not followed
/// forward already, at most `MAX_LINEAGE`.
pub(crate) struct BackWalk {
    seen: std::collections::HashSet<KeyId>,
    end: Vec<KeyId>,
}

impl BackWalk {
    /// From rotated key `from`, whose lineage was followed to `forward`.
    pub fn new(from: &KeyId, forward: &[KeyId]) -> Self {
        let mut seen: std::collections::HashSet<KeyId> = forward.iter().copied().collect();
        seen.insert(*from);
        BackWalk {
            seen,
            end: Vec::new(),
        }
    }

    /// Rotated key `key` and its `link`: the key to look at next, if any.
    pub fn step(&mut self, key: KeyId, link: &Link) -> Option<KeyId> {
        if self.end.is_empty() && !self.seen.contains(&link.to) {
            self.end.push(link.to);
        }
        if self.seen.contains(&key) || self.end.len() >= MAX_LINEAGE {
            return None;
        }
        self.seen.insert(key);
        self.end.push(key);
        link.prev
    }

    /// The keys found, oldest first.
    pub fn keys(mut self) -> Vec<KeyId> {
        self.end.reverse();
        self.end
    }
}

/// A rotated key's link to its successor (`rotate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub to: KeyId,
    /// The first key of its lineage.
    pub root: KeyId,
    /// The rotated key's digest: a leaked secret must match it.
    pub digest: Digest,
    /// The rotated key's predecessor (`rotated_from`), to follow a
    /// lineage back from its newest key.
    pub prev: Option<KeyId>,
}

/// A rotated key's lineage from it on (`Store::lineage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// The rotated key's digest.
    pub digest: Digest,
    /// Its successor, the successor's successor, …, live or not; for a
    /// lineage longer than `MAX_LINEAGE`, then the keys at its end.
    pub successors: Vec<KeyId>,
}

/// A notice handed out for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub id: KeyId,
    /// Seconds before the expiry; 0 = the expiry itself.
    pub before: u64,
    /// What `schedule` said of the key; `None` once it was dropped.
    pub about: Option<String>,
}

// === impl Store (lifecycle) ===

impl Store {
    pub async fn rotate(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        old_until: u64,
    ) -> Result<Rotated, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.rotate(old, new, old_until)),
            Store::Redis(r) => r.rotate(old, new, old_until).await,
        }
    }

    /// The link of rotated key `id` and every successor after it, while
    /// its lineage may have a live key; `None` if it was never rotated (or
    /// its lineage ended).
    pub async fn lineage(&self, id: &KeyId) -> Result<Option<Lineage>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.lineage(id)),
            Store::Redis(r) => r.lineage(id).await,
        }
    }

    pub async fn schedule(
        &self,
        id: &KeyId,
        about: &str,
        due: &[(u64, u64)],
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.lifecycle().schedule(id, about, due);
                Ok(())
            }
            Store::Redis(r) => r.schedule(id, about, due).await,
        }
    }

    pub async fn claim_notices(
        &self,
        now: u64,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Notice>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.lifecycle().claim(now, lease, max)),
            Store::Redis(r) => r.claim_notices(now, lease, max).await,
        }
    }

    /// Remove a notice sent; the expiry notice (`before` = 0) drops `about` too.
    pub async fn notice_sent(&self, id: &KeyId, before: u64) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.lifecycle().sent(id, before);
                Ok(())
            }
            Store::Redis(r) => r.notice_sent(id, before).await,
        }
    }

    /// Drop what the notices of these keys would say (they were revoked):
    /// their notices are dropped when they come due. `None`: every key's.
    pub async fn unschedule(&self, ids: Option<&[KeyId]>) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.lifecycle().unschedule(ids);
                Ok(())
            }
            Store::Redis(r) => r.unschedule(ids).await,
        }
    }

    /// Which of `ids` have no notices filed (`schedule` never ran for them).
    pub async fn unscheduled(&self, ids: &[KeyId]) -> Result<Vec<KeyId>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.lifecycle().unscheduled(ids)),
            Store::Redis(r) => r.unscheduled(ids).await,
        }
    }

    /// Hold the chore `name` for `ttl` as `holder`: true if it is ours.
    pub async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            Store::Memory(_) => Ok(true),
            Store::Redis(r) => r.lease(name, holder, ttl).await,
        }
    }
}

/// The member naming one notice: `<id>:<seconds before>`.
pub(super) fn member(id: &KeyId, before: u64) -> String {
    format!("{id}:{before}")
}

/// A member's id and offset; `None` for one keygate did not write.
pub(super) fn parse_member(member: &str) -> Option<(KeyId, u64)> {
    let (id, before) = member.split_once(':')?;
    Some((KeyId::parse(id)?, before.parse().ok()?))
}

/// The memory store's schedule: the same rules in one process.
#[derive(Default)]
pub struct MemoryLifecycle {
    inner: Mutex<Schedule>,
}

#[derive(Default)]
struct Schedule {
    /// Member -> unix second due.
    due: HashMap<String, u64>,
    /// Member -> until when it is claimed.
    claimed: HashMap<String, Instant>,
    about: HashMap<KeyId, String>,
}

// === impl MemoryLifecycle ===

impl MemoryLifecycle {
    fn schedule(&self, id: &KeyId, about: &str, due: &[(u64, u64)]) {
        let mut s = self.inner.lock().expect("schedule lock");
        s.about.insert(*id, about.to_owned());
        for (before, at) in due {
            let m = member(id, *before);
            s.claimed.remove(&m);
            s.due.insert(m, *at);
        }
    }

    fn claim(&self, now: u64, lease: Duration, max: usize) -> Vec<Notice> {
        let clock = Instant::now();
        let mut s = self.inner.lock().expect("schedule lock");
        let mut due: Vec<(u64, String)> = s
            .due
            .iter()
            .filter(|(m, at)| **at <= now && s.claimed.get(*m).is_none_or(|c| *c <= clock))
            .map(|(m, at)| (*at, m.clone()))
            .collect();
        due.sort();
        let mut out = Vec::new();
        for (_, m) in due.into_iter().take(max) {
            let Some((id, before)) = parse_member(&m) else {
                s.due.remove(&m);
                continue;
            };
            s.claimed.insert(m, clock + lease);
            let about = s.about.get(&id).cloned();
            out.push(Notice { id, before, about });
        }
        out
    }

    fn sent(&self, id: &KeyId, before: u64) {
        let mut s = self.inner.lock().expect("schedule lock");
        let m = member(id, before);
        s.due.remove(&m);
        s.claimed.remove(&m);
        if before == 0 {
            s.about.remove(id);
        }
    }

    fn unscheduled(&self, ids: &[KeyId]) -> Vec<KeyId> {
        let s = self.inner.lock().expect("schedule lock");
        ids.iter()
            .filter(|id| !s.about.contains_key(id))
            .copied()
            .collect()
    }

    fn unschedule(&self, ids: Option<&[KeyId]>) {
        let mut s = self.inner.lock().expect("schedule lock");
        match ids {
            Some(ids) => ids.iter().for_each(|id| {
                s.about.remove(id);
            }),
            None => s.about.clear(),
        }
    }
}
