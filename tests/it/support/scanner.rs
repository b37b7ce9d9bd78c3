//! A secret scanner for the tests: a P-256 key pair made here (rcgen, ring),
//! its public key list in GitHub's format (`{"public_keys":[…]}`, as a file
//! or served over HTTP), and reports signed as GitHub signs them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use http::{Response, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::json;
use tokio::net::TcpListener;

use super::body;

pub struct Scanner {
    pub key_id: String,
    pem: String,
    pair: EcdsaKeyPair,
}

impl Scanner {
    /// A scanner whose key is named `key_id` in its list.
    pub fn new(key_id: &str) -> Scanner {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &key.serialize_der(),
            &SystemRandom::new(),
        )
        .unwrap();
        Scanner {
            key_id: key_id.to_owned(),
            pem: key.public_key_pem(),
            pair,
        }
    }

    /// Base64 of the DER signature over `body` (`Github-Public-Key-Signature`).
    pub fn sign(&self, body: &[u8]) -> String {
        let sig = self.pair.sign(&SystemRandom::new(), body).unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }
}

/// The key list of `scanners`, as GitHub publishes its own.
pub fn key_list(scanners: &[&Scanner]) -> String {
    let keys: Vec<_> = scanners
        .iter()
        .map(|s| json!({"key_identifier": s.key_id, "key": s.pem, "is_current": true}))
        .collect();
    json!({ "public_keys": keys }).to_string()
}

/// A report body: one `{"token","type","url","source"}` per token.
pub fn report(tokens: &[&str]) -> String {
    let entries: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "token": t,
                "type": "keygate_api_key",
                "url": format!("https://github.com/octo/leaky/blob/abc123/config.env#L{}", i + 1),
                "source": "content",
            })
        })
        .collect();
    serde_json::Value::Array(entries).to_string()
}

/// A key list served over HTTP that counts its requests and can be taken down.
pub struct KeyListServer {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    /// 200 with the list while 0; the status to answer otherwise.
    failing: Arc<AtomicU32>,
    list: Arc<std::sync::Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KeyListServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KeyListServer {
    pub async fn start(list: String) -> KeyListServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicU32::new(0));
        let list = Arc::new(std::sync::Mutex::new(list));
        let (r, f, l) = (requests.clone(), failing.clone(), list.clone());
        let task = super::serve_http1(listener, move |_, _req| {
            let (r, f, l) = (r.clone(), f.clone(), l.clone());
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                let status = f.load(Ordering::SeqCst);
                let resp = if status == 0 {
                    let mut resp = Response::new(body::full(l.lock().unwrap().clone()));
                    resp.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    resp
                } else {
                    let mut resp = Response::new(body::full("down"));
                    *resp.status_mut() = StatusCode::from_u16(status as u16).unwrap();
                    resp
                };
                Ok::<_, Infallible>(resp)
            }
        });
        KeyListServer {
            addr,
            requests,
            failing,
            list,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/meta/public_keys/secret_scanning", self.addr)
    }

    /// Answer every request with `status` (0: serve the list again).
    pub fn fail_with(&self, status: u32) {
        self.failing.store(status, Ordering::SeqCst);
    }

    pub fn publish(&self, list: String) {
        *self.list.lock().unwrap() = list;
    }
}
