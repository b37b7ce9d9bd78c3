//! Each key's last-used time, written to the store at most once a minute per
//! key and off the request path: never a store write per request.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::keyring::Keyring;
use crate::keys::{unix_now, KeyId};

/// Seconds between two writes of the same key's last-used time.
const EVERY_SECS: u64 = 60;

pub struct LastUsed {
    keyring: Keyring,
    /// When each key's time was last written (unix seconds).
    written: Mutex<HashMap<KeyId, u64>>,
}

// === impl LastUsed ===

impl LastUsed {
    pub fn new(keyring: Keyring) -> Self {
        LastUsed {
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
                Some(at) if now < *at + EVERY_SECS => return,
                Some(at) => *at = now,
                None => {
                    // Drop entries that are no longer due to be skipped, so the map
                    // holds only keys used within the last minute.
                    if written.len() >= 4096 {
                        written.retain(|_, at| now < *at + EVERY_SECS);
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
