//! Each key's last-used time, written to the store at most once a minute per
//! key (more often under a short `keys.revoke_unused_after`:
//! `Keyring::touch_every`) and off the request path: never a store write
//! per request.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::keyring::Keyring;
use crate::keys::{unix_now, KeyId};

pub struct LastUsed {
    keyring: Keyring,
    /// When each key's time was last written (unix seconds). Only keys that
    /// authenticated are inserted, so foldhash (not SipHash) is safe here.
    written: Mutex<HashMap<KeyId, u64, foldhash::fast::RandomState>>,
    /// Seconds between two writes of the same key's last-used time.
    every: u64,
}

// === impl LastUsed ===

impl LastUsed {
    pub fn new(keyring: Keyring) -> Self {
        LastUsed {
            every: keyring.touch_every().as_secs().max(1),
            keyring,
            written: Mutex::default(),
        }
    }

    /// Note a use of `id`; writes it through the keyring in the background when due.
    pub fn record(&self, id: KeyId) {
        let now = unix_now();
        {
            let mut written = self.written.lock().expect("last-used lock");
            match written.get_mut(&id) {
                Some(at) if now < *at + self.every => return,
                Some(at) => *at = now,
                None => {
                    // Drop entries that are no longer due to be skipped, so the map
                    // holds only keys used within the last minute.
                    if written.len() >= 4096 {
                        written.retain(|_, at| now < *at + self.every);
                    }
                    written.insert(id, now);
                }
            }
        }
        let keyring = self.keyring.clone();
        tokio::spawn(async move {
            if let Err(e) = keyring.touch(&id, now).await {
                tracing::debug!(key_id = %id, error = %e, "could not record last use");
            }
        });
    }
}
