//! Rotation, expiry notices and chore leases in Redis (contract:
//! `store/lifecycle.rs`).
//!
//! | key | type | what |
//! |---|---|---|
//! | `ns:{lifecycle}:due` | sorted set | notices `<id>:<seconds before expiry>`, scored by the unix second each is due |
//! | `ns:{lifecycle}:about` | hash | key id -> what its notices say (JSON, never a secret) |
//! | `ns:lease:<name>` | string | the instance running the chore `name`, expiring with its lease |
//! | `ns:{T}:rotated` | hash | rotated key id -> `<successor id> <lineage's first id> <digest hex> <predecessor id or ->` (the links) |
//! | `ns:{T}:lines` | sorted set | a lineage's first id, scored by until when a key of it may live (`+inf`: never) |
//! | `ns:{T}:line:<first id>` | set | the rotated ids of that lineage (to remove its links when it ends) |
//! | `ns:{T}:last:<first id>` | string | that lineage's last rotated id (its successor is the newest key) |
//!
//! `{T}` is the rotated key's tag, as for its record: a key and its
//! successors share their user, hence their tag and slot, so the rotation
//! script writes the link with the records. A lineage's links stay until
//! its score (plus `CLOCK_SKEW`) has passed; then a later rotation in the
//! same slot removes them (a few lineages at a time), or they expire: the
//! rotation script gives all four the latest end of a lineage in the tag
//! plus `CLOCK_SKEW` (no expiry while a lineage may live for ever). A
//! lineage that ended after the tag's latest end then was known has its
//! `line` set expire as it becomes sweepable: its links stay in `rotated`,
//! unfollowed, until the tag's keys expire (docs/leaked-keys.md says so).
//!
//! A rotation touches the old record, the new one and the user's pair of
//! listing indexes: one slot, since a key's id carries its user's tag and
//! the successor has the same user (see `layout.rs`), so one script does it
//! atomically. The overall and label indexes are in other slots: the
//! successor's members are written before, the old key's moved after. The
//! two schedule keys share the tag `{lifecycle}`, so a claim is one script
//! on one node.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use std::collections::HashMap;

use super::index::{Entry, Pair};
use super::layout::tag_of;
use super::RedisStore;
use crate::keys::{unix_now, Digest, KeyId, KeyRecord};
use crate::store::lifecycle::{member, parse_member, Lineage, Link, Notice, Rotated, MAX_LINEAGE};
use crate::store::listing::Sort;
use crate::store::listing::CLOCK_SKEW;
use crate::store::StoreError;

/// KEYS: old record, new record, the user's `uexp`, `unew`, the tag's
/// `rotated` and `lines`, the lineage's `line` and `last`. ARGV: old id, new
/// id, old until (unix s), the new key's expiry ('' = never), the new key's
/// `exp` and `new` members, the old key's `exp` and `new` members as they
/// are and as they become, the lineage's first id, until when the lineage
/// may live ('+inf': never), the old key's predecessor ('-': none),
/// `CLOCK_SKEW`, then the new record's fields and values.
///
/// The lineage's keys and the tag's `rotated` and `lines` expire
/// `CLOCK_SKEW` after the latest end of a lineage in the tag (none while
/// one may live for ever).
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
local to = redis.call('HGET', KEYS[1], 'rotated_to')
if to then return {'rotated', to} end
local digest = redis.call('HGET', KEYS[1], 'digest')
redis.call('HSET', KEYS[5], ARGV[1], ARGV[2] .. ' ' .. ARGV[11] .. ' ' .. digest .. ' ' .. ARGV[13])
local keep = redis.call('ZSCORE', KEYS[6], ARGV[11])
if ARGV[12] == '+inf' then
  redis.call('ZADD', KEYS[6], '+inf', ARGV[11])
elseif not keep or (keep ~= 'inf' and tonumber(keep) < tonumber(ARGV[12])) then
  redis.call('ZADD', KEYS[6], ARGV[12], ARGV[11])
end
redis.call('SADD', KEYS[7], ARGV[1])
redis.call('SET', KEYS[8], ARGV[1])
local top = redis.call('ZREVRANGE', KEYS[6], 0, 0, 'WITHSCORES')[2]
for _, k in ipairs({KEYS[7], KEYS[8], KEYS[5], KEYS[6]}) do
  local until_ = top
  if until_ == 'inf' or until_ == '+inf' or tonumber(until_) == math.huge then
    redis.call('PERSIST', k)
  else
    redis.call('EXPIREAT', k, string.format('%d', math.floor(tonumber(until_)) + tonumber(ARGV[14])))
  end
end
redis.call('HSET', KEYS[2], unpack(ARGV, 15))
if ARGV[4] ~= '' then redis.call('EXPIREAT', KEYS[2], ARGV[4]) end
redis.call('ZADD', KEYS[3], 0, ARGV[5])
redis.call('ZADD', KEYS[4], 0, ARGV[6])
redis.call('HSET', KEYS[1], 'rotated_to', ARGV[2], 'expires', ARGV[3])
redis.call('EXPIREAT', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[7])
redis.call('ZREM', KEYS[4], ARGV[8])
redis.call('ZADD', KEYS[3], 0, ARGV[9])
redis.call('ZADD', KEYS[4], 0, ARGV[10])
return {'done'}
",
    )
});

/// Revoked keys whose notices one `HDEL` drops.
const UNSCHEDULE_CHUNK: usize = 1_000;

/// Ended lineages whose links one rotation removes.
const SWEEP: usize = 10;

/// KEYS: due, about. ARGV: now (unix s), lease until (unix s), max.
/// Answers member, about ('' when dropped) for each notice claimed.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], m)
  local about = redis.call('HGET', KEYS[2], string.match(m, '^[^:]*'))
  out[#out + 1] = m
  out[#out + 1] = about or ''
end
return out
",
    )
});

/// KEYS: the lease. ARGV: holder, ttl ms. 1 if the holder has it now.
static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
",
    )
});

/// One `cmd` (`ZADD` at score 0, or `ZREM`) per set of `members`.
fn members_cmds(
    cmd: &str,
    members: &HashMap<(String, String), Vec<String>>,
) -> Vec<(String, redis::Cmd)> {
    members
        .iter()
        .map(|((tag, set), members)| {
            let mut c = redis::cmd(cmd);
            c.arg(set);
            for m in members {
                if cmd == "ZADD" {
                    c.arg(0);
                }
                c.arg(m);
            }
            (tag.clone(), c)
        })
        .collect()
}

// === impl RedisStore (lifecycle) ===

impl RedisStore {
    /// The members of `e` outside its user's slot: overall and label.
    fn elsewhere(&self, e: &Entry) -> HashMap<(String, String), Vec<String>> {
        let (uexp, unew, _) = self.pair(&Pair::User(e.user_tag.clone()));
        let mut sets = self.members_by_set(std::slice::from_ref(e));
        sets.retain(|(_, set), _| *set != uexp && *set != unew);
        sets
    }

    fn due_key(&self) -> String {
        format!("{}:{{lifecycle}}:due", self.ns)
    }

    fn about_key(&self) -> String {
        format!("{}:{{lifecycle}}:about", self.ns)
    }

    pub async fn rotate(
        &self,
        old: &KeyId,
        new: &KeyRecord,
        old_until: u64,
    ) -> Result<Rotated, StoreError> {
        // The old key's members are named by its record: read it first
        // (the script decides anyway; only a rotation changes an expiry).
        let Some(before) = self.get(old.as_str()).await? else {
            return Ok(Rotated::Gone);
        };
        let was = Entry::of(&before);
        let becomes = Entry {
            expires: old_until,
            ..was.clone()
        };
        let fresh = Entry::of(new);
        // Safe to repeat: a repeat of a rotation that ran finds it done
        // (`Already`). The successor's overall and label members first, as
        // a creation writes them (a crash leaves members without a record,
        // removed when found).
        let mut conn = self.writes.repeating();
        self.by_tag(members_cmds("ZADD", &self.elsewhere(&fresh)))
            .await?;
        let (uexp, unew, _) = self.pair(&Pair::User(fresh.user_tag.clone()));
        // The lineage: the one the old key was rotated into, else its own.
        let root = match before.rotated_from {
            Some(from) => self.link(&from).await?.map_or(*old, |l| l.root),
            None => *old,
        };
        let keep = match new.expires_at {
            Some(e) => e.max(old_until).to_string(),
            None => "+inf".to_owned(),
        };
        let mut call = ROTATE.prepare_invoke();
        call.key(self.record(old.as_str()))
            .key(self.record(new.id.as_str()))
            .key(uexp)
            .key(unew)
            .key(self.rotated_key(old.as_str()))
            .key(self.lines_key(old.as_str()))
            .key(self.line_key(old.as_str(), &root))
            .key(self.last_key(old.as_str(), &root))
            .arg(old.as_str())
            .arg(new.id.as_str())
            .arg(old_until)
            .arg(new.expires_at.map(|e| e.to_string()).unwrap_or_default());
        for e in [&fresh, &was, &becomes] {
            call.arg(e.member(Sort::Expires))
                .arg(e.member(Sort::Created));
        }
        call.arg(root.as_str())
            .arg(keep)
            .arg(
                before
                    .rotated_from
                    .map_or("-".to_owned(), |f| f.to_string()),
            )
            .arg(CLOCK_SKEW);
        for (field, value) in super::fields(new) {
            call.arg(field).arg(value);
        }
        let answer: Vec<String> = self.bounded(call.invoke_async(&mut conn)).await?;
        let rotated = match answer.as_slice() {
            [done] if done == "done" => Rotated::Done,
            [gone] if gone == "gone" => Rotated::Gone,
            // A repeat of this very rotation, after its reply was lost.
            [rotated, to] if rotated == "rotated" && to == new.id.as_str() => Rotated::Done,
            [rotated, to] if rotated == "rotated" => Rotated::Already(
                KeyId::parse(to).ok_or_else(|| StoreError::Corrupt(old.to_string()))?,
            ),
            _ => return Err(super::unexpected("rotate").into()),
        };
        match rotated {
            Rotated::Done => {
                // The old key's overall and label members, moved to its new
                // expiry. A crash before leaves them at the old one: the key
                // lists by its former expiry until its record expires, then
                // its members are removed when found.
                let mut cmds = members_cmds("ZREM", &self.elsewhere(&was));
                if was != becomes {
                    cmds.extend(members_cmds("ZADD", &self.elsewhere(&becomes)));
                }
                self.by_tag(cmds).await?;
                // Housekeeping: a failure leaves ended links a while longer.
                if let Err(e) = self.sweep_lines(old.as_str()).await {
                    tracing::warn!(error = %e, "could not remove ended rotation links");
                }
                // A successor lost in a failover fails closed, but the old
                // key's shorter life would be lost with it: not an error
                // (the successor is shown only this once), but said.
                if let Err(e) = self.replicated().await {
                    tracing::warn!(key_id = %new.id, error = %e, "rotation not confirmed by a replica");
                    return Ok(Rotated::Unconfirmed);
                }
            }
            // The successor's members without a record.
            Rotated::Gone | Rotated::Already(_) => {
                self.by_tag(members_cmds("ZREM", &self.elsewhere(&fresh)))
                    .await?;
            }
            // Never the script's answer: only said above.
            Rotated::Unconfirmed => {}
        }
        Ok(rotated)
    }

    fn rotated_key(&self, id: &str) -> String {
        format!("{}:{{{}}}:rotated", self.ns, tag_of(id))
    }

    fn lines_key(&self, id: &str) -> String {
        format!("{}:{{{}}}:lines", self.ns, tag_of(id))
    }

    /// The set of rotated ids of lineage `root`, in the slot of `id`.
    fn line_key(&self, id: &str, root: &KeyId) -> String {
        format!("{}:{{{}}}:line:{root}", self.ns, tag_of(id))
    }

    /// The lineage `root`'s last rotated key (its successor is the newest
    /// key), in the slot of `id`.
    fn last_key(&self, id: &str, root: &KeyId) -> String {
        format!("{}:{{{}}}:last:{root}", self.ns, tag_of(id))
    }

    /// The link of rotated key `id`, if kept.
    async fn link(&self, id: &KeyId) -> Result<Option<Link>, StoreError> {
        let mut conn = self.conn.repeating();
        let value: Option<String> = self
            .bounded(
                redis::cmd("HGET")
                    .arg(self.rotated_key(id.as_str()))
                    .arg(id.as_str())
                    .query_async(&mut conn),
            )
            .await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let mut parts = value.split(' ');
        let link = (|| {
            Some(Link {
                to: KeyId::parse(parts.next()?)?,
                root: KeyId::parse(parts.next()?)?,
                digest: Digest::from_hex(parts.next()?)?,
                // Links written before keygate kept it have none.
                prev: match parts.next() {
                    None | Some("-") => None,
                    Some(prev) => Some(KeyId::parse(prev)?),
                },
            })
        })();
        link.map(Some)
            .ok_or_else(|| StoreError::Corrupt(id.to_string()))
    }

    pub async fn lineage(&self, id: &KeyId) -> Result<Option<Lineage>, StoreError> {
        let Some(first) = self.link(id).await? else {
            return Ok(None);
        };
        let mut conn = self.conn.repeating();
        let keep: Option<f64> = self
            .bounded(
                redis::cmd("ZSCORE")
                    .arg(self.lines_key(id.as_str()))
                    .arg(first.root.as_str())
                    .query_async(&mut conn),
            )
            .await?;
        let ended = keep.is_none_or(|k| k + (CLOCK_SKEW as f64) < unix_now() as f64);
        if ended {
            return Ok(None);
        }
        let mut successors = vec![first.to];
        while successors.len() < MAX_LINEAGE {
            let last = *successors.last().expect("one at least");
            match self.link(&last).await? {
                Some(link) => successors.push(link.to),
                None => break,
            }
        }
        if successors.len() >= MAX_LINEAGE {
            // Cut: the keys that may live are at the lineage's end; walk
            // back from its newest key (`lineage_end`).
            tracing::warn!(key_id = %id, "a lineage of rotations longer than {MAX_LINEAGE} keys: also following it back from its newest key");
            let last: Option<String> = self
                .bounded(
                    redis::cmd("GET")
                        .arg(self.last_key(id.as_str(), &first.root))
                        .query_async(&mut conn),
                )
                .await?;
            let last = match last {
                Some(l) => {
                    Some(KeyId::parse(&l).ok_or_else(|| StoreError::Corrupt(id.to_string()))?)
                }
                None => None,
            };
            let mut walk = crate::store::lifecycle::BackWalk::new(id, &successors);
            let mut cur = last;
            while let Some(key) = cur {
                let Some(link) = self.link(&key).await? else {
                    break;
                };
                cur = walk.step(key, &link);
            }
            successors.extend(walk.keys());
        }
        Ok(Some(Lineage {
            digest: first.digest,
            successors,
        }))
    }

    /// Remove the links of a few lineages in the slot of `id` that ended.
    async fn sweep_lines(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.repeating();
        let ended: Vec<String> = self
            .bounded(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(self.lines_key(id))
                    .arg("-inf")
                    .arg(format!("({}", unix_now().saturating_sub(CLOCK_SKEW)))
                    .arg("LIMIT")
                    .arg(0)
                    .arg(SWEEP)
                    .query_async(&mut conn),
            )
            .await?;
        for root in ended.iter().filter_map(|r| KeyId::parse(r)) {
            let line = self.line_key(id, &root);
            let members: Vec<String> = self
                .bounded(redis::cmd("SMEMBERS").arg(&line).query_async(&mut conn))
                .await?;
            let mut pipe = redis::pipe();
            pipe.atomic();
            if !members.is_empty() {
                pipe.cmd("HDEL")
                    .arg(self.rotated_key(id))
                    .arg(&members)
                    .ignore();
            }
            pipe.del(&line)
                .ignore()
                .del(self.last_key(id, &root))
                .ignore()
                .zrem(self.lines_key(id), root.as_str())
                .ignore();
            self.bounded(pipe.query_async::<()>(&mut conn)).await?;
        }
        Ok(())
    }

    pub async fn schedule(
        &self,
        id: &KeyId,
        about: &str,
        due: &[(u64, u64)],
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(self.about_key(), id.as_str(), about)
            .ignore();
        for (before, at) in due {
            pipe.zadd(self.due_key(), member(id, *before), *at).ignore();
        }
        let mut conn = self.conn.repeating();
        self.bounded(pipe.query_async::<()>(&mut conn)).await
    }

    pub async fn claim_notices(
        &self,
        now: u64,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Notice>, StoreError> {
        let mut call = CLAIM.prepare_invoke();
        call.key(self.due_key())
            .key(self.about_key())
            .arg(now)
            .arg(now + lease.as_secs().max(1))
            .arg(max);
        // Not repeated: checked first (a repeat would lease again, harmlessly).
        let answer: Vec<String> = self
            .bounded(async {
                let mut conn = self.conn.checked().await?;
                call.invoke_async(&mut conn).await
            })
            .await?;
        let mut notices = Vec::new();
        let mut stray = Vec::new();
        for pair in answer.chunks(2) {
            let [m, about] = pair else {
                return Err(super::unexpected("claim").into());
            };
            match parse_member(m) {
                Some((id, before)) => notices.push(Notice {
                    id,
                    before,
                    about: (!about.is_empty()).then(|| about.clone()),
                }),
                None => stray.push(m.clone()),
            }
        }
        if !stray.is_empty() {
            let mut conn = self.conn.repeating();
            let _: () = self
                .bounded(
                    redis::cmd("ZREM")
                        .arg(self.due_key())
                        .arg(&stray)
                        .query_async(&mut conn),
                )
                .await?;
        }
        Ok(notices)
    }

    pub async fn notice_sent(&self, id: &KeyId, before: u64) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zrem(self.due_key(), member(id, before))
            .ignore();
        if before == 0 {
            pipe.hdel(self.about_key(), id.as_str()).ignore();
        }
        let mut conn = self.conn.repeating();
        self.bounded(pipe.query_async::<()>(&mut conn)).await
    }

    pub async fn unschedule(&self, ids: Option<&[KeyId]>) -> Result<(), StoreError> {
        let mut conn = self.conn.repeating();
        match ids {
            Some([]) => Ok(()),
            // In chunks: one HDEL of a million fields would block Redis
            // (every authentication) for most of a second.
            Some(ids) => {
                for chunk in ids.chunks(UNSCHEDULE_CHUNK) {
                    let fields: Vec<&str> = chunk.iter().map(KeyId::as_str).collect();
                    self.bounded(
                        redis::cmd("HDEL")
                            .arg(self.about_key())
                            .arg(fields)
                            .query_async::<()>(&mut conn),
                    )
                    .await?;
                }
                Ok(())
            }
            None => {
                self.bounded(
                    redis::cmd("DEL")
                        .arg(self.about_key())
                        .query_async(&mut conn),
                )
                .await
            }
        }
    }

    pub async fn unscheduled(&self, ids: &[KeyId]) -> Result<Vec<KeyId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let fields: Vec<&str> = ids.iter().map(KeyId::as_str).collect();
        let mut conn = self.conn.repeating();
        let about: Vec<Option<String>> = self
            .bounded(
                redis::cmd("HMGET")
                    .arg(self.about_key())
                    .arg(fields)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(ids
            .iter()
            .zip(about)
            .filter(|(_, a)| a.is_none())
            .map(|(id, _)| *id)
            .collect())
    }

    pub async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.conn.repeating();
        let held: i64 = self
            .bounded(
                LEASE
                    .key(format!("{}:lease:{name}", self.ns))
                    .arg(holder)
                    .arg(ttl.as_millis().max(1) as u64)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(held == 1)
    }
}
