//! The webhook outbox: messages waiting to be delivered, one queue per
//! `[[webhooks]]` entry, shared by every instance (Redis) so that each
//! message is delivered by one of them, and kept while its receiver is down.
//!
//! Contract (both stores, `tests/it/store_conformance.rs`):
//! * `outbox_push` queues a message, due at once; it is dropped `keep` after
//!   it was queued, delivered or not. A message still kept under the same
//!   id is left as it is (attempts, lease, when it is due): a sender that
//!   queues an event again under its id (an expiry notice some of whose
//!   webhooks could not be queued) neither restarts a backoff nor hands a
//!   message being delivered to a second deliverer;
//! * `outbox_claim` hands out up to `max` due messages, earliest due first, and
//!   makes each due again only `lease` later, counting the attempt (and
//!   says how many it found dropped undelivered, their `keep` passed): while
//!   one instance delivers a message no other one claims it, and a message
//!   whose deliverer died comes due again when the lease runs out;
//! * `outbox_done` removes a delivered message; `outbox_retry` makes a
//!   message due again `after` from now (if it is still kept).
//!
//! Times are the store's own clock (Redis `TIME`), so instances' clocks
//! never have to agree. Redis layout: `store/redis/outbox.rs`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Store, StoreError};

/// What one claim found: the messages handed out, and how many it dropped
/// undelivered because their `keep` had passed (counted when found).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Claim {
    pub messages: Vec<Claimed>,
    pub expired: u64,
}

/// A message handed out for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    pub body: String,
    /// Deliveries tried so far, this one included.
    pub attempts: u32,
}

// === impl Store (outbox) ===

impl Store {
    pub async fn outbox_push(
        &self,
        queue: &str,
        id: &str,
        body: &str,
        keep: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.outbox().push(queue, id, body, keep);
                Ok(())
            }
            Store::Redis(r) => r.outbox_push(queue, id, body, keep).await,
        }
    }

    /// Up to `max` due messages, and how many were found dropped undelivered.
    pub async fn outbox_claim(
        &self,
        queue: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Claim, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.outbox().claim(queue, lease, max)),
            Store::Redis(r) => r.outbox_claim(queue, lease, max).await,
        }
    }

    pub async fn outbox_done(&self, queue: &str, id: &str) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.outbox().done(queue, id);
                Ok(())
            }
            Store::Redis(r) => r.outbox_done(queue, id).await,
        }
    }

    pub async fn outbox_retry(
        &self,
        queue: &str,
        id: &str,
        after: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.outbox().retry(queue, id, after);
                Ok(())
            }
            Store::Redis(r) => r.outbox_retry(queue, id, after).await,
        }
    }
}

/// The memory store's outbox: the same rules in one process.
#[derive(Default)]
pub struct MemoryOutbox {
    queues: Mutex<HashMap<String, HashMap<String, Message>>>,
}

struct Message {
    body: String,
    attempts: u32,
    /// The earliest due is handed out first.
    due: Instant,
    drop_at: Instant,
}

// === impl MemoryOutbox ===

impl MemoryOutbox {
    fn push(&self, queue: &str, id: &str, body: &str, keep: Duration) {
        let now = Instant::now();
        let mut queues = self.queues.lock().expect("outbox lock");
        let messages = queues.entry(queue.to_owned()).or_default();
        if messages.get(id).is_some_and(|m| m.drop_at > now) {
            return;
        }
        messages.insert(
            id.to_owned(),
            Message {
                body: body.to_owned(),
                attempts: 0,
                due: now,
                drop_at: now + keep,
            },
        );
    }

    fn claim(&self, queue: &str, lease: Duration, max: usize) -> Claim {
        let now = Instant::now();
        let mut queues = self.queues.lock().expect("outbox lock");
        let Some(messages) = queues.get_mut(queue) else {
            return Claim::default();
        };
        let before = messages.len();
        messages.retain(|_, m| m.drop_at > now);
        let expired = (before - messages.len()) as u64;
        let mut due: Vec<(&String, &mut Message)> =
            messages.iter_mut().filter(|(_, m)| m.due <= now).collect();
        due.sort_by(|(a, m), (b, n)| m.due.cmp(&n.due).then_with(|| a.cmp(b)));
        let messages = due
            .into_iter()
            .take(max)
            .map(|(id, m)| {
                m.attempts += 1;
                m.due = now + lease;
                Claimed {
                    id: id.clone(),
                    body: m.body.clone(),
                    attempts: m.attempts,
                }
            })
            .collect();
        Claim { messages, expired }
    }

    fn done(&self, queue: &str, id: &str) {
        let mut queues = self.queues.lock().expect("outbox lock");
        if let Some(messages) = queues.get_mut(queue) {
            messages.remove(id);
        }
    }

    fn retry(&self, queue: &str, id: &str, after: Duration) {
        let mut queues = self.queues.lock().expect("outbox lock");
        if let Some(m) = queues.get_mut(queue).and_then(|q| q.get_mut(id)) {
            m.due = Instant::now() + after;
        }
    }
}
