//! A connection to one Redis server, replaced when a command times out.
//!
//! redis-rs's `ConnectionManager` dials again when its connection is closed
//! or reset, but a command that times out leaves the connection in place. A
//! connection that goes silent without a reset (a partition that drops
//! packets, a firewall or NAT that forgot the flow, a failover behind a
//! fixed address) would then time out every command until the kernel gives
//! up on it, some fifteen minutes later, and every key not cached would get
//! 503 meanwhile. Like [`super::sentinel::SentinelConn`], this wrapper
//! forgets the connection when a command times out: that call still fails
//! (fail closed), the next one goes on a fresh connection. Commands already
//! on the old connection finish, or time out, there.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A command connection to one server; cheap to clone (clones share it).
#[derive(Clone)]
pub struct SingleConn {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: ConnectionManagerConfig,
    /// The connection in use and its generation, so that a timeout on an
    /// old connection never discards a newer one.
    current: StdMutex<(u64, ConnectionManager)>,
}

// === impl SingleConn ===

impl SingleConn {
    /// Lazy: nothing is dialled until the first command. `timeout` is the
    /// store's bound on every call.
    pub(super) fn new(client: Client, timeout: Duration) -> RedisResult<SingleConn> {
        // Shorter than the store's bound: a silent connection must fail
        // here, where it is forgotten, not be cut off by the caller's
        // timeout, which would leave it in place for the next call.
        let timeout = timeout * 3 / 4;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(SingleConn {
            inner: Arc::new(Inner {
                client,
                config,
                current: StdMutex::new((0, manager)),
            }),
        })
    }

    /// The server's client, for pub/sub connections.
    pub(super) fn client(&self) -> &Client {
        &self.inner.client
    }

    fn current(&self) -> (u64, ConnectionManager) {
        self.inner
            .current
            .lock()
            .expect("redis connection lock")
            .clone()
    }

    /// Replace the connection of `generation` if `result` timed out on it.
    fn check<T>(&self, generation: u64, result: RedisResult<T>) -> RedisResult<T> {
        let Err(e) = &result else { return result };
        if !e.is_timeout() {
            return result;
        }
        let mut current = self.inner.current.lock().expect("redis connection lock");
        if current.0 == generation {
            match ConnectionManager::new_lazy_with_config(
                self.inner.client.clone(),
                self.inner.config.clone(),
            ) {
                Ok(fresh) => {
                    tracing::warn!(error = %e, "Redis connection silent; the next command goes on a new one");
                    *current = (generation + 1, fresh);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "Redis connection silent; a new one could not be set up")
                }
            }
        }
        result
    }
}

impl ConnectionLike for SingleConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.current();
            let result = conn.req_packed_command(cmd).await;
            self.check(generation, result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.current();
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.check(generation, result)
        })
    }

    fn get_db(&self) -> i64 {
        self.current().1.get_db()
    }
}
