//! A TCP relay on 127.0.0.1:0 that can stall: a network partition that
//! keeps every connection open (no reset, no FIN) while nothing gets through,
//! as when a switch drops packets and TCP keeps retransmitting. Healing lets
//! the queued bytes through, in order, as TCP would.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct StallingProxy {
    pub addr: SocketAddr,
    stalled: Arc<watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl StallingProxy {
    pub async fn start(target: SocketAddr) -> StallingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = Arc::new(watch::Sender::new(false));
        let tx = stalled.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(relay(cr, sw, tx.subscribe()));
                tokio::spawn(relay(sr, cw, tx.subscribe()));
            }
        });
        StallingProxy {
            addr,
            stalled,
            task,
        }
    }

    /// Stop moving bytes; connections stay open.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    pub fn heal(&self) {
        self.stalled.send_replace(false);
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // While stalled nothing is read: the bytes wait in the kernel's buffers.
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = stalled.wait_for(|s| *s) => continue,
        };
        // Bytes read just before a stall are held until it heals.
        if stalled.wait_for(|s| !*s).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
