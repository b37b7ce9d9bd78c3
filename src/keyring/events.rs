//! The webhook events the keyring's changes emit (`[[webhooks]]`): built
//! here, inside `mint`, `revoke` and `leaked`, after the change is done, and
//! queued in the store's outbox for delivery by any instance
//! (`crate::webhooks`). A change never fails for an event: a queue write
//! that fails is logged.

use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};

use super::{Keyring, Revocation};
use crate::audit::Actor;
use crate::keys::{rfc3339, KeyId, KeyRecord};
use crate::metrics::Metrics;
use crate::store::{KeyFilter, Order, StoreError};
use crate::webhooks::{Delivery, Event, EventType};

/// Store reads in flight at once when a change reads many records.
pub(super) const READS_IN_FLIGHT: usize = 64;

// === impl Keyring (events) ===

impl Keyring {
    /// Start this instance's webhook delivery workers (`None` without
    /// `[[webhooks]]`); an https URL trusts the system roots and `ca_file`.
    pub fn deliver_webhooks(
        &self,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Option<Delivery>, String> {
        let Some(webhooks) = &self.0.webhooks else {
            return Ok(None);
        };
        let metrics: std::sync::Arc<Metrics> = self.0.metrics.clone();
        webhooks
            .deliver(self.0.store.clone(), ca_file, metrics)
            .map(Some)
    }

    /// Whether some `[[webhooks]]` entry wants events of `kind`.
    pub(super) fn wants(&self, kind: EventType) -> bool {
        self.0.webhooks.as_ref().is_some_and(|w| w.wants(kind))
    }

    /// Queue `events` for the entries that want them; false if one could
    /// not be queued (logged; most callers have nothing to retry).
    pub(super) async fn emit(&self, events: Vec<Event>) -> bool {
        match (&self.0.webhooks, events.is_empty()) {
            (Some(webhooks), false) => webhooks.emit(&self.0.store, events).await,
            _ => true,
        }
    }

    /// `key.created` for a key just made.
    pub(super) async fn emit_created(&self, actor: &Actor, record: &KeyRecord) {
        if self.wants(EventType::KeyCreated) {
            let event = Event::about_key(EventType::KeyCreated, record, actor.source.as_str())
                .with("expires_at", record.expires_at.map(rfc3339));
            self.emit(vec![event]).await;
        }
    }

    /// `key.revoked` for each key a revocation removed.
    pub(super) async fn emit_revoked(&self, actor: &Actor, gone: &[KeyRecord]) {
        let events = gone
            .iter()
            .map(|r| {
                Event::about_key(EventType::KeyRevoked, r, actor.source.as_str())
                    .with("actor", actor.name.as_str())
            })
            .collect();
        self.emit(events).await;
    }

    /// The live records a revocation is about to remove, read first for
    /// `key.revoked` (nothing is read when no entry wants it). A key made
    /// or revoked by someone else meanwhile may be missed or announced twice.
    pub(super) async fn about_to_go(
        &self,
        what: &Revocation,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        if !self.wants(EventType::KeyRevoked) {
            return Ok(Vec::new());
        }
        let store = &self.0.store;
        match what {
            Revocation::Ids(ids) => self.records_of(ids).await,
            Revocation::Users(users) => {
                let mut out = Vec::new();
                for user in users {
                    out.extend(store.list(Some(user)).await?);
                }
                Ok(out)
            }
            // The keyring reads these while it verifies them (`revoke`).
            Revocation::Leaked(_) => Ok(Vec::new()),
            Revocation::Matching(filter) => self.matching(filter).await,
            Revocation::All => store.list(None).await,
        }
    }

    /// Every live record `filter` matches, page by page.
    async fn matching(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        let (mut out, mut after) = (Vec::new(), None);
        loop {
            let page = self
                .0
                .store
                .page(Order::default(), filter, after.as_ref(), 1_000)
                .await?;
            out.extend(page.keys);
            match page.next {
                Some(at) => after = Some(at),
                None => return Ok(out),
            }
        }
    }

    /// The live records of `ids`, read in parallel.
    pub(super) async fn records_of(&self, ids: &[KeyId]) -> Result<Vec<KeyRecord>, StoreError> {
        let found: Vec<Option<KeyRecord>> = stream::iter(ids.to_vec())
            .map(|id| {
                let store = self.0.store.clone();
                async move { store.get(id.as_str()).await }
            })
            .buffer_unordered(READS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }
}
