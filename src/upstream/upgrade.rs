//! WebSocket (and any HTTP/1.1 `Upgrade`): once the backend answered 101,
//! both sides are taken over from hyper and bytes are copied both ways until
//! either closes.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::conn::{idle_watch, ConnCtx};

/// Join the client's and the backend's upgraded connections in a task, until
/// either closes or no bytes have moved for `limits.idle_timeout` (as nginx's
/// `proxy_read_timeout` ends a quiet WebSocket). The tunnel holds the client
/// connection's context, and with it its place under `max_connections`.
pub fn tunnel(client: OnUpgrade, upstream: OnUpgrade, conn: Arc<ConnCtx>) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
                Ok((up, down)) => tracing::debug!(
                    bytes_up = up,
                    bytes_down = down,
                    "upgraded connection closed"
                ),
                Err(e) => tracing::debug!(error = %e, "upgraded connection ended with an error"),
            },
            () = idle_watch(conn.stats.clone(), conn.idle_timeout) => {
                tracing::debug!(client = %conn.peer, "closing idle upgraded connection");
            }
        }
    });
}
