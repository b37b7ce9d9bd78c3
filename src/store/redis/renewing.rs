//! A command connection replaced when a command on it times out.
//!
//! redis-rs's `ConnectionManager` dials again when its connection is closed
//! or reset, and its Cluster connection does the same per node, but a
//! command that times out leaves the connection in place (the Cluster
//! connection even retries it there). A connection that goes silent
//! without a reset (a partition that drops packets, a firewall or NAT that
//! forgot the flow, a failover behind a fixed address) would then time out
//! every command until the kernel gives up on it, some fifteen minutes
//! later, and every key not cached would get 503 meanwhile. Like
//! [`super::sentinel::SentinelConn`], this wrapper forgets the connection
//! when a command times out: that call still fails (fail closed), the next
//! one goes on a fresh connection (for a Cluster: fresh links to every
//! node, and the slot map asked again). Commands already on the old
//! connection finish, or time out, there.

use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A connection that is replaced by a fresh one from `dial` when a command
/// on it times out; cheap to clone (clones share it).
pub struct Renewing<C> {
    inner: Arc<Inner<C>>,
}

type Dial<C> = Box<dyn Fn() -> RedisResult<C> + Send + Sync>;

struct Inner<C> {
    /// A new connection, lazy: nothing is dialled until its first command.
    dial: Dial<C>,
    /// How long a command may take on one connection.
    limit: Duration,
    /// The connection in use and its generation, so that a timeout on an
    /// old connection never discards a newer one.
    current: StdMutex<(u64, C)>,
}

impl<C> Clone for Renewing<C> {
    fn clone(&self) -> Self {
        Renewing {
            inner: self.inner.clone(),
        }
    }
}

// === impl Renewing ===

impl<C: ConnectionLike + Clone + Send + 'static> Renewing<C> {
    /// `timeout` is the store's bound on every call. `dial` makes the
    /// connections, lazily (the first is made here).
    pub(super) fn new(
        timeout: Duration,
        dial: impl Fn() -> RedisResult<C> + Send + Sync + 'static,
    ) -> RedisResult<Renewing<C>> {
        let first = dial()?;
        Ok(Renewing {
            inner: Arc::new(Inner {
                dial: Box::new(dial),
                // Shorter than the store's bound (and than the response
                // timeout given to redis-rs): a silent connection must fail
                // here, where it is replaced, not be cut off by the caller's
                // timeout, which would leave it in place for the next call.
                limit: timeout * 3 / 4,
                current: StdMutex::new((0, first)),
            }),
        })
    }

    /// The connection in use now.
    pub(super) fn current(&self) -> C {
        self.generation().1
    }

    fn generation(&self) -> (u64, C) {
        self.inner
            .current
            .lock()
            .expect("redis connection lock")
            .clone()
    }

    /// Run `call` on the connection in use, within the limit; replace the
    /// connection if the call timed out on it.
    async fn call<'a, T, F>(&self, call: impl FnOnce(C) -> F) -> RedisResult<T>
    where
        F: Future<Output = RedisResult<T>> + 'a,
    {
        let (generation, conn) = self.generation();
        let result = match tokio::time::timeout(self.inner.limit, call(conn)).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
        };
        if let Err(e) = &result {
            if e.is_timeout() {
                self.replace(generation, e);
            }
        }
        result
    }

    fn replace(&self, generation: u64, e: &redis::RedisError) {
        let mut current = self.inner.current.lock().expect("redis connection lock");
        if current.0 != generation {
            return;
        }
        match (self.inner.dial)() {
            Ok(fresh) => {
                tracing::warn!(error = %e, "Redis connection silent; the next command goes on a new one");
                *current = (generation + 1, fresh);
            }
            Err(err) => {
                tracing::warn!(error = %err, "Redis connection silent; a new one could not be set up")
            }
        }
    }
}

impl<C: ConnectionLike + Clone + Send + 'static> ConnectionLike for Renewing<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.call(move |mut conn| async move { conn.req_packed_command(cmd).await }))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.call(move |mut conn| async move {
            conn.req_packed_commands(pipeline, offset, count).await
        }))
    }

    fn get_db(&self) -> i64 {
        self.current().get_db()
    }
}
