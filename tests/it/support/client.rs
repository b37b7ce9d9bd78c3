//! HTTPS clients for the tests: hyper's pooled client over rustls (HTTP/1.1
//! or HTTP/2 by ALPN) and a raw TLS stream for hostile input.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Version};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::body::{self, TestBody};
use super::tls::Ca;

pub type HttpsClient = Client<HttpsConnector<HttpConnector>, TestBody>;

pub fn h1(ca: &Ca) -> HttpsClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*ca.client_config(&[])).clone())
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

pub fn h2(ca: &Ca) -> HttpsClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*ca.client_config(&[])).clone())
        .https_only()
        .enable_http2()
        .build();
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector)
}

/// Like `h1`, but connecting from `local` (another loopback address, to
/// play a trusted proxy).
pub fn h1_from(ca: &Ca, local: std::net::IpAddr) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_local_address(Some(local));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*ca.client_config(&[])).clone())
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// `h1` or `h2`, for tests that run once per protocol.
pub fn by_name(name: &str, ca: &Ca) -> HttpsClient {
    match name {
        "h1" => h1(ca),
        "h2" => h2(ca),
        other => panic!("no client {other:?}"),
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn send(client: &HttpsClient, req: Request<TestBody>) -> Answer {
    let resp = client.request(req).await.expect("request completes");
    let (parts, b) = resp.into_parts();
    let body = b.collect().await.expect("body completes").to_bytes();
    Answer {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    }
}

pub async fn get(client: &HttpsClient, url: &str) -> Answer {
    send(client, Request::get(url).body(body::empty()).unwrap()).await
}

/// A TLS connection to the gateway on which the test writes raw bytes.
pub async fn raw_tls(addr: SocketAddr, ca: &Ca) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(ca.client_config(&[b"http/1.1"]));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with keygate")
}

/// Like `raw_tls`, but the handshake error is returned.
pub async fn raw_tls_result(addr: SocketAddr, ca: &Ca) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(ca.client_config(&[b"http/1.1"]))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// `Authorization: Basic` with `key` as the password of the user `apikey`.
pub fn basic(key: &str) -> String {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("apikey:{key}"));
    format!("Basic {basic}")
}

/// GET `url` with `key` as HTTP Basic credentials (user `apikey`).
pub async fn get_with_key(client: &HttpsClient, url: &str, key: &str) -> Answer {
    let req = Request::get(url)
        .header("authorization", basic(key))
        .body(body::empty())
        .unwrap();
    send(client, req).await
}

/// `req` (method, URL and headers set) sent with a JSON body that starts
/// with `first` and never ends: keygate's answer, within 6 s.
pub async fn send_unfinished(
    client: &HttpsClient,
    req: http::request::Builder,
    first: &'static [u8],
) -> Answer {
    let (tx, unfinished) = body::channel();
    tx.send(Ok(Bytes::from_static(first))).await.unwrap();
    let req = req
        .header("content-type", "application/json")
        .body(unfinished)
        .unwrap();
    let answer = super::within(6, "an answer to a body that never ends", send(client, req)).await;
    drop(tx);
    answer
}

/// keygate's answer to a body of its own APIs that did not arrive in time.
pub fn assert_slow_body(a: &Answer) {
    assert_eq!(a.status, StatusCode::REQUEST_TIMEOUT, "{}", a.text());
    let error: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(
        error["error"],
        "the body did not arrive in time (half of leaks.answer_within)"
    );
}
