//! Each key's last-used time, written to the store at most once a minute per
//! key (more often under a short `keys.revoke_unused_after`:
//! `Keyring::touch_every`) and off the request path: never a store write
//! per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::keyring::Keyring;
use crate::keys::{unix_now, KeyId};
use crate::telemetry::throttle::Throttled;

pub struct LastUsed {
    keyring: Keyring,
    written: Mutex<Written>,
    /// Seconds between two writes of the same key's last-used time.
    every: u64,
    /// A failed write, said once a minute: keys whose use goes unrecorded
    /// look unused, and `keys.revoke_unused_after` revokes them.
    failed: Arc<Mutex<Throttled>>,
}

/// When each key's last use was written (unix seconds). Only keys that
/// authenticated are inserted, so foldhash (not SipHash) is safe here.
#[derive(Default)]
struct Written {
    at: HashMap<KeyId, u64, foldhash::fast::RandomState>,
    /// The size at which a new key first sweeps out the entries no longer
    /// due to be skipped: twice what the last sweep kept (at least
    /// `SWEEP_FROM`), so sweeping costs O(1) per new key however many keys
    /// are in use, and the map holds at most twice what the last sweep kept
    /// (the keys used within `every` of it), or `SWEEP_FROM`.
    sweep_at: usize,
    /// Entries the sweeps have visited, for the test of that cost.
    #[cfg(test)]
    visited: usize,
}

/// The smallest map that is swept.
const SWEEP_FROM: usize = 4096;

// === impl LastUsed ===

impl LastUsed {
    pub fn new(keyring: Keyring) -> Self {
        LastUsed {
            every: keyring.touch_every().as_secs().max(1),
            keyring,
            written: Mutex::default(),
            failed: Arc::new(Mutex::new(Throttled::each_minute())),
        }
    }

    /// Note a use of `id`; writes it through the keyring in the background when due.
    pub fn record(&self, id: KeyId) {
        let now = unix_now();
        let due = self
            .written
            .lock()
            .expect("last-used lock")
            .due(id, now, self.every);
        if !due {
            return;
        }
        let keyring = self.keyring.clone();
        let failed = self.failed.clone();
        tokio::spawn(async move {
            if let Err(e) = keyring.touch(&id, now).await {
                let due = failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .due(Instant::now());
                if let Some(unlogged) = due {
                    tracing::warn!(
                        key_id = %id, error = %e, unlogged,
                        "could not record a key's last use; keys in use may look unused \
                         (keys.revoke_unused_after, when set, revokes by it)"
                    );
                }
            }
        });
    }
}

// === impl Written ===

impl Written {
    /// Whether a use of `id` at `now` is to be written (noted as written
    /// if so): its first use, or `every` seconds after its last write.
    fn due(&mut self, id: KeyId, now: u64, every: u64) -> bool {
        match self.at.get_mut(&id) {
            Some(at) if now < *at + every => false,
            Some(at) => {
                *at = now;
                true
            }
            None => {
                if self.at.len() >= self.sweep_at.max(SWEEP_FROM) {
                    #[cfg(test)]
                    {
                        self.visited += self.at.len();
                    }
                    self.at.retain(|_, at| now < *at + every);
                    self.sweep_at = 2 * self.at.len();
                }
                self.at.insert(id, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> KeyId {
        KeyId::parse(&format!("{n:0>12}")).unwrap()
    }

    #[test]
    fn a_key_is_written_at_its_first_use_then_once_per_interval() {
        let mut w = Written::default();
        assert!(w.due(id(1), 1000, 60));
        assert!(!w.due(id(1), 1059, 60));
        assert!(w.due(id(1), 1060, 60));
        assert!(!w.due(id(1), 1061, 60));
    }

    #[test]
    fn many_keys_in_use_cost_linear_sweeping_and_the_map_stays_bounded() {
        let mut w = Written::default();
        let n = 50_000;
        // Every key in use within one interval: none may be swept out.
        for i in 0..n {
            assert!(w.due(id(i), 1000, 60));
        }
        assert_eq!(w.at.len(), n);
        assert!(
            w.visited <= 2 * n,
            "sweeps visited {} entries for {n} new keys",
            w.visited
        );
        for i in 0..n {
            assert!(!w.due(id(i), 1030, 60), "used again within the minute");
        }
        // An interval later, new keys sweep the old ones out.
        for i in n..2 * n {
            assert!(w.due(id(i), 1100, 60));
        }
        assert!(w.at.len() <= 2 * n, "{} entries", w.at.len());
        assert!(w.visited <= 5 * n, "sweeps visited {} entries", w.visited);
    }
}
