//! Rotation: a successor for a key (same user, label, scope and source),
//! shown once, while the old key keeps working for a grace period and then
//! dies like a revoked one, on every instance within a second.
//!
//! The store does it in one atomic step (`Store::rotate`), so a key is
//! rotated once however many rotations race: the others are told the
//! successor's id. The old key's record keeps its place with a shorter life
//! (its Redis TTL is the grace period's end); the fleet's barrier then makes
//! every instance forget what it cached of it, so no cached copy outlives
//! the new expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Keyring, Ttl};
use crate::audit::{Actor, Event};
use crate::config;
use crate::fleet::{Forget, Why};
use crate::keys::{self, rfc3339, unix_now, KeyId, KeyRecord, NewKey, Source};
use crate::settings::{short_duration, Policy};
use crate::store::{Rotated as Stored, StoreError};
use crate::webhooks::{Event as Hook, EventType};

/// A rotation done: the successor (its secret shown once) and until when
/// the old key works.
pub struct Rotated {
    pub key: NewKey,
    /// Unix seconds.
    pub old_expires_at: u64,
    /// Why not every instance could be told to drop its cached copy of the
    /// old key (`None`: told, or no fleet). Instances that cached it may
    /// accept it past `old_expires_at` until they hear; keygate keeps
    /// telling them in the background.
    pub not_propagated: Option<String>,
    /// No Redis replica confirmed the rotation in time: a failover now
    /// could undo it (the old key keeping its former expiry).
    pub unconfirmed: bool,
}

// === impl Rotated ===

impl Rotated {
    /// The answer: the successor as a creation answers it, and until when
    /// the old key works.
    pub fn view(&self) -> RotatedView<'_> {
        RotatedView {
            key: self.key.view(),
            old_key_expires_at: rfc3339(self.old_expires_at),
            old_key_stopped_everywhere: self.not_propagated.is_none() && !self.unconfirmed,
            warning: self.warning(),
        }
    }

    /// What an operator must know when not every instance heard of the rotation.
    pub fn warning(&self) -> Option<String> {
        if self.unconfirmed {
            return Some(format!(
                "the new key is made and the old key's record ends at {}, but no Redis replica confirmed the rotation in time: a failover now could undo it (the old key would keep its former expiry, the new key would be lost). To be sure the old key stops, revoke it by id (that answers 503 until a replica confirms).",
                rfc3339(self.old_expires_at)
            ));
        }
        // The store's own error stays in the log: this answer also goes to
        // any key holder (self-rotation), and may name internal nodes.
        self.not_propagated.as_ref().map(|_| {
                format!(
                    "the new key is made and the old key's record ends at {}, but not every keygate instance could be told to drop its cached copy (keygate's log says why): an instance that cached the old key may accept it after that until it hears; keygate keeps trying in the background. To stop the old key on every instance now, revoke it by id (that answers 503 until every instance can be told).",
                    rfc3339(self.old_expires_at)
                )
            })
    }
}

#[derive(Serialize)]
pub struct RotatedView<'a> {
    #[serde(flatten)]
    key: keys::NewKeyView<'a>,
    old_key_expires_at: String,
    /// `false`: some instance may still accept the old key from its cache
    /// past `old_key_expires_at` (see `warning`).
    old_key_stopped_everywhere: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

/// A rotation request's body (admin API and self-rotation):
/// `{"grace"?: "24h", "ttl"?: "30d" | "never"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    grace: Option<String>,
    ttl: Option<String>,
}

// === impl RotateRequest ===

impl RotateRequest {
    pub fn new(grace: Option<String>, ttl: Option<String>) -> RotateRequest {
        RotateRequest { grace, ttl }
    }

    /// The lifetime asked for, as written (`None`: the old key's own).
    pub fn ttl(&self) -> Option<&str> {
        self.ttl.as_deref()
    }

    /// The grace period (`None`: `keys.rotation_grace`) and the successor's
    /// lifetime; the error names the field.
    pub fn parse(&self) -> Result<(Option<Duration>, Ttl), String> {
        let grace = match self.grace.as_deref() {
            None => None,
            Some(g) => Some(config::parse_duration(g).map_err(|e| format!("grace: {e}"))?),
        };
        let ttl = match self.ttl.as_deref() {
            None => Ttl::Default,
            Some(t) => Ttl::parse(t).map_err(|e| format!("ttl: {e}"))?,
        };
        Ok((grace, ttl))
    }
}

/// Why a rotation is refused.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// 400 naming `grace`.
    #[error("grace: {0}")]
    Grace(String),
    /// 400 naming `ttl`.
    #[error("ttl: {0}")]
    Ttl(String),
    /// 404: never issued, expired or revoked.
    #[error("no such key")]
    NotFound,
    /// 409: rotated before; no third key is made.
    #[error("key {old} was rotated already: its successor is {to}")]
    Rotated { old: KeyId, to: KeyId },
    /// Self-rotation only: the chain has reached `keys.max_ttl` from its start.
    #[error("this key's rotation chain started {started} and may not outlive keys.max_ttl ({max}) from then: make a new key")]
    ChainEnded { started: String, max: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

// === impl Keyring (rotation) ===

impl Keyring {
    /// `keys.self_rotation`: whether a key may rotate itself.
    pub fn self_rotation(&self) -> bool {
        self.0.lifecycle.self_rotation
    }

    /// Rotate key `id`: a successor with its user, label, scope and source,
    /// and the old key working until `min(now + grace, its expiry)`.
    ///
    /// * `grace`: `None` is `keys.rotation_grace`; over
    ///   `keys.max_rotation_grace` is refused.
    /// * `ttl`: the successor's lifetime, bounded by `max_ttl` like a new
    ///   key's; `Ttl::Default` is the old key's own lifetime (capped at
    ///   `max_ttl`; at least `default_ttl` for a key cut at its chain's end).
    /// * A rotation by the key itself (`actor.source` is
    ///   `Source::SelfRotation`) keeps the chain's start: the successor never
    ///   lives past `max_ttl` from when the chain's first key was made. Any
    ///   other actor vouches for the key anew and starts a new chain.
    ///
    /// Audited (`rotate`) and counted; the old key's notices are filed anew.
    pub async fn rotate(
        &self,
        actor: &Actor,
        id: KeyId,
        grace: Option<Duration>,
        ttl: Ttl,
    ) -> Result<Rotated, RotateError> {
        let lifecycle = &self.0.lifecycle;
        let grace = grace.unwrap_or(lifecycle.rotation_grace);
        if grace > lifecycle.max_rotation_grace {
            return Err(RotateError::Grace(format!(
                "{} is longer than keys.max_rotation_grace ({})",
                short_duration(grace),
                short_duration(lifecycle.max_rotation_grace)
            )));
        }
        let old = self
            .0
            .store
            .get(id.as_str())
            .await?
            .ok_or(RotateError::NotFound)?;
        if let Some(to) = old.rotated_to {
            return Err(RotateError::Rotated { old: id, to });
        }
        let policy = self.policy().await?;
        let lifetime = successor_lifetime(&old, ttl, &policy)?;
        let mut new = keys::mint(
            &self.0.prefix,
            &self.0.digest,
            &old.user,
            &old.label,
            old.scope,
            lifetime,
        );
        new.record.source = old.source;
        new.record.rotated_from = Some(id);
        if actor.source == Source::SelfRotation {
            within_chain(&mut new.record, &old, &policy)?;
        }
        let old_until = grace_end(grace).min(old.expires_at.unwrap_or(u64::MAX));
        let stored = match self.0.store.rotate(&id, &new.record, old_until).await {
            Ok(stored) => stored,
            Err(e) => {
                // The script may have run all the same (a reply lost, a
                // step after it failed): the old record may end sooner
                // than copies cached of it. Forgetting them is always safe.
                self.forget_rotated(id).await;
                return Err(e.into());
            }
        };
        let unconfirmed = match stored {
            Stored::Done => false,
            Stored::Unconfirmed => true,
            Stored::Gone => return Err(RotateError::NotFound),
            Stored::Already(to) => return Err(RotateError::Rotated { old: id, to }),
        };
        self.0.metrics.keys_created.inc();
        self.0.metrics.keys_rotated.inc();
        let target = format!(
            "key {id} of user {}: successor {}, {id} works until {}",
            crate::audit::name(&old.user),
            new.record.id,
            rfc3339(old_until)
        );
        self.record(Event::by(actor, "rotate", &target, 1)).await;
        let not_propagated = self.forget_rotated(id).await;
        self.schedule_notices(&new.record).await;
        let mut rotated = old;
        rotated.rotated_to = Some(new.record.id);
        rotated.expires_at = Some(old_until);
        self.schedule_notices(&rotated).await;
        self.emit_rotated(actor, &rotated, &new.record).await;
        Ok(Rotated {
            key: new,
            old_expires_at: old_until,
            not_propagated,
            unconfirmed,
        })
    }

    /// `key.created` for the successor (with `rotated_from`) and
    /// `key.rotated` for the old key (with `rotated_to` and until when it works).
    async fn emit_rotated(&self, actor: &Actor, old: &KeyRecord, new: &KeyRecord) {
        let mut events = Vec::new();
        if self.wants(EventType::KeyCreated) {
            events.push(
                Hook::about_key(EventType::KeyCreated, new, actor.source.as_str())
                    .with("expires_at", new.expires_at.map(rfc3339))
                    .with("rotated_from", old.id.as_str()),
            );
        }
        if self.wants(EventType::KeyRotated) {
            events.push(
                Hook::about_key(EventType::KeyRotated, old, actor.source.as_str())
                    .with("actor", actor.name.as_str())
                    .with("rotated_to", new.id.as_str())
                    .with("works_until", old.expires_at.map(rfc3339)),
            );
        }
        self.emit(events).await;
    }

    /// Every instance forgets its cached copy of the old key, whose record
    /// now expires sooner; this instance's own copy goes first, whatever
    /// happens (`Fleet::forget`). A failed round answers why (the caller
    /// says so: the successor is made and must reach its caller) and is
    /// tried again in the background (`retell`).
    async fn forget_rotated(&self, id: KeyId) -> Option<String> {
        let fleet = self.0.fleet.clone()?;
        let forget = Forget::ids(vec![id.as_str().to_owned()]);
        let e = fleet.forget(forget.clone(), Why::Refresh).await.err()?;
        tracing::error!(key_id = %id, error = %e, "could not tell every instance about a rotation: they may accept the old key from their cache until told; trying again");
        super::retell::keep_telling(
            &self.0.retelling,
            fleet,
            forget,
            Why::Refresh,
            format!("the rotation of key {id}"),
        );
        Some(e.to_string())
    }
}

/// The successor's lifetime (`None` = never expires).
fn successor_lifetime(
    old: &KeyRecord,
    ttl: Ttl,
    policy: &Policy,
) -> Result<Option<Duration>, RotateError> {
    let cap = |d: Duration| policy.max_ttl.map_or(d, |max| d.min(max));
    match (ttl, policy.max_ttl) {
        (Ttl::Default, max) => Ok(match old.expires_at {
            Some(e) => {
                let own = Duration::from_secs(e.saturating_sub(old.created_at).max(1));
                // What was left of its chain is no lifetime anyone chose:
                // inherited, it would shrink with every chain.
                let own = if cut_by_chain(old, policy) {
                    own.max(policy.default_ttl)
                } else {
                    own
                };
                Some(cap(own))
            }
            None => max,
        }),
        (Ttl::Never, None) => Ok(None),
        (Ttl::Never, Some(_)) => Err(RotateError::Ttl(
            "\"never\" is not allowed (max_ttl is not \"never\")".into(),
        )),
        (Ttl::For(d), Some(max)) if d > max => Err(RotateError::Ttl(format!(
            "{} is longer than max_ttl ({})",
            short_duration(d),
            short_duration(max)
        ))),
        (Ttl::For(d), _) => Ok(Some(d)),
    }
}

/// Whether `old` (made by self-rotation) ends exactly where its chain
/// does under today's `max_ttl`: its lifetime was cut to the chain's
/// remainder (`within_chain`).
fn cut_by_chain(old: &KeyRecord, policy: &Policy) -> bool {
    match (old.chain_started, old.expires_at, policy.max_ttl) {
        (Some(started), Some(e), Some(max)) => e == started.saturating_add(max.as_secs()),
        _ => false,
    }
}

/// A self-rotation's successor keeps the chain's start and ends no later
/// than `max_ttl` after it.
fn within_chain(new: &mut KeyRecord, old: &KeyRecord, policy: &Policy) -> Result<(), RotateError> {
    let started = old.chain_start();
    new.chain_started = Some(started);
    let Some(max) = policy.max_ttl else {
        return Ok(());
    };
    let end = started.saturating_add(max.as_secs());
    if end <= unix_now() {
        return Err(RotateError::ChainEnded {
            started: rfc3339(started),
            max: short_duration(max),
        });
    }
    if new.expires_at.is_none_or(|e| e > end) {
        new.expires_at = Some(end);
    }
    Ok(())
}

/// `now + grace`, rounded up to the second: the old key never stops early.
/// No grace at all is now: the old key stops at once.
fn grace_end(grace: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    if grace.is_zero() {
        return now.as_secs();
    }
    (now + grace).as_secs() + u64::from((now + grace).subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{DigestKey, Scope};

    fn key(lifetime: Option<u64>) -> KeyRecord {
        let ttl = lifetime.map(Duration::from_secs);
        keys::mint("kg", &DigestKey::random(), "ann", "", Scope::Read, ttl).record
    }

    fn policy(max: Option<u64>) -> Policy {
        Policy {
            default_ttl: Duration::from_secs(30),
            max_ttl: max.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_successor_lives_as_long_as_the_old_key_within_max_ttl() {
        let p = policy(Some(1000));
        assert_eq!(
            successor_lifetime(&key(Some(600)), Ttl::Default, &p).unwrap(),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            successor_lifetime(&key(None), Ttl::Default, &p).unwrap(),
            Some(Duration::from_secs(1000)),
            "a key that never expired gets max_ttl once max_ttl is set"
        );
        assert!(matches!(
            successor_lifetime(&key(Some(60)), Ttl::For(Duration::from_secs(2000)), &p),
            Err(RotateError::Ttl(m)) if m.contains("longer than max_ttl")
        ));
        assert_eq!(
            successor_lifetime(&key(None), Ttl::Default, &policy(None)).unwrap(),
            None
        );
    }

    #[test]
    fn a_key_cut_at_its_chains_end_passes_on_at_least_default_ttl() {
        let p = policy(Some(1000));
        let mut cut = key(Some(100));
        cut.chain_started = Some(cut.created_at - 900);
        assert_eq!(
            successor_lifetime(&cut, Ttl::Default, &p).unwrap(),
            Some(Duration::from_secs(100)),
            "longer than default_ttl: its own"
        );
        cut.expires_at = Some(cut.created_at + 10);
        cut.chain_started = Some(cut.created_at - 990);
        assert_eq!(
            successor_lifetime(&cut, Ttl::Default, &p).unwrap(),
            Some(Duration::from_secs(30)),
            "the default_ttl, not the 10 s left of the chain"
        );
        // Asked for, not cut: its own.
        let mut short = key(Some(10));
        short.chain_started = Some(short.created_at - 100);
        assert_eq!(
            successor_lifetime(&short, Ttl::Default, &p).unwrap(),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn a_chain_ends_max_ttl_after_its_first_key() {
        let p = policy(Some(1000));
        let mut old = key(Some(1000));
        old.chain_started = Some(unix_now() - 900);
        let mut new = key(Some(1000));
        within_chain(&mut new, &old, &p).unwrap();
        assert_eq!(new.chain_started, old.chain_started);
        assert_eq!(new.expires_at, Some(old.chain_started.unwrap() + 1000));

        old.chain_started = Some(unix_now() - 1000);
        assert!(matches!(
            within_chain(&mut key(Some(10)), &old, &p),
            Err(RotateError::ChainEnded { .. })
        ));
        // Without max_ttl a chain may go on.
        let mut forever = key(None);
        within_chain(&mut forever, &old, &policy(None)).unwrap();
        assert_eq!(forever.expires_at, None);
    }

    #[test]
    fn a_grace_period_ends_on_a_whole_second_never_early() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let end = grace_end(Duration::from_millis(2500));
        assert!(end as f64 >= (before + Duration::from_millis(2500)).as_secs_f64());
        assert!(end as f64 <= (before + Duration::from_millis(3600)).as_secs_f64());
    }
}
