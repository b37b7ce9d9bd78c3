//! The end of a connection keygate closes: GOAWAY when there is a reason to
//! give, close_notify and FIN, then the socket stays open a moment so that
//! the kernel does not answer the client's further bytes with a TCP reset
//! that would destroy what is still in flight to it. Up to `DRAIN_BYTES`
//! are read and dropped, which is where a well-behaved client's EOF shows
//! up; a client that keeps sending past that (a flood) is no longer read
//! (no more decryption work: TCP flow control holds it) until `LINGER` is
//! over.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Stream;

/// Longest a closed connection is held open.
const LINGER: Duration = Duration::from_secs(2);
/// Most bytes read and dropped while waiting for the client's EOF.
const DRAIN_BYTES: usize = 64 * 1024;

pub async fn linger<IO: Stream>(mut io: IO, goaway: Option<Vec<u8>>, shut_down: bool) {
    let _ = tokio::time::timeout(LINGER, async {
        if let Some(frame) = goaway {
            io.write_all(&frame).await?;
            io.flush().await?;
        }
        if !shut_down {
            io.shutdown().await?;
        }
        let mut buf = vec![0u8; 16 * 1024];
        let mut drained = 0;
        while drained < DRAIN_BYTES {
            match io.read(&mut buf).await? {
                0 => return Ok(()),
                n => drained += n,
            }
        }
        // Still sending: hold the socket (unread) until LINGER is over.
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    })
    .await;
}
