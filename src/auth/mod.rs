//! Authentication on the main listener: find the API credential (Basic
//! `apikey:<key>`, the `apikey` header, or `Bearer <key>`), check it without
//! I/O (format and checksum), then against the store (HMAC digest, constant
//! time). The credential is removed from the request whatever the outcome.
//!
//! Fail closed: a store error is `AuthError::Store`, which the gateway
//! answers with 503, never with a pass.

pub mod basic;
pub mod cache;
pub mod last_used;
pub mod scope;

use http::header::{self, HeaderMap, HeaderName};

use std::sync::Arc;

use self::cache::KeyCache;
use crate::keys::{format, DigestKey, KeyId, Scope};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// LabKey's client libraries send the key in this header.
pub const APIKEY_HEADER: HeaderName = HeaderName::from_static("apikey");

/// Which credential forms are accepted (`[auth] basic`, `apikey_header`, `bearer`).
#[derive(Debug, Clone, Copy)]
pub struct Accept {
    pub basic: bool,
    pub apikey_header: bool,
    pub bearer: bool,
}

/// The resolved caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub key_id: KeyId,
    pub scope: Scope,
}

/// Why a request is not authenticated. Clients see one 401 for all but
/// `Ambiguous` (400) and `Store` (503); the reason goes to the log.
/// An unreadable credential is `Malformed`: one 401 like a wrong key, so a
/// client cannot tell a decoding failure from any other refusal.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("malformed credential (unreadable header, or a key with the wrong prefix, length or checksum)")]
    Malformed,
    #[error("no such key (never issued, expired or revoked)")]
    Unknown { key_id: KeyId },
    #[error("key secret does not match")]
    Mismatch { key_id: KeyId },
    #[error("more than one credential")]
    Ambiguous,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuthError {
    /// The key id the client claimed, when the key was well-formed (safe to log).
    pub fn key_id(&self) -> Option<&str> {
        match self {
            AuthError::Unknown { key_id } | AuthError::Mismatch { key_id } => Some(key_id.as_str()),
            _ => None,
        }
    }
}

pub struct Authenticator {
    store: Store,
    /// The validation cache, when this instance is a fleet member.
    cache: Option<Arc<KeyCache>>,
    metrics: Arc<Metrics>,
    digest: DigestKey,
    prefix: String,
    username: String,
    accept: Accept,
}

// === impl Authenticator ===

impl Authenticator {
    pub fn new(
        store: Store,
        digest: DigestKey,
        prefix: &str,
        username: &str,
        accept: Accept,
        metrics: Arc<Metrics>,
    ) -> Self {
        Authenticator {
            store,
            cache: None,
            metrics,
            digest,
            prefix: prefix.to_owned(),
            username: username.to_owned(),
            accept,
        }
    }

    /// Look keys up in `cache` before the store.
    pub fn with_cache(mut self, cache: Arc<KeyCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// `Ok(None)`: no API credential (anonymous). The credential headers are
    /// removed from `headers` in every other case.
    pub async fn authenticate(
        &self,
        headers: &mut HeaderMap,
    ) -> Result<Option<Principal>, AuthError> {
        let Some(key) = self.take_credential(headers)? else {
            return Ok(None);
        };
        let id = format::parse(&self.prefix, &key).ok_or(AuthError::Malformed)?;
        let record = match self.cache.as_ref().and_then(|c| c.get(&id)) {
            Some(record) => {
                self.metrics.cache_hit();
                record
            }
            None => {
                let ticket = self.cache.as_ref().and_then(|c| c.ticket());
                let started = std::time::Instant::now();
                let found = self.store.get(id.as_str()).await;
                self.metrics.store(started.elapsed());
                let fetched = Arc::new(found?.ok_or(AuthError::Unknown { key_id: id })?);
                if let (Some(cache), Some(ticket)) = (&self.cache, ticket) {
                    cache.fill(ticket, &fetched);
                }
                fetched
            }
        };
        if !self.digest.verify(&key, &record.digest) {
            return Err(AuthError::Mismatch { key_id: id });
        }
        Ok(Some(Principal {
            user: record.user.clone(),
            key_id: record.id,
            scope: record.scope,
        }))
    }

    /// Find at most one API credential and remove it from the request.
    fn take_credential(&self, headers: &mut HeaderMap) -> Result<Option<String>, AuthError> {
        let mut authz = headers.get_all(header::AUTHORIZATION).iter();
        let from_authz = match (authz.next(), authz.next()) {
            (None, _) => None,
            (Some(_), Some(_)) => return Err(AuthError::Ambiguous),
            (Some(v), None) => self.ours(v.as_bytes())?,
        };
        let mut apikey = headers.get_all(&APIKEY_HEADER).iter();
        let from_header = match (self.accept.apikey_header, apikey.next(), apikey.next()) {
            (false, ..) | (true, None, _) => None,
            (true, Some(_), Some(_)) => return Err(AuthError::Ambiguous),
            (true, Some(v), None) => Some(
                v.to_str()
                    .map_err(|_| AuthError::Malformed)?
                    .trim()
                    .to_owned(),
            ),
        };
        let key = match (from_authz, from_header) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => return Err(AuthError::Ambiguous),
            (Some(k), None) => {
                headers.remove(header::AUTHORIZATION);
                k
            }
            (None, Some(k)) => {
                headers.remove(&APIKEY_HEADER);
                k
            }
        };
        Ok(Some(key))
    }

    /// The key in an `Authorization` value, if the value is an API credential.
    /// Basic auth for another user name and other schemes belong to the app.
    fn ours(&self, value: &[u8]) -> Result<Option<String>, AuthError> {
        match basic::parse(value) {
            basic::Parsed::Basic(c) if self.accept.basic && c.user() == self.username => {
                Ok(Some(c.into_pass()))
            }
            basic::Parsed::Basic(_) => Ok(None),
            basic::Parsed::Bearer(token) if self.accept.bearer && self.looks_like_key(token) => {
                Ok(Some(token.to_owned()))
            }
            basic::Parsed::Bearer(_) | basic::Parsed::OtherScheme => Ok(None),
            basic::Parsed::Malformed => Err(AuthError::Malformed),
        }
    }

    /// A bearer token is ours only if it carries our prefix (an app's own JWT passes).
    fn looks_like_key(&self, token: &str) -> bool {
        token
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|r| r.starts_with('_'))
    }
}
