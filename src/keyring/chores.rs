//! The keyring's background chores on each serving instance: sending due
//! expiry notices (`notices.rs`), and retiring idle keys
//! (`keys.revoke_unused_after`): a key not used for that long is revoked
//! through `Keyring::revoke` (source `idle`: audited, counted, announced,
//! stopped on every instance like any revocation).
//!
//! The idle sweep runs on one instance at a time (a lease in the store) and
//! walks every key once a round, a page of a thousand at a time, a round
//! every quarter of the window (at most an hour apart: a 90-day window
//! walks the keys hourly), revoking each page's idle ones. Keys made
//! before keygate kept a schedule of notices get theirs filed once after a
//! start (`backfill_notices`), also a page at a time.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Keyring, Revocation};
use crate::audit::Actor;
use crate::fleet::outage::Outage;
use crate::keys::{unix_now, KeyId, KeyRecord, Source};
use crate::store::{KeyFilter, Order, Position, StoreError};

/// Pause between two claims of due notices.
const NOTICE_EVERY: Duration = Duration::from_secs(1);
/// Keys one revocation (or one schedule check) takes at a time.
const IDLE_BATCH: usize = 1000;
/// The backfill of notices waits this long after start (the fleet settles).
const BACKFILL_AFTER: Duration = Duration::from_secs(5);
/// After a backfill, no other instance does it again for this long.
const BACKFILL_LEASE: Duration = Duration::from_secs(3600);

/// Where a walk over every key stands (`Keyring::next_page`).
#[derive(Default)]
struct Walk {
    after: Option<Position>,
    done: bool,
}

/// The running chores; `stop` ends them.
pub struct Chores {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

// === impl Chores ===

impl Chores {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

// === impl Keyring (chores) ===

impl Keyring {
    /// Start this instance's share of the chores (`app::start` calls it).
    pub fn run_chores(&self) -> Chores {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(self.clone().notice_rounds(stopped.clone())),
            tokio::spawn(self.clone().backfill_notices(stopped.clone())),
        ];
        if let Some(window) = self.0.lifecycle.revoke_unused_after {
            tasks.push(tokio::spawn(self.clone().idle_rounds(window, stopped)));
        }
        Chores { stop, tasks }
    }

    /// How often a key's last use is written (`auth::last_used`): once a
    /// minute, or a quarter of `revoke_unused_after` when that is shorter,
    /// so that a key in use is never taken for an idle one.
    pub fn touch_every(&self) -> Duration {
        let minute = Duration::from_secs(60);
        self.0
            .lifecycle
            .revoke_unused_after
            .map_or(minute, |w| (w / 4).clamp(Duration::from_secs(1), minute))
    }

    async fn notice_rounds(self, mut stopped: watch::Receiver<bool>) {
        // Tried every second: in a store outage, a warning per round would
        // be 3,600 lines an hour. One warning, a reminder a minute, one
        // line when it works again, as the fleet says its outages.
        let mut outage = Outage::default();
        loop {
            match self.send_due_notices().await {
                Ok(_) => outage.say_back("sending due expiry notices again"),
                Err(e) => outage.say_failed("send due expiry notices", &e),
            }
            tokio::select! {
                _ = tokio::time::sleep(NOTICE_EVERY) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    async fn idle_rounds(self, window: Duration, mut stopped: watch::Receiver<bool>) {
        let every = idle_every(window);
        let holder = holder_name();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.changed() => return,
            }
            // Held past the round, so the next instance waits its turn.
            match self
                .0
                .store
                .lease("idle-sweep", &holder, every + every / 2)
                .await
            {
                Ok(true) => {
                    if let Err(e) = self.idle_round(window).await {
                        tracing::warn!(error = %e, "idle-key sweep failed; trying again");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "idle-key sweep: cannot take its lease"),
            }
        }
    }

    /// Revoke every key not used within `window`, a page of `IDLE_BATCH`
    /// at a time.
    async fn idle_round(&self, window: Duration) -> Result<(), crate::keyring::RevokeError> {
        let idle_before = unix_now().saturating_sub(window.as_secs());
        let actor = Actor::new("keygate", Source::Idle, None);
        let mut walk = Walk::default();
        while let Some(page) = self.next_page(&mut walk).await? {
            let idle: Vec<KeyId> = page
                .iter()
                .filter(|r| r.last_used.unwrap_or(r.created_at) < idle_before)
                .map(|r| r.id)
                .collect();
            if idle.is_empty() {
                continue;
            }
            let done = self.revoke(&actor, Revocation::Ids(idle)).await?;
            tracing::info!(
                revoked = done.count,
                unused_for = %crate::settings::short_duration(window),
                "revoked keys unused for keys.revoke_unused_after"
            );
        }
        Ok(())
    }

    /// The next page of every live key (newest first, `IDLE_BATCH` keys),
    /// `None` after the last: a chore holds a page, never every key (a
    /// million keys are some 250 MiB).
    async fn next_page(&self, walk: &mut Walk) -> Result<Option<Vec<KeyRecord>>, StoreError> {
        if walk.done {
            return Ok(None);
        }
        let page = self
            .0
            .store
            .page(
                Order::default(),
                &KeyFilter::default(),
                walk.after.as_ref(),
                IDLE_BATCH,
            )
            .await?;
        walk.done = page.next.is_none();
        walk.after = page.next;
        Ok(Some(page.keys))
    }

    /// File the notices of keys that have none (made before keygate kept
    /// a schedule, or while the store could not take it): once, by one
    /// instance, shortly after start; the lease then keeps the others from
    /// doing it again for `BACKFILL_LEASE`. Only notices still ahead are
    /// filed, so nothing is announced late.
    async fn backfill_notices(self, mut stopped: watch::Receiver<bool>) {
        tokio::select! {
            _ = tokio::time::sleep(BACKFILL_AFTER) => {}
            _ = stopped.changed() => return,
        }
        match self
            .0
            .store
            .lease("notice-backfill", &holder_name(), BACKFILL_LEASE)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "expiry notices: cannot take the backfill lease");
                return;
            }
        }
        let filed = async {
            let (mut filed, mut walk) = (0, Walk::default());
            while let Some(page) = self.next_page(&mut walk).await? {
                let ids: Vec<KeyId> = page
                    .iter()
                    .filter(|r| r.expires_at.is_some())
                    .map(|r| r.id)
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                let missing = self.0.store.unscheduled(&ids).await?;
                for r in page.iter().filter(|r| missing.contains(&r.id)) {
                    self.schedule_notices(r).await;
                    filed += 1;
                }
            }
            Ok::<_, StoreError>(filed)
        };
        match filed.await {
            Ok(0) => {}
            Ok(n) => tracing::info!(keys = n, "filed the expiry notices of keys that had none"),
            Err(e) => {
                tracing::warn!(error = %e, "expiry notices: the backfill failed; the next start tries again")
            }
        }
    }
}

/// How often the idle sweep looks: a quarter of the window, from a second
/// to an hour (each look lists every key).
fn idle_every(window: Duration) -> Duration {
    (window / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Who holds a lease: unique per process.
fn holder_name() -> String {
    format!("{}-{}", std::process::id(), crate::random::hex::<8>())
}
