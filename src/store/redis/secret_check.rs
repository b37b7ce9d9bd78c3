//! Whether this instance holds the deployment's secret: `ns:secret-check`
//! keeps a value derived from the secret the store's keys were made with
//! (`DigestKey::derive`: it tells nothing of the secret, no more than a
//! stored key digest does). An instance or a CLI given another secret
//! would refuse every key as mismatched (a leaked key reported to it would
//! be answered `false_positive` and stay live) and make keys that no other
//! instance takes; it stops at start instead.
//!
//! Only a process that has shown it holds the right secret writes the
//! value (`claim`, see `Keyring::ready`): one that found the store empty,
//! or one that verified a stored key. Whoever merely came first after an
//! upgrade, or after Redis lost the value, must not decide which secret is
//! right.

use super::RedisStore;
use crate::store::StoreError;

fn key(store: &RedisStore) -> String {
    format!("{}:secret-check", store.ns)
}

/// The value the store was claimed with, if it was.
pub(super) async fn read(store: &RedisStore) -> Result<Option<String>, StoreError> {
    let mut conn = store.conn.repeating();
    let get = redis::cmd("GET").arg(key(store)).clone();
    store.bounded(get.query_async(&mut conn)).await
}

/// Claim the store for `check` unless it is claimed already; the value it
/// holds afterwards (another's, if another claimed it first).
pub(super) async fn claim(store: &RedisStore, check: &str) -> Result<Option<String>, StoreError> {
    // Safe to repeat: a SET NX of the same value, and a GET.
    let mut conn = store.conn.repeating();
    let set = redis::cmd("SET")
        .arg(key(store))
        .arg(check)
        .arg("NX")
        .clone();
    let _: Option<String> = store.bounded(set.query_async(&mut conn)).await?;
    read(store).await
}

/// The error for a store claimed with `held` other than this secret's value.
pub(super) fn other_secret(store: &RedisStore) -> StoreError {
    StoreError::OtherSecret(key(store))
}
