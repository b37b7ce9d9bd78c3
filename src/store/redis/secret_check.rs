//! Whether this instance holds the deployment's secret: `ns:secret-check`
//! keeps a value derived from the secret the store's keys were made with
//! (`DigestKey::derive`: it tells nothing of the secret, no more than a
//! stored key digest does). An instance or a CLI given another secret
//! would refuse every key as mismatched (a leaked key reported to it would
//! be answered `false_positive` and stay live) and make keys that no other
//! instance takes; it stops at start instead.

use super::RedisStore;
use crate::store::StoreError;

/// Claim the store for `check` (the first instance to start writes it), or
/// find it already claimed for `check`; `StoreError::OtherSecret` otherwise.
pub(super) async fn check(store: &RedisStore, check: &str) -> Result<(), StoreError> {
    // Safe to repeat: a GET, and a SET NX of the same value.
    let mut conn = store.conn.repeating();
    let key = format!("{}:secret-check", store.ns);
    let get = redis::cmd("GET").arg(&key).clone();
    let mut held: Option<String> = store.bounded(get.query_async(&mut conn)).await?;
    if held.is_none() {
        let set = redis::cmd("SET").arg(&key).arg(check).arg("NX").clone();
        let _: Option<String> = store.bounded(set.query_async(&mut conn)).await?;
        // Another instance may have claimed it first, with its own secret.
        held = store.bounded(get.query_async(&mut conn)).await?;
    }
    match held.as_deref() == Some(check) {
        true => Ok(()),
        false => Err(StoreError::OtherSecret(key)),
    }
}
