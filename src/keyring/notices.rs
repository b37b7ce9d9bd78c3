//! Expiry notices: `key.expiring` at each `keys.warn_before` offset before a
//! key expires, and `key.expired` when it has, each sent once per key and
//! offset by the whole fleet.
//!
//! The schedule lives in the store, not in any instance's clock loop: when
//! a key is made (or rotated) its notices are filed with their due times,
//! and every instance claims due ones every second (`Store::claim_notices`,
//! atomic, with a lease so a notice whose claimer died comes back). A notice
//! for a revoked key is dropped (a revocation drops what its notices would
//! say), so is a warning for a key that was rotated (its owner acted).
//! The schedule of a key follows the `warn_before` of the instance that
//! made it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Keyring;
use crate::keys::{rfc3339, unix_now, KeyId, KeyRecord};
use crate::metrics::ExpiryEvent;
use crate::settings::short_duration;
use crate::store::{Notice, StoreError};
use crate::webhooks::{Event, EventType};

/// How long a claimed notice is someone's before it comes due again.
const CLAIM_LEASE: Duration = Duration::from_secs(60);
/// Notices claimed per round.
const PER_ROUND: usize = 100;

/// What a key's notices say of it (kept in the store; never a secret).
#[derive(Debug, Serialize, Deserialize)]
struct About {
    user: String,
    label: String,
    scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    /// Unix seconds.
    expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotated_to: Option<String>,
}

// === impl Keyring (notices) ===

impl Keyring {
    /// `keys.warn_before`'s longest offset: keys expiring within it are
    /// flagged (`KeyGate-Key-Expires`, the page's banner).
    pub fn warn_window(&self) -> Option<Duration> {
        self.0.lifecycle.warn_before.first().copied()
    }

    /// File the notices of a key that expires (a new key, or one whose
    /// expiry a rotation moved). A failure is logged: the key stands, and
    /// the filing is tried again in the background (`refile_notices`).
    pub(super) async fn schedule_notices(&self, record: &KeyRecord) {
        if let Err(e) = self.file_notices(record).await {
            tracing::error!(key_id = %record.id, error = %e, "could not schedule the key's expiry notices; trying again shortly");
            tokio::spawn(self.clone().refile_notices(record.id));
        }
    }

    /// Try again to file the notices of key `id`, a few times over about
    /// half a minute (a store hiccup): otherwise only a start's backfill
    /// files them, and a fleet not restarted before the key expires sends
    /// none. The key is read afresh each time: one revoked or expired
    /// meanwhile needs none, one rotated meanwhile files its new expiry.
    async fn refile_notices(self, id: KeyId) {
        for wait in [1, 2, 4, 8, 16].map(Duration::from_secs) {
            tokio::time::sleep(wait).await;
            let filed = match self.0.store.get(id.as_str()).await {
                Ok(None) => return,
                Ok(Some(record)) => self.file_notices(&record).await,
                Err(e) => Err(e),
            };
            match filed {
                Ok(()) => {
                    tracing::info!(key_id = %id, "filed the key's expiry notices after all");
                    return;
                }
                Err(e) => {
                    tracing::warn!(key_id = %id, error = %e, "could not schedule the key's expiry notices")
                }
            }
        }
        tracing::error!(key_id = %id, "gave up scheduling the key's expiry notices; the next start's backfill files them");
    }

    async fn file_notices(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let Some(expires_at) = record.expires_at else {
            return Ok(());
        };
        let now = unix_now();
        let mut due: Vec<(u64, u64)> = vec![(0, expires_at)];
        // A rotated key's warnings would only be dropped: its owner acted.
        if record.rotated_to.is_none() {
            for offset in &self.0.lifecycle.warn_before {
                let at = expires_at.saturating_sub(offset.as_secs());
                if at > now {
                    due.push((offset.as_secs(), at));
                }
            }
        }
        let about = About {
            user: record.user.clone(),
            label: record.label.clone(),
            scope: record.scope.as_str().to_owned(),
            source: record.source.map(|s| s.as_str().to_owned()),
            expires_at,
            rotated_to: record.rotated_to.map(|t| t.to_string()),
        };
        let about = serde_json::to_string(&about).expect("a notice's subject serializes");
        self.0.store.schedule(&record.id, &about, &due).await
    }

    /// Drop the notices of revoked keys (`None`: of every key). A failure
    /// is logged: at worst a revoked key is announced as expired later.
    pub(super) async fn unschedule(&self, ids: Option<&[KeyId]>) {
        if let Err(e) = self.0.store.unschedule(ids).await {
            tracing::warn!(error = %e, "could not drop revoked keys' expiry notices");
        }
    }

    /// Claim the notices due now and send them; how many were sent.
    pub(super) async fn send_due_notices(&self) -> Result<usize, StoreError> {
        let store = &self.0.store;
        let notices = store
            .claim_notices(unix_now(), CLAIM_LEASE, PER_ROUND)
            .await?;
        let mut sent = 0;
        for notice in notices {
            match self.send_notice(&notice).await? {
                Outcome::Sent => sent += 1,
                Outcome::Dropped => {}
                // Left claimed: due again when the claim's lease ends.
                Outcome::NotQueued => {
                    tracing::warn!(key_id = %notice.id, "an expiry notice's webhook event could not be queued; trying again in a minute");
                    continue;
                }
            }
            store.notice_sent(&notice.id, notice.before).await?;
        }
        Ok(sent)
    }

    /// Send one notice if it still applies.
    async fn send_notice(&self, notice: &Notice) -> Result<Outcome, StoreError> {
        let Some(about) = notice.about.as_deref() else {
            return Ok(Outcome::Dropped);
        };
        let Ok(about) = serde_json::from_str::<About>(about) else {
            tracing::warn!(key_id = %notice.id, "unreadable expiry notice; dropped");
            return Ok(Outcome::Dropped);
        };
        // The expiry itself: the record is gone either way by now (expired
        // or revoked look alike in the store), so what says "not revoked"
        // is `about`, which every revocation drops (`unschedule`), by id,
        // user, filter, leak or all; a notice without it returned above.
        if notice.before == 0 {
            return Ok(self.announce(ExpiryEvent::Expired, notice, &about).await);
        }
        // A warning: only for a key that still lives and was not replaced.
        if about.rotated_to.is_some() || self.0.store.get(notice.id.as_str()).await?.is_none() {
            return Ok(Outcome::Dropped);
        }
        Ok(self.announce(ExpiryEvent::Expiring, notice, &about).await)
    }

    /// Tell the world: the webhook event (`key.expiring` with
    /// `warn_before`, or `key.expired`), then the log line and the metric.
    /// `NotQueued` (nothing logged or counted) if the event could not be queued.
    async fn announce(&self, kind: ExpiryEvent, notice: &Notice, about: &About) -> Outcome {
        let event_type = match kind {
            ExpiryEvent::Expiring => EventType::KeyExpiring,
            ExpiryEvent::Expired => EventType::KeyExpired,
        };
        if self.wants(event_type) {
            let mut event = Event::about(
                event_type,
                notice.id.as_str(),
                &about.user,
                &about.label,
                &about.scope,
            )
            .with("source", about.source.as_deref())
            .with("expires_at", rfc3339(about.expires_at));
            if notice.before > 0 {
                event = event.with(
                    "warn_before",
                    short_duration(Duration::from_secs(notice.before)),
                );
            }
            if let Some(to) = &about.rotated_to {
                event = event.with("rotated_to", to.as_str());
            }
            // Queued again (`NotQueued`) under the same `webhook-id`.
            event = event.with_message_id(notice_message_id(notice, about.expires_at));
            if !self.emit(vec![event]).await {
                return Outcome::NotQueued;
            }
        }
        self.0.metrics.notice(kind);
        tracing::info!(
            target: "keygate::lifecycle",
            event = kind.as_str(),
            key_id = %notice.id,
            user = %crate::telemetry::escaped(&about.user),
            expires_at = %rfc3339(about.expires_at),
            warn_before = %short_duration(Duration::from_secs(notice.before)),
            rotated_to = about.rotated_to.as_deref().unwrap_or("-"),
        );
        Outcome::Sent
    }
}

/// The `webhook-id` of a notice's event: the same each time the notice is
/// sent (a notice whose event could not be queued to every entry is queued
/// again, to every entry, a minute later), distinct per key, offset and
/// expiry (a key whose expiry changed gets notices anew). `msg_` and 128
/// bits of a SHA-256, like a random one.
fn notice_message_id(notice: &Notice, expires_at: u64) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(
        format!(
            "keygate notice {} {} {expires_at}",
            notice.id, notice.before
        )
        .as_bytes(),
    );
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// What became of a notice handed out for sending.
enum Outcome {
    /// Announced (and its event queued): remove it.
    Sent,
    /// No longer applies (revoked, rotated, unreadable): remove it.
    Dropped,
    /// Its event could not be queued: leave it claimed, to come due again.
    NotQueued,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_keeps_its_webhook_id() {
        let notice = |id: &str, before| Notice {
            id: KeyId::parse(id).unwrap(),
            before,
            about: None,
        };
        let a = notice_message_id(&notice("AbCdEfGhIjKl", 0), 100);
        assert_eq!(a, notice_message_id(&notice("AbCdEfGhIjKl", 0), 100));
        assert!(a.starts_with("msg_") && a.len() == 36, "{a}");
        for other in [
            notice_message_id(&notice("AbCdEfGhIjKm", 0), 100),
            notice_message_id(&notice("AbCdEfGhIjKl", 86_400), 100),
            notice_message_id(&notice("AbCdEfGhIjKl", 0), 101),
        ] {
            assert_ne!(a, other);
        }
    }
}
