//! The Redis store, for every Redis deployment an operator runs.
//!
//! * [`url`]: what `store.url` names (standalone, `rediss://`, Cluster,
//!   Sentinel);
//! * [`connect`]: one command connection for each, and pub/sub;
//!   [`sentinel`]: the master behind Sentinel, failovers followed;
//! * [`layout`]: the key names, chosen so that every multi-key step stays in
//!   one Cluster slot, the record's fields, and the moves from earlier
//!   layouts; [`audit`]: the audit stream; [`outbox`]: the webhook outbox;
//!   [`lifecycle`]: rotation, expiry notices and chore leases;
//! * [`index`]: the listing indexes (by creation and by expiry, overall, per
//!   user, per label), [`scan`]: walking one in order, [`listing`]: pages,
//!   counts and bulk revocations over them.
//!
//! Failure: every call is bounded by `store.timeout` (`StoreError::Timeout`)
//! and every Redis error is `StoreError::Unavailable`; callers fail closed
//! (503). Connections are re-established by themselves, and a command that
//! finds its connection dead (Redis restarted, a failover closed it) is
//! sent again on a fresh one when it is safe to repeat ([`repeat`]): a
//! restart that Redis survives costs no caller a failed call.
//!
//! Durability: Redis replicates asynchronously, so a write the master
//! acknowledged can vanish in a failover. After a revocation (by id, user or
//! all), and after runtime settings are saved (a tighter policy must not
//! come undone either), the store asks the master for `WAIT 1` when it has replicas, and
//! answers `StoreError::Timeout` if no replica confirmed within half of
//! `store.timeout`: the admin sees 503 and retries (revocation is
//! idempotent) rather than being told "revoked" about a revocation that a
//! failover could undo. After a key is created the same wait only logs a
//! warning: a created key lost in a failover fails closed (it stops
//! working). The replicas counted are those `ROLE` lists: online ones (a
//! replica still in its first sync could not take over either). `WAIT`
//! covers the writes made so far on its own connection, so it goes in one
//! pipeline after a write of its own (`ns:fence`): that write comes after
//! every write of the operation in the replication stream, whichever
//! connection they took (a repeat on a fresh connection included). `WAIT`
//! blocks its connection meanwhile, so creations and revocations have a
//! connection of their own (`writes`) and never hold up key lookups. In a
//! Cluster the same holds per master: `ROLE` is asked of every master, and
//! each one that has replicas gets a fence of its own (`ns:fence:{N}`, `N`
//! chosen so that its slot is one the master serves, which `CLUSTER NODES`
//! tells) and `WAIT 1` in one pipeline on one link, with `CLUSTER MYID`
//! so that a pipeline redis-rs sent on to another node after a `MOVED`
//! confirms nothing; a master demoted since `ROLE` is an error. So a link
//! redis-rs dialled again, or a connection that took over after a timeout
//! ([`renewing`]), between the writes and the `WAIT` does not confirm them
//! early: the fence comes after them on that master either way. What no
//! `WAIT` can see, here as with a single master, is a failover between the
//! writes and the fence: the new master's own fence is what gets confirmed.
//!
//! Pub/sub ([`RedisStore::pubsub`], [`RedisStore::publish`]) is for the
//! cross-instance revocation barrier: same deployment, same credentials.

mod audit;
mod connect;
mod fleet;
mod index;
mod layout;
mod lifecycle;
mod listing;
mod load;
mod migrate;
mod outbox;
mod renewing;
mod repeat;
mod scan;
mod secret_check;
mod sentinel;
mod url;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::try_join_all;
use redis::AsyncCommands;

use self::connect::Conn;
use self::index::{bucket_of, Entry, Pair};
use self::layout::parse;
pub use self::url::{parse as parse_url, Target};
use super::{SecretCheck, StoreError};
use crate::keys::{unix_now, KeyId, KeyRecord};

/// Expired members each index a creation writes to gives up on the way.
const SWEEP_ON_INSERT: usize = 10;

/// INCR, starting the window's expiry with the first event (and mending a
/// counter that lost it); answers the count and the milliseconds left.
static COUNT_IN_WINDOW: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local n = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}
",
    )
});

/// One count taken back, only from the window it went into: that window
/// has at most `ARGV[1]` ms left (what the count saw); a window begun
/// since has more. Never below 0; the window's expiry stays.
static GIVE_BACK_IN_WINDOW: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local left = redis.call('PTTL', KEYS[1])
if left > 0 and left <= tonumber(ARGV[1]) and tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  redis.call('DECR', KEYS[1])
  return 1
end
return 0
",
    )
});

#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    /// Creations and revocations, on a connection of their own: `WAIT`
    /// covers the writes of the connection it is sent on, and blocks that
    /// connection while it waits, which must never hold up key lookups.
    writes: Conn,
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
    /// Open the store and check that Redis answers (and move the first
    /// layout's keys, once): for the CLI and for tests.
    pub async fn connect(url: &str, ns: &str, timeout: Duration) -> Result<RedisStore, StoreError> {
        let store = RedisStore::open(url, ns, timeout, None)?;
        store.ready().await?;
        Ok(store)
    }

    /// Open the store without dialling Redis; the first call connects.
    /// `ca` (PEM) is trusted for `rediss` connections besides the system roots.
    pub fn open(
        url: &str,
        ns: &str,
        timeout: Duration,
        ca: Option<&[u8]>,
    ) -> Result<RedisStore, StoreError> {
        let target = url::parse(url).map_err(|message| {
            StoreError::Unavailable(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "store.url",
                message,
            )))
        })?;
        Ok(RedisStore {
            conn: connect::open(&target, ca, timeout)?,
            writes: connect::open(&target, ca, timeout)?,
            ns: ns.to_owned(),
            timeout,
            // Only an existing record is touched: a revoked or expired key stays gone.
            touch: redis::Script::new(
                "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'last_used', ARGV[1]) end return 0",
            ),
        })
    }

    /// Redis answers, and the first layout's keys have been moved.
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.ping().await?;
        migrate::migrate(self).await.map(|_| ())
    }

    /// What the store says of the secret `check` is derived from
    /// (`secret_check.rs`): claimed for it, or not claimed yet; another
    /// secret's claim is `StoreError::OtherSecret`.
    pub async fn check_secret(&self, check: &str) -> Result<SecretCheck, StoreError> {
        match secret_check::read(self).await? {
            Some(held) if held == check => Ok(SecretCheck::Ours),
            Some(_) => Err(secret_check::other_secret(self)),
            None => Ok(SecretCheck::Unclaimed),
        }
    }

    /// Claim the store for `check` (see `Keyring::ready` for who may);
    /// `StoreError::OtherSecret` if another secret claimed it first.
    pub async fn claim_secret(&self, check: &str) -> Result<(), StoreError> {
        match secret_check::claim(self, check).await? {
            Some(held) if held != check => Err(secret_check::other_secret(self)),
            // Ours, or gone again at once (evicted): nothing to refuse.
            _ => Ok(()),
        }
    }

    /// `store.timeout`: every call ends by then.
    pub fn timeout(&self) -> Duration {
        self.timeout
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

    /// A pub/sub connection to the deployment: the server, the current
    /// master (Sentinel), or a cluster node (classic PUBLISH reaches every
    /// node of a cluster). After a failover the stream ends; call again.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, StoreError> {
        self.bounded(self.conn.pubsub()).await
    }

    /// PUBLISH; answers how many subscribers received it: every connection
    /// made by `pubsub` of any instance (in a cluster both use the first seed
    /// node that answers, since Redis counts receivers per node).
    /// Sent again if its connection was found dead: for the fleet's
    /// messages, which are safe to receive twice.
    pub async fn publish(
        &self,
        channel: &str,
        payload: impl AsRef<[u8]>,
    ) -> Result<u64, StoreError> {
        self.bounded(self.conn.publish(channel, payload.as_ref()))
            .await
    }

    /// Wait until a replica has every write so far (see the module docs);
    /// `Ok` at once without replicas.
    async fn replicated(&self) -> Result<(), StoreError> {
        if let Some(cluster) = self.writes.cluster() {
            return self.replicated_in_cluster(cluster).await;
        }
        let mut conn = self.writes.repeating();
        let role: Vec<redis::Value> = self
            .bounded(redis::cmd("ROLE").query_async(&mut conn))
            .await?;
        let replicas = match role.get(2) {
            Some(redis::Value::Array(r)) => r.len(),
            _ => 0,
        };
        if replicas == 0 {
            return Ok(());
        }
        let wait = self.wait_ms();
        // The fence, then WAIT, on one connection (see the module docs).
        let (acked,): (i64,) = self
            .bounded(
                redis::pipe()
                    .set(self.fence(), 1)
                    .ignore()
                    .cmd("WAIT")
                    .arg(1)
                    .arg(wait)
                    .query_async(&mut conn),
            )
            .await?;
        if acked < 1 {
            tracing::warn!(
                replicas,
                wait_ms = wait,
                "no Redis replica confirmed the write in time; a failover now could lose it"
            );
            return Err(StoreError::Timeout(self.timeout));
        }
        Ok(())
    }

    /// How long `WAIT` may block: half of `store.timeout`, the rest is for
    /// the round trips around it.
    fn wait_ms(&self) -> u64 {
        (self.timeout / 2).as_millis().max(1) as u64
    }

    /// `replicated` in a Cluster: on every master that has replicas, a fence
    /// in one of its own slots and `WAIT 1`, in one pipeline on one link.
    async fn replicated_in_cluster(
        &self,
        mut cluster: redis::cluster_async::ClusterConnection,
    ) -> Result<(), StoreError> {
        use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
        let roles = self
            .bounded(cluster.route_command(
                redis::cmd("ROLE"),
                RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
            ))
            .await?;
        let redis::Value::Map(roles) = roles else {
            return Err(unexpected("ROLE").into());
        };
        let wait = self.wait_ms();
        let mut waits = Vec::new();
        for (addr, role) in roles {
            let addr: String = redis::from_redis_value(addr).map_err(|_| unexpected("ROLE"))?;
            let replicas = match &role {
                redis::Value::Array(r) => match r.get(2) {
                    Some(redis::Value::Array(list)) => list.len(),
                    _ => 0,
                },
                _ => return Err(unexpected("ROLE").into()),
            };
            let Some((host, port)) = addr.rsplit_once(':') else {
                return Err(unexpected("ROLE").into());
            };
            let port = port.parse().map_err(|_| unexpected("ROLE"))?;
            if replicas == 0 {
                continue;
            }
            let mut cluster = cluster.clone();
            let node = SingleNodeRoutingInfo::ByAddress {
                host: host.to_owned(),
                port,
            };
            waits.push(async move {
                let mut nodes = redis::cmd("CLUSTER");
                nodes.arg("NODES");
                let nodes = cluster
                    .route_command(nodes, RoutingInfo::SingleNode(node.clone()))
                    .await?;
                let nodes: String =
                    redis::from_redis_value(nodes).map_err(|_| unexpected("CLUSTER NODES"))?;
                let me = layout::own_node(&nodes).ok_or_else(|| unexpected("CLUSTER NODES"))?;
                // Demoted since ROLE (a failover): it confirms nothing.
                if !me.master {
                    return Err(unexpected("CLUSTER NODES: no longer a master"));
                }
                // A master without slots holds no keys: nothing to confirm.
                let Some(slot) = me.first_slot else {
                    return Ok((addr, 1));
                };
                // With its id: redis-rs sends the whole pipeline on to another
                // node after a MOVED (a reshard, a failover meanwhile), and a
                // WAIT there confirms nothing of this master's writes.
                let mut fenced = redis::pipe();
                fenced.cmd("CLUSTER").arg("MYID");
                fenced.set(self.fence_in_slot(slot), 1);
                fenced.cmd("WAIT").arg(1).arg(wait);
                let replies = cluster.route_pipeline(fenced, 0, 3, node).await?;
                let acked = match replies.as_slice() {
                    [id, redis::Value::Okay, acked]
                        if redis::from_redis_value::<String>(id.clone())
                            .is_ok_and(|id| id == me.id) =>
                    {
                        redis::from_redis_value::<i64>(acked.clone()).ok()
                    }
                    _ => None,
                };
                let acked = acked.ok_or_else(|| unexpected("CLUSTER MYID, SET and WAIT"))?;
                Ok::<_, redis::RedisError>((addr, acked))
            });
        }
        for (node, acked) in self.bounded(try_join_all(waits)).await? {
            if acked < 1 {
                tracing::warn!(
                    node,
                    wait_ms = wait,
                    "no Redis replica confirmed the write in time; a failover now could lose it"
                );
                return Err(StoreError::Timeout(self.timeout));
            }
        }
        Ok(())
    }

    pub async fn insert(&self, r: &KeyRecord) -> Result<(), StoreError> {
        let key = self.record(r.id.as_str());
        let entry = Entry::of(r);
        let now = unix_now();
        // Safe to repeat: the same members, the same HSETs of a fresh id.
        // The overall and label indexes first (their own slots), each
        // swept of a few expired members on the way: a crash after them
        // leaves members without a record (removed when found), never a
        // record that no index lists (which `revoke_all` could not find).
        let cmds = [
            Pair::Bucket(bucket_of(&r.id)),
            Pair::Label(entry.label_tag.clone()),
        ]
        .iter()
        .map(|p| self.sweep_cmd(p, now, SWEEP_ON_INSERT, Some(&entry)))
        .collect();
        let mut dead = self.dead_of(self.by_tag(cmds).await?)?;
        // The record and the user's index, atomically (one slot).
        let mut pipe = redis::pipe();
        pipe.atomic();
        for cmd in layout::record_cmds(&key, r) {
            pipe.add_command(cmd).ignore();
        }
        let (_, user_sweep) = self.sweep_cmd(
            &Pair::User(entry.user_tag.clone()),
            now,
            SWEEP_ON_INSERT,
            Some(&entry),
        );
        pipe.add_command(user_sweep);
        let mut conn = self.writes.repeating();
        let (swept,): (redis::Value,) = self.bounded(pipe.query_async(&mut conn)).await?;
        dead.extend(self.dead_of(vec![swept])?);
        // Expired keys' other members: tidying, which must not fail a creation.
        if let Err(e) = self.unindex(&dead).await {
            tracing::warn!(error = %e, "could not remove expired keys from the listing indexes");
        }
        // A created key lost in a failover fails closed: warn, do not fail.
        if let Err(e) = self.replicated().await {
            tracing::warn!(key_id = %r.id, error = %e, "created key not confirmed by a replica");
        }
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let mut conn = self.conn.repeating();
        let fields: HashMap<String, String> = self.bounded(conn.hgetall(self.record(id))).await?;
        // Ended at its `expires_at` by this instance's clock, as a listing
        // and the validation cache count it, whatever Redis' clock says.
        let now = unix_now();
        Ok(parse(id, fields)?.filter(|r| r.expires_at.is_none_or(|e| e > now)))
    }

    pub async fn touch(&self, id: &KeyId, at: u64) -> Result<(), StoreError> {
        // Safe to repeat: the same time, and only on a record that exists.
        let mut conn = self.conn.repeating();
        let mut call = self.touch.key(self.record(id.as_str()));
        call.arg(at);
        self.bounded(call.invoke_async::<i64>(&mut conn))
            .await
            .map(|_| ())
    }

    pub async fn settings(&self) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.repeating();
        self.bounded(conn.get(self.settings_key())).await
    }

    /// Confirmed by a replica like a revocation: settings that tighten the
    /// policy (self-service off, a shorter `max_ttl`) must not come undone
    /// in a failover after the admin was told they were saved.
    pub async fn put_settings(&self, json: &str) -> Result<crate::store::Saved, StoreError> {
        let mut conn = self.writes.repeating();
        self.bounded(conn.set::<_, _, ()>(self.settings_key(), json))
            .await?;
        Ok(match self.replicated().await {
            Ok(()) => crate::store::Saved::Confirmed,
            Err(e) => crate::store::Saved::Unconfirmed(e),
        })
    }

    /// A fixed window per user, in the user's slot (see `Store::count_in_window`).
    pub async fn count_in_window(
        &self,
        user: &str,
        window: Duration,
    ) -> Result<(u64, Duration), StoreError> {
        // Never repeated (INCR would count one event twice): checked first.
        let (count, left_ms): (u64, i64) = self
            .bounded(async {
                let mut conn = self.conn.checked().await?;
                COUNT_IN_WINDOW
                    .key(self.window_key(user))
                    .arg(window.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok((count, Duration::from_millis(left_ms.max(0) as u64)))
    }

    /// See `Store::give_back_in_window`.
    pub async fn give_back_in_window(&self, user: &str, left: Duration) -> Result<(), StoreError> {
        // Never repeated (a DECR twice would give back two): checked first.
        let _: i64 = self
            .bounded(async {
                let mut conn = self.conn.checked().await?;
                GIVE_BACK_IN_WINDOW
                    .key(self.window_key(user))
                    .arg(left.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.repeating();
        self.bounded(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(|_| ())
    }
}

/// The record as its hash's fields (those it has).
fn fields(r: &KeyRecord) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("user", r.user.clone()),
        ("label", r.label.clone()),
        ("scope", r.scope.as_str().to_owned()),
        ("created", r.created_at.to_string()),
        (
            "expires",
            r.expires_at.map(|e| e.to_string()).unwrap_or_default(),
        ),
        ("digest", r.digest.to_hex()),
    ];
    if let Some(source) = r.source {
        fields.push(("source", source.as_str().to_owned()));
    }
    if let Some(from) = r.rotated_from {
        fields.push(("rotated_from", from.as_str().to_owned()));
    }
    if let Some(to) = r.rotated_to {
        fields.push(("rotated_to", to.as_str().to_owned()));
    }
    if let Some(chain) = r.chain_started {
        fields.push(("chain", chain.to_string()));
    }
    fields
}

/// An answer of a shape Redis does not give: never trusted, always an error.
fn unexpected(command: &'static str) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "unexpected answer",
        command.to_owned(),
    ))
}
