//! A connection to the master that Sentinel names, following failovers.
//!
//! redis-rs's `SentinelClient` resolves the master once per connection it
//! opens, and `ConnectionManager` reconnects to a fixed address, so neither
//! follows a failover alone. keygate keeps one multiplexed connection to
//! the resolved master ([`Renewing`]) and forgets it on any error that means
//! "this is no longer the master I can write to" ([`stale`]: I/O error,
//! dropped or refused connection, timeout, `READONLY` from a demoted
//! master). The failing call still fails (the request gets 503, fail
//! closed); the next one asks the sentinels again ([`dial`]), and redis-rs
//! checks the answer with `ROLE`. Sentinel itself disconnects clients of a
//! master it demotes (`CLIENT KILL`).
//!
//! Until Sentinel has finished a failover it names the old master; if that
//! address answers as a master (a restarted old master without persistence,
//! before Sentinel demotes it) keygate reads from it: the classic Sentinel
//! caveat, which persistence on the master (or not restarting it by hand)
//! avoids.

use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, RedisError};

use super::renewing::Dial;

/// The sentinels, asked by one caller at a time (`async_get_client` needs
/// them exclusively).
pub type Sentinels = Arc<tokio::sync::Mutex<SentinelClient>>;

/// Connect to the master the sentinels name now.
pub fn dial(sentinels: Sentinels, config: AsyncConnectionConfig) -> Dial<MultiplexedConnection> {
    Box::new(move || {
        let (sentinels, config) = (sentinels.clone(), config.clone());
        Box::pin(async move {
            let master = sentinels.lock().await.async_get_client().await?;
            let conn = master
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            tracing::info!("connected to the Redis master named by Sentinel");
            Ok(conn)
        })
    })
}

/// Whether an error means the connection no longer reaches a writable master.
pub fn stale(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || e.code() == Some("READONLY")
        || e.to_string().contains("READONLY")
}
