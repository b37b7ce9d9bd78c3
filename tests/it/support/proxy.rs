//! A TCP relay on 127.0.0.1:0 in front of a server (Redis), whose way of
//! passing bytes the test switches at any time:
//!
//! * [`Mode::Pass`]: bytes go through as they come;
//! * [`Mode::Stall`]: a network partition that keeps every connection open
//!   (no reset, no FIN) while nothing gets through in either direction, as
//!   when a switch drops packets and TCP keeps retransmitting;
//! * [`Mode::Delay`]: every reply arrives that much later than the server
//!   sent it (requests are not held up): a slow server or link;
//! * [`Mode::CutReply`]: the next reply stops half-way through and nothing
//!   more arrives: a server that hangs while it writes.
//!
//! [`Relay::strand`] stalls only the connections open at the time, for good,
//! while new ones pass: a firewall or NAT that forgot those flows, or a
//! failover behind the same address. [`Relay::retarget`] sends new
//! connections to another server while the open ones stay.
//!
//! Nothing is ever lost or reordered: switching back to `Pass` lets the held
//! bytes through, in order, as TCP would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How the relay passes bytes (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Stall,
    Delay(Duration),
    CutReply,
}

pub struct Relay {
    pub addr: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    /// Where new connections go ([`Relay::retarget`]).
    target: Arc<watch::Sender<SocketAddr>>,
    /// How many times [`Relay::strand`] was called.
    strands: Arc<watch::Sender<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// A relay to `target`, passing bytes through until told otherwise.
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(watch::Sender::new(Mode::Pass));
        let strands = Arc::new(watch::Sender::new(0));
        let target = Arc::new(watch::Sender::new(target));
        let (tx, stranded, to) = (mode.clone(), strands.clone(), target.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let target = *to.borrow();
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let born = *stranded.borrow();
                let seen = watch::Sender::new(Mode::Pass);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(relay(cr, sw, seen.subscribe(), Direction::Requests));
                tokio::spawn(relay(sr, cw, seen.subscribe(), Direction::Replies));
                tokio::spawn(view(tx.subscribe(), stranded.subscribe(), born, seen));
            }
        });
        Relay {
            addr,
            mode,
            target,
            strands,
            task,
        }
    }

    /// A relay to the Redis server listening on `port` of 127.0.0.1.
    pub async fn to_port(port: u16) -> Relay {
        Relay::start(SocketAddr::from(([127, 0, 0, 1], port))).await
    }

    /// `redis://` through the relay.
    pub fn redis_url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Send new connections to the server on `port` of 127.0.0.1; those
    /// open now stay with the old one (a failover behind one address: a
    /// load balancer or a virtual IP that moved).
    pub fn retarget(&self, port: u16) {
        self.target
            .send_replace(SocketAddr::from(([127, 0, 0, 1], port)));
    }

    /// Stop moving bytes; connections stay open.
    pub fn stall(&self) {
        self.set(Mode::Stall);
    }

    /// Pass everything through again, held bytes first.
    pub fn heal(&self) {
        self.set(Mode::Pass);
    }

    /// Stall the connections open now, for good (their sockets stay open);
    /// connections made afterwards pass as the mode says.
    pub fn strand(&self) {
        self.strands.send_modify(|n| *n += 1);
    }
}

/// The mode one connection sees: the relay's, until a strand after its
/// birth (`born` strands before it) leaves it stalled while it lives.
async fn view(
    mut mode: watch::Receiver<Mode>,
    mut strands: watch::Receiver<u64>,
    born: u64,
    seen: watch::Sender<Mode>,
) {
    loop {
        if *strands.borrow_and_update() > born {
            seen.send_replace(Mode::Stall);
            // Held open (a dropped sender would end the connection).
            seen.closed().await;
            return;
        }
        seen.send_replace(*mode.borrow_and_update());
        tokio::select! {
            changed = mode.changed() => if changed.is_err() { return },
            changed = strands.changed() => if changed.is_err() { return },
            _ = seen.closed() => return,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client to server: only `Stall` holds them.
    Requests,
    /// Server to client: every mode applies.
    Replies,
}

/// Read as fast as bytes come (noting when), deliver as the mode says.
async fn relay(
    from: OwnedReadHalf,
    to: OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
    way: Direction,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(read(from, tx));
    deliver(rx, to, mode, way).await;
}

async fn read(mut from: OwnedReadHalf, tx: mpsc::UnboundedSender<(Instant, Vec<u8>)>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
}

/// Write each chunk read when the mode lets it through; ends (closing the
/// write side) after the last chunk of a closed connection.
async fn deliver(
    mut rx: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    way: Direction,
) {
    while let Some((read_at, chunk)) = rx.recv().await {
        let mut rest = &chunk[..];
        loop {
            let now = *mode.borrow_and_update();
            match (now, way) {
                (Mode::Stall, _) => {}
                (Mode::Pass, _) | (_, Direction::Requests) => break,
                (Mode::Delay(by), Direction::Replies) => tokio::select! {
                    _ = tokio::time::sleep_until(read_at + by) => break,
                    _ = mode.changed() => continue,
                },
                (Mode::CutReply, Direction::Replies) => {
                    // Half of this reply now (once), the rest when the mode changes.
                    if rest.len() == chunk.len() && rest.len() > 1 {
                        let (half, other) = rest.split_at(rest.len() / 2);
                        if to.write_all(half).await.is_err() {
                            return;
                        }
                        rest = other;
                    }
                }
            }
            // Held: wait for the next mode.
            if mode.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(rest).await.is_err() {
            return;
        }
    }
}
