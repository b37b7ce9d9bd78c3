//! The moves from earlier key layouts to this one, once, at start-up (see
//! `layout.rs` for what each layout was). Both are safe to run on several
//! instances at once and to run again after a crash.

use super::index::Entry;
use super::RedisStore;
use crate::keys::KeyId;
use crate::store::StoreError;

/// Keys renamed per SCAN step, ids indexed per round.
const STEP: usize = 1000;

/// The layout this keygate writes.
const LAYOUT: &str = "3";

/// Move earlier layouts' keys to this one, once. Answers how many records
/// were moved or indexed.
pub(super) async fn migrate(store: &RedisStore) -> Result<u64, StoreError> {
    // Safe to repeat: a GET and a SET of the same value.
    let mut conn = store.conn.repeating();
    let marker = format!("{}:layout", store.ns);
    let done: Option<String> = store
        .bounded(redis::cmd("GET").arg(&marker).query_async(&mut conn))
        .await?;
    if done.as_deref() == Some(LAYOUT) {
        return Ok(0);
    }
    // The first layout never lived in a cluster, and SCAN there sees one node.
    let mut moved = 0;
    if !store.conn.is_cluster() && done.as_deref() != Some("2") {
        moved += move_first_layout(store).await?;
    }
    let indexed = index_second_layout(store).await?;
    let _: () = store
        .bounded(
            redis::cmd("SET")
                .arg(&marker)
                .arg(LAYOUT)
                .query_async(&mut conn),
        )
        .await?;
    if moved + indexed > 0 {
        tracing::info!(moved, indexed, "moved keys to the current key layout");
    }
    Ok(moved + indexed)
}

/// Layout 1 -> 2: records renamed under their tag, user indexes merged.
///
/// One SCAN page (about 1,000 keys) per round trip, each page moved by a
/// script: atomic, so instances that start at the same time move every key
/// exactly once, and fast enough for a million keys at start.
async fn move_first_layout(store: &RedisStore) -> Result<u64, StoreError> {
    // Safe to repeat: a record is renamed only if it is still there.
    let mut conn = store.conn.repeating();
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
                        .arg(STEP)
                        .query_async(&mut conn),
                )
                .await?;
            if !old.is_empty() {
                let new = old.iter().map(|k| {
                    let rest = &k[prefix.len()..];
                    match prefix == &old_record {
                        true => store.record(rest),
                        false => store.old_user_index(rest),
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
    Ok(moved)
}

/// Layout 2 -> 3: every live record that `ns:all` lists is indexed, then
/// its ids leave `ns:all` and its user's old index goes. Records are never
/// changed, so a key revoked meanwhile by another instance is at worst
/// indexed without a record, which listings clean up.
async fn index_second_layout(store: &RedisStore) -> Result<u64, StoreError> {
    // Safe to repeat: reads, ZADDs of the same members, deletions.
    let mut conn = store.writes.repeating();
    let all = store.old_all();
    let mut indexed = 0;
    loop {
        let ids: Vec<String> = store
            .bounded(
                redis::cmd("ZRANGE")
                    .arg(&all)
                    .arg(0)
                    .arg(STEP - 1)
                    .query_async(&mut conn),
            )
            .await?;
        if ids.is_empty() {
            break;
        }
        let keys: Vec<KeyId> = ids.iter().filter_map(|i| KeyId::parse(i)).collect();
        let mut cmds = Vec::new();
        for record in store.records(&keys).await?.into_iter().flatten() {
            let entry = Entry::of(&record);
            for pair in entry.pairs() {
                let (exp, new, tag) = store.pair(&pair);
                for (set, sort) in [
                    (exp, crate::store::listing::Sort::Expires),
                    (new, crate::store::listing::Sort::Created),
                ] {
                    let mut cmd = redis::cmd("ZADD");
                    cmd.arg(set).arg(0).arg(entry.member(sort));
                    cmds.push((tag.clone(), cmd));
                }
            }
            let mut cmd = redis::cmd("DEL");
            cmd.arg(store.old_user_index(&record.user));
            cmds.push((entry.user_tag.clone(), cmd));
            indexed += 1;
        }
        store.by_tag(cmds).await?;
        let _: () = store
            .bounded(
                redis::cmd("ZREM")
                    .arg(&all)
                    .arg(&ids)
                    .query_async(&mut conn),
            )
            .await?;
    }
    Ok(indexed)
}
