//! Key names under the namespace `ns`, and the move from the first layout.
//!
//! | key | type | what |
//! |---|---|---|
//! | `ns:{T}:key:<id>` | hash | the record (digest, never the secret); its TTL is the key's expiry |
//! | `ns:{lifecycle}:due`, `ns:{lifecycle}:about` | sorted set, hash | the expiry notices to send, and what they say of each key (`lifecycle.rs`) |
//! | `ns:lease:<name>` | string | which instance runs a fleet-wide chore (`lifecycle.rs`) |
//! | `ns:{T}:user:<user>` | sorted set | the user's key ids, scored by expiry (`+inf` = never) |
//! | `ns:all` | sorted set | every key id, scored likewise |
//! | `ns:audit` | stream | audit events |
//! | `ns:settings` | string | runtime settings (JSON) |
//! | `ns:fence` | string | written right before each `WAIT`, so that it covers every earlier write |
//! | `ns:layout` | string | `2` once the first layout has been moved (standalone/Sentinel only) |
//!
//! `{T}` is a Redis Cluster hash tag: the first 4 characters of the key id,
//! which [`crate::keys::format::user_tag`] derives from the key's user. So a
//! user's records and index share one slot (MULTI/EXEC and scripts over them
//! are legal in a cluster), different users spread over the slots, and a
//! lookup by id computes its key name from the id alone: one round trip.
//!
//! `ns:all` lives in a slot of its own; it is written in a separate step,
//! ordered so that a crash never leaves a live key out of it (which would hide
//! the key from `revoke_all`): added *before* the record is written, removed
//! *after* the record is deleted. An id in it without a record is harmless and
//! pruned when read.
//!
//! The first layout (`ns:key:<id>`, `ns:user:<user>`, no tag) is moved once,
//! at start-up of a standalone or Sentinel deployment ([`migrate`]): records
//! are renamed (their TTL kept) under the tag of their id's first characters
//! (old ids are random, so an old record may sit in another slot than its
//! user's index, which only a cluster would mind, and old data never lived
//! in a cluster: the first layout's MULTI across `ns:all` would fail there).
//! Instances of an older keygate must be stopped before a newer one starts:
//! they would neither see nor revoke the moved keys.

use std::collections::HashMap;

use super::RedisStore;
use crate::keys::format::{user_tag, TAG_LEN};
use crate::keys::{Digest, KeyId, KeyRecord, Scope, Source};
use crate::store::StoreError;

/// Keys renamed per SCAN step.
const SCAN_COUNT: usize = 1000;

// === impl RedisStore (names) ===

impl RedisStore {
    pub(super) fn record(&self, id: &str) -> String {
        format!("{}:{{{}}}:key:{id}", self.ns, tag_of(id))
    }

    pub(super) fn user_index(&self, user: &str) -> String {
        format!("{}:{{{}}}:user:{user}", self.ns, user_tag(user))
    }

    /// A user's event window (self-service creations), in the user's slot.
    pub(super) fn window_key(&self, user: &str) -> String {
        format!("{}:{{{}}}:window:{user}", self.ns, user_tag(user))
    }

    pub(super) fn all(&self) -> String {
        format!("{}:all", self.ns)
    }

    pub(super) fn audit(&self) -> String {
        format!("{}:audit", self.ns)
    }

    pub(super) fn settings_key(&self) -> String {
        format!("{}:settings", self.ns)
    }

    /// Written right before each `WAIT` (see `RedisStore::replicated`).
    pub(super) fn fence(&self) -> String {
        format!("{}:fence", self.ns)
    }

    /// Ids split so that each group's records share a slot: one group on a
    /// single server, one per tag in a cluster (a pipeline goes to one node).
    pub(super) fn by_slot<'a>(&self, ids: &'a [String]) -> Vec<Vec<&'a str>> {
        if ids.is_empty() {
            return Vec::new();
        }
        if !self.conn.is_cluster() {
            return vec![ids.iter().map(String::as_str).collect()];
        }
        let mut groups: HashMap<&str, Vec<&str>> = HashMap::new();
        for id in ids {
            groups.entry(tag_of(id)).or_default().push(id);
        }
        groups.into_values().collect()
    }
}

/// The hash tag of a record: its id's first characters.
pub fn tag_of(id: &str) -> &str {
    id.get(..TAG_LEN).unwrap_or(id)
}

/// Move the first layout's keys to this one, once (see the module docs).
/// Answers how many records it moved.
///
/// One SCAN page (about 1,000 keys) per round trip, each page moved by a
/// script: atomic, so instances that start at the same time move every key
/// exactly once, and fast enough for a million keys at start.
pub(super) async fn migrate(store: &RedisStore) -> Result<u64, StoreError> {
    if store.conn.is_cluster() {
        return Ok(0);
    }
    // Safe to repeat: a record is renamed only if it is still there.
    let mut conn = store.conn.repeating();
    let marker = format!("{}:layout", store.ns);
    let done: Option<String> = store
        .bounded(redis::cmd("GET").arg(&marker).query_async(&mut conn))
        .await?;
    if done.as_deref() == Some("2") {
        return Ok(0);
    }
    // KEYS: old names, then as many new names. A record is renamed (its TTL
    // kept) unless it is gone; a user index is merged into the new one.
    let records = redis::Script::new(
        "local n, moved = #KEYS / 2, 0 \
         for i = 1, n do \
           if redis.call('EXISTS', KEYS[i]) == 1 then \
             moved = moved + redis.call('RENAMENX', KEYS[i], KEYS[n + i]) \
           end \
         end return moved",
    );
    let indexes = redis::Script::new(
        "local n = #KEYS / 2 \
         for i = 1, n do \
           if redis.call('EXISTS', KEYS[i]) == 1 then \
             redis.call('ZUNIONSTORE', KEYS[n + i], 2, KEYS[n + i], KEYS[i], 'AGGREGATE', 'MAX') \
             redis.call('DEL', KEYS[i]) \
           end \
         end return 0",
    );
    let old_record = format!("{}:key:", store.ns);
    let old_user = format!("{}:user:", store.ns);
    let mut moved = 0;
    for (prefix, script) in [(&old_record, &records), (&old_user, &indexes)] {
        let mut cursor = 0u64;
        loop {
            let (next, old): (u64, Vec<String>) = store
                .bounded(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{prefix}*"))
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut conn),
                )
                .await?;
            if !old.is_empty() {
                let new = old.iter().map(|k| {
                    let rest = &k[prefix.len()..];
                    match prefix == &old_record {
                        true => store.record(rest),
                        false => store.user_index(rest),
                    }
                });
                let mut call = script.prepare_invoke();
                call.key(&old).key(new.collect::<Vec<_>>());
                let n: u64 = store.bounded(call.invoke_async(&mut conn)).await?;
                moved += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    let _: () = store
        .bounded(
            redis::cmd("SET")
                .arg(&marker)
                .arg("2")
                .query_async(&mut conn),
        )
        .await?;
    if moved > 0 {
        tracing::info!(moved, "moved key records to the cluster-ready layout");
    }
    Ok(moved)
}

/// A record from its hash fields; an empty hash is a key that does not exist.
pub(super) fn parse(
    id: &str,
    mut f: HashMap<String, String>,
) -> Result<Option<KeyRecord>, StoreError> {
    if f.is_empty() {
        return Ok(None);
    }
    let corrupt = || StoreError::Corrupt(id.to_owned());
    let digest = f
        .get("digest")
        .and_then(|d| Digest::from_hex(d))
        .ok_or_else(corrupt)?;
    let scope = f
        .get("scope")
        .and_then(|s| Scope::parse(s))
        .ok_or_else(corrupt)?;
    let created_at = f
        .get("created")
        .and_then(|c| c.parse().ok())
        .ok_or_else(corrupt)?;
    let expires_at = match f.get("expires").map(String::as_str) {
        None | Some("") => None,
        Some(e) => Some(e.parse().map_err(|_| corrupt())?),
    };
    Ok(Some(KeyRecord {
        id: KeyId::parse(id).ok_or_else(corrupt)?,
        user: f.remove("user").ok_or_else(corrupt)?,
        label: f.remove("label").unwrap_or_default(),
        scope,
        created_at,
        expires_at,
        digest,
        last_used: f.get("last_used").and_then(|l| l.parse().ok()),
        // Older records have none; an unknown value reads as none too.
        source: f.get("source").and_then(|s| Source::parse(s)),
        rotated_from: f.get("rotated_from").and_then(|i| KeyId::parse(i)),
        rotated_to: f.get("rotated_to").and_then(|i| KeyId::parse(i)),
        chain_started: f.get("chain").and_then(|c| c.parse().ok()),
    }))
}
