//! WebSocket (and any HTTP/1.1 `Upgrade`): once the backend answered 101,
//! both sides are taken over from hyper and bytes are copied both ways until
//! either closes.

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::pool::Slot;
use crate::conn::{idle_watch, ConnCtx};
use crate::fleet::tunnels::OpenTunnel;

/// Join the client's and the backend's upgraded connections in a task, until
/// either closes or no bytes have moved for `limits.idle_timeout` (as nginx's
/// `proxy_read_timeout` ends a quiet WebSocket). The tunnel holds the client
/// connection's context, and with it its place under `max_connections`,
/// and the backend connection's `upstream_slot`, its place among backend
/// connections (`limits.max_connections` too).
/// A tunnel admitted by a key is `registered`: the key's revocation ends it.
pub fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    upstream_slot: Slot,
    conn: Arc<ConnCtx>,
    registered: Option<OpenTunnel>,
) {
    let (ended, guard) = match registered {
        Some(OpenTunnel { ended, guard }) => (Some(ended), Some(guard)),
        None => (None, None),
    };
    tokio::spawn(async move {
        // Deregisters (and tells a revocation waiting for it) once the
        // connections below are dropped, whichever way the task ends.
        let _guard = guard;
        let _upstream_slot = upstream_slot;
        let revoked = async {
            match ended {
                // Sent, or dropped by the registry: either way, end it.
                Some(ended) => drop(ended.await),
                None => std::future::pending().await,
            }
        };
        tokio::pin!(revoked);
        let (client, upstream) = tokio::select! {
            pair = async { tokio::try_join!(client, upstream) } => match pair {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade failed");
                    return;
                }
            },
            () = &mut revoked => return,
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
            () = &mut revoked => {
                tracing::info!(client = %conn.peer, "closing an upgraded connection: its key was revoked");
                // Say so (TLS close_notify, FIN) if the client takes it at once.
                let bye = tokio::io::AsyncWriteExt::shutdown(&mut client);
                let _ = tokio::time::timeout(std::time::Duration::from_millis(200), bye).await;
            }
        }
        drop((client, upstream));
    });
}
