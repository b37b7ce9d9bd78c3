//! The Redis store. Layout under the namespace `ns`:
//!
//! | key | type | what |
//! |---|---|---|
//! | `ns:key:<id>` | hash | the record (digest, never the secret); its TTL is the key's expiry |
//! | `ns:all` | sorted set | every key id, scored by expiry (`+inf` = never) |
//! | `ns:user:<user>` | sorted set | the user's key ids, scored likewise |
//!
//! The indexes are pruned of expired ids by score before they are read, and
//! of revoked ids as they are revoked, so they never outgrow the live keys for long.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use super::StoreError;
use crate::keys::{unix_now, Digest, KeyId, KeyRecord, Scope, Source};

/// Ids fetched per round trip when revoking everything.
const BATCH: isize = 1000;

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    ns: String,
    /// Every call is bounded by this, on top of the connection's own timeouts.
    timeout: Duration,
    touch: redis::Script,
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Unavailable(e)
    }
}

// === impl RedisStore ===

impl RedisStore {
    pub async fn connect(url: &str, ns: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            timeout * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Timeout(timeout))??;
        Ok(RedisStore {
            conn,
            ns: ns.to_owned(),
            timeout,
            // Only an existing record is touched: a revoked or expired key stays gone.
            touch: redis::Script::new(
                "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'last_used', ARGV[1]) end return 0",
            ),
        })
    }

    fn key(&self, id: &str) -> String {
        format!("{}:key:{id}", self.ns)
    }

    fn all(&self) -> String {
        format!("{}:all", self.ns)
    }

    fn user(&self, user: &str) -> String {
        format!("{}:user:{user}", self.ns)
    }

    /// Bound a call by the store timeout.
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    pub async fn insert(&self, r: &KeyRecord) -> Result<(), StoreError> {
        let key = self.key(r.id.as_str());
        let score = r.expires_at.map_or("+inf".to_owned(), |e| e.to_string());
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[
                    ("user", r.user.as_str()),
                    ("label", r.label.as_str()),
                    ("scope", r.scope.as_str()),
                    ("created", &r.created_at.to_string()),
                    (
                        "expires",
                        &r.expires_at.map(|e| e.to_string()).unwrap_or_default(),
                    ),
                    ("digest", &r.digest.to_hex()),
                ],
            )
            .ignore();
        if let Some(source) = r.source {
            pipe.hset(&key, "source", source.as_str()).ignore();
        }
        if let Some(ttl) = r.ttl(unix_now()) {
            pipe.expire(&key, ttl.as_secs() as i64).ignore();
        }
        pipe.cmd("ZADD")
            .arg(self.all())
            .arg(&score)
            .arg(r.id.as_str())
            .ignore();
        pipe.cmd("ZADD")
            .arg(self.user(&r.user))
            .arg(&score)
            .arg(r.id.as_str())
            .ignore();
        let mut conn = self.conn.clone();
        self.bounded(pipe.query_async::<()>(&mut conn)).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> = self.bounded(conn.hgetall(self.key(id))).await?;
        parse(id, fields)
    }

    pub async fn list(&self, user: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let index = user.map_or_else(|| self.all(), |u| self.user(u));
        let mut conn = self.conn.clone();
        let now = unix_now().to_string();
        let (ids,): (Vec<String>,) = self
            .bounded(
                redis::pipe()
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(&index)
                    .arg("-inf")
                    .arg(&now)
                    .ignore()
                    .zrange(&index, 0, -1)
                    .query_async(&mut conn),
            )
            .await?;
        let records = self.fetch(&ids).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut gone = Vec::new();
        for (id, fields) in ids.iter().zip(records) {
            match parse(id, fields)? {
                Some(r) => out.push(r),
                None => gone.push(id.clone()),
            }
        }
        if !gone.is_empty() {
            let _: () = self.bounded(conn.zrem(&index, &gone)).await?;
        }
        Ok(out)
    }

    async fn fetch(&self, ids: &[String]) -> Result<Vec<HashMap<String, String>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.key(id));
        }
        let mut conn = self.conn.clone();
        self.bounded(pipe.query_async(&mut conn)).await
    }

    pub async fn revoke_ids(&self, ids: &[KeyId]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        let mut lookup = redis::pipe();
        for id in ids {
            lookup.hget(self.key(id.as_str()), "user");
        }
        let users: Vec<Option<String>> = self.bounded(lookup.query_async(&mut conn)).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (id, user) in ids.iter().zip(&users) {
            pipe.del(self.key(id.as_str()));
            pipe.zrem(self.all(), id.as_str()).ignore();
            if let Some(u) = user {
                pipe.zrem(self.user(u), id.as_str()).ignore();
            }
        }
        let deleted: Vec<u64> = self.bounded(pipe.query_async(&mut conn)).await?;
        Ok(deleted.iter().sum())
    }

    pub async fn revoke_users(&self, users: &[String]) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut conn = self.conn.clone();
        for user in users {
            let index = self.user(user);
            let ids: Vec<String> = self.bounded(conn.zrange(&index, 0, -1)).await?;
            let mut pipe = redis::pipe();
            pipe.atomic();
            for id in &ids {
                pipe.del(self.key(id));
            }
            if !ids.is_empty() {
                pipe.zrem(self.all(), &ids).ignore();
            }
            pipe.del(&index).ignore();
            let deleted: Vec<u64> = self.bounded(pipe.query_async(&mut conn)).await?;
            n += deleted.iter().sum::<u64>();
        }
        Ok(n)
    }

    /// Revoke every key that exists when the call starts, in batches.
    pub async fn revoke_all(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut conn = self.conn.clone();
        loop {
            let ids: Vec<String> = self.bounded(conn.zrange(self.all(), 0, BATCH - 1)).await?;
            if ids.is_empty() {
                return Ok(n);
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.del(self.key(id));
            }
            pipe.zrem(self.all(), &ids).ignore();
            let deleted: Vec<u64> = self.bounded(pipe.query_async(&mut conn)).await?;
            n += deleted.iter().sum::<u64>();
        }
    }

    pub async fn touch(&self, id: &KeyId, at: u64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.touch.key(self.key(id.as_str()));
        call.arg(at);
        self.bounded(call.invoke_async::<i64>(&mut conn))
            .await
            .map(|_| ())
    }

    pub async fn settings(&self) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(conn.get(format!("{}:settings", self.ns)))
            .await
    }

    pub async fn put_settings(&self, json: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(conn.set(format!("{}:settings", self.ns), json))
            .await
    }

    fn audit(&self) -> String {
        format!("{}:audit", self.ns)
    }

    /// XADD with the event time as the entry id's milliseconds, trimmed to ~KEEP.
    pub async fn append_audit(&self, e: &crate::audit::Event) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.audit())
            .arg("MAXLEN")
            .arg("~")
            .arg(crate::audit::KEEP)
            .arg(format!("{}-*", e.at_ms))
            .arg("actor")
            .arg(&e.actor)
            .arg("action")
            .arg(&e.action)
            .arg("target")
            .arg(&e.target)
            .arg("count")
            .arg(e.count)
            .arg("client")
            .arg(&e.client);
        if let Some(source) = e.source {
            cmd.arg("source").arg(source.as_str());
        }
        self.bounded(cmd.query_async::<redis::Value>(&mut conn))
            .await
            .map(|_| ())
    }

    pub async fn audit_since(
        &self,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<crate::audit::Event>, StoreError> {
        let mut conn = self.conn.clone();
        let entries: Vec<(String, HashMap<String, String>)> = self
            .bounded(
                redis::cmd("XRANGE")
                    .arg(self.audit())
                    .arg(since_ms)
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(entries
            .into_iter()
            .map(|(id, mut f)| {
                let at_ms = id
                    .split('-')
                    .next()
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(0);
                crate::audit::Event {
                    at_ms,
                    time: crate::audit::time_of(at_ms),
                    actor: f.remove("actor").unwrap_or_default(),
                    action: f.remove("action").unwrap_or_default(),
                    target: f.remove("target").unwrap_or_default(),
                    count: f.get("count").and_then(|c| c.parse().ok()).unwrap_or(0),
                    client: f.remove("client").unwrap_or_default(),
                    source: f.get("source").and_then(|s| Source::parse(s)),
                }
            })
            .collect())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(|_| ())
    }
}

/// A record from its hash fields; an empty hash is a key that does not exist.
fn parse(id: &str, mut f: HashMap<String, String>) -> Result<Option<KeyRecord>, StoreError> {
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
        id: KeyId::from_trusted(id.to_owned()),
        user: f.remove("user").ok_or_else(corrupt)?,
        label: f.remove("label").unwrap_or_default(),
        scope,
        created_at,
        expires_at,
        digest,
        last_used: f.get("last_used").and_then(|l| l.parse().ok()),
        // Older records have none; an unknown value reads as none too.
        source: f.get("source").and_then(|s| Source::parse(s)),
    }))
}
