//! The keyring's background chores on each serving instance: sending due
//! expiry notices (`notices.rs`), and retiring idle keys
//! (`keys.revoke_unused_after`): a key not used for that long is revoked
//! through `Keyring::revoke` (source `idle`: audited, counted, announced,
//! stopped on every instance like any revocation).
//!
//! The idle sweep runs on one instance at a time (a lease in the store,
//! renewed while it works) and looks at one page of keys per round, going
//! on from where the last round stopped, so a round's work is bounded
//! however many keys there are; a full pass over a million keys takes
//! about 17 hours of rounds a minute apart.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{KeyFilter, Keyring, Revocation};
use crate::audit::Actor;
use crate::keys::{unix_now, KeyId, Source};

/// Pause between two claims of due notices.
const NOTICE_EVERY: Duration = Duration::from_secs(1);
/// Keys one idle round looks at.
const IDLE_PAGE: usize = 1000;

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
        let mut tasks = vec![tokio::spawn(self.clone().notice_rounds(stopped.clone()))];
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
        loop {
            if let Err(e) = self.send_due_notices().await {
                tracing::warn!(error = %e, "could not send due expiry notices; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(NOTICE_EVERY) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    async fn idle_rounds(self, window: Duration, mut stopped: watch::Receiver<bool>) {
        let every = (window / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let holder = holder_name();
        let mut cursor: Option<KeyId> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.changed() => return,
            }
            match self.0.store.lease("idle-sweep", &holder, every * 3).await {
                Ok(true) => match self.idle_round(window, cursor).await {
                    Ok(next) => cursor = next,
                    Err(e) => tracing::warn!(error = %e, "idle-key sweep failed; trying again"),
                },
                Ok(false) => cursor = None,
                Err(e) => tracing::warn!(error = %e, "idle-key sweep: cannot take its lease"),
            }
        }
    }

    /// Revoke the idle keys among one page after `cursor`; where the next
    /// round goes on (`None`: from the start).
    async fn idle_round(
        &self,
        window: Duration,
        cursor: Option<KeyId>,
    ) -> Result<Option<KeyId>, crate::keyring::RevokeError> {
        let page = self
            .page(
                &KeyFilter::default(),
                cursor.as_ref().map(KeyId::as_str),
                IDLE_PAGE,
            )
            .await?;
        let idle_before = unix_now().saturating_sub(window.as_secs());
        let idle: Vec<KeyId> = page
            .keys
            .iter()
            .filter(|r| r.last_used.unwrap_or(r.created_at) < idle_before)
            .map(|r| r.id)
            .collect();
        if !idle.is_empty() {
            let actor = Actor::new("keygate", Source::Idle, None);
            let done = self.revoke(&actor, Revocation::Ids(idle)).await?;
            tracing::info!(
                revoked = done.count,
                unused_for = %crate::settings::short_duration(window),
                "revoked keys unused for keys.revoke_unused_after"
            );
        }
        Ok(page.next_cursor)
    }
}

/// Who holds a lease: unique per process.
fn holder_name() -> String {
    let mut tag = [0u8; 8];
    getrandom::fill(&mut tag).expect("the OS random source works");
    format!(
        "{}-{}",
        std::process::id(),
        tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}
