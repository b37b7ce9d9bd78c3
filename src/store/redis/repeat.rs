//! A command whose connection was found dead, sent again once on a fresh one.
//!
//! A connection dies unnoticed while it is idle: Redis restarts, a failover
//! or a proxy closes it. redis-rs's `ConnectionManager` (like
//! [`super::sentinel::SentinelConn`]) learns it from the next command, hands
//! that command the error ("broken pipe") and only then reconnects, so the
//! first caller after every restart would get a 503. Which commands may be
//! sent again is the caller's choice, per store operation (the contract in
//! `store/mod.rs`):
//!
//! * [`Conn::repeating`]: reads, and writes that are idempotent by design
//!   (the same SET or HSET, deleting again, the same PUBLISH to a protocol
//!   that tolerates it) go again once when the first attempt found its
//!   connection dead;
//! * [`Conn::checked`]: a command that must not run twice (INCR, XADD) goes
//!   only after a PING has found or replaced a dead connection; if the
//!   connection dies while it is on the way, whether it ran is unknown and
//!   the error stays.
//!
//! A timeout is never repeated: the command may still run, and the call's
//! bound (`store.timeout`) is spent.

use redis::aio::ConnectionLike;
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

use super::connect::Conn;
use super::renewing::{aborted_by_replica, refused_by_replica};

/// A command connection that sends a command again, once, when the first
/// attempt found the connection dead. Only for commands safe to repeat.
#[derive(Clone)]
pub struct Repeating(Conn);

/// Whether the command failed because its connection was dead (closed,
/// reset, refused: it is replaced on the next command). A master demoted
/// since (READONLY) answers: `refused_by_replica`.
pub fn found_dead(e: &RedisError) -> bool {
    e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

// === impl Conn ===

impl Conn {
    /// This connection, for commands that are safe to repeat.
    pub fn repeating(&self) -> Repeating {
        Repeating(self.clone())
    }

    /// This connection after a PING (repeated if it found the connection
    /// dead), for a command that must not run twice.
    pub async fn checked(&self) -> RedisResult<Conn> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.repeating())
            .await?;
        Ok(self.clone())
    }
}

// === impl Repeating ===

impl Repeating {
    fn note(e: &RedisError) {
        tracing::debug!(error = %e, "Redis connection found dead; sending the command again on a fresh one");
    }

    fn note_refused() {
        tracing::debug!("Redis answered READONLY; sending the command again on a fresh connection");
    }
}

impl ConnectionLike for Repeating {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.0.req_packed_command(cmd).await {
                Err(e) if found_dead(&e) => {
                    Repeating::note(&e);
                    self.0.req_packed_command(cmd).await
                }
                // Refused, not run, by a demoted master: its connection is
                // replaced by now (`renewing`, `sentinel`).
                Ok(answer) if refused_by_replica(std::slice::from_ref(&answer)) => {
                    Repeating::note_refused();
                    self.0.req_packed_command(cmd).await
                }
                answer => answer,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match self.0.req_packed_commands(pipeline, offset, count).await {
                Err(e) if found_dead(&e) => {
                    Repeating::note(&e);
                    self.0.req_packed_commands(pipeline, offset, count).await
                }
                Ok(answers) if refused_by_replica(&answers) => {
                    Repeating::note_refused();
                    self.0.req_packed_commands(pipeline, offset, count).await
                }
                // A transaction refused so: aborted, nothing of it ran.
                Err(e) if aborted_by_replica(&e) => {
                    Repeating::note_refused();
                    self.0.req_packed_commands(pipeline, offset, count).await
                }
                answer => answer,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn io_error(kind: io::ErrorKind) -> RedisError {
        RedisError::from(io::Error::from(kind))
    }

    #[test]
    fn a_dead_connection_is_sent_again_a_timeout_or_an_answer_is_not() {
        for dead in [
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert!(found_dead(&io_error(dead)), "{dead:?}");
        }
        let demoted = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        ));
        assert!(found_dead(&demoted), "READONLY: refused, not run");
        // The command may still run: never sent twice.
        assert!(!found_dead(&io_error(io::ErrorKind::TimedOut)));
        let answered = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        assert!(!found_dead(&answered), "an answer is an answer");
    }
}
