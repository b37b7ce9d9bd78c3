//! The key service shared by the gateway, the CLI and (later) the admin API:
//! the store plus the deployment's digest secret and key policy, so that
//! minting, TTL rules and revocation live in one place.

use std::time::Duration;

use crate::config::{self, Config};
use crate::keys::{self, DigestKey, KeyId, NewKey, Scope};
use crate::store::{Store, StoreError};

/// A requested key lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// `keys.default_ttl`.
    Default,
    /// No expiry; only with `keys.max_ttl = "never"`.
    Never,
    For(Duration),
}

impl Ttl {
    /// Parse `"30d"`, `"never"`; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Ttl, String> {
        if text.trim() == "never" {
            return Ok(Ttl::Never);
        }
        let d = config::parse_duration(text)?;
        if d.is_zero() {
            return Err("must be greater than zero".into());
        }
        Ok(Ttl::For(d))
    }
}

/// Why a mint request is refused (client input: 400 / exit 2).
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("ttl: {0}")]
    Ttl(String),
    #[error("user: {0}")]
    User(&'static str),
    #[error("label: {0}")]
    Label(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Longest user name and label accepted.
const MAX_USER: usize = 256;
const MAX_LABEL: usize = 200;

#[derive(Clone)]
pub struct Keyring {
    pub store: Store,
    pub digest: DigestKey,
    prefix: String,
    default_ttl: Duration,
    max_ttl: Option<Duration>,
}

// === impl Keyring ===

impl Keyring {
    /// Connect to the configured store.
    pub async fn from_config(config: &Config) -> Result<Keyring, StoreError> {
        let (store, digest) = match &config.store {
            config::Store::Memory => (Store::memory(), DigestKey::random()),
            config::Store::Redis {
                url,
                namespace,
                secret,
                timeout,
            } => (
                Store::redis(url, namespace, *timeout).await?,
                secret.clone(),
            ),
        };
        Ok(Keyring {
            store,
            digest,
            prefix: config.keys.prefix.clone(),
            default_ttl: config.keys.default_ttl,
            max_ttl: config.keys.max_ttl,
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Mint and store a key; the secret is in the answer only.
    pub async fn create(
        &self,
        user: &str,
        ttl: Ttl,
        label: &str,
        scope: Scope,
    ) -> Result<NewKey, MintError> {
        if user.is_empty()
            || user.len() > MAX_USER
            || !user.bytes().all(|b| (0x21..0x7f).contains(&b) || b == b' ')
        {
            return Err(MintError::User(
                "must be 1-256 printable ASCII characters (it becomes an HTTP header value)",
            ));
        }
        if label.len() > MAX_LABEL || label.chars().any(char::is_control) {
            return Err(MintError::Label(
                "must be at most 200 characters without control characters",
            ));
        }
        let ttl = match (ttl, self.max_ttl) {
            (Ttl::Default, _) => Some(self.default_ttl),
            (Ttl::Never, None) => None,
            (Ttl::Never, Some(_)) => {
                return Err(MintError::Ttl(
                    "\"never\" is not allowed (keys.max_ttl is not \"never\")".into(),
                ))
            }
            (Ttl::For(d), Some(max)) if d > max => {
                return Err(MintError::Ttl(format!(
                    "{} is longer than keys.max_ttl ({})",
                    short_duration(d),
                    short_duration(max)
                )))
            }
            (Ttl::For(d), _) => Some(d),
        };
        let new = keys::mint(&self.prefix, &self.digest, user, label, scope, ttl);
        self.store.insert(&new.record).await?;
        Ok(new)
    }

    /// Revoke leaked secrets: only those whose digest matches the stored one.
    pub async fn revoke_leaked(&self, secrets: &[String]) -> Result<u64, StoreError> {
        let ids = self.live_ids_of(secrets).await?;
        self.store.revoke_ids(&ids).await
    }

    /// The ids of those secrets that are live keys of this deployment (the
    /// stored digest matches): what a revocation by leaked keys would count.
    pub async fn live_ids_of(&self, secrets: &[String]) -> Result<Vec<KeyId>, StoreError> {
        let mut ids = Vec::new();
        for secret in secrets {
            let secret = secret.trim();
            let Some(id) = keys::format::parse(&self.prefix, secret) else {
                continue;
            };
            if let Some(record) = self.store.get(id).await? {
                if self.digest.verify(secret, &record.digest) {
                    ids.push(record.id);
                }
            }
        }
        Ok(ids)
    }
}

/// "90d", "12h", "30m" or "45s": durations as operators write them.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        _ if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}
