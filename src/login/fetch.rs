//! A small HTTP/1.1 client for the login methods (the app's who-am-I URL,
//! the CAS server's ticket validation, the OpenID provider's discovery,
//! keys, token and userinfo endpoints), the secret scanners' public keys and
//! webhook deliveries: one connection per call, the whole exchange bounded
//! by the caller's timeout, the answer capped in size (a webhook delivery,
//! which needs only the status, reads none of it). That traffic is a call
//! now and then, so no pool.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

/// Largest answer read (who-am-I JSON, CAS XML, an OpenID provider's
/// metadata or key set are a few kilobytes at most).
const MAX_ANSWER: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, #[source] std::io::Error),
    #[error("no answer from {0} within {1:?}")]
    Timeout(String, Duration),
    #[error("the request to {0} failed: {1}")]
    Http(String, #[source] hyper::Error),
    #[error("the answer from {0} is larger than {MAX_ANSWER} bytes or broken")]
    Body(String),
    /// A server error (5xx): the server is there but cannot answer now.
    #[error("{0} answered HTTP {1}")]
    Status(String, StatusCode),
}

pub struct Fetch {
    /// Present when any login URL is https: system roots plus `upstream.ca_file`.
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

// === impl Fetch ===

impl Fetch {
    pub fn new(timeout: Duration, https: bool, ca_file: Option<&Path>) -> Result<Fetch, String> {
        let tls = if https {
            let cfg = crate::tls::client_config(ca_file)?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
        } else {
            None
        };
        Ok(Fetch { tls, timeout })
    }

    /// GET `url` with `headers`; the status and the whole body.
    pub async fn get(
        &self,
        url: &Uri,
        headers: HeaderMap,
    ) -> Result<(StatusCode, Bytes), FetchError> {
        self.send(Method::GET, url, headers, Bytes::new()).await
    }

    /// POST `form` (`application/x-www-form-urlencoded`) to `url` with `headers`.
    pub async fn post_form(
        &self,
        url: &Uri,
        mut headers: HeaderMap,
        form: String,
    ) -> Result<(StatusCode, Bytes), FetchError> {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self.send(Method::POST, url, headers, Bytes::from(form))
            .await
    }

    /// POST `body` to `url` with `headers`; the status alone, as soon as it
    /// comes: the answer's body is not read, so a receiver that answers 2xx
    /// with a large body, or one that never ends, has still answered 2xx.
    pub async fn post_status(
        &self,
        url: &Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<StatusCode, FetchError> {
        let origin = origin(url);
        let answer = self.answer(Method::POST, url, headers, body, &origin);
        match tokio::time::timeout(self.timeout, answer).await {
            // Dropping the body makes the connection close.
            Ok(r) => r.map(|resp| resp.status()),
            Err(_) => Err(FetchError::Timeout(origin, self.timeout)),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), FetchError> {
        let origin = origin(url);
        let exchange = async {
            let resp = self.answer(method, url, headers, body, &origin).await?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|_| FetchError::Body(origin.clone()))?
                .to_bytes();
            Ok((status, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(origin, self.timeout)),
        }
    }

    /// Send the request; the answer's head, its body still to read.
    async fn answer(
        &self,
        method: Method,
        url: &Uri,
        headers: HeaderMap,
        body: Bytes,
        origin: &str,
    ) -> Result<Response<Incoming>, FetchError> {
        let https = url.scheme_str() == Some("https");
        let authority = url
            .authority()
            .expect("fetched URLs are validated absolute");
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| FetchError::Connect(origin.to_owned(), e))?;
        let _ = tcp.set_nodelay(true);
        let path = url.path_and_query().map_or("/", |p| p.as_str());
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(body))
            .expect("a path from a valid URI is a valid request target");
        *req.headers_mut() = headers;
        req.headers_mut().insert(
            header::HOST,
            HeaderValue::from_str(authority.as_str())
                .expect("an authority is a valid header value"),
        );
        let http_err = |e| FetchError::Http(origin.to_owned(), e);
        match (&self.tls, https) {
            (Some(tls), true) => {
                let name = ServerName::try_from(host.to_owned()).map_err(|e| {
                    FetchError::Connect(origin.to_owned(), std::io::Error::other(e))
                })?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| FetchError::Connect(origin.to_owned(), e))?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(http_err)?;
                tokio::spawn(drive(conn, self.timeout));
                sender.send_request(req).await.map_err(http_err)
            }
            (None, true) => Err(FetchError::Connect(
                origin.to_owned(),
                std::io::Error::other("https is not set up for this URL"),
            )),
            (_, false) => {
                let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(http_err)?;
                tokio::spawn(drive(conn, self.timeout));
                sender.send_request(req).await.map_err(http_err)
            }
        }
    }
}

/// Run a connection for `timeout` at most: it outlives its call by no
/// more, whatever the peer does with it (an answer whose body is left unread).
async fn drive(conn: impl std::future::Future, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, conn).await;
}

/// `scheme://authority`, as errors name a URL.
pub fn origin(url: &Uri) -> String {
    format!(
        "{}://{}",
        url.scheme_str().unwrap_or("http"),
        url.authority().map_or("", |a| a.as_str())
    )
}
