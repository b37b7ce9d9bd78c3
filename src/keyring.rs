//! The key service shared by the gateway, the CLI and (later) the admin API:
//! the store plus the deployment's digest secret and key policy, so that
//! minting, TTL rules and revocation live in one place.

use std::time::Duration;

use crate::config::{self, Config};
use crate::fleet::{Fleet, Forget, Report};
use crate::keys::{self, DigestKey, KeyId, NewKey, Scope, Source};
use crate::settings::{Policy, Settings};
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

/// Why new settings are refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Every problem, each naming its field.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Longest user name and label accepted.
const MAX_USER: usize = 256;
const MAX_LABEL: usize = 200;

/// What to revoke.
#[derive(Debug, Clone)]
pub enum Revocation {
    Ids(Vec<KeyId>),
    Users(Vec<String>),
    /// Leaked secrets: only those whose digest matches a live key count.
    Leaked(Vec<String>),
    All,
}

/// A revocation done: how many live keys it removed, and how the fleet
/// confirmed it (empty with the memory store, which has no fleet).
#[derive(Debug)]
pub struct Revoked {
    pub count: u64,
    pub fleet: Report,
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// Nothing is known to be revoked.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store revoked them, but the instances could not be told: their
    /// caches may still accept the keys. Retrying the same revocation
    /// publishes again.
    #[error("revoked {count} keys in the store, but could not tell every keygate instance ({source}); retry the same revocation")]
    NotPropagated {
        count: u64,
        #[source]
        source: StoreError,
    },
}

#[derive(Clone)]
pub struct Keyring {
    pub store: Store,
    pub digest: DigestKey,
    /// The instances sharing the store (Redis only): every revocation goes through it.
    pub fleet: Option<Fleet>,
    prefix: String,
    /// `[keys]` as runtime settings, until an admin stores others.
    configured: Settings,
}

// === impl Keyring ===

impl Keyring {
    /// Connect to the configured store; an error if it does not answer.
    pub async fn from_config(config: &Config) -> Result<Keyring, StoreError> {
        let keyring = Keyring::open(config)?;
        keyring.store.ready().await?;
        Ok(keyring)
    }

    /// The configured store without dialling it: the first call connects,
    /// and calls fail (503) while it is down. `Store::ready` finishes the start.
    pub fn open(config: &Config) -> Result<Keyring, StoreError> {
        let (store, digest) = match &config.store {
            config::Store::Memory => (Store::memory(), DigestKey::random()),
            config::Store::Redis {
                url,
                namespace,
                secret,
                timeout,
                ca_file,
            } => {
                let ca = match ca_file {
                    Some(path) => Some(std::fs::read(path).map_err(redis::RedisError::from)?),
                    None => None,
                };
                let store =
                    crate::store::RedisStore::open(url, namespace, *timeout, ca.as_deref())?;
                (Store::Redis(store), secret.clone())
            }
        };
        let fleet = match &store {
            Store::Redis(redis) => Some(Fleet::new(redis.clone(), config.cache.lease)),
            Store::Memory(_) => None,
        };
        Ok(Keyring {
            store,
            digest,
            fleet,
            prefix: config.keys.prefix.clone(),
            configured: Settings::from_config(&config.keys),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Mint and store a key made through the admin API; the secret is in the answer only.
    pub async fn create(
        &self,
        user: &str,
        ttl: Ttl,
        label: &str,
        scope: Scope,
    ) -> Result<NewKey, MintError> {
        self.create_from(Source::Admin, user, ttl, label, scope)
            .await
    }

    /// Mint and store a key, recording where it was made.
    pub async fn create_from(
        &self,
        source: Source,
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
        let policy = self.policy().await?;
        let ttl = match (ttl, policy.max_ttl) {
            (Ttl::Default, _) => Some(policy.default_ttl),
            (Ttl::Never, None) => None,
            (Ttl::Never, Some(_)) => {
                return Err(MintError::Ttl(
                    "\"never\" is not allowed (max_ttl is not \"never\")".into(),
                ))
            }
            (Ttl::For(d), Some(max)) if d > max => {
                return Err(MintError::Ttl(format!(
                    "{} is longer than max_ttl ({})",
                    short_duration(d),
                    short_duration(max)
                )))
            }
            (Ttl::For(d), _) => Some(d),
        };
        let mut new = keys::mint(&self.prefix, &self.digest, user, label, scope, ttl);
        new.record.source = Some(source);
        self.store.insert(&new.record).await?;
        Ok(new)
    }

    /// The settings in force: the stored ones, else `[keys]` from the config.
    pub async fn settings(&self) -> Result<Settings, StoreError> {
        match self.store.settings().await? {
            Some(json) => match serde_json::from_str::<Settings>(&json) {
                Ok(s) => Ok(s),
                Err(e) => {
                    tracing::error!(error = %e, "stored settings are unreadable; using the configured ones");
                    Ok(self.configured.clone())
                }
            },
            None => Ok(self.configured.clone()),
        }
    }

    /// Validate and store settings for every instance.
    pub async fn put_settings(&self, settings: &Settings) -> Result<(), SettingsError> {
        settings.validate().map_err(SettingsError::Invalid)?;
        let json = serde_json::to_string(settings).expect("settings serialize");
        Ok(self.store.put_settings(&json).await?)
    }

    async fn policy(&self) -> Result<Policy, StoreError> {
        let settings = self.settings().await?;
        Ok(settings.validate().unwrap_or_else(|_| {
            self.configured
                .validate()
                .expect("the configured [keys] are validated at load")
        }))
    }

    /// Revoke in the store, then make every instance forget (the fleet's
    /// barrier): when this returns, no instance accepts a revoked key.
    pub async fn revoke(&self, what: Revocation) -> Result<Revoked, RevokeError> {
        let (count, forget) = match what {
            Revocation::Ids(ids) => {
                let n = self.store.revoke_ids(&ids).await?;
                (
                    n,
                    Forget::ids(ids.into_iter().map(|i| i.as_str().to_owned()).collect()),
                )
            }
            Revocation::Users(users) => (
                self.store.revoke_users(&users).await?,
                Forget::Users { users },
            ),
            Revocation::Leaked(secrets) => {
                let ids = self.live_ids_of(&secrets).await?;
                let n = self.store.revoke_ids(&ids).await?;
                // Every id the secrets name, matched or not: a retry after a
                // failed publish must still name the keys deleted the first time.
                let named = secrets
                    .iter()
                    .filter_map(|s| keys::format::parse(&self.prefix, s.trim()))
                    .map(|id| id.as_str().to_owned())
                    .collect();
                (n, Forget::ids(named))
            }
            Revocation::All => (self.store.revoke_all().await?, Forget::All),
        };
        let fleet = match &self.fleet {
            Some(fleet) => fleet
                .forget(forget)
                .await
                .map_err(|source| RevokeError::NotPropagated { count, source })?,
            None => Report::default(),
        };
        Ok(Revoked { count, fleet })
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
            if let Some(record) = self.store.get(id.as_str()).await? {
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
