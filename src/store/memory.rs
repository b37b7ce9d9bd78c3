//! The in-process store: a map behind a lock, with the same expiry semantics
//! as Redis (an expired record is gone) and a purge task for memory
//! (mini-redis's pattern).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

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
    /// The capped audit stream, oldest first.
    audit: std::collections::VecDeque<crate::audit::Event>,
    keys: HashMap<String, KeyRecord>,
    /// Per-user index, as in Redis.
    by_user: HashMap<String, BTreeSet<String>>,
    /// Per-user event windows: (count, end).
    windows: HashMap<String, (u64, std::time::Instant)>,
}

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
        let mut inner = self.inner.write().expect("store lock");
        let now = unix_now();
        let Some(record) = inner.keys.get_mut(old.as_str()).filter(|r| live(r, now)) else {
            return super::Rotated::Gone;
        };
        if let Some(to) = record.rotated_to {
            return super::Rotated::Already(to);
        }
        record.rotated_to = Some(new.id);
        record.expires_at = Some(old_until);
        drop(inner);
        self.insert(new.clone());
        super::Rotated::Done
    }

    pub fn insert(&self, record: KeyRecord) {
        let mut inner = self.inner.write().expect("store lock");
        inner
            .by_user
            .entry(record.user.clone())
            .or_default()
            .insert(record.id.as_str().to_owned());
        inner.keys.insert(record.id.as_str().to_owned(), record);
    }

    pub fn get(&self, id: &str) -> Option<KeyRecord> {
        let inner = self.inner.read().expect("store lock");
        inner.keys.get(id).filter(|r| live(r, unix_now())).cloned()
    }

    pub fn list(&self, user: Option<&str>) -> Vec<KeyRecord> {
        let inner = self.inner.read().expect("store lock");
        let now = unix_now();
        match user {
            Some(u) => inner
                .by_user
                .get(u)
                .into_iter()
                .flatten()
                .filter_map(|id| inner.keys.get(id))
                .filter(|r| live(r, now))
                .cloned()
                .collect(),
            None => inner
                .keys
                .values()
                .filter(|r| live(r, now))
                .cloned()
                .collect(),
        }
    }

    pub fn revoke_ids(&self, ids: &[KeyId]) -> u64 {
        let mut inner = self.inner.write().expect("store lock");
        let now = unix_now();
        ids.iter()
            .filter(|id| inner.remove(id.as_str()).is_some_and(|r| live(&r, now)))
            .count() as u64
    }

    pub fn revoke_users(&self, users: &[String]) -> u64 {
        let mut inner = self.inner.write().expect("store lock");
        let now = unix_now();
        let mut n = 0;
        for user in users {
            for id in inner.by_user.remove(user).unwrap_or_default() {
                if inner.keys.remove(&id).is_some_and(|r| live(&r, now)) {
                    n += 1;
                }
            }
        }
        n
    }

    pub fn revoke_all(&self) -> u64 {
        let mut inner = self.inner.write().expect("store lock");
        let now = unix_now();
        let n = inner.keys.values().filter(|r| live(r, now)).count() as u64;
        inner.keys.clear();
        inner.by_user.clear();
        n
    }

    pub fn touch(&self, id: &KeyId, at: u64) {
        let mut inner = self.inner.write().expect("store lock");
        if let Some(r) = inner.keys.get_mut(id.as_str()) {
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

    pub fn append_audit(&self, event: crate::audit::Event) {
        let mut inner = self.inner.write().expect("store lock");
        if inner.audit.len() >= crate::audit::KEEP {
            inner.audit.pop_front();
        }
        inner.audit.push_back(event);
    }

    pub fn audit_since(&self, since_ms: u64, limit: usize) -> Vec<crate::audit::Event> {
        let inner = self.inner.read().expect("store lock");
        inner
            .audit
            .iter()
            .filter(|e| e.at_ms >= since_ms)
            .take(limit)
            .cloned()
            .collect()
    }

    fn purge_expired(&self) {
        let mut inner = self.inner.write().expect("store lock");
        let now = unix_now();
        let expired: Vec<String> = inner
            .keys
            .values()
            .filter(|r| !live(r, now))
            .map(|r| r.id.as_str().to_owned())
            .collect();
        for id in expired {
            inner.remove(&id);
        }
    }
}

impl Inner {
    fn remove(&mut self, id: &str) -> Option<KeyRecord> {
        let record = self.keys.remove(id)?;
        if let Some(set) = self.by_user.get_mut(&record.user) {
            set.remove(id);
            if set.is_empty() {
                self.by_user.remove(&record.user);
            }
        }
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
