//! A connection to the master that Sentinel names, following failovers.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};

use super::renewing::{aborted_by_replica, refused_by_replica, ReadonlyRenewals};
use redis::sentinel::SentinelClient;
use redis::{
    AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};

/// A connection to the master that Sentinel names, following failovers.
///
/// redis-rs's `SentinelClient` resolves the master once per connection it
/// opens, and `ConnectionManager` reconnects to a fixed address, so neither
/// follows a failover alone. This wrapper keeps one multiplexed connection to
/// the resolved master and forgets it on any error that means "this is no
/// longer the master I can write to" (I/O error, dropped or refused
/// connection, timeout, `READONLY` from a demoted master). The failing call
/// still fails (the request gets 503, fail closed); the next one asks the
/// sentinels again, and redis-rs checks the answer with `ROLE`. Sentinel
/// itself disconnects clients of a master it demotes (`CLIENT KILL`).
///
/// Until Sentinel has finished a failover it names the old master; if that
/// address answers as a master (a restarted old master without persistence,
/// before Sentinel demotes it) keygate reads from it: the classic Sentinel
/// caveat, which persistence on the master (or not restarting it by hand)
/// avoids.
#[derive(Clone)]
pub struct SentinelConn {
    inner: Arc<SentinelInner>,
}

struct SentinelInner {
    /// Asks the sentinels; one resolution at a time (callers queue behind it
    /// and then reuse its answer), each bounded by its caller's timeout.
    sentinel: tokio::sync::Mutex<SentinelClient>,
    /// The master connection in use and its generation, so an error on an
    /// old connection never discards a newer one.
    current: StdMutex<Option<(u64, MultiplexedConnection)>>,
    config: AsyncConnectionConfig,
    db: i64,
    /// When a READONLY answer last made the sentinels be asked again.
    readonly: ReadonlyRenewals,
}

// === impl SentinelConn ===

impl SentinelConn {
    pub(super) fn new(sentinel: SentinelClient, db: i64, timeout: Duration) -> SentinelConn {
        // Shorter than the store's bound on every call: a master that hangs
        // (partitioned, frozen) must fail here, where the connection is
        // forgotten, not be cut off by the caller's timeout, which would
        // leave the connection in place for the next call.
        let timeout = super::renewing::command_limit(timeout);
        SentinelConn {
            inner: Arc::new(SentinelInner {
                sentinel: tokio::sync::Mutex::new(sentinel),
                current: StdMutex::new(None),
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout)),
                db,
                readonly: ReadonlyRenewals::default(),
            }),
        }
    }

    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        self.inner.current.lock().expect("sentinel lock").clone()
    }

    /// A client for the current master (asks the sentinels).
    pub(super) async fn master(&self) -> RedisResult<Client> {
        self.inner.sentinel.lock().await.async_get_client().await
    }

    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let mut sentinel = self.inner.sentinel.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let master = sentinel.async_get_client().await?;
        let conn = master
            .get_multiplexed_async_connection_with_config(&self.inner.config)
            .await?;
        let mut current = self.inner.current.lock().expect("sentinel lock");
        let generation = current.as_ref().map_or(0, |(g, _)| g + 1);
        *current = Some((generation, conn.clone()));
        tracing::info!(
            generation,
            "connected to the Redis master named by Sentinel"
        );
        Ok((generation, conn))
    }

    /// A replica's refusal: the master was demoted, ask the sentinels again,
    /// at most once in `READONLY_RENEWAL_EVERY` (sentinels still naming it
    /// would otherwise be asked at every write).
    fn readonly(&self) -> Option<String> {
        self.inner
            .readonly
            .allow()
            .then(|| "READONLY: the master was demoted".to_owned())
    }

    /// Forget the connection of `generation` if `result` says it no
    /// longer reaches a writable master (`refused`: the answer is a
    /// replica's READONLY, which redis-rs hands over as an answer).
    fn check<T>(
        &self,
        generation: u64,
        result: RedisResult<T>,
        refused: impl Fn(&T) -> bool,
    ) -> RedisResult<T> {
        let lost = match &result {
            Err(e) if aborted_by_replica(e) || is_readonly(e) => self.readonly(),
            Err(e) if stale(e) => Some(e.to_string()),
            Ok(answer) if refused(answer) => self.readonly(),
            _ => None,
        };
        if let Some(error) = lost {
            let mut current = self.inner.current.lock().expect("sentinel lock");
            if current.as_ref().is_some_and(|(g, _)| *g == generation) {
                tracing::warn!(%error, "Redis master connection lost; asking the sentinels again on the next call");
                *current = None;
            }
        }
        result
    }
}

/// Whether an error means the connection no longer reaches the master.
fn stale(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

/// A replica's refusal handed over as an error.
fn is_readonly(e: &RedisError) -> bool {
    e.code() == Some("READONLY") || e.to_string().contains("READONLY")
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.connection().await?;
            let result = conn.req_packed_command(cmd).await;
            self.check(generation, result, |answer| {
                refused_by_replica(std::slice::from_ref(answer))
            })
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.connection().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.check(generation, result, |answers| refused_by_replica(answers))
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}
