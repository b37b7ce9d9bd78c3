//! Wiring: from a validated `Config` to running listeners, in order.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::http::gateway::Gateway;
use crate::keyring::Keyring;
use crate::listener;
use crate::ratelimit::Limiter;
use crate::tls::{TlsError, TlsReloader};
use crate::upstream::{SetupError, Upstream};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Upstream(#[from] SetupError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Where the TLS configuration comes from.
pub enum TlsMode {
    /// `listen.tls_cert` / `listen.tls_key`, reloadable (or plaintext if the config says so).
    FromConfig,
    /// A fixed configuration (`keygate dev`'s self-signed certificate).
    Fixed(Arc<rustls::ServerConfig>),
}

/// A started gateway: its bound address and the handles to reload and stop it.
pub struct Running {
    pub main_addr: SocketAddr,
    tls: Option<TlsReloader>,
    shutdown: watch::Sender<bool>,
    main: JoinHandle<bool>,
}

/// Start keygate's listeners on the current runtime, checking keys in `keyring`.
pub async fn start(
    config: &Config,
    tls_mode: TlsMode,
    keyring: &Keyring,
) -> Result<Running, StartError> {
    // 1. the upstream client (pooled, built once)
    let upstream = Upstream::new(&config.upstream)?;

    // 2. TLS
    let (reloader, tls) = match (tls_mode, &config.listen.tls) {
        (TlsMode::Fixed(cfg), _) => {
            let (r, s) = TlsReloader::fixed(cfg);
            (Some(r), Some(s))
        }
        (TlsMode::FromConfig, Some(files)) => {
            let (r, s) = TlsReloader::from_files(&files.cert, &files.key)?;
            (Some(r), Some(s))
        }
        (TlsMode::FromConfig, None) => {
            tracing::warn!("listen.plaintext = true: serving plain HTTP; only do this behind a TLS-terminating load balancer");
            (None, None)
        }
    };

    // 3. bind
    let addr = config.listen.addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let main_addr = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;

    // 4. spawn the main listener
    let settings = listener::Settings {
        tls,
        max_connections: config.limits.max_connections,
        tls_handshake_timeout: config.limits.tls_handshake_timeout,
        header_read_timeout: config.limits.header_read_timeout,
        idle_timeout: config.limits.idle_timeout,
        max_header_bytes: config.limits.max_header_bytes,
        shutdown_grace: config.runtime.shutdown_grace,
    };
    let auth = Authenticator::new(
        keyring.store.clone(),
        keyring.digest.clone(),
        keyring.prefix(),
        &config.auth.username,
        config.auth.accept,
    );
    let limiter = Limiter::new(&config.rate_limit);
    let gateway = Arc::new(Gateway::new(
        config,
        upstream,
        auth,
        keyring.store.clone(),
        limiter,
    ));
    let (shutdown, mut rx) = watch::channel(false);
    let main = tokio::spawn(listener::run(listener, gateway, settings, async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }));
    tracing::info!(addr = %main_addr, upstream = %config.upstream.url, "keygate listening");

    Ok(Running {
        main_addr,
        tls: reloader,
        shutdown,
        main,
    })
}

// === impl Running ===

impl Running {
    /// Re-read the certificate files (SIGHUP); a bad pair keeps the old one.
    pub fn reload(&self) {
        if let Some(tls) = &self.tls {
            tls.reload();
        }
    }

    /// Stop accepting, drain within the grace period; true if every connection finished.
    pub async fn shutdown(self) -> bool {
        let _ = self.shutdown.send(true);
        self.main.await.unwrap_or(false)
    }
}
