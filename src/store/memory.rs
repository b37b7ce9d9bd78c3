//! The in-process store: a map behind a lock, with the same expiry semantics
//! as Redis (an expired record is gone) and a purge task for memory
//! (mini-redis's pattern). Listings walk ordered indexes (`index.rs`), as
//! in Redis, so a page costs what it shows.

mod index;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use self::index::Indexes;
use super::listing::{KeyFilter, Listed, Order, Position, CLOCK_SKEW};
use crate::audit::Event;
use crate::keys::{unix_now, KeyId, KeyRecord};

#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
    outbox: super::MemoryOutbox,
    lifecycle: super::lifecycle::MemoryLifecycle,
}

#[derive(Default)]
struct Inner {
    settings: Option<String>,
    /// The capped audit stream, oldest first, each event with its position.
    audit: VecDeque<(AuditId, Event)>,
    /// The last audit position given out.
    audit_seq: u64,
    keys: HashMap<KeyId, KeyRecord>,
    indexes: Indexes,
    /// Per-user event windows: (count, end).
    windows: HashMap<String, (u64, std::time::Instant)>,
    /// Each rotated key's link to its successor, kept after its record
    /// is gone (`store/lifecycle.rs`, lineages).
    rotated: HashMap<KeyId, super::lifecycle::Link>,
    /// Each lineage (by its first key's id): until when a key of it may
    /// live (`None`: a key of it never expires).
    lines: HashMap<KeyId, Option<u64>>,
    /// Each lineage's last rotated key (its successor is the newest key).
    lasts: HashMap<KeyId, KeyId>,
}

/// An audit event's place in the stream: milliseconds, then a sequence
/// number, written `ms-seq` like a Redis stream id.
type AuditId = (u64, u64);

fn live(r: &KeyRecord, now: u64) -> bool {
    r.expires_at.is_none_or(|e| e > now)
}

impl MemoryStore {
    /// A store with a background task that drops expired records every second.
    pub fn new() -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::default());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&store);
            handle.spawn(purge(weak));
        }
        store
    }

    /// The webhook outbox (`store/outbox.rs`).
    pub fn outbox(&self) -> &super::MemoryOutbox {
        &self.outbox
    }

    /// The schedule of expiry notices (`store/lifecycle.rs`).
    pub fn lifecycle(&self) -> &super::lifecycle::MemoryLifecycle {
        &self.lifecycle
    }

    /// Store `new` and give `old` until `old_until`, if `old` is live and
    /// not rotated yet (`store/lifecycle.rs`).
    pub fn rotate(&self, old: &KeyId, new: &KeyRecord, old_until: u64) -> super::Rotated {
        let mut guard = self.inner.write().expect("store lock");
        let inner = &mut *guard;
        let now = unix_now();
        let Some(record) = inner.keys.get_mut(old).filter(|r| live(r, now)) else {
            return super::Rotated::Gone;
        };
        if let Some(to) = record.rotated_to {
            return super::Rotated::Already(to);
        }
        let was = record.clone();
        record.rotated_to = Some(new.id);
        record.expires_at = Some(old_until);
        // Indexed by its new expiry.
        inner.indexes.remove(&was);
        inner.indexes.add(record);
        // The link from the old key to its successor, in its lineage.
        let root = was
            .rotated_from
            .and_then(|from| inner.rotated.get(&from))
            .map_or(*old, |link| link.root);
        inner.rotated.insert(
            *old,
            super::lifecycle::Link {
                to: new.id,
                root,
                digest: was.digest,
                prev: was.rotated_from,
            },
        );
        inner.lasts.insert(root, *old);
        let keep = new.expires_at.map(|e| e.max(old_until));
        let line = inner.lines.entry(root).or_insert(Some(0));
        *line = match (*line, keep) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        drop(guard);
        self.insert(new.clone());
        super::Rotated::Done
    }

    pub fn insert(&self, record: KeyRecord) {
        let mut inner = self.inner.write().expect("store lock");
        inner.indexes.add(&record);
        if let Some(old) = inner.keys.insert(record.id, record) {
            inner.indexes.remove(&old);
        }
    }

    pub fn get(&self, id: &str) -> Option<KeyRecord> {
        let id = KeyId::parse(id)?;
        let inner = self.inner.read().expect("store lock");
        inner.keys.get(&id).filter(|r| live(r, unix_now())).cloned()
    }

    /// One page of live keys that match `filter`, after `after` in `order`.
    pub fn page(
        &self,
        order: Order,
        filter: &KeyFilter,
        after: Option<&Position>,
        limit: usize,
    ) -> Listed {
        let inner = self.inner.read().expect("store lock");
        let now = unix_now();
        let mut keys = Vec::new();
        let next = inner.indexes.walk(order, filter, after, now, limit, |id| {
            match inner.keys.get(&id) {
                Some(r) if live(r, now) && filter.matches(r) => keys.push(r.clone()),
                _ => {}
            }
            keys.len()
        });
        Listed { keys, next }
    }

    /// How many live keys match `filter`.
    pub fn count(&self, filter: &KeyFilter) -> u64 {
        let inner = self.inner.read().expect("store lock");
        let now = unix_now();
        inner.indexes.chosen(filter).map_or(0, |ids| {
            ids.filter(|id| {
                inner
                    .keys
                    .get(id)
                    .is_some_and(|r| live(r, now) && filter.matches(r))
            })
            .count() as u64
        })
    }

    /// Revoke every live key that matches `filter` and was created before
    /// the call (give or take `CLOCK_SKEW`); the ids of those it revoked.
    pub fn revoke_matching(&self, filter: &KeyFilter) -> Vec<KeyId> {
        let mut inner = self.inner.write().expect("store lock");
        let now = unix_now();
        let ids: Vec<KeyId> = inner.indexes.chosen(filter).map_or(Vec::new(), |ids| {
            ids.filter(|id| {
                inner
                    .keys
                    .get(id)
                    .is_some_and(|r| filter.matches(r) && r.created_at <= now + CLOCK_SKEW)
            })
            .collect()
        });
        ids.into_iter()
            .filter(|id| inner.remove(id).is_some_and(|r| live(&r, now)))
            .collect()
    }

    pub fn revoke_ids(&self, ids: &[KeyId]) -> u64 {
        let mut inner = self.inner.write().expect("store lock");
        let now = unix_now();
        ids.iter()
            .filter(|id| inner.remove(id).is_some_and(|r| live(&r, now)))
            .count() as u64
    }

    pub fn touch(&self, id: &KeyId, at: u64) {
        let mut inner = self.inner.write().expect("store lock");
        if let Some(r) = inner.keys.get_mut(id) {
            r.last_used = Some(at);
        }
    }

    pub fn settings(&self) -> Option<String> {
        self.inner.read().expect("store lock").settings.clone()
    }

    pub fn put_settings(&self, json: &str) {
        self.inner.write().expect("store lock").settings = Some(json.to_owned());
    }

    pub fn count_in_window(&self, user: &str, window: Duration) -> (u64, Duration) {
        let now = std::time::Instant::now();
        let mut inner = self.inner.write().expect("store lock");
        inner.windows.retain(|_, (_, end)| *end > now);
        let (count, end) = inner
            .windows
            .entry(user.to_owned())
            .or_insert((0, now + window));
        *count += 1;
        (*count, end.saturating_duration_since(now))
    }

    /// Take back one count of `user`'s window, if it is still the window
    /// that count went into (`left` then; a later window has more left).
    pub fn give_back_in_window(&self, user: &str, left: Duration) {
        let now = std::time::Instant::now();
        let mut inner = self.inner.write().expect("store lock");
        if let Some((count, end)) = inner.windows.get_mut(user) {
            if *end > now && end.saturating_duration_since(now) <= left && *count > 0 {
                *count -= 1;
            }
        }
    }

    pub fn append_audit(&self, event: Event) {
        let mut inner = self.inner.write().expect("store lock");
        if inner.audit.len() >= crate::audit::KEEP {
            inner.audit.pop_front();
        }
        // Positions only grow, as a stream's ids do, whatever the clock says.
        let last = inner.audit.back().map_or((0, 0), |(id, _)| *id);
        inner.audit_seq += 1;
        let id = (event.at_ms.max(last.0), inner.audit_seq);
        inner.audit.push_back((id, event));
    }

    pub fn audit_from(&self, from: super::AuditFrom, limit: usize) -> Vec<(String, Event)> {
        let inner = self.inner.read().expect("store lock");
        inner
            .audit
            .iter()
            .filter(|(id, _)| match from {
                super::AuditFrom::Since(ms) => id.0 >= ms,
                super::AuditFrom::After(ms, seq) => *id > (ms, seq),
            })
            .take(limit)
            .map(|((ms, seq), e)| (format!("{ms}-{seq}"), e.clone()))
            .collect()
    }

    /// Events before `before` (a position), newest first, at most `limit`,
    /// each with its position.
    pub fn audit_before(&self, before: Option<(u64, u64)>, limit: usize) -> Vec<(String, Event)> {
        let inner = self.inner.read().expect("store lock");
        inner
            .audit
            .iter()
            .rev()
            .filter(|(id, _)| before.is_none_or(|b| *id < b))
            .take(limit)
            .map(|((ms, seq), e)| (format!("{ms}-{seq}"), e.clone()))
            .collect()
    }

    /// The link of rotated key `id` and every successor after it
    /// (`store/lifecycle.rs`), while its lineage may have a live key.
    pub fn lineage(&self, id: &KeyId) -> Option<super::lifecycle::Lineage> {
        let inner = self.inner.read().expect("store lock");
        let first = inner.rotated.get(id)?;
        let ended = inner
            .lines
            .get(&first.root)
            .is_none_or(|keep| keep.is_some_and(|k| k + CLOCK_SKEW < unix_now()));
        if ended {
            return None;
        }
        let max = super::lifecycle::MAX_LINEAGE;
        let mut successors = vec![first.to];
        while successors.len() < max {
            match inner.rotated.get(successors.last().expect("one at least")) {
                Some(link) => successors.push(link.to),
                None => break,
            }
        }
        if successors.len() >= max {
            // Cut: also back from the newest key (`store/lifecycle.rs`).
            let mut walk = super::lifecycle::BackWalk::new(id, &successors);
            let mut cur = inner.lasts.get(&first.root).copied();
            while let Some(key) = cur {
                let Some(link) = inner.rotated.get(&key) else {
                    break;
                };
                cur = walk.step(key, link);
            }
            successors.extend(walk.keys());
        }
        Some(super::lifecycle::Lineage {
            digest: first.digest,
            successors,
        })
    }

    fn purge_expired(&self) {
        let mut inner = self.inner.write().expect("store lock");
        let now = unix_now();
        for id in inner.indexes.expired(now) {
            inner.remove(&id);
        }
        // Lineages none of whose keys can live any more, with their links.
        let before = inner.lines.len();
        inner
            .lines
            .retain(|_, keep| keep.is_none_or(|k| k + CLOCK_SKEW >= now));
        if inner.lines.len() != before {
            let Inner {
                rotated,
                lines,
                lasts,
                ..
            } = &mut *inner;
            rotated.retain(|_, link| lines.contains_key(&link.root));
            lasts.retain(|root, _| lines.contains_key(root));
        }
    }
}

impl Inner {
    fn remove(&mut self, id: &KeyId) -> Option<KeyRecord> {
        let record = self.keys.remove(id)?;
        self.indexes.remove(&record);
        Some(record)
    }
}

/// Ends when the store is dropped.
async fn purge(store: Weak<MemoryStore>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match store.upgrade() {
            Some(s) => s.purge_expired(),
            None => return,
        }
    }
}
