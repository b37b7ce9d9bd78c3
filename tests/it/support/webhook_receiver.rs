//! A webhook receiver: a small HTTP server that records every delivery and
//! checks its Standard Webhooks signature with its own HMAC code (not
//! keygate's), and that can be taken down and brought back on the same port,
//! or made to hang.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;

use super::body;

/// A signing secret as an operator writes it into `secret_file`.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: u64,
    pub body: Value,
    /// The `webhook-signature` holds a `v1,` signature made with `SECRET`.
    pub verified: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 to everything.
    Up,
    /// Accept, read (and record), never answer.
    Hang,
    /// 200 with a body larger than any answer keygate reads (1 MiB).
    LargeAnswer,
    /// 200 whose body starts and never ends.
    EndlessAnswer,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Receiver {
    pub async fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut r = Receiver {
            addr,
            deliveries: Arc::default(),
            task: None,
        };
        r.serve(listener, mode);
        r
    }

    /// `[[webhooks]] url`.
    pub fn url(&self) -> String {
        format!("http://{}/hooks/keygate", self.addr)
    }

    /// Stop answering: connections to the port are refused.
    pub fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Listen again on the same port.
    pub async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener, Mode::Up);
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    fn serve(&mut self, listener: TcpListener, mode: Mode) {
        let log = self.deliveries.clone();
        self.task = Some(super::serve_http1(listener, move |_, req| {
            let log = log.clone();
            async move {
                let delivery = read(req).await;
                log.lock().unwrap().push(delivery);
                let answer = match mode {
                    Mode::Up => body::empty(),
                    Mode::Hang => std::future::pending().await,
                    Mode::LargeAnswer => body::full(vec![b'x'; 1024 * 1024]),
                    Mode::EndlessAnswer => {
                        let (tx, answer) = body::channel();
                        tokio::spawn(async move {
                            let _ = tx.send(Ok("still writing".into())).await;
                            // Held open: the body never ends.
                            std::future::pending::<()>().await;
                            drop(tx);
                        });
                        answer
                    }
                };
                Ok::<_, Infallible>(Response::new(answer))
            }
        }));
    }
}

async fn read(req: Request<Incoming>) -> Delivery {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let raw = req.into_body().collect().await.unwrap().to_bytes();
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&raw);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    Delivery {
        verified: signature.split(' ').any(|s| s == expected),
        id,
        timestamp: timestamp.parse().unwrap_or(0),
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
    }
}
