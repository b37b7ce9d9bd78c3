//! Whether this process holds the deployment's secret, as far as the store
//! can say (`store::redis::secret_check` keeps the claim). Only a process
//! that shows it has the right secret claims an unclaimed store: none is
//! wrong for an empty one; with keys, the first key made before this
//! process looked that verifies from the store shows it. Whoever merely
//! comes first (after an upgrade, or after Redis lost the claim) does not,
//! nor a key this process made itself since (it proves nothing of the
//! others). Nor does a command that only reads or revokes keys
//! (`Claim::Never`): it shows nothing of the secret it was given.

use std::sync::atomic::Ordering;

use super::Keyring;
use crate::keys::{self, KeyRecord};
use crate::store::{KeyFilter, SecretCheck, StoreError};

/// Whether this process may claim an unclaimed store for its secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Serving, or making keys: an empty store, or a key that verifies.
    IfProven,
    /// Listing or revoking from a shell: a wrong secret here would lock
    /// out the gateways that start after it.
    Never,
}

impl Keyring {
    /// At start (`ready`): another secret's claim is
    /// `StoreError::OtherSecret`; with `Claim::IfProven` an unclaimed store
    /// is claimed now if it is empty, else by the first key that proves the
    /// secret.
    pub(super) async fn check_secret(&self, claim: Claim) -> Result<(), StoreError> {
        let store = &self.0.store;
        let check = self.secret_check();
        if store.check_secret(&check).await? == SecretCheck::Unclaimed && claim == Claim::IfProven {
            if store.count(&KeyFilter::default()).await? == 0 {
                store.claim_secret(&check).await?;
            } else {
                self.0
                    .unclaimed_at
                    .store(keys::unix_now(), Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The value `ns:secret-check` holds for this secret (derived from it,
    /// never it).
    fn secret_check(&self) -> String {
        keys::Digest(self.0.digest.derive("store secret check")).to_hex()
    }

    /// `record`, read from the store, verified: if it was made before this
    /// process found the store unclaimed, this process's secret is the one
    /// the store's keys were made with, and it claims the store (once; a
    /// key this process made itself since proves nothing of the others).
    pub(crate) fn claim_secret(&self, record: &KeyRecord) {
        // A load first: every key read from the store passes here.
        let since = self.0.unclaimed_at.load(Ordering::Relaxed);
        if since == 0
            || record.created_at >= since
            || self
                .0
                .unclaimed_at
                .compare_exchange(since, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let keyring = self.clone();
        tokio::spawn(async move {
            match keyring.0.store.claim_secret(&keyring.secret_check()).await {
                Ok(()) => {}
                Err(e @ StoreError::OtherSecret(_)) => {
                    tracing::error!(error = %e, "another secret claimed the key store first, though a key made before verified with this one: instances with this secret will not start again until the claim is deleted");
                }
                Err(e) => {
                    // Tried again by the next key verified.
                    keyring.0.unclaimed_at.store(since, Ordering::Relaxed);
                    tracing::warn!(error = %e, "could not claim the key store for this secret; trying again with the next key");
                }
            }
        });
    }
}
