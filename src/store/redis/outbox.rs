//! The webhook outbox in Redis (contract: `store/outbox.rs`). Per queue `q`:
//!
//! | key | type | what |
//! |---|---|---|
//! | `ns:outbox:{q}:due` | sorted set | message ids, scored by when each is due (Redis ms); its TTL twice the longest `keep` of a message in it |
//! | `ns:outbox:{q}:m:<id>` | hash | `body`, `attempts`; its TTL is the queue's `keep` |
//!
//! `{q}` is a Cluster hash tag: a queue's keys share a slot, so the scripts
//! below touch one node. An id whose hash has expired is dropped from the
//! sorted set when a claim meets it.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::RedisStore;
use crate::store::outbox::{Claim, Claimed};
use crate::store::StoreError;

/// Redis' clock in milliseconds, as the first lines of each script.
macro_rules! now_ms {
    () => {
        "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}

/// KEYS: due, message. ARGV: id, body, keep ms. A message still kept under
/// the id is left as it is (its attempts, its lease, when it is due), made
/// due only if its id is in no queue. The due set lives twice as long as
/// every message in it (from the last push, never shortened): a
/// queue nobody claims from any more (its entry removed, its URL changed)
/// is gone once its messages are, rather than keep their ids for ever.
static PUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        now_ms!(),
        r"
local keep = tonumber(ARGV[3])
local function outlive()
  -- -1 (a set from before it had a TTL) or shorter than twice this
  -- message's keep: room for a claim to find the id after its message
  -- expired, and count it dropped.
  if redis.call('PTTL', KEYS[1]) < 2 * keep then
    redis.call('PEXPIRE', KEYS[1], 2 * keep)
  end
end
if redis.call('HSETNX', KEYS[2], 'body', ARGV[2]) == 0 then
  -- Kept, but due nowhere (its id evicted or deleted): due again now.
  -- NX: a leased or backing-off message keeps when it is due.
  redis.call('ZADD', KEYS[1], 'NX', now, ARGV[1])
  outlive()
  return 1
end
redis.call('HSET', KEYS[2], 'attempts', 0)
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('ZADD', KEYS[1], now, ARGV[1])
outlive()
return 0
"
    ))
});

/// KEYS: due. ARGV: lease ms, max, message key prefix. Answers how many
/// ids it dropped (their messages expired), then id, body, attempts for
/// each message claimed.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        now_ms!(),
        r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {0}
for _, id in ipairs(ids) do
  local key = ARGV[3] .. id
  local body = redis.call('HGET', key, 'body')
  if body then
    local n = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
    out[#out + 1] = id
    out[#out + 1] = body
    out[#out + 1] = n
  else
    redis.call('ZREM', KEYS[1], id)
    out[1] = out[1] + 1
  end
end
return out
"
    ))
});

/// KEYS: due. ARGV: id, after ms. Only a message still queued.
static RETRY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        now_ms!(),
        r"
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 0
"
    ))
});

// === impl RedisStore (outbox) ===

impl RedisStore {
    fn outbox_due(&self, queue: &str) -> String {
        format!("{}:outbox:{{{queue}}}:due", self.ns)
    }

    fn outbox_message_prefix(&self, queue: &str) -> String {
        format!("{}:outbox:{{{queue}}}:m:", self.ns)
    }

    pub async fn outbox_push(
        &self,
        queue: &str,
        id: &str,
        body: &str,
        keep: Duration,
    ) -> Result<(), StoreError> {
        // Safe to repeat: a message already kept under the id stays as it is.
        let mut conn = self.conn.repeating();
        let message = format!("{}{id}", self.outbox_message_prefix(queue));
        self.bounded(
            PUSH.key(self.outbox_due(queue))
                .key(message)
                .arg(id)
                .arg(body)
                .arg(keep.as_millis() as u64)
                .invoke_async::<i64>(&mut conn),
        )
        .await
        .map(|_| ())
    }

    pub async fn outbox_claim(
        &self,
        queue: &str,
        lease: Duration,
        max: usize,
    ) -> Result<Claim, StoreError> {
        // Not repeated: a lost reply leaves its messages leased until the
        // lease runs out, and a repeat would count their attempts twice.
        let flat: Vec<redis::Value> = self
            .bounded(async {
                let mut conn = self.conn.checked().await?;
                CLAIM
                    .key(self.outbox_due(queue))
                    .arg(lease.as_millis() as u64)
                    .arg(max)
                    .arg(self.outbox_message_prefix(queue))
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        let corrupt = || StoreError::Corrupt(format!("outbox {queue}"));
        let (expired, flat) = flat.split_first().ok_or_else(corrupt)?;
        let expired = redis::from_redis_value::<u64>(expired.clone()).map_err(|_| corrupt())?;
        let mut out = Vec::with_capacity(flat.len() / 3);
        for triple in flat.chunks(3) {
            let [id, body, attempts] = triple else {
                return Err(StoreError::Corrupt(format!("outbox {queue}")));
            };
            let text = |v: &redis::Value| redis::from_redis_value::<String>(v.clone());
            let (Ok(id), Ok(body), Ok(attempts)) = (
                text(id),
                text(body),
                redis::from_redis_value::<u32>(attempts.clone()),
            ) else {
                return Err(StoreError::Corrupt(format!("outbox {queue}")));
            };
            out.push(Claimed { id, body, attempts });
        }
        Ok(Claim {
            messages: out,
            expired,
        })
    }

    pub async fn outbox_done(&self, queue: &str, id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.repeating();
        let message = format!("{}{id}", self.outbox_message_prefix(queue));
        self.bounded(
            redis::pipe()
                .zrem(self.outbox_due(queue), id)
                .ignore()
                .del(message)
                .ignore()
                .query_async::<()>(&mut conn),
        )
        .await
    }

    pub async fn outbox_retry(
        &self,
        queue: &str,
        id: &str,
        after: Duration,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.repeating();
        self.bounded(
            RETRY
                .key(self.outbox_due(queue))
                .arg(id)
                .arg(after.as_millis() as u64)
                .invoke_async::<i64>(&mut conn),
        )
        .await
        .map(|_| ())
    }
}
