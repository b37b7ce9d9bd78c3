//! The backend: one pooled keep-alive client built at start, plain HTTP or
//! HTTPS (system roots plus an optional CA file), HTTP/1.1 to the backend.
//! Connect errors become 502, a backend slower than `response_timeout` to
//! send its response headers becomes 504.

pub mod pool;
pub mod upgrade;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use rustls_pki_types::ServerName;

use crate::config;
use pool::{Connector, Lease, Pool};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(#[source] std::io::Error),
    #[error("the upstream sent no response headers within {0:?}")]
    Timeout(Duration),
    #[error("the upstream request failed: {0}")]
    Failed(#[source] hyper::Error),
    /// A `101 Switching Protocols` to a request that asked for no upgrade.
    #[error("the upstream switched protocols though the request asked for no upgrade")]
    UnaskedSwitch,
    /// The client's request body could not be read (a bad chunk, a body cut
    /// short): the client's fault, not the backend's.
    #[error("the client's request body broke off: {0}")]
    ClientBody(#[source] hyper::Error),
}

impl UpstreamError {
    /// A failed exchange, blamed on whichever side broke it.
    fn failed(e: hyper::Error) -> Self {
        // A body it was given to send that failed is a "user" error of
        // hyper's, caused by that body's own error: the client's request
        // body, read by hyper's server. Other user errors (the connection's
        // task gone) are no fault of the client's.
        let client_body = e.is_user()
            && std::error::Error::source(&e).is_some_and(|cause| cause.is::<hyper::Error>());
        match client_body {
            true => UpstreamError::ClientBody(e),
            false => UpstreamError::Failed(e),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("upstream TLS setup: {0}")]
pub struct SetupError(String);

pub struct Upstream {
    pool: Arc<Pool>,
    authority: Authority,
    response_timeout: Duration,
}

// === impl Upstream ===

impl Upstream {
    /// `max_open`: most backend connections open at once (`limits.max_connections`).
    pub fn new(cfg: &config::Upstream, max_open: usize) -> Result<Self, SetupError> {
        let authority = cfg
            .url
            .authority()
            .cloned()
            .expect("validated: upstream.url has a host");
        let tls = if cfg.url.scheme() == Some(&Scheme::HTTPS) {
            let name = ServerName::try_from(authority.host().to_owned())
                .map_err(|e| SetupError(format!("upstream host {:?}: {e}", authority.host())))?;
            Some((
                tokio_rustls::TlsConnector::from(Arc::new(
                    crate::tls::client_config(cfg.ca_file.as_deref()).map_err(SetupError)?,
                )),
                name,
            ))
        } else {
            None
        };
        let connector = Connector {
            authority: with_default_port(&authority, tls.is_some()),
            tls,
            connect_timeout: cfg.connect_timeout,
        };
        Ok(Upstream {
            pool: Pool::new(
                connector,
                cfg.pool_max_idle,
                cfg.pool_idle_timeout,
                max_open,
            ),
            authority,
            response_timeout: cfg.response_timeout,
        })
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// Send a request (its URI in origin form, `Host` set) and wait at most
    /// `response_timeout` for the response headers. The `Lease` goes back to
    /// the pool when the response body has been read to its end. `now` is
    /// the caller's clock reading, reused for the pool's idle check.
    /// A plain function, not an async one: one async level less between
    /// the gateway and hyper, so one copy less of the request.
    pub fn send(
        &self,
        req: Request<Incoming>,
        now: Instant,
    ) -> impl Future<Output = Result<(Response<Incoming>, Lease), UpstreamError>> + Send + '_ {
        // The config bounds durations at 100 years: this cannot overflow.
        let deadline = tokio::time::Instant::from_std(now + self.response_timeout);
        let timeout = self.response_timeout;
        tokio::time::timeout_at(deadline, self.send_inner(req, now))
            .map(move |sent| sent.unwrap_or(Err(UpstreamError::Timeout(timeout))))
    }

    /// Not an async fn: see `Gateway::respond` (one copy of the request less).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn holds its arguments twice"
    )]
    fn send_inner(
        &self,
        mut req: Request<Incoming>,
        now: Instant,
    ) -> impl Future<Output = Result<(Response<Incoming>, Lease), UpstreamError>> + Send + '_ {
        async move {
            loop {
                let (mut sender, slot, reused) = match self.pool.checkout(now) {
                    Some((sender, slot)) => (sender, slot, true),
                    // Boxed: a connect (TLS handshake included) is several KiB of
                    // future state, and it would otherwise be inline in every
                    // request's future, copied on each request though rarely used.
                    None => Box::pin(self.pool.connect())
                        .await
                        .map_err(UpstreamError::Connect)?,
                };
                if let Err(e) = sender.ready().await {
                    // A pooled connection the backend closed meanwhile: take another.
                    if reused {
                        continue;
                    }
                    return Err(UpstreamError::Failed(e));
                }
                match sender.try_send_request(req).await {
                    Ok(resp) => return Ok((resp, Lease::new(sender, slot, self.pool.clone()))),
                    Err(mut e) => match e.take_message() {
                        // Not sent at all (the connection closed first): safe to retry on another.
                        Some(unsent) if reused => req = unsent,
                        _ => return Err(UpstreamError::failed(e.into_error())),
                    },
                }
            }
        }
    }
}

/// `host:port` to connect to (the URL may leave the port implicit).
fn with_default_port(a: &Authority, tls: bool) -> Authority {
    if a.port_u16().is_some() {
        return a.clone();
    }
    let port = if tls { 443 } else { 80 };
    format!("{}:{port}", a.host())
        .parse()
        .expect("host:port is a valid authority")
}

/// Rewrite the request target to origin form (`/path?query`) for the
/// backend; HTTP/2 and absolute-form requests carry scheme and authority.
pub fn to_origin_form(uri: &mut Uri) {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return;
    }
    *uri = uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
}
