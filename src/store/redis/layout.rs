//! Key names under the namespace `ns`, and the moves from earlier layouts.
//!
//! | key | type | what |
//! |---|---|---|
//! | `ns:{T}:key:<id>` | hash | the record (digest, never the secret); its TTL is the key's expiry |
//! | `ns:{lifecycle}:due`, `ns:{lifecycle}:about` | sorted set, hash | the expiry notices to send, and what they say of each key (`lifecycle.rs`) |
//! | `ns:lease:<name>` | string | which instance runs a fleet-wide chore (`lifecycle.rs`) |
//! | `ns:{T}:rotated`, `ns:{T}:lines`, `ns:{T}:line:<id>` | hash, sorted set, sets | rotation links (old id -> successor, digest) and their lineages, kept while a successor may live (`lifecycle.rs`) |
//! | `ns:{U}:uexp`, `ns:{U}:unew` | sorted sets | keys of the users with tag `U`, by expiry and by creation |
//! | `ns:{L}:lexp`, `ns:{L}:lnew` | sorted sets | keys of the labels with tag `L`, likewise |
//! | `ns:{gNN}:gexp`, `ns:{gNN}:gnew` | sorted sets | every key, in 16 buckets `NN` by the id's tag, likewise |
//! | `ns:audit` | stream | audit events |
//! | `ns:settings` | string | runtime settings (JSON) |
//! | `ns:fence` | string | written right before each `WAIT`, so that it covers every earlier write |
//! | `ns:fence:{N}` | string | the same in a Cluster, one per master: `N` a number whose hash slot is the master's ([`slot_tag`]) |
//! | `ns:layout` | string | `3` once earlier layouts have been moved |
//! | `ns:secret-check` | string | a value derived from the deployment secret the keys were made with, written by the first instance (`secret_check.rs`) |
//!
//! `{T}` is a Redis Cluster hash tag: the first 4 characters of the key id,
//! which [`crate::keys::format::user_tag`] derives from the key's user
//! (`U`). So a user's records and index share one slot (MULTI/EXEC and
//! scripts over them are legal in a cluster), different users spread over
//! the slots, and a lookup by id computes its key name from the id alone:
//! one round trip. The sorted sets, their members and what a page, a count
//! and a revocation cost: `index.rs` and `listing.rs`.
//!
//! The overall and label indexes live in slots of their own; they are
//! written in a separate step, ordered so that a crash never leaves a live
//! key out of them (which would hide the key from `revoke_all`): added
//! *before* the record is written, removed *after* the record is deleted.
//! A member without a record is harmless and removed when a listing meets
//! it (once it is older than `CLOCK_SKEW`: a younger one may be a creation
//! under way); members of expired keys are swept by every listing and
//! creation that touches their index, a bounded number each time.
//!
//! Earlier layouts are moved once, at start-up ([`migrate`]):
//!
//! * layout 1 (`ns:key:<id>`, `ns:user:<user>`, no tag; standalone and
//!   Sentinel only): records are renamed (their TTL kept) under the tag of
//!   their id's first characters (old ids are random, so an old record may
//!   sit in another slot than its user's index, which only a cluster would
//!   mind, and old data never lived in a cluster: the first layout's MULTI
//!   across `ns:all` would fail there);
//! * layout 2 (`ns:all` and `ns:{T}:user:<user>`, sorted sets of ids by
//!   expiry; every deployment): each live record listed in `ns:all` is
//!   indexed, then both are deleted. `ns:all` is read in batches of 1,000,
//!   so a million keys move in seconds.
//!
//! Instances of an older keygate must be stopped before a newer one starts:
//! they would neither see nor revoke the moved keys.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::OnceLock;

use super::RedisStore;
use crate::keys::format::{user_tag, TAG_LEN};
use crate::keys::{Digest, KeyId, KeyRecord, Scope, Source};
use crate::store::StoreError;

// === impl RedisStore (names) ===

impl RedisStore {
    pub(super) fn record(&self, id: &str) -> String {
        format!("{}:{{{}}}:key:{id}", self.ns, tag_of(id))
    }

    /// Layout 2's index of a user's ids.
    pub(super) fn old_user_index(&self, user: &str) -> String {
        in_user_slot(&self.ns, "user", user)
    }

    /// A user's event window (self-service creations), in the user's slot.
    pub(super) fn window_key(&self, user: &str) -> String {
        in_user_slot(&self.ns, "window", user)
    }

    /// Layout 2's index of every id.
    pub(super) fn old_all(&self) -> String {
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

    /// The fence of the Cluster master that serves `slot`.
    pub(super) fn fence_in_slot(&self, slot: u16) -> String {
        format!("{}:fence:{{{}}}", self.ns, slot_tag(slot))
    }
}

/// `ns:{U}:what:<user>`: a key named after `user`, in its tag's slot. The
/// tag comes first, so a user name's own braces (`ops{team}`, any UTF-8)
/// never become the hash tag: Redis hashes the first `{…}` only.
fn in_user_slot(ns: &str, what: &str, user: &str) -> String {
    format!("{ns}:{{{}}}:{what}:{user}", user_tag(user))
}

/// Redis Cluster's number of hash slots.
const SLOTS: usize = 16384;

/// A hash tag (a decimal number) whose Cluster slot is `slot`: so a key can
/// be written on a chosen master. The table is made once, at the first
/// Cluster revocation: the first 200,000 or so numbers cover every slot.
fn slot_tag(slot: u16) -> u32 {
    static TAGS: OnceLock<Vec<u32>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![u32::MAX; SLOTS];
        let mut missing = SLOTS;
        let mut digits = String::new();
        for n in 0..u32::MAX {
            digits.clear();
            write!(digits, "{n}").expect("writing to a String");
            let s =
                usize::from(crc16::State::<crc16::XMODEM>::calculate(digits.as_bytes())) % SLOTS;
            if tags[s] == u32::MAX {
                tags[s] = n;
                missing -= 1;
                if missing == 0 {
                    break;
                }
            }
        }
        tags
    });
    tags[usize::from(slot) % SLOTS]
}

/// What a Cluster node says of itself: the line of its `CLUSTER NODES`
/// answer flagged `myself`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct OwnNode {
    pub id: String,
    pub master: bool,
    /// The first slot it serves (slots being moved, in brackets, skipped).
    pub first_slot: Option<u16>,
}

pub(super) fn own_node(cluster_nodes: &str) -> Option<OwnNode> {
    let fields = cluster_nodes
        .lines()
        .map(|line| line.split(' ').collect::<Vec<_>>())
        .find(|f| {
            f.get(2)
                .is_some_and(|flags| flags.split(',').any(|x| x == "myself"))
        })?;
    Some(OwnNode {
        id: fields[0].to_owned(),
        master: fields[2].split(',').any(|x| x == "master"),
        first_slot: fields
            .iter()
            .skip(8)
            .find(|range| !range.starts_with('['))
            .and_then(|range| range.split('-').next()?.parse().ok()),
    })
}

/// The commands that write record `r` as key `key`: its fields, and its
/// expiry as the instant it is (`EXPIREAT`, as a rotation sets it). A TTL
/// counted from the write would keep the record up to a second past
/// `expires_at`, which is a whole second counted down from creation.
pub(super) fn record_cmds(key: &str, r: &KeyRecord) -> Vec<redis::Cmd> {
    let mut hset = redis::cmd("HSET");
    hset.arg(key);
    for (field, value) in super::fields(r) {
        hset.arg(field).arg(value);
    }
    let mut cmds = vec![hset];
    if let Some(at) = r.expires_at {
        let mut expire = redis::cmd("EXPIREAT");
        expire.arg(key).arg(at);
        cmds.push(expire);
    }
    cmds
}

/// The hash tag of a record: its id's first characters.
pub fn tag_of(id: &str) -> &str {
    id.get(..TAG_LEN).unwrap_or(id)
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

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    #[test]
    fn every_slot_has_a_tag_and_redis_rs_puts_it_there() {
        for slot in 0..SLOTS as u16 {
            let key = format!("keygate:fence:{{{}}}", slot_tag(slot));
            assert_eq!(Slot::for_key(&key), Slot::new(slot).unwrap(), "{key}");
        }
    }

    #[test]
    fn a_key_named_after_a_user_is_in_its_tags_slot_whatever_its_braces() {
        for user in [
            "alice",
            "ops{team}",
            "{x}",
            "}{",
            "a{}b",
            "zoë{例え}",
            "josé@例え.jp",
        ] {
            let tag = Slot::for_key(format!("{{{}}}", user_tag(user)));
            for what in ["window", "user"] {
                let key = in_user_slot("keygate", what, user);
                assert!(key.ends_with(user), "{key}");
                assert_eq!(Slot::for_key(&key), tag, "{key}");
            }
        }
    }

    #[test]
    fn a_node_is_read_from_its_own_line() {
        let nodes = "\
07c37dfe 127.0.0.1:30004@31004 slave e7d1eecc 0 1426238317239 4 connected
e7d1eecc 127.0.0.1:30002@31002 myself,master - 0 0 2 connected [5461-<-292f8b36] 5462-10922 12000
292f8b36 127.0.0.1:30001@31001 master - 0 1426238316232 1 connected 0-5460
";
        let me = own_node(nodes).unwrap();
        assert_eq!(
            me,
            OwnNode {
                id: "e7d1eecc".into(),
                master: true,
                first_slot: Some(5462)
            }
        );
        let single = "e7d1 127.0.0.1:1@2 myself,master - 0 0 2 connected 16383\n";
        assert_eq!(own_node(single).unwrap().first_slot, Some(16383));
        let empty = "e7d1 127.0.0.1:1@2 myself,master - 0 0 2 connected\n";
        assert_eq!(own_node(empty).unwrap().first_slot, None);
        let demoted = "e7d1 127.0.0.1:1@2 myself,slave 292f 0 0 2 connected\n";
        assert!(!own_node(demoted).unwrap().master);
        assert_eq!(own_node("junk"), None);
    }
}
