//! The Redis side of the fleet protocol (`crate::fleet`): the members
//! registry, a sorted set scored by each member's expiry in Redis' own clock
//! (so instances' clocks never have to agree), the store's epoch, and pub/sub.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::RedisStore;
use crate::store::StoreError;

/// Drops lapsed members, then (re-)registers one until `now + ttl_ms`.
/// Answers the longest lease (ms) among the registered members (entries
/// `<lease ms>:<id>`), so every member learns the leases of the fleet.
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local longest = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local lease = tonumber(string.match(m, '^(%d+):'))
  if lease and lease > longest then
    longest = lease
  end
end
return longest
",
    )
});

/// The members whose registration has not lapsed.
static MEMBERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
",
    )
});

/// The store's epoch: `<Redis ms when made>-<random>`, made now from ARGV[1]
/// if missing. Answers `{epoch, its age in ms by Redis' clock}` (0: just
/// made; an epoch whose creation time cannot be read counts as just made).
static EPOCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('GET', KEYS[1])
if v then
  local made = tonumber(string.match(v, '^(%d+)-'))
  if made and made < now then
    return {v, now - made}
  end
  return {v, 0}
end
v = now .. '-' .. ARGV[1]
redis.call('SET', KEYS[1], v)
return {v, 0}
",
    )
});

impl RedisStore {
    fn epoch_key(&self) -> String {
        format!("{}:fleet:epoch", self.ns)
    }

    /// The store's epoch, made (from `fresh`, a random text) if there is
    /// none: a store emptied in place outside keygate (FLUSHALL, FLUSHDB)
    /// loses it, so a member that sees another epoch than the one it joined
    /// under knows its cache may hold keys the store no longer has. With
    /// its age by Redis' clock (zero when this call made it): a young epoch
    /// means the store was emptied or is new a moment ago, whoever made it.
    pub async fn epoch(&self, fresh: &str) -> Result<(String, Duration), StoreError> {
        let mut conn = self.conn.repeating();
        let (epoch, age_ms): (String, u64) = self
            .bounded(
                EPOCH
                    .key(self.epoch_key())
                    .arg(fresh)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok((epoch, Duration::from_millis(age_ms)))
    }

    /// The store's epoch as it is (`None`: gone).
    pub async fn current_epoch(&self) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.repeating();
        self.bounded(
            redis::cmd("GET")
                .arg(self.epoch_key())
                .query_async(&mut conn),
        )
        .await
    }

    fn members_key(&self) -> String {
        format!("{}:fleet:members", self.ns)
    }

    /// A fleet channel's full name.
    pub fn channel(&self, name: &str) -> String {
        format!("{}:fleet:{name}", self.ns)
    }

    /// Register `member` for `ttl_ms` milliseconds from now (Redis' clock).
    /// Like every call here, safe to repeat: the same registration again.
    /// Answers the longest lease among the registered members.
    pub async fn heartbeat(&self, member: &str, ttl_ms: u64) -> Result<Duration, StoreError> {
        let mut conn = self.conn.repeating();
        self.bounded(
            HEARTBEAT
                .key(self.members_key())
                .arg(member)
                .arg(ttl_ms)
                .invoke_async(&mut conn),
        )
        .await
        .map(Duration::from_millis)
    }

    pub async fn members(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.repeating();
        self.bounded(MEMBERS.key(self.members_key()).invoke_async(&mut conn))
            .await
    }

    /// Deregister (a clean shutdown), so revocations stop waiting for us.
    pub async fn leave(&self, member: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.repeating();
        self.bounded(
            redis::cmd("ZREM")
                .arg(self.members_key())
                .arg(member)
                .query_async(&mut conn),
        )
        .await
    }
}
