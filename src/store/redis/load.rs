//! Filling a store fast: many records at once, written exactly as `insert`
//! writes them (the same record commands and index members), in one
//! pipeline per hash tag instead of a few round trips per key.

use super::index::Entry;
use super::layout::{self, tag_of};
use super::RedisStore;
use crate::keys::KeyRecord;
use crate::store::StoreError;

// === impl RedisStore (load) ===

impl RedisStore {
    /// Write `records` as `insert` does, less what a live deployment needs
    /// and a fresh fill does not: no sweep of expired members, no wait for
    /// a replica, and a record and its user index are not written
    /// atomically. For benchmarks and bulk loads into a store no instance
    /// is serving yet.
    pub async fn insert_many(&self, records: &[KeyRecord]) -> Result<(), StoreError> {
        let mut cmds = Vec::with_capacity(records.len() * 3);
        for r in records {
            let id = r.id.as_str();
            for cmd in layout::record_cmds(&self.record(id), r) {
                cmds.push((tag_of(id).to_owned(), cmd));
            }
        }
        let entries: Vec<Entry> = records.iter().map(Entry::of).collect();
        // Every member of one set in one ZADD.
        for ((tag, set), members) in self.members_by_set(&entries) {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(set);
            for m in members {
                zadd.arg(0).arg(m);
            }
            cmds.push((tag, zadd));
        }
        self.by_tag(cmds).await.map(|_| ())
    }
}
