//! A command connection replaced when a command on it times out, or is
//! refused with READONLY (its server is a replica now: `refused_by_replica`).
//!
//! redis-rs's `ConnectionManager` dials again when its connection is closed
//! or reset, and its Cluster connection does the same per node, but a
//! command that times out leaves the connection in place (the Cluster
//! connection even retries it there). A connection that goes silent
//! without a reset (a partition that drops packets, a firewall or NAT that
//! forgot the flow, a failover behind a fixed address) would then time out
//! every command until the kernel gives up on it, some fifteen minutes
//! later, and every key not cached would get 503 meanwhile.
//!
//! Here a timeout starts a new connection in the background; once it is
//! ready it takes the old one's place. Meanwhile commands go on the old
//! one: what still answers there keeps answering (in a Cluster, the nodes
//! that are not silent), and what does not fails in time, closed. Waiting
//! for the new connection to be ready, rather than dropping the old one at
//! once, matters in a Cluster: a new Cluster connection first connects to
//! every node, and while one node stays silent that takes its whole
//! connection timeout, which no command could wait for. Like
//! [`super::sentinel::SentinelConn`], the call that timed out still fails.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value};

use crate::telemetry::throttle::Throttled;

/// At most one connection is replaced for READONLY in this time: a server
/// that keeps answering it (an address that names the old master until its
/// DNS moves, a `store.url` naming a replica) would otherwise cost a new
/// connection, and log lines, per write.
pub const READONLY_RENEWAL_EVERY: Duration = Duration::from_secs(1);

/// How long redis-rs may wait for a command's answer (retries included):
/// shorter than the store's bound on every call, so that a silent
/// connection fails there with a timeout, which replaces it, and is not cut
/// off by the caller's bound, which would leave it in place.
pub fn command_limit(timeout: Duration) -> Duration {
    timeout * 3 / 4
}

/// Makes a new connection, connected (and for a Cluster, with every node
/// reached or given up on) by the time it resolves.
pub type Dial<C> = Box<dyn Fn() -> RedisFuture<'static, C> + Send + Sync>;

/// A connection that is replaced when a command on it times out; cheap to
/// clone (clones share it).
pub struct Renewing<C> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    dial: Dial<C>,
    /// How long a new connection may take to be ready.
    dial_limit: Duration,
    /// The connection in use and its generation, so that a timeout on an
    /// old connection never replaces a newer one.
    current: StdMutex<(u64, C)>,
    /// A new connection is being made.
    renewing: AtomicBool,
    /// When a READONLY answer last replaced the connection.
    readonly: ReadonlyRenewals,
}

/// When a READONLY answer last made a connection be replaced, to allow one
/// in `READONLY_RENEWAL_EVERY`.
pub struct ReadonlyRenewals(StdMutex<Throttled>);

impl Default for ReadonlyRenewals {
    fn default() -> Self {
        ReadonlyRenewals(StdMutex::new(Throttled::every(READONLY_RENEWAL_EVERY)))
    }
}

impl ReadonlyRenewals {
    /// Whether a replacement may start now (and, if so, it counts as started).
    pub fn allow(&self) -> bool {
        let mut throttle = self.0.lock().expect("readonly renewal lock");
        throttle.due(Instant::now()).is_some()
    }
}

impl<C> Clone for Renewing<C> {
    fn clone(&self) -> Self {
        Renewing {
            inner: self.inner.clone(),
        }
    }
}

// === impl Renewing ===

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Renewing<C> {
    /// `first` is used until a command times out (a lazy connection: nothing
    /// is dialled before its first command); `dial` makes the ones after it.
    /// `timeout` is the store's bound on every call. The connections must
    /// time a command out themselves, within [`command_limit`] of it.
    pub(super) fn new(timeout: Duration, first: C, dial: Dial<C>) -> Renewing<C> {
        Renewing {
            inner: Arc::new(Inner {
                dial,
                // A Cluster's new connection may spend a connection timeout
                // (`timeout`) on a silent seed node, then another on that
                // node again in the slot map.
                dial_limit: timeout * 3,
                current: StdMutex::new((0, first)),
                renewing: AtomicBool::new(false),
                readonly: ReadonlyRenewals::default(),
            }),
        }
    }

    /// The connection in use now.
    pub(super) fn connection(&self) -> C {
        self.current().1
    }

    /// The connection in use now and its generation.
    fn current(&self) -> (u64, C) {
        self.inner
            .current
            .lock()
            .expect("redis connection lock")
            .clone()
    }

    /// Run `call` on the connection in use; replace the connection if the
    /// call timed out on it (in the background), or if `refused` says the
    /// answer is a replica's refusal (READONLY) before answering, so that
    /// a command sent again goes to the new connection.
    async fn call<'a, T, F>(
        &self,
        call: impl FnOnce(C) -> F,
        refused: impl Fn(&T) -> bool,
    ) -> RedisResult<T>
    where
        F: Future<Output = RedisResult<T>> + 'a,
    {
        let (generation, conn) = self.current();
        let result = call(conn).await;
        let refused = match &result {
            Err(e) if e.is_timeout() => {
                if let Some(renewal) = self.begin(generation) {
                    tracing::warn!(error = %e, "Redis connection silent; making a new one");
                    tokio::spawn(renewal.replace(generation));
                }
                false
            }
            Err(e) => aborted_by_replica(e),
            Ok(answer) => refused(answer),
        };
        if refused {
            // The allowance is taken only by a renewal of the connection in use.
            let renewal = self
                .begin(generation)
                .filter(|_| self.inner.readonly.allow());
            if let Some(renewal) = renewal {
                tracing::warn!("Redis answered READONLY: this connection reaches a replica now (a failover behind the same address?); making a new one");
                // Waited for, so that a repeat goes on the new connection;
                // spawned, so that a caller out of time does not end it.
                let _ = tokio::spawn(renewal.replace(generation)).await;
            }
        }
        result
    }

    /// A renewal of the connection of `generation`, unless one is being
    /// made already or a newer one is in use.
    fn begin(&self, generation: u64) -> Option<Renewal<C>> {
        if self.inner.renewing.swap(true, Ordering::AcqRel) {
            return None;
        }
        let renewing = Renewal(self.inner.clone());
        // Checked with the flag held: a renewal that ended just now may
        // have replaced this generation already.
        (self.current().0 == generation).then_some(renewing)
    }
}

/// Whether the answers hold a replica's refusal (READONLY), alone, in a
/// pipeline or in a transaction: the connection reaches a master that was
/// demoted, and keeps reaching it. redis-rs reconnects only when a
/// connection breaks, and a failover behind one address (a cloud endpoint
/// whose name moves to the new primary, a virtual IP) leaves the old
/// connections open on the old master, now a replica, where every write
/// fails until they break; a new connection reaches the new master.
/// (redis-rs hands a server's error to a connection's caller as an answer,
/// `Value::ServerError`, not as an `Err`.)
pub fn refused_by_replica(answers: &[Value]) -> bool {
    answers.iter().any(|v| match v {
        Value::ServerError(e) => e.kind() == Some(ServerErrorKind::ReadOnly),
        Value::Array(items) => refused_by_replica(items),
        _ => false,
    })
}

/// Whether a transaction was aborted because a command in it was refused
/// with READONLY: redis-rs answers MULTI/EXEC's refusal as an error
/// (`TransactionAborted`), not as answers.
pub fn aborted_by_replica(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(ServerErrorKind::ExecAbort)
        && e.clone().into_server_errors().is_some_and(|errors| {
            errors
                .iter()
                .any(|(_, s)| s.kind() == Some(ServerErrorKind::ReadOnly))
        })
}

/// A renewal under way: the flag is cleared however it ends.
struct Renewal<C>(Arc<Inner<C>>);

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Renewal<C> {
    /// Dial a new connection and put it in the place of `generation`'s.
    async fn replace(self, generation: u64) {
        let inner = &self.0;
        match tokio::time::timeout(inner.dial_limit, (inner.dial)()).await {
            Ok(Ok(fresh)) => {
                // Only this renewal replaces `generation` (one at a time).
                let mut current = inner.current.lock().expect("redis connection lock");
                debug_assert_eq!(current.0, generation);
                *current = (generation + 1, fresh);
                tracing::info!("Redis commands go on the new connection");
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not make a new Redis connection; trying again at the next timeout")
            }
            Err(_) => tracing::warn!(
                "a new Redis connection was not ready in time; trying again at the next timeout"
            ),
        }
    }
}

impl<C> Drop for Renewal<C> {
    fn drop(&mut self) {
        self.0.renewing.store(false, Ordering::Release);
    }
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> ConnectionLike for Renewing<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.call(
            move |mut conn| async move { conn.req_packed_command(cmd).await },
            |answer| refused_by_replica(std::slice::from_ref(answer)),
        ))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.call(
            move |mut conn| async move { conn.req_packed_commands(pipeline, offset, count).await },
            |answers| refused_by_replica(answers),
        ))
    }

    fn get_db(&self) -> i64 {
        self.connection().get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(wire: &str) -> Value {
        redis::parse_redis_value(wire.as_bytes()).unwrap()
    }

    #[test]
    fn a_replicas_refusal_is_found_alone_and_in_a_pipeline() {
        let readonly = "-READONLY You can't write against a read only replica.\r\n";
        assert!(refused_by_replica(&[answer(readonly)]));
        assert!(refused_by_replica(&[answer("+OK\r\n"), answer(readonly)]));
        assert!(refused_by_replica(&[Value::Array(vec![answer(readonly)])]));
        // Other errors are answers like any other.
        assert!(!refused_by_replica(&[answer(
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        )]));
        assert!(!refused_by_replica(&[
            answer("-NOPERM no\r\n"),
            answer(":1\r\n")
        ]));
    }
}
