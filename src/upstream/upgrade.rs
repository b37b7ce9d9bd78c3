//! WebSocket (and any HTTP/1.1 `Upgrade`): once the backend answered 101,
//! both sides are taken over from hyper and bytes are copied both ways until
//! either closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Join the client's and the backend's upgraded connections in a task.
pub fn tunnel(client: OnUpgrade, upstream: OnUpgrade) {
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
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((up, down)) => tracing::debug!(
                bytes_up = up,
                bytes_down = down,
                "upgraded connection closed"
            ),
            Err(e) => tracing::debug!(error = %e, "upgraded connection ended with an error"),
        }
    });
}
