//! The backend: one pooled keep-alive client built at start, plain HTTP or
//! HTTPS (system roots plus an optional CA file), HTTP/1.1 to the backend.
//! Connect errors become 502, a backend slower than `response_timeout` to
//! send its response headers becomes 504.

pub mod upgrade;

use std::path::Path;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::config;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(#[source] hyper_util::client::legacy::Error),
    #[error("the upstream sent no response headers within {0:?}")]
    Timeout(Duration),
    #[error("the upstream request failed: {0}")]
    Failed(#[source] hyper_util::client::legacy::Error),
}

#[derive(Debug, thiserror::Error)]
#[error("upstream TLS setup: {0}")]
pub struct SetupError(String);

pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
    scheme: Scheme,
    authority: Authority,
    response_timeout: Duration,
}

// === impl Upstream ===

impl Upstream {
    pub fn new(cfg: &config::Upstream) -> Result<Self, SetupError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let tls = client_tls(cfg)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle)
            .build(connector);
        Ok(Upstream {
            client,
            scheme: cfg.url.scheme().cloned().unwrap_or(Scheme::HTTP),
            authority: cfg
                .url
                .authority()
                .cloned()
                .expect("validated: upstream.url has a host"),
            response_timeout: cfg.response_timeout,
        })
    }

    /// The backend URI for a request path.
    pub fn uri_for(&self, path: Option<&PathAndQuery>) -> Uri {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(
                path.cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/")),
            )
            .build()
            .expect("scheme, authority and path are valid")
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Send a prepared request; wait at most `response_timeout` for the response headers.
    pub async fn send(&self, req: Request<Incoming>) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.response_timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout(self.response_timeout)),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect(e)),
            Ok(Err(e)) => Err(UpstreamError::Failed(e)),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

fn client_tls(cfg: &config::Upstream) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    // System roots are only read for an https:// upstream.
    if cfg.url.scheme() == Some(&Scheme::HTTPS) {
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    }
    if let Some(path) = &cfg.ca_file {
        for cert in load_ca_file(path).map_err(SetupError)? {
            roots.add(cert).map_err(|e| SetupError(e.to_string()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Read the PEM certificates of `upstream.ca_file`.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read PEM certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}
