//! The open tunnels (WebSockets) admitted by a key, so that a revocation
//! ends them: a tunnel outlives the request that checked its key, and
//! would otherwise carry traffic for a revoked key until it closes.
//!
//! One registry per process, touched only per upgrade and per revocation.
//! A revocation made here or heard from the fleet (`member.rs`) ends the
//! matching tunnels and waits (briefly) until they are gone before it
//! answers or acknowledges. A tunnel admitted while a revocation was being
//! applied is checked against the recent revocations when it registers
//! (`Tunnels::open`), so none slips between its admission and its start.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::Forget;

/// How long a revocation waits for the tunnels it ends to be gone (told,
/// a tunnel forwards nothing more once its task runs; this covers that and
/// the polite TLS close): well within `cache.lease`'s 300 ms floor, so a
/// member in touch never acknowledges late.
const CLOSE_WAIT: Duration = Duration::from_millis(250);

/// The revocations kept to check tunnels admitted while they were applied;
/// a tunnel that saw more go by since its admission is ended, to be safe.
const RECENT: usize = 32;

/// This process's open key tunnels (cheap to clone).
#[derive(Clone, Default)]
pub struct Tunnels(Arc<Mutex<Registry>>);

#[derive(Default)]
struct Registry {
    next_slot: u64,
    open: HashMap<u64, Entry>,
    /// Revocations applied so far (a counter), and the latest ones.
    generation: u64,
    recent: VecDeque<(u64, Forget)>,
}

struct Entry {
    key_id: String,
    user: String,
    /// Sent (or dropped) to end the tunnel.
    end: oneshot::Sender<()>,
    /// Resolves once the tunnel's connections are dropped.
    gone: oneshot::Receiver<()>,
}

/// Where a revocation may stand when a tunnel's request is admitted
/// (`Tunnels::admitting`).
#[derive(Debug, Clone, Copy)]
pub struct Since(u64);

/// A registered tunnel: `ended` resolves when a revocation ends it; dropping
/// the guard (after the connections) deregisters it.
pub struct OpenTunnel {
    pub ended: oneshot::Receiver<()>,
    pub guard: TunnelGuard,
}

pub struct TunnelGuard {
    tunnels: Tunnels,
    slot: u64,
    _gone: oneshot::Sender<()>,
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.tunnels.lock().open.remove(&self.slot);
    }
}

impl Tunnels {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic elsewhere under the lock leaves a consistent map.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read before an upgrade request is admitted by a key.
    pub fn admitting(&self) -> Since {
        Since(self.lock().generation)
    }

    /// Register the tunnel of a request admitted (`since`) by key `key_id`
    /// of `user`. One that a revocation applied since names (or when too
    /// many went by to tell) comes back already ended.
    pub fn open(&self, since: Since, key_id: &str, user: &str) -> OpenTunnel {
        let (end, ended) = oneshot::channel();
        let (gone_tx, gone) = oneshot::channel();
        let mut r = self.lock();
        let slot = r.next_slot;
        r.next_slot += 1;
        let missed = r.generation - since.0;
        let revoked = missed > r.recent.len() as u64
            || r.recent
                .iter()
                .any(|(g, f)| *g > since.0 && f.names(key_id, user));
        if revoked {
            let _ = end.send(());
        } else {
            let entry = Entry {
                key_id: key_id.to_owned(),
                user: user.to_owned(),
                end,
                gone,
            };
            r.open.insert(slot, entry);
        }
        drop(r);
        OpenTunnel {
            ended,
            guard: TunnelGuard {
                tunnels: self.clone(),
                slot,
                _gone: gone_tx,
            },
        }
    }

    /// A revocation's end of the tunnels it names: by id, at once; by user
    /// or all (a filter's, `{"all": true}`'s: more than the keys it
    /// revoked), each once `exists` says its key is gone, or cannot say
    /// (fail closed). Resolves when they are gone, or after `CLOSE_WAIT`.
    pub async fn end_revoked<F, Fut>(&self, forget: &Forget, exists: F)
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<bool, crate::store::StoreError>>,
    {
        match forget {
            Forget::Ids { .. } => {
                self.close(forget).await;
            }
            Forget::Users { .. } | Forget::All => {
                self.note(forget);
                self.check(Some(forget), None, exists).await;
            }
        }
    }

    /// Look up the key of each open tunnel (those `named`, else every one)
    /// and end those whose key is gone. One whose key cannot be read is
    /// ended too, unless it is not yet `patient_until`: the end of the lease
    /// this instance last held, as the cache serves until then, so a Redis
    /// blip within it leaves tunnels alone. `true` when every lookup answered.
    pub async fn check<F, Fut>(
        &self,
        named: Option<&Forget>,
        patient_until: Option<Instant>,
        exists: F,
    ) -> bool
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<bool, crate::store::StoreError>>,
    {
        let open = self.snapshot(named);
        if open.is_empty() {
            return true;
        }
        let patient = patient_until.is_some_and(|until| Instant::now() < until);
        let exists = &exists;
        let checks = open.iter().map(|(slot, id)| async move {
            match exists(id.clone()).await {
                Ok(true) => (None, true),
                Ok(false) => (Some(*slot), true),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot check an open tunnel's key");
                    (Some(*slot).filter(|_| !patient), false)
                }
            }
        });
        let results = futures_util::future::join_all(checks).await;
        let answered = results.iter().all(|(_, ok)| *ok);
        let ended: Vec<u64> = results.into_iter().filter_map(|(slot, _)| slot).collect();
        if !ended.is_empty() {
            tracing::warn!(
                tunnels = ended.len(),
                open = open.len(),
                "ending open tunnels whose key is revoked or cannot be checked"
            );
            self.end(&ended).await;
        }
        answered
    }

    /// Note a revocation, for the tunnels being admitted meanwhile (`open`).
    pub(crate) fn note(&self, forget: &Forget) {
        let mut r = self.lock();
        r.generation += 1;
        let generation = r.generation;
        if r.recent.len() == RECENT {
            r.recent.pop_front();
        }
        r.recent.push_back((generation, forget.clone()));
    }

    /// End the tunnels of the keys `forget` names (a revocation); the
    /// future resolves when they are gone, or after `CLOSE_WAIT`.
    pub fn close(&self, forget: &Forget) -> impl std::future::Future<Output = usize> + 'static {
        self.note(forget);
        let slots: Vec<u64> = self
            .snapshot(Some(forget))
            .into_iter()
            .map(|(slot, _)| slot)
            .collect();
        self.end(&slots)
    }

    /// The open key tunnels `named` (else every one): (slot, key id).
    fn snapshot(&self, named: Option<&Forget>) -> Vec<(u64, String)> {
        let r = self.lock();
        r.open
            .iter()
            .filter(|(_, e)| named.is_none_or(|f| f.names(&e.key_id, &e.user)))
            .map(|(s, e)| (*s, e.key_id.clone()))
            .collect()
    }

    /// End these tunnels (those still open): resolves with how many when
    /// they are gone, or after `CLOSE_WAIT`.
    fn end(&self, slots: &[u64]) -> impl std::future::Future<Output = usize> + 'static {
        let mut r = self.lock();
        let gone: Vec<_> = slots
            .iter()
            .filter_map(|slot| r.open.remove(slot))
            .map(|entry| {
                let _ = entry.end.send(());
                entry.gone
            })
            .collect();
        drop(r);
        let n = gone.len();
        if n > 0 {
            tracing::info!(tunnels = n, "ending the open tunnels of revoked keys");
        }
        async move {
            let all = futures_util::future::join_all(gone);
            let _ = tokio::time::timeout(CLOSE_WAIT, all).await;
            n
        }
    }

    /// How many key tunnels are open (tests).
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl super::Fleet {
    /// Whether the key of an open tunnel is still in the store.
    async fn key_exists(&self, id: String) -> Result<bool, crate::store::StoreError> {
        Ok(self.store.get(&id).await?.is_some())
    }

    /// A revocation made here or heard: `Tunnels::end_revoked` against the store.
    pub(crate) async fn end_revoked_tunnels(&self, forget: &Forget) {
        self.tunnels
            .end_revoked(forget, |id| self.key_exists(id))
            .await;
    }

    /// Check every open key tunnel's key in the store, for when revocations
    /// may have gone unheard (the subscription broke, or this instance
    /// listens to none): a revocation deletes the records before it
    /// publishes, so a check made after it finds them gone. A key that
    /// cannot be read ends its tunnel once `patient_until` has passed (see
    /// `Tunnels::check`). No store call without key tunnels.
    pub(crate) async fn recheck_tunnels(&self, patient_until: Option<Instant>) -> bool {
        self.tunnels
            .check(None, patient_until, |id| self.key_exists(id))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[&str]) -> Forget {
        Forget::Ids {
            ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn a_revocation_ends_the_tunnels_it_names_and_no_other() {
        let t = Tunnels::default();
        let mut a = t.open(t.admitting(), "aaa", "ann");
        let mut b = t.open(t.admitting(), "bbb", "bob");
        let closing = t.close(&ids(&["aaa"]));
        assert!(a.ended.try_recv().is_ok());
        assert!(b.ended.try_recv().is_err());
        drop(a.guard);
        assert_eq!(closing.await, 1);
        assert_eq!(t.len(), 1);
        drop(t.close(&Forget::Users {
            users: vec!["bob".into()],
        }));
        assert!(b.ended.try_recv().is_ok());
    }

    #[test]
    fn a_tunnel_admitted_while_its_key_was_revoked_starts_ended() {
        let t = Tunnels::default();
        let since = t.admitting();
        drop(t.close(&ids(&["aaa"])));
        let mut late = t.open(since, "aaa", "ann");
        assert!(late.ended.try_recv().is_ok());
        let mut other = t.open(since, "bbb", "bob");
        assert!(other.ended.try_recv().is_err());
        // Too many revocations since admission to tell: ended, to be safe.
        for _ in 0..=RECENT {
            drop(t.close(&ids(&["zzz"])));
        }
        let mut unsure = t.open(since, "bbb", "bob");
        assert!(unsure.ended.try_recv().is_ok());
        drop(other.guard);
        assert!(t.is_empty());
    }
}
