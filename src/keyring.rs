//! The key service, and the only way in to keys: every caller (the gateway,
//! the admin API, the self-service page, the CLI) goes through a `Keyring`,
//! which alone holds the store.
//!
//! * `verify` checks a presented key (format and checksum, validation cache,
//!   store, constant-time digest compare): `verify.rs`;
//! * `mint`, `revoke` and `put_settings` change keys or settings for an
//!   `Actor`, and record the audit event and the metrics inside the change,
//!   so no caller can forget either; a revocation returns once every
//!   instance has forgotten the keys (the fleet's barrier);
//! * listing, counting and reading back the audit log: `listing.rs`, with
//!   signed cursors: `cursor.rs`;
//! * `leaked` settles keys seen outside their owners' hands (secret
//!   scanners, revocation by possession): `leaks.rs`;
//! * every change emits its webhook events (`[[webhooks]]`) from inside:
//!   `events.rs`;
//! * `rotate` gives a key a successor and the old key a grace period:
//!   `rotate.rs`; expiry notices are filed with each key and sent once by
//!   the fleet: `notices.rs`; each instance's share of the background work
//!   (notices, retiring idle keys): `chores.rs`.

mod chores;
mod cursor;
mod events;
mod leaks;
mod listing;
mod notices;
mod retell;
mod rotate;
mod secret;
mod verify;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{self, Actor, Event};
use crate::config::{self, Config};
use crate::fleet::cache::KeyCache;
use crate::fleet::tunnels::Tunnels;
use crate::fleet::{Fleet, Forget, Member, Report, Why};
use crate::keys::{self, ApiKey, DigestKey, KeyId, NewKey, Scope};
use crate::metrics::Metrics;
use crate::settings::{short_duration, Policy, Settings};
use crate::store::{self, Saved, Store, StoreError};
use crate::webhooks::{EventType, Webhooks};

pub use self::chores::Chores;
pub use self::leaks::Sighting;
pub use self::listing::{audit_position, AuditPage, Counted, Listing, Page, PageError};
pub use self::rotate::{RotateError, RotateRequest, Rotated, RotatedView};
pub use self::secret::Claim;
pub use self::verify::{Principal, VerifyError};
pub use crate::store::{AuditFrom, KeyFilter, Order, Sort};

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
        // Expiry is kept to the second: "1500ms" would quietly be 1 s.
        if d.subsec_nanos() != 0 {
            return Err(config::WHOLE_SECONDS.into());
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
    /// Saved and in force, not confirmed by a replica (`Saved::Unconfirmed`).
    #[error("the settings are saved and in force on every instance, but {} (a failover now could undo them): save them again", not_confirmed(.0))]
    Unconfirmed(#[source] StoreError),
}

/// Why no replica confirmed saved settings, as the admin is told: none in
/// time, or the check itself failed (its error is logged, not shown).
fn not_confirmed(cause: &StoreError) -> &'static str {
    match cause {
        StoreError::Timeout(_) => "no replica confirmed them in time",
        _ => "whether a replica has them could not be checked (the log says why)",
    }
}

/// Longest label accepted (a user name: `keys::user`).
const MAX_LABEL: usize = 200;

/// What `mint` checks of a new key before it asks the store: by a caller
/// too, before it counts a creation against a quota or connects at all.
pub fn check_new(user: &str, label: &str) -> Result<(), MintError> {
    // It becomes the identity header's value, as it is (UTF-8 included);
    // a secret pasted into the wrong field would be audited, announced
    // and sent upstream in clear.
    keys::user::check_typed(user).map_err(|e| match e {
        keys::user::Typed::Secret => {
            MintError::User("looks like a key secret; give the name of the key's owner")
        }
        keys::user::Typed::NoUser(why) => MintError::User(why),
    })?;
    check_label(label)
}

/// A key's label: at most 200 characters (as the page's `maxlength` counts
/// them, not bytes), none of them a control character or one that
/// reorders the text around it.
fn check_label(label: &str) -> Result<(), MintError> {
    let unfit = |c: char| c.is_control() || keys::user::reorders_text(c);
    if label.chars().count() > MAX_LABEL || label.chars().any(unfit) {
        return Err(MintError::Label(
            "must be at most 200 characters without control characters or direction overrides",
        ));
    }
    if keys::format::contains_key(label) {
        return Err(MintError::Label(
            "looks like a key secret; a label is shown in listings and logs",
        ));
    }
    Ok(())
}

/// What to revoke.
#[derive(Debug, Clone)]
pub enum Revocation {
    Ids(Vec<KeyId>),
    Users(Vec<String>),
    /// Leaked secrets: only those that verify as live keys count.
    Leaked(Vec<ApiKey>),
    /// Every key that matches (at least one field set; else `All`).
    Matching(KeyFilter),
    All,
}

impl Revocation {
    /// The same revocation with each id and user named once, so a dry
    /// run's count, the revocation's count and the audit log's "n key ids"
    /// agree however often a client repeats one.
    pub fn distinct(self) -> Revocation {
        match self {
            Revocation::Ids(ids) => Revocation::Ids(first_of_each(ids)),
            Revocation::Users(users) => Revocation::Users(first_of_each(users)),
            other => other,
        }
    }
}

/// `items` without repeats, in the order they first came.
fn first_of_each<T: Clone + Eq + std::hash::Hash>(items: Vec<T>) -> Vec<T> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
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
    /// Nothing is known to be revoked (though the store may have deleted
    /// some of the keys: every instance was told to forget them all).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store revoked them, but the instances could not be told: their
    /// caches may still accept the keys. Retrying the same revocation
    /// publishes again.
    #[error("revoked {} in the store, but could not tell every keygate instance ({source}); retry the same revocation", keys::counted(*count))]
    NotPropagated {
        count: u64,
        #[source]
        source: StoreError,
    },
}

/// The key service; cheap to clone (every clone is the same keyring).
#[derive(Clone)]
pub struct Keyring(Arc<Inner>);

struct Inner {
    store: Store,
    digest: DigestKey,
    /// The instances sharing the store (Redis only): every revocation goes through it.
    fleet: Option<Fleet>,
    /// The validation cache (Redis with `cache.enabled`); it serves nothing
    /// until this instance joins the fleet (`join_fleet`).
    cache: Option<Arc<KeyCache>>,
    /// The open tunnels admitted by a key here: a revocation ends theirs
    /// (through the fleet when there is one, which also tells the others).
    tunnels: Tunnels,
    metrics: Arc<Metrics>,
    prefix: String,
    /// `[keys]` as runtime settings, until an admin stores others.
    configured: Settings,
    /// `[[webhooks]]`: where the changes' events go (`events.rs`).
    webhooks: Option<Webhooks>,
    /// `[keys]` on rotation, expiry notices and idle keys.
    lifecycle: config::Lifecycle,
    /// Rotations and revocations the fleet is told of again (`retell`).
    retelling: retell::Retelling,
    /// `ready` succeeded once: the store's start is done (Redis: the
    /// earlier key layouts moved). Until then /readyz is 503.
    started: AtomicBool,
    /// The store held keys but no secret's claim when `ready` looked (unix
    /// seconds then; 0: claimed, or not to be claimed by this process):
    /// `secret.rs`.
    unclaimed_at: AtomicU64,
}

// === impl Keyring ===

impl Keyring {
    /// Connect to the configured store; an error if it does not answer.
    pub async fn from_config(config: &Config, claim: Claim) -> Result<Keyring, StoreError> {
        let keyring = Keyring::open(config)?;
        keyring.ready(claim).await?;
        Ok(keyring)
    }

    /// The configured store without dialling it: the first call connects,
    /// and calls fail (503) while it is down. `ready` finishes the start.
    pub fn open(config: &Config) -> Result<Keyring, StoreError> {
        let store = store::open(&config.store)?;
        let digest = match &config.store {
            config::Store::Memory => DigestKey::random(),
            config::Store::Redis { secret, .. } => secret.clone(),
        };
        let tunnels = Tunnels::default();
        let cache = (store.as_redis().is_some() && config.cache.enabled)
            .then(|| KeyCache::new(config.cache.capacity, config.cache.max_age));
        let fleet = store.as_redis().map(|redis| {
            Fleet::new(
                redis.clone(),
                config.cache.lease,
                config.cache.max_age,
                cache.clone(),
                tunnels.clone(),
            )
        });
        Ok(Keyring(Arc::new(Inner {
            store,
            digest,
            fleet,
            cache,
            tunnels,
            metrics: Metrics::new(),
            prefix: config.keys.prefix.clone(),
            configured: Settings::from_config(&config.keys),
            webhooks: Webhooks::new(&config.webhooks),
            lifecycle: config.keys.lifecycle.clone(),
            retelling: retell::Retelling::default(),
            started: AtomicBool::new(false),
            unclaimed_at: AtomicU64::new(0),
        })))
    }

    /// The store answers and is ready for use (Redis: the first key layout
    /// is moved, once), and its keys were made with this instance's secret
    /// (`StoreError::OtherSecret` if not: nothing may be served with it).
    pub async fn ready(&self, claim: Claim) -> Result<(), StoreError> {
        self.0.store.ready().await?;
        self.check_secret(claim).await?;
        self.0.started.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Whether `ready` succeeded once (readiness: before, keys of an
    /// earlier layout are not found yet).
    pub fn started(&self) -> bool {
        self.0.started.load(Ordering::Relaxed)
    }

    /// Whether the store answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.0.store.ping().await
    }

    /// Whether this instance is in touch with the fleet, its cache on
    /// (`keygate_fleet_connected`); `None` when it has no fleet to join
    /// (memory store, `cache.enabled = false`).
    pub fn fleet_connected(&self) -> Option<bool> {
        (self.0.fleet.is_some() && self.0.cache.is_some())
            .then(|| self.0.metrics.is_fleet_connected())
    }

    /// The open tunnels admitted by a key on this instance.
    pub fn tunnels(&self) -> &Tunnels {
        &self.0.tunnels
    }

    /// `keys.prefix`.
    pub fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// This process's metrics: the keyring counts its changes and lookups there.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    /// A secret for another use of the deployment's secret (session
    /// cookies, CSRF tokens): the same on every instance.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        self.0.digest.derive(purpose)
    }

    /// Start serving the validation cache as a member of the fleet (Redis
    /// with `cache.enabled`); `None` otherwise, and every lookup asks the store.
    /// Without the cache (Redis with `cache.enabled = false`) the instance
    /// does not join; it checks its open key tunnels every `cache.lease`.
    pub fn join_fleet(&self) -> Option<Member> {
        let fleet = self.0.fleet.as_ref()?;
        let Some(cache) = self.0.cache.as_ref() else {
            return Some(Member::watch_tunnels(fleet.clone()));
        };
        Some(Member::start(
            fleet.clone(),
            cache.clone(),
            self.0.metrics.clone(),
        ))
    }

    /// Mint and store a key for `user`; the secret is in the answer only.
    /// The key records `actor.source`; the creation is audited and counted.
    pub async fn mint(
        &self,
        actor: &Actor,
        user: &str,
        ttl: Ttl,
        label: &str,
        scope: Scope,
    ) -> Result<NewKey, MintError> {
        check_new(user, label)?;
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
        let mut new = keys::mint(&self.0.prefix, &self.0.digest, user, label, scope, ttl);
        new.record.source = Some(actor.source);
        self.0.store.insert(&new.record).await?;
        self.0.metrics.keys_created.inc();
        let target = format!(
            "key {} of user {}",
            new.record.id,
            audit::name(&new.record.user)
        );
        self.record(Event::by(actor, "create", &target, 1)).await;
        self.emit_created(actor, &new.record).await;
        self.schedule_notices(&new.record).await;
        Ok(new)
    }

    // Rotation (`rotate`, in `rotate.rs`) sits between mint and revoke: it
    // mints a successor with the old key's user, label and scope, and the
    // old key dies when its grace period ends, audited and counted as both are.

    /// Revoke in the store, then make every instance forget (the fleet's
    /// barrier): when this returns, no instance accepts a revoked key. The
    /// revocation is audited and counted, and each removed key announced
    /// (`key.revoked`), also when the store revoked keys that the fleet
    /// could not be told about. A list of leaked secrets is also settled
    /// as leaked (`revoke_leaked`: audit `leaked`, `key.leaked`).
    pub async fn revoke(&self, actor: &Actor, what: Revocation) -> Result<Revoked, RevokeError> {
        match what {
            Revocation::Leaked(secrets) => self.revoke_leaked(actor, secrets).await,
            what => self.revoke_only(actor, what).await,
        }
    }

    /// `revoke`, without settling leaked secrets as leaked: the leak paths'
    /// own step (`leaks.rs`), which do that themselves.
    async fn revoke_only(&self, actor: &Actor, what: Revocation) -> Result<Revoked, RevokeError> {
        let what = what.distinct();
        let mut target = target_of(&what);
        let store = &self.0.store;
        let mut gone = self.about_to_go(&what).await?;
        let (count, forget) = match what {
            Revocation::Ids(ids) => {
                let forget = Forget::ids(ids.iter().map(|i| i.as_str().into()).collect());
                let n = self.deleted(store.revoke_ids(&ids).await, &forget).await?;
                self.unschedule(Some(&ids)).await;
                (n, forget)
            }
            Revocation::Users(users) => {
                let mut ids = Vec::new();
                for user in &users {
                    ids.extend(store.list(Some(user)).await?.iter().map(|r| r.id));
                }
                let forget = Forget::Users {
                    users: users.clone(),
                };
                let n = self
                    .deleted(store.revoke_users(&users).await, &forget)
                    .await?;
                self.unschedule(Some(&ids)).await;
                (n, forget)
            }
            Revocation::Leaked(secrets) => {
                // The live keys the secrets are, and every live key rotated
                // from one of them (at any depth, by any rotation): whoever
                // holds a leaked key may have rotated it themselves.
                let mut live = Vec::new();
                for leaked in self.leaked_keys(&secrets).await? {
                    if leaked.live {
                        live.push(leaked.record);
                    }
                    live.extend(leaked.successors);
                }
                live.sort_unstable_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
                live.dedup_by(|a, b| a.id == b.id);
                let ids: Vec<KeyId> = live.iter().map(|r| r.id).collect();
                // Which keys went, by id (never by secret): a revocation by
                // possession names no key the audit log could show otherwise.
                target = match ids.is_empty() {
                    true => format!("{target}: no live key"),
                    false => format!("{target}: {}", ids_text(&ids)),
                };
                // Every id the secrets name, matched or not, and the
                // successors: a retry after a failed publish must still
                // name the keys deleted the first time (a retry finds the
                // successors again through the kept links).
                let mut named: Vec<String> = secrets
                    .iter()
                    .filter_map(|s| keys::format::parse(&self.0.prefix, s.expose()))
                    .chain(ids.iter().copied())
                    .map(|id| id.as_str().to_owned())
                    .collect();
                named.sort_unstable();
                named.dedup();
                let forget = Forget::ids(named);
                let n = self.deleted(store.revoke_ids(&ids).await, &forget).await?;
                self.unschedule(Some(&ids)).await;
                if self.wants(EventType::KeyRevoked) {
                    gone = live;
                }
                (n, forget)
            }
            Revocation::Matching(filter) => {
                // Named by what a retry can name again once the keys are
                // gone: a user's keys, else every cached key.
                let forget = match &filter.user {
                    Some(user) => Forget::Users {
                        users: vec![user.clone()],
                    },
                    None => Forget::All,
                };
                let ids = self
                    .deleted(store.revoke_matching_ids(&filter).await, &forget)
                    .await?;
                let n = ids.len() as u64;
                // Like every other revocation: no notice for a revoked key.
                self.unschedule(Some(&ids)).await;
                (n, forget)
            }
            Revocation::All => {
                let n = self.deleted(store.revoke_all().await, &Forget::All).await?;
                self.unschedule(None).await;
                (n, Forget::All)
            }
        };
        self.0.metrics.keys_revoked.inc_by(count);
        self.record(Event::by(actor, "revoke", &target, count))
            .await;
        let fleet = match &self.0.fleet {
            Some(fleet) => fleet
                .forget(forget.clone(), Why::Revoked)
                .await
                .map_err(|source| {
                    // The keys are gone from the store: keep telling the fleet,
                    // whether or not the caller retries (the idle sweep never does).
                    retell::keep_telling(
                        &self.0.retelling,
                        fleet.clone(),
                        forget,
                        Why::Revoked,
                        format!("the revocation of {target}"),
                    );
                    RevokeError::NotPropagated { count, source }
                }),
            None => {
                let exists = |id: String| async move { Ok(self.0.store.get(&id).await?.is_some()) };
                self.0.tunnels.end_revoked(&forget, exists).await;
                Ok(Report::default())
            }
        };
        // After the barrier: a slow outbox never delays it. Also when the
        // fleet could not be told: the keys are gone from the store.
        self.emit_revoked(actor, &gone).await;
        Ok(Revoked {
            count,
            fleet: fleet?,
        })
    }

    /// A deletion's outcome. One that failed may have deleted some or all
    /// of the keys all the same (a reply that came too late, a replica
    /// that did not confirm in time), so every instance forgets them
    /// regardless, and is told again in the background if it cannot be
    /// now: forgetting is always safe, a key cached past its deletion is not.
    async fn deleted<T>(
        &self,
        outcome: Result<T, StoreError>,
        forget: &Forget,
    ) -> Result<T, StoreError> {
        if let (Err(e), Some(fleet)) = (&outcome, &self.0.fleet) {
            tracing::warn!(error = %e, "a revocation failed in the store; every instance forgets its keys all the same");
            if fleet.forget(forget.clone(), Why::Revoked).await.is_err() {
                retell::keep_telling(
                    &self.0.retelling,
                    fleet.clone(),
                    forget.clone(),
                    Why::Revoked,
                    "a revocation that failed in the store".into(),
                );
            }
        }
        outcome
    }

    /// The settings in force: the stored ones, else `[keys]` from the config.
    pub async fn settings(&self) -> Result<Settings, StoreError> {
        match self.0.store.settings().await? {
            Some(json) => match serde_json::from_str::<Settings>(&json) {
                Ok(s) => Ok(s),
                Err(e) => {
                    tracing::error!(error = %e, "stored settings are unreadable; using the configured ones");
                    Ok(self.0.configured.clone())
                }
            },
            None => Ok(self.0.configured.clone()),
        }
    }

    /// Validate and store settings for every instance; audited.
    pub async fn put_settings(
        &self,
        actor: &Actor,
        settings: &Settings,
    ) -> Result<(), SettingsError> {
        settings.validate().map_err(SettingsError::Invalid)?;
        let json = serde_json::to_string(settings).expect("settings serialize");
        let saved = self.0.store.put_settings(&json).await?;
        // Written, so in force everywhere: audited, even when no replica
        // confirmed them yet (the admin is told 503 and saves again).
        self.record(Event::by(actor, "settings", &json, 1)).await;
        match saved {
            Saved::Confirmed => Ok(()),
            Saved::Unconfirmed(e) => Err(SettingsError::Unconfirmed(e)),
        }
    }

    /// Write a key's last use (`auth::last_used` calls it at most once a
    /// minute per key); never brings a revoked or expired key back.
    pub async fn touch(&self, id: &KeyId, at: u64) -> Result<(), StoreError> {
        self.0.store.touch(id, at).await
    }

    async fn policy(&self) -> Result<Policy, StoreError> {
        let settings = self.settings().await?;
        Ok(settings.validate().unwrap_or_else(|problems| {
            // Stored by an older keygate whose rules were looser ("1500ms").
            tracing::warn!(problems = %problems.join("; "), "the stored settings are no longer valid; using the configured [keys] until an admin saves new ones");
            self.0
                .configured
                .validate()
                .expect("the configured [keys] are validated at load")
        }))
    }

    /// Log the event and append it to the store's audit stream. A failed
    /// append is logged, not fatal: the change it describes has happened.
    async fn record(&self, event: Event) {
        audit::log(&event);
        if let Err(e) = self.0.store.append_audit(&event).await {
            tracing::error!(error = %e, "could not append the audit event to the store");
        }
    }
}

/// How the audit log names what a revocation is about (never a secret).
fn target_of(what: &Revocation) -> String {
    match what {
        Revocation::Ids(ids) => ids_text(ids),
        Revocation::Users(users) => {
            let names: Vec<_> = users.iter().map(|u| audit::name(u)).collect();
            format!("users {}", names.join(", "))
        }
        Revocation::Leaked(secrets) => match distinct_secrets(secrets) {
            1 => "1 leaked secret".to_owned(),
            n => format!("{n} leaked secrets"),
        },
        Revocation::Matching(filter) => format!("keys matching {}", filter_text(filter)),
        Revocation::All => "all keys".to_owned(),
    }
}

/// How many different secrets: each once, as ids and users are counted (a
/// scanner's report names a secret once per file it was found in).
pub fn distinct_secrets(secrets: &[ApiKey]) -> usize {
    let distinct: std::collections::HashSet<&str> = secrets.iter().map(ApiKey::expose).collect();
    distinct.len()
}

/// Ids a revocation's audit target names before it only counts the rest.
const TARGET_IDS: usize = 100;

/// Several ids as an audit target names them: which keys an admin
/// revoked, not only how many (the console's Delete sends the ids picked).
fn ids_text(ids: &[KeyId]) -> String {
    if ids.len() == 1 {
        return format!("key {}", ids[0]);
    }
    let named: Vec<String> = ids.iter().take(TARGET_IDS).map(KeyId::to_string).collect();
    match ids.len() - named.len() {
        0 => format!("keys {}", named.join(", ")),
        more => format!("keys {} and {more} more", named.join(", ")),
    }
}

/// A filter as the audit log names it: `user=alice, label="ci", expires before 2027-01-31T00:00:00Z`.
pub fn filter_text(f: &KeyFilter) -> String {
    let mut parts = Vec::new();
    if let Some(u) = &f.user {
        parts.push(format!("user={}", audit::name(u)));
    }
    if let Some(l) = &f.label {
        parts.push(format!("label={l:?}"));
    }
    if let Some(t) = f.expires_before {
        parts.push(format!("expires before {}", keys::rfc3339(t)));
    }
    parts.join(", ")
}
