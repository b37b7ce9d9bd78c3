//! Checking a presented key: the one way keygate decides whether a secret is
//! a live key of this deployment, for the gateway's every request and for a
//! revocation by leaked secrets alike.
//!
//! 1. format, prefix and checksum, without I/O (random or mistyped keys stop here);
//! 2. the validation cache, while this instance holds the fleet's lease: a
//!    hit compares the key's fingerprint with the one of the secret that
//!    verified when the entry was filled (`keys::seen`), in constant time;
//!    a Basic credential sent before is recalled by its fingerprint as sent
//!    (`recall`), before any of this;
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
use crate::keys::seen::Sent;
use crate::keys::{format, ApiKey, KeyId, KeyRecord, Scope};
use crate::store::StoreError;

/// A leaked secret that is or was a key of this deployment (`leaked_keys`).
#[derive(Debug, Clone)]
pub(super) struct LeakedKey {
    pub secret: ApiKey,
    /// Whether the secret itself is a live key.
    pub live: bool,
    /// Its record; when it is gone (rotated away), as it was, without expiry.
    pub record: KeyRecord,
    /// The live keys rotated from it, at any depth.
    pub successors: Vec<KeyRecord>,
}

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
    /// The fingerprint of a Basic credential as sent (the whole
    /// `Authorization` value), when there is a cache to recall it from.
    pub fn sent(&self, credential: &[u8]) -> Option<Sent> {
        self.0.cache.as_ref().map(|c| c.sent(credential))
    }

    /// The live key a credential sent so before verified as, while the
    /// cache serves its entry; `None`: decode it and `verify` the key.
    pub fn recall(&self, sent: &Sent) -> Option<Principal> {
        let record = self.0.cache.as_ref()?.recall(sent)?;
        self.0.metrics.cache_hit();
        Some(Principal(record))
    }

    /// The live key `key` is, or why it is none; `sent`: the Basic
    /// credential that carried it, recalled next time if the key verifies.
    pub async fn verify(&self, key: &ApiKey, sent: Option<Sent>) -> Result<Principal, VerifyError> {
        let inner = &*self.0;
        let id = format::parse(&inner.prefix, key.expose()).ok_or(VerifyError::Malformed)?;
        let cache = inner.cache.as_ref();
        let record = match cache.map_or(Lookup::Miss, |c| c.get(&id, key)) {
            Lookup::Verified(record) => {
                inner.metrics.cache_hit();
                record
            }
            Lookup::Mismatch => {
                inner.metrics.cache_hit();
                return Err(VerifyError::Mismatch(id));
            }
            Lookup::Miss => {
                // The ticket is taken before the read: an invalidation
                // racing it keeps the record out of the cache.
                let ticket = cache.and_then(|c| c.ticket());
                let record = self.look_up(id).await?;
                if !inner.digest.verify(key.expose(), &record.digest) {
                    return Err(VerifyError::Mismatch(id));
                }
                self.claim_secret(&record);
                if let (Some(cache), Some(ticket)) = (cache, ticket) {
                    cache.fill(ticket, &record, key);
                }
                record
            }
        };
        if let (Some(cache), Some(sent)) = (cache, sent) {
            cache.remember(sent, id);
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

    /// The ids of the live keys a revocation by leaked keys removes: those
    /// secrets that verify as live keys, and the live successors of every
    /// one that is or was a key (`leaked_keys`). A store error stops it:
    /// nothing is guessed.
    pub(super) async fn live_ids_of(&self, secrets: &[ApiKey]) -> Result<Vec<KeyId>, StoreError> {
        let mut ids = Vec::new();
        for leaked in self.leaked_keys(secrets).await? {
            if leaked.live {
                ids.push(leaked.record.id);
            }
            ids.extend(leaked.successors.iter().map(|r| r.id));
        }
        ids.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        ids.dedup();
        Ok(ids)
    }

    /// Each secret that is a live key, or was a key that was rotated and
    /// has live successors (any rotation, at any depth: `Store::lineage`),
    /// once, with those successors' live records. A rotated key whose
    /// record is gone counts only if the secret matches the digest its
    /// link kept: knowing a key's id is not enough to revoke its successors.
    pub(super) async fn leaked_keys(
        &self,
        secrets: &[ApiKey],
    ) -> Result<Vec<LeakedKey>, StoreError> {
        let mut distinct: Vec<ApiKey> = secrets.to_vec();
        distinct.sort_unstable_by(|a, b| a.expose().cmp(b.expose()));
        distinct.dedup_by(|a, b| a.expose() == b.expose());
        let found: Vec<Option<LeakedKey>> = stream::iter(distinct)
            .map(|secret| {
                let keyring = self.clone();
                async move { keyring.leaked_key(secret).await }
            })
            .buffer_unordered(super::events::READS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn leaked_key(&self, secret: ApiKey) -> Result<Option<LeakedKey>, StoreError> {
        let Some(id) = format::parse(&self.0.prefix, secret.expose()) else {
            return Ok(None);
        };
        let live = match self.verify(&secret, None).await {
            Ok(principal) => Some(principal.record().clone()),
            Err(VerifyError::Store(e)) => return Err(e),
            Err(VerifyError::Mismatch(_)) => return Ok(None),
            Err(VerifyError::Malformed | VerifyError::Unknown(_)) => None,
        };
        let lineage = match self.0.store.lineage(&id).await? {
            Some(l) if live.is_some() || self.0.digest.verify(secret.expose(), &l.digest) => {
                Some(l)
            }
            _ => None,
        };
        let successors = match &lineage {
            Some(l) => self.records_of(&l.successors).await?,
            None => Vec::new(),
        };
        let record = match (live, successors.first()) {
            (Some(record), _) => LeakedKey {
                secret,
                live: true,
                record,
                successors,
            },
            // Gone itself: named as it was, from its lineage's live key
            // (same user, label, scope and source).
            (None, Some(heir)) => {
                let mut record = heir.clone();
                record.id = id;
                record.rotated_to = lineage.and_then(|l| l.successors.first().copied());
                record.rotated_from = None;
                record.expires_at = None;
                LeakedKey {
                    secret,
                    live: false,
                    record,
                    successors,
                }
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(record))
    }
}
