//! Reading keys and the audit log back: never a secret nor a digest leaves
//! through a listing's views (`KeyRecord::view`).

use std::time::Duration;

use super::{Keyring, Revocation};
use crate::audit::Event;
use crate::keys::{KeyId, KeyRecord};
use crate::store::StoreError;

/// Which keys a listing shows; every field narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    pub user: Option<String>,
    /// The exact label.
    pub label: Option<String>,
    /// Expiring before this unix second (keys that never expire do not match).
    pub expires_before: Option<u64>,
}

/// One page of keys in id order; `next_cursor` (the last id shown) asks for
/// the next, so a page boundary stays put while keys are created and revoked.
#[derive(Debug)]
pub struct Page {
    pub keys: Vec<KeyRecord>,
    pub next_cursor: Option<KeyId>,
}

// === impl KeyFilter ===

impl KeyFilter {
    pub fn matches(&self, r: &KeyRecord) -> bool {
        self.user.as_ref().is_none_or(|u| &r.user == u)
            && self.label.as_ref().is_none_or(|l| &r.label == l)
            && self
                .expires_before
                .is_none_or(|t| r.expires_at.is_some_and(|e| e < t))
    }
}

// === impl Keyring (listing) ===

impl Keyring {
    /// The live record of key `id`, if there is one.
    pub async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.0.store.get(id.as_str()).await
    }

    /// Live keys, newest first; of one user if given.
    pub async fn list(&self, user: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        self.0.store.list(user).await
    }

    /// At most `limit` keys matching `filter` with ids after `cursor`, in id order.
    pub async fn page(
        &self,
        filter: &KeyFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let mut keys = self.list(filter.user.as_deref()).await?;
        keys.retain(|r| filter.matches(r));
        keys.sort_by_key(|r| r.id);
        let start = cursor.map_or(0, |c| keys.partition_point(|r| r.id.as_str() <= c));
        keys.drain(..start);
        let next_cursor = (limit > 0 && keys.len() > limit).then(|| keys[limit - 1].id);
        keys.truncate(limit);
        Ok(Page { keys, next_cursor })
    }

    /// How many live keys `what` would revoke, revoking nothing (a dry run).
    pub async fn would_revoke(&self, what: &Revocation) -> Result<u64, StoreError> {
        let store = &self.0.store;
        Ok(match what {
            Revocation::Ids(ids) => {
                let mut n = 0;
                for id in ids {
                    n += u64::from(store.get(id.as_str()).await?.is_some());
                }
                n
            }
            Revocation::Users(users) => {
                let mut n = 0;
                for u in users {
                    n += store.list(Some(u)).await?.len() as u64;
                }
                n
            }
            Revocation::Leaked(secrets) => self.live_ids_of(secrets).await?.len() as u64,
            Revocation::All => store.list(None).await?.len() as u64,
        })
    }

    /// Audit events of every instance at or after `since_ms`, oldest first, at most `limit`.
    pub async fn audit_since(&self, since_ms: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.0.store.audit_since(since_ms, limit).await
    }

    /// Count one event of `user` in a fixed window of `window` that starts
    /// with the first one: how many so far (this one included), and how long
    /// until the window ends. Shared by every instance through the store
    /// (self-service's `creates_per_hour`).
    pub async fn count_in_window(
        &self,
        user: &str,
        window: Duration,
    ) -> Result<(u64, Duration), StoreError> {
        self.0.store.count_in_window(user, window).await
    }
}
