//! The listing indexes (layout 3): every key by creation and by expiry,
//! overall, per user and per label, as sorted sets whose members are
//! ordered by their bytes (all scores 0, read with `ZRANGEBYLEX`).
//!
//! A member is the key's two times and id, the sort's time first, then the
//! tags that name the key's other indexes:
//!
//! ```text
//! <first:11><second:11><id:12><label tag:4>[<user tag:4>]
//! ```
//!
//! Times are unix seconds in 11 digits, `~~~~~~~~~~~` for "never" (after
//! every digit). The user tag is written only when it is not the id's own
//! first 4 characters (ids of the first layout). So a member alone says
//! where the key stands in every order and which indexes hold it: a page
//! resumes from any member exactly (no ties: the id is in it), an expired
//! member is found by its bytes (`- .. [<now>~`), and removing a key from
//! every index needs no record, which may be gone already (expired).
//!
//! | index | keys (`exp` = expiry order, `new` = creation order) |
//! |---|---|
//! | overall | `ns:{gNN}:gexp`, `ns:{gNN}:gnew`: 16 buckets `NN` = 00..15, by the id's tag |
//! | per user | `ns:{U}:uexp`, `ns:{U}:unew`: `U` = the user's tag (`keys::format::user_tag`) |
//! | per label | `ns:{L}:lexp`, `ns:{L}:lnew`: `L` = `label_tag(label)` |
//!
//! Each pair (`exp` and `new` of one scope) shares a hash tag, so one
//! script changes both in a Cluster; the user pair shares the slot of the
//! user's records. The overall index is cut into buckets so that it spreads
//! over a Cluster's masters instead of growing on one; a page merges the
//! buckets (`scan.rs`). Users (and labels) whose tags collide share a pair:
//! every listing checks the record's user and label before showing it.

use std::collections::HashMap;

use futures_util::future::try_join_all;

use super::connect::Conn;
use super::{unexpected, RedisStore};
use crate::keys::format::{user_tag, TAG_LEN};
use crate::keys::{KeyId, KeyRecord};
use crate::store::listing::{Position, Sort, NEVER};
use crate::store::StoreError;

/// Buckets of the overall index.
pub const BUCKETS: usize = 16;

/// Expired members a sweep of one pair removes at most.
const SWEEP: usize = 100;

/// Remove up to ARGV[2] members of the pair KEYS[1] (`exp`) / KEYS[2]
/// (`new`) that sort at or before ARGV[1] (expired), then add ARGV[3] to
/// `exp` and ARGV[4] to `new` when given; answers the removed `exp` members.
const SWEEP_SCRIPT: &str = r"
local dead = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #dead > 0 then
  local swapped = {}
  for i, m in ipairs(dead) do
    swapped[i] = string.sub(m, 12, 22) .. string.sub(m, 1, 11) .. string.sub(m, 23)
  end
  redis.call('ZREM', KEYS[1], unpack(dead))
  redis.call('ZREM', KEYS[2], unpack(swapped))
end
if ARGV[3] then
  redis.call('ZADD', KEYS[1], 0, ARGV[3])
  redis.call('ZADD', KEYS[2], 0, ARGV[4])
end
return dead
";

/// A key as its index members describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub created: u64,
    /// `NEVER` for a key without expiry.
    pub expires: u64,
    pub id: KeyId,
    pub user_tag: String,
    pub label_tag: String,
}

/// Which scope's pair of sorted sets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pair {
    Bucket(usize),
    User(String),
    Label(String),
}

// === impl Entry ===

impl Entry {
    pub fn of(r: &KeyRecord) -> Entry {
        Entry {
            created: r.created_at,
            expires: r.expires_at.unwrap_or(NEVER),
            id: r.id,
            user_tag: user_tag(&r.user),
            label_tag: label_tag(&r.label),
        }
    }

    pub fn position(&self, sort: Sort) -> Position {
        let expires = (self.expires != NEVER).then_some(self.expires);
        Position::of(sort, self.created, expires, self.id)
    }

    /// The member of this key in `sort`'s sets.
    pub fn member(&self, sort: Sort) -> String {
        let mut m = prefix(&self.position(sort));
        m.push_str(&self.label_tag);
        if self.user_tag != tag_of_id(&self.id) {
            m.push_str(&self.user_tag);
        }
        m
    }

    /// A member of `sort`'s sets, read back; `None` if it is not one.
    pub fn parse(member: &str, sort: Sort) -> Option<Entry> {
        if !member.is_ascii() || !(member.len() == 38 || member.len() == 42) {
            return None;
        }
        let first = time(&member[..11])?;
        let second = time(&member[11..22])?;
        let id = KeyId::parse(&member[22..34])?;
        let label_tag = member[34..38].to_owned();
        let user_tag = member.get(38..42).unwrap_or(tag_of_id(&id)).to_owned();
        let (created, expires) = match sort {
            Sort::Created => (first, second),
            Sort::Expires => (second, first),
        };
        Some(Entry {
            created,
            expires,
            id,
            user_tag,
            label_tag,
        })
    }

    /// The pairs that hold this key.
    pub fn pairs(&self) -> [Pair; 3] {
        [
            Pair::Bucket(bucket_of(&self.id)),
            Pair::User(self.user_tag.clone()),
            Pair::Label(self.label_tag.clone()),
        ]
    }
}

/// A position as the first 34 bytes of its members: every member of that
/// key starts with it, and no other member does.
pub fn prefix(p: &Position) -> String {
    format!("{}{}{}", time11(p.first), time11(p.second), p.id)
}

/// 11 digits, or `~` x 11 for `NEVER` (after every digit).
pub fn time11(t: u64) -> String {
    match t {
        NEVER => "~".repeat(11),
        t => format!("{:011}", t.min(99_999_999_999)),
    }
}

fn time(text: &str) -> Option<u64> {
    if text == "~~~~~~~~~~~" {
        return Some(NEVER);
    }
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse().ok())?
}

/// The tag of a label's pair: like the user's tag, a hash of the name.
pub fn label_tag(label: &str) -> String {
    user_tag(&format!("\0label\0{label}"))
}

fn tag_of_id(id: &KeyId) -> &str {
    &id.as_str()[..TAG_LEN]
}

/// The overall index's bucket of a key: by the id's tag, so a user's keys
/// share one.
pub fn bucket_of(id: &KeyId) -> usize {
    crc32fast::hash(tag_of_id(id).as_bytes()) as usize % BUCKETS
}

// === impl RedisStore (index names and changes) ===

impl RedisStore {
    /// The hash tag of a pair, and its `exp` and `new` sets.
    pub(super) fn pair(&self, pair: &Pair) -> (String, String, String) {
        let (tag, scope) = match pair {
            Pair::Bucket(n) => (format!("g{n:02}"), "g"),
            Pair::User(tag) => (tag.clone(), "u"),
            Pair::Label(tag) => (tag.clone(), "l"),
        };
        let key = |order: &str| format!("{}:{{{tag}}}:{scope}{order}", self.ns);
        (key("exp"), key("new"), tag)
    }

    /// The set of `pair` in `sort`'s order.
    pub(super) fn pair_set(&self, pair: &Pair, sort: Sort) -> String {
        let (exp, new, _) = self.pair(pair);
        match sort {
            Sort::Created => new,
            Sort::Expires => exp,
        }
    }

    /// The sweep of `pair` as a command (its hash tag first): removes up to
    /// `max` members expired `CLOCK_SKEW` ago, then adds `add` when given.
    pub(super) fn sweep_cmd(
        &self,
        pair: &Pair,
        now: u64,
        max: usize,
        add: Option<&Entry>,
    ) -> (String, redis::Cmd) {
        let (exp, new, tag) = self.pair(pair);
        let dead_until = now.saturating_sub(crate::store::listing::CLOCK_SKEW);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SWEEP_SCRIPT)
            .arg(2)
            .arg(exp)
            .arg(new)
            .arg(format!("[{}~", time11(dead_until)))
            .arg(max);
        if let Some(e) = add {
            cmd.arg(e.member(Sort::Expires))
                .arg(e.member(Sort::Created));
        }
        (tag, cmd)
    }

    /// Sweep expired members out of `pairs` (at most `SWEEP` each), and
    /// out of the other indexes of the keys found there.
    pub(super) async fn sweep(&self, pairs: &[Pair], now: u64) -> Result<(), StoreError> {
        let cmds = pairs
            .iter()
            .map(|p| self.sweep_cmd(p, now, SWEEP, None))
            .collect();
        let dead = self.dead_of(self.by_tag(cmds).await?)?;
        self.unindex(&dead).await
    }

    /// The entries named by sweep answers (lists of `exp` members).
    pub(super) fn dead_of(&self, answers: Vec<redis::Value>) -> Result<Vec<Entry>, StoreError> {
        let mut dead = Vec::new();
        for answer in answers {
            let members: Vec<String> =
                redis::from_redis_value(answer).map_err(|_| unexpected("EVAL"))?;
            dead.extend(
                members
                    .iter()
                    .filter_map(|m| Entry::parse(m, Sort::Expires)),
            );
        }
        Ok(dead)
    }

    /// Remove keys from every index that holds them.
    pub(super) async fn unindex(&self, entries: &[Entry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // Per set, every member to remove: one ZREM each.
        let cmds = self
            .members_by_set(entries)
            .into_iter()
            .map(|((tag, set), members)| {
                let mut cmd = redis::cmd("ZREM");
                cmd.arg(set).arg(members);
                (tag, cmd)
            })
            .collect();
        self.by_tag(cmds).await.map(|_| ())
    }

    /// Every index member of `entries`, by (hash tag, sorted set).
    pub(super) fn members_by_set(
        &self,
        entries: &[Entry],
    ) -> HashMap<(String, String), Vec<String>> {
        let mut sets: HashMap<(String, String), Vec<String>> = HashMap::new();
        for e in entries {
            for pair in e.pairs() {
                let (exp, new, tag) = self.pair(&pair);
                for (set, sort) in [(exp, Sort::Expires), (new, Sort::Created)] {
                    sets.entry((tag.clone(), set))
                        .or_default()
                        .push(e.member(sort));
                }
            }
        }
        sets
    }

    /// Writes, each with the hash tag of its keys, on the `writes`
    /// connection (a later `WAIT` covers them): see `pipelined`.
    pub(super) async fn by_tag(
        &self,
        cmds: Vec<(String, redis::Cmd)>,
    ) -> Result<Vec<redis::Value>, StoreError> {
        self.pipelined(&self.writes, cmds).await
    }

    /// Reads, each with the hash tag of its keys: see `pipelined`.
    pub(super) async fn read_by_tag(
        &self,
        cmds: Vec<(String, redis::Cmd)>,
    ) -> Result<Vec<redis::Value>, StoreError> {
        self.pipelined(&self.conn, cmds).await
    }

    /// Commands sent as one pipeline (a Cluster: one per hash tag, since a
    /// pipeline goes to one node), the pipelines in parallel; the answers
    /// in the commands' order. Only for commands safe to repeat.
    async fn pipelined(
        &self,
        conn: &Conn,
        cmds: Vec<(String, redis::Cmd)>,
    ) -> Result<Vec<redis::Value>, StoreError> {
        let n = cmds.len();
        let mut groups: HashMap<String, Vec<(usize, redis::Cmd)>> = HashMap::new();
        for (i, (tag, cmd)) in cmds.into_iter().enumerate() {
            let tag = if conn.is_cluster() {
                tag
            } else {
                String::new()
            };
            groups.entry(tag).or_default().push((i, cmd));
        }
        let calls = groups.into_values().map(|group| {
            let mut pipe = redis::pipe();
            for (_, cmd) in &group {
                pipe.add_command(cmd.clone());
            }
            let mut conn = conn.repeating();
            async move {
                let answers: Vec<redis::Value> = self.bounded(pipe.query_async(&mut conn)).await?;
                Ok::<_, StoreError>(group.into_iter().map(|(i, _)| i).zip(answers))
            }
        });
        let mut out = vec![redis::Value::Nil; n];
        for (i, v) in try_join_all(calls).await?.into_iter().flatten() {
            out[i] = v;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_back_and_sort_by_their_times() {
        let id = KeyId::parse("AbCdEfGhIjKl").unwrap();
        let e = Entry {
            created: 1_700_000_000,
            expires: NEVER,
            id,
            user_tag: "AbCd".into(),
            label_tag: "LbLb".into(),
        };
        for sort in [Sort::Created, Sort::Expires] {
            let m = e.member(sort);
            assert_eq!(m.len(), 38, "{m}");
            assert_eq!(Entry::parse(&m, sort), Some(e.clone()));
        }
        assert!(e
            .member(Sort::Expires)
            .starts_with("~~~~~~~~~~~01700000000AbCd"));
        let old = Entry {
            user_tag: "Zzzz".into(),
            expires: 1_800_000_000,
            ..e.clone()
        };
        let m = old.member(Sort::Created);
        assert_eq!(m.len(), 42);
        assert_eq!(Entry::parse(&m, Sort::Created), Some(old.clone()));
        // Byte order is time order, and "never" comes last.
        assert!(old.member(Sort::Expires) < e.member(Sort::Expires));
        assert!(prefix(&old.position(Sort::Expires)) < old.member(Sort::Expires));
        assert_eq!(Entry::parse("short", Sort::Created), None);
    }

    #[test]
    fn buckets_spread_and_follow_the_tag() {
        let mut seen = [0usize; BUCKETS];
        for i in 0..1600 {
            let (_, id) = crate::keys::format::generate("kg", &format!("user{i}"));
            seen[bucket_of(&id)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        assert_ne!(label_tag("ci"), user_tag("ci"));
    }
}
