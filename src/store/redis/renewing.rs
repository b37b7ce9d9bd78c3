//! A command connection that is forgotten when a command on it fails in a
//! way that means it no longer serves, and dialled again for the next one.
//!
//! redis-rs's `ConnectionManager` dials again when its connection is closed
//! or reset, and its Cluster connection does the same per node, but a
//! command that times out leaves the connection in place (the Cluster
//! connection even retries it there). A connection that goes silent
//! without a reset (a partition that drops packets, a firewall or NAT that
//! forgot the flow, a failover behind a fixed address) would then time out
//! every command until the kernel gives up on it, some fifteen minutes
//! later, and every key not cached would get 503 meanwhile. Behind
//! Sentinel, a connection to a master that was demoted must go too
//! (`super::sentinel`). The failing call still fails (fail closed); the
//! next one goes on a fresh connection (for a Cluster: fresh links to every
//! node, and the slot map asked again). Commands already on the old
//! connection finish, or time out, there.

use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// Makes a connection: the deployment's way of reaching it.
pub type Dial<C> = Box<dyn Fn() -> RedisFuture<'static, C> + Send + Sync>;

/// A connection that is replaced when a command on it times out, or fails
/// as `renew_on` says; cheap to clone (clones share it).
pub struct Renewing<C> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    dial: Dial<C>,
    /// Besides a timeout: the errors after which the connection is dropped.
    renew_on: fn(&RedisError) -> bool,
    /// How long a command may take, its connection's dial included.
    limit: Duration,
    /// The database the connections select (`ConnectionLike::get_db`).
    db: i64,
    current: StdMutex<Current<C>>,
    /// One dial at a time: callers queue behind it and take its connection.
    dialing: tokio::sync::Mutex<()>,
}

/// The connection in use, if any, and its generation, so that an error on
/// an old connection never discards a newer one.
struct Current<C> {
    generation: u64,
    conn: Option<C>,
}

impl<C> Clone for Renewing<C> {
    fn clone(&self) -> Self {
        Renewing {
            inner: self.inner.clone(),
        }
    }
}

/// `renew_on` for connections that redis-rs dials again by itself after a
/// reset, a refusal or a close: only a timeout renews them.
pub fn on_timeout_only(_: &RedisError) -> bool {
    false
}

// === impl Renewing ===

impl<C: ConnectionLike + Clone + Send + 'static> Renewing<C> {
    /// Nothing is dialled until the first command. `timeout` is the store's
    /// bound on every call.
    pub(super) fn new(
        timeout: Duration,
        db: i64,
        renew_on: fn(&RedisError) -> bool,
        dial: Dial<C>,
    ) -> Renewing<C> {
        Renewing {
            inner: Arc::new(Inner {
                dial,
                renew_on,
                // Shorter than the store's bound (and than the response
                // timeout given to redis-rs): a silent connection must fail
                // here, where it is replaced, not be cut off by the caller's
                // timeout, which would leave it in place for the next call.
                limit: timeout * 3 / 4,
                db,
                current: StdMutex::new(Current {
                    generation: 0,
                    conn: None,
                }),
                dialing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The connection in use, dialled if there is none.
    pub(super) async fn connection(&self) -> RedisResult<C> {
        Ok(self.generation().await?.1)
    }

    async fn generation(&self) -> RedisResult<(u64, C)> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let _dialing = self.inner.dialing.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let conn = (self.inner.dial)().await?;
        let mut current = self.lock();
        current.generation += 1;
        current.conn = Some(conn.clone());
        Ok((current.generation, conn))
    }

    fn cached(&self) -> Option<(u64, C)> {
        let current = self.lock();
        let conn = current.conn.clone()?;
        Some((current.generation, conn))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current<C>> {
        self.inner.current.lock().expect("redis connection lock")
    }

    /// Run `call` on the connection in use, within the limit; forget the
    /// connection if the call timed out on it or failed as `renew_on` says.
    async fn call<'a, T, F>(&self, call: impl FnOnce(C) -> F) -> RedisResult<T>
    where
        F: Future<Output = RedisResult<T>> + 'a,
    {
        let mut used = None;
        let attempt = async {
            let (generation, conn) = self.generation().await?;
            used = Some(generation);
            call(conn).await
        };
        let result = match tokio::time::timeout(self.inner.limit, attempt).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
        };
        if let (Err(e), Some(generation)) = (&result, used) {
            if e.is_timeout() || (self.inner.renew_on)(e) {
                self.forget(generation, e);
            }
        }
        result
    }

    /// Drop the connection of `generation`, unless a newer one took its place.
    fn forget(&self, generation: u64, e: &RedisError) {
        let mut current = self.lock();
        if current.generation == generation && current.conn.is_some() {
            tracing::warn!(error = %e, "Redis connection lost or silent; the next command goes on a new one");
            current.conn = None;
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
        self.inner.db
    }
}
