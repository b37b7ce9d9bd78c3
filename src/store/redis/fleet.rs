//! The Redis side of the fleet protocol (`crate::fleet`): the members
//! registry, a sorted set scored by each member's expiry in Redis' own clock
//! (so instances' clocks never have to agree), the store's epoch, and pub/sub.

use std::sync::LazyLock;

use redis::Script;

use super::RedisStore;
use crate::store::StoreError;

/// Drops lapsed members, then (re-)registers one until `now + ttl_ms`.
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 0
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
/// if missing. Answers `{epoch, 1 if it was just made else 0}`.
static EPOCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if v then
  return {v, 0}
end
local t = redis.call('TIME')
v = (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. '-' .. ARGV[1]
redis.call('SET', KEYS[1], v)
return {v, 1}
",
    )
});

impl RedisStore {
    fn epoch_key(&self) -> String {
        format!("{}:fleet:epoch", self.ns)
    }

    /// The store's epoch, made (from `fresh`, a random text) if there is
    /// none: a store emptied outside keygate (FLUSHALL, FLUSHDB, eviction)
    /// loses it, so a member that sees another epoch than the one it joined
    /// under knows its cache may hold keys the store no longer has. `true`
    /// when this call made it.
    pub async fn epoch(&self, fresh: &str) -> Result<(String, bool), StoreError> {
        let mut conn = self.conn.repeating();
        let (epoch, made): (String, i64) = self
            .bounded(
                EPOCH
                    .key(self.epoch_key())
                    .arg(fresh)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok((epoch, made == 1))
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
    pub async fn heartbeat(&self, member: &str, ttl_ms: u64) -> Result<(), StoreError> {
        let mut conn = self.conn.repeating();
        self.bounded(
            HEARTBEAT
                .key(self.members_key())
                .arg(member)
                .arg(ttl_ms)
                .invoke_async(&mut conn),
        )
        .await
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
