//! Checking a presented key: the one way keygate decides whether a secret is
//! a live key of this deployment, for the gateway's every request and for a
//! revocation by leaked secrets alike.
//!
//! 1. format, prefix and checksum, without I/O (random or mistyped keys stop here);
//! 2. the validation cache, while this instance holds the fleet's lease: a
//!    hit compares the key's fingerprint with the one of the secret that
//!    verified when the entry was filled (`keys::seen`), in constant time;
//! 3. else the store, and the HMAC digest of the whole key against the
//!    stored one, in constant time; a key that verified fills the cache,
//!    unless an invalidation raced the read.
//!
//! Fail closed: a store error is `VerifyError::Store`, never a pass.

use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{self, StreamExt as _, TryStreamExt as _};

use super::Keyring;
use crate::fleet::cache::Lookup;
use crate::keys::{format, ApiKey, KeyId, KeyRecord, Scope};
use crate::store::StoreError;

/// A key that verified: its record, shared with the cache (no copy per request).
#[derive(Debug, Clone)]
pub struct Principal(Arc<KeyRecord>);

/// Why a presented key is not a live key of this deployment. Clients see
/// one 401 for the first three; the reason goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed credential (unreadable header, or a key with the wrong prefix, length or checksum)")]
    Malformed,
    #[error("no such key (never issued, expired or revoked)")]
    Unknown(KeyId),
    #[error("key secret does not match")]
    Mismatch(KeyId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

// === impl Principal ===

impl Principal {
    /// The user the key authenticates as.
    pub fn user(&self) -> &str {
        &self.0.user
    }

    pub fn key_id(&self) -> KeyId {
        self.0.id
    }

    pub fn scope(&self) -> Scope {
        self.0.scope
    }

    pub fn record(&self) -> &KeyRecord {
        &self.0
    }
}

// === impl VerifyError ===

impl VerifyError {
    /// The id the key claimed, when it was well-formed (safe to log).
    pub fn key_id(&self) -> Option<KeyId> {
        match self {
            VerifyError::Unknown(id) | VerifyError::Mismatch(id) => Some(*id),
            VerifyError::Malformed | VerifyError::Store(_) => None,
        }
    }
}

// === impl Keyring (verify) ===

impl Keyring {
    /// The live key `key` is, or why it is none.
    pub async fn verify(&self, key: &ApiKey) -> Result<Principal, VerifyError> {
        let inner = &*self.0;
        let id = format::parse(&inner.prefix, key.expose()).ok_or(VerifyError::Malformed)?;
        let cache = inner.cache.as_ref();
        match cache.map_or(Lookup::Miss, |c| c.get(&id, key)) {
            Lookup::Verified(record) => {
                inner.metrics.cache_hit();
                return Ok(Principal(record));
            }
            Lookup::Mismatch => {
                inner.metrics.cache_hit();
                return Err(VerifyError::Mismatch(id));
            }
            Lookup::Miss => {}
        }
        // The ticket is taken before the read: an invalidation racing it
        // keeps the record out of the cache.
        let ticket = cache.and_then(|c| c.ticket());
        let record = self.look_up(id).await?;
        if !inner.digest.verify(key.expose(), &record.digest) {
            return Err(VerifyError::Mismatch(id));
        }
        if let (Some(cache), Some(ticket)) = (cache, ticket) {
            cache.fill(ticket, &record, key);
        }
        Ok(Principal(record))
    }

    /// The store's record of `id`.
    async fn look_up(&self, id: KeyId) -> Result<Arc<KeyRecord>, VerifyError> {
        let inner = &*self.0;
        let started = Instant::now();
        let found = inner.store.get(id.as_str()).await;
        inner.metrics.store(started.elapsed());
        Ok(Arc::new(found?.ok_or(VerifyError::Unknown(id))?))
    }

    /// The ids of those secrets that verify as live keys (what a revocation
    /// by leaked keys removes). A store error stops it: nothing is guessed.
    pub(super) async fn live_ids_of(&self, secrets: &[ApiKey]) -> Result<Vec<KeyId>, StoreError> {
        Ok(self
            .live_records_of(secrets)
            .await?
            .iter()
            .map(|r| r.id)
            .collect())
    }

    /// The records of those secrets that verify as live keys, each once,
    /// looked up in parallel (a report of thousands of keys costs a few
    /// round trips' time, not thousands).
    pub(super) async fn live_records_of(
        &self,
        secrets: &[ApiKey],
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let mut distinct: Vec<ApiKey> = secrets.to_vec();
        distinct.sort_unstable_by(|a, b| a.expose().cmp(b.expose()));
        distinct.dedup_by(|a, b| a.expose() == b.expose());
        // Owned futures (a clone of the keyring each): they stay `Send` for
        // every caller, whatever lifetimes its own future carries.
        let checked: Vec<Option<KeyRecord>> = stream::iter(distinct)
            .map(|secret| {
                let keyring = self.clone();
                async move {
                    match keyring.verify(&secret).await {
                        Ok(principal) => Ok(Some(principal.record().clone())),
                        Err(VerifyError::Store(e)) => Err(e),
                        Err(
                            VerifyError::Malformed
                            | VerifyError::Unknown(_)
                            | VerifyError::Mismatch(_),
                        ) => Ok(None),
                    }
                }
            })
            .buffer_unordered(super::events::READS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(checked.into_iter().flatten().collect())
    }
}
