//! Wiring: from a validated `Config` to running listeners, in order.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::auth::Authenticator;
use crate::authz::Authz;
use crate::config::{Config, LoginMethod};
use crate::http::admission::Admission;
use crate::http::expiry::ExpiryWarning;
use crate::http::gateway::Gateway;
use crate::keyring::Keyring;
use crate::leaks::Leaks;
use crate::listener;
use crate::login::trusted_header::TrustedHeader;
use crate::ratelimit::Limiter;
use crate::selfservice::SelfService;
use crate::tls::{TlsError, TlsReloader};
use crate::tokens::Tokens;
use crate::upstream::{SetupError, Upstream};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Upstream(#[from] SetupError),
    #[error("admin.token_file: {0}")]
    Tokens(String),
    #[error("login: {0}")]
    Login(String),
    /// The message names the `[leaks]` or `[[webhooks]]` key.
    #[error("{0}")]
    Leaks(String),
    /// `key` is the setting that chose the address (`listen.addr`, `admin.addr`).
    #[error("{key}: cannot listen on {addr}: {source}{}", in_use_hint(.source, .addr))]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What to do about an address keygate could not bind: find the process
/// that holds the port, grant the privilege a low port needs, or name an
/// address this host has.
fn in_use_hint(e: &std::io::Error, addr: &SocketAddr) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            " (another process listens there: `ss -ltnp 'sport = :{}'` names it)",
            addr.port()
        ),
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => " (a port below 1024 needs root or CAP_NET_BIND_SERVICE: deploy/systemd's unit grants it with AmbientCapabilities=, Docker with --cap-add NET_BIND_SERVICE; or listen on 1024 or above, e.g. 8443)".into(),
        std::io::ErrorKind::AddrNotAvailable => " (no interface of this host has that address: use one it has (`ip -brief address`), or 0.0.0.0 or [::] for all)".into(),
        _ => String::new(),
    }
}

/// Where the TLS configuration comes from.
pub enum TlsMode {
    /// `listen.tls_cert` / `listen.tls_key`, reloadable (or plaintext if the config says so).
    FromConfig,
    /// A fixed configuration (`keygate dev`'s self-signed certificate).
    Fixed(Arc<rustls::ServerConfig>),
}

/// A started gateway: its bound addresses and the handles to reload and stop it.
pub struct Running {
    pub main_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The auth listener's, when `[authz] addr` is set.
    pub authz_addr: Option<SocketAddr>,
    tls: Option<TlsReloader>,
    /// The admin listener's own TLS, when it requires client certificates.
    admin_tls: Option<TlsReloader>,
    tokens: Arc<Tokens>,
    /// Read by /readyz: true from the moment shutdown starts.
    draining: Arc<AtomicBool>,
    shutdown_main: watch::Sender<bool>,
    shutdown_admin: watch::Sender<bool>,
    main: JoinHandle<bool>,
    admin: JoinHandle<bool>,
    /// The auth listener, stopped with the main one.
    authz: Option<JoinHandle<bool>>,
    /// This instance's fleet membership (Redis store with the cache on),
    /// or the check of its key tunnels (Redis without the cache).
    member: Option<crate::fleet::Member>,
    /// This instance's webhook delivery workers (`[[webhooks]]`).
    webhooks: Option<crate::webhooks::Delivery>,
    /// This instance's share of expiry notices and the idle-key sweep.
    chores: crate::keyring::Chores,
}

/// Start keygate's listeners on the current runtime, checking keys in `keyring`.
pub async fn start(
    config: &Config,
    tls_mode: TlsMode,
    keyring: &Keyring,
) -> Result<Running, StartError> {
    // 1. the upstream client (pooled, built once)
    let upstream = Upstream::new(&config.upstream, config.limits.max_connections)?;

    // 2. TLS
    let (reloader, tls) = match (tls_mode, &config.listen.tls) {
        (TlsMode::Fixed(cfg), _) => {
            let (r, s) = TlsReloader::fixed(cfg);
            (Some(r), Some(s))
        }
        (TlsMode::FromConfig, Some(files)) => {
            let (r, s) = TlsReloader::from_files(&files.cert, &files.key, None)?;
            (Some(r), Some(s))
        }
        (TlsMode::FromConfig, None) => {
            tracing::warn!("listen.plaintext = true: serving plain HTTP; only do this behind a TLS-terminating load balancer");
            (None, None)
        }
    };

    // 3. bind every listener before serving any
    let bind = |key, addr: SocketAddr| async move {
        let bind_error = |source| StartError::Bind { key, addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        Ok::<_, StartError>((listener, bound))
    };
    let (main_listener, main_addr) = bind("listen.addr", config.listen.addr).await?;
    let (admin_listener, admin_addr) = bind("admin.addr", config.admin.addr).await?;
    let authz_bound = match &config.authz {
        Some(authz) => Some(bind("authz.addr", authz.addr).await?),
        None => None,
    };

    let metrics = keyring.metrics().clone();
    let settings = listener::Settings {
        name: "main",
        tls,
        max_connections: config.limits.max_connections,
        tls_handshake_timeout: config.limits.tls_handshake_timeout,
        header_read_timeout: config.limits.header_read_timeout,
        idle_timeout: config.limits.idle_timeout,
        max_header_bytes: config.limits.max_header_bytes,
        send_timeout: config.limits.send_timeout,
        h2: config.limits.h2.clone(),
        shutdown_grace: config.runtime.shutdown_grace,
        metrics: Some(metrics.clone()),
    };

    // 4. the admin listener: the main certificate unless configured
    //    plaintext, and client certificates when `admin.client_ca` is set
    let mut admin_reloader = None;
    let admin_tls = match (&config.admin.client_ca, &config.listen.tls) {
        _ if config.admin.plaintext => None,
        (Some(ca), Some(files)) => {
            let (r, s) = TlsReloader::from_files(&files.cert, &files.key, Some(ca))?;
            admin_reloader = Some(r);
            tracing::info!(client_ca = %ca.display(), "the admin listener requires client certificates");
            Some(s)
        }
        _ => settings.tls.clone(),
    };
    let admin_settings = listener::Settings {
        name: "admin",
        tls: admin_tls,
        metrics: None,
        ..settings.clone()
    };
    if admin_settings.tls.is_none() {
        tracing::warn!(addr = %admin_addr, "the admin listener serves plain HTTP: keep it on loopback or a private network");
    }
    let tokens = Arc::new(Tokens::load(&config.admin.token_file).map_err(StartError::Tokens)?);
    let draining = Arc::new(AtomicBool::new(false));
    let admin = Arc::new(Admin::new(
        keyring.clone(),
        tokens.clone(),
        draining.clone(),
        config.leaks.body_within(),
    ));
    let (shutdown_admin, mut admin_rx) = watch::channel(false);
    let admin = tokio::spawn(listener::run(
        admin_listener,
        admin,
        admin_settings,
        async move {
            let _ = admin_rx.wait_for(|stop| *stop).await;
        },
    ));

    // 5. the validation cache, as a member of the fleet sharing the store,
    //    and this instance's share of webhook deliveries and key chores
    let member = keyring.join_fleet();
    let webhooks = keyring
        .deliver_webhooks(config.upstream.ca_file.as_deref())
        .map_err(StartError::Leaks)?;
    let chores = keyring.run_chores();
    let auth = Authenticator::new(keyring.clone(), &config.auth.username, config.auth.accept);

    // 6. the gateway's admission steps
    let limiter = Limiter::new(&config.rate_limit);
    let leaks = Leaks::new(config, keyring.clone()).map_err(StartError::Leaks)?;
    let selfservice =
        SelfService::new(config, keyring.clone(), leaks).map_err(StartError::Login)?;
    let admission = Admission::new(
        config,
        auth,
        limiter.clone(),
        metrics.clone(),
        trusted_header(config),
    );
    let (shutdown_main, mut main_rx) = watch::channel(false);

    // 7. the auth listener: the same admission (sharing the limiter and
    //    the metrics), answered to the proxy that asks instead of forwarded
    let mut authz_addr = None;
    let authz = match (&config.authz, authz_bound) {
        (Some(authz), Some((listener, bound))) => {
            authz_addr = Some(bound);
            let auth =
                Authenticator::new(keyring.clone(), &config.auth.username, config.auth.accept);
            let admission = Admission::new(
                config,
                auth,
                limiter,
                metrics.clone(),
                trusted_header(config),
            );
            let handler = Arc::new(Authz::new(
                config,
                authz,
                admission,
                metrics.clone(),
                ExpiryWarning::new(keyring.warn_window()),
            ));
            let authz_settings = listener::Settings {
                name: "authz",
                tls: settings.tls.clone().filter(|_| authz.tls),
                metrics: None,
                ..settings.clone()
            };
            if authz_settings.tls.is_none() && !bound.ip().is_loopback() {
                tracing::warn!(addr = %bound, "the auth listener serves plain HTTP: every API key a proxy sends it crosses that connection in clear");
            }
            let mut rx = shutdown_main.subscribe();
            Some(tokio::spawn(listener::run(
                listener,
                handler,
                authz_settings,
                async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                },
            )))
        }
        _ => None,
    };

    // 8. the main listener
    let gateway = Arc::new(Gateway::new(
        config,
        selfservice,
        admission,
        upstream,
        metrics,
        keyring.clone(),
    ));
    let main = tokio::spawn(listener::run(
        main_listener,
        gateway,
        settings,
        async move {
            let _ = main_rx.wait_for(|stop| *stop).await;
        },
    ));
    let authz_shown = authz_addr.map_or_else(|| "off".to_owned(), |a| a.to_string());
    let upstream_shown = crate::config::shown_upstream(&config.upstream.url);
    tracing::info!(addr = %main_addr, admin = %admin_addr, authz = %authz_shown, upstream = %upstream_shown, "keygate listening");

    Ok(Running {
        main_addr,
        admin_addr,
        authz_addr,
        tls: reloader,
        admin_tls: admin_reloader,
        tokens,
        draining,
        shutdown_main,
        shutdown_admin,
        main,
        admin,
        authz,
        member,
        webhooks,
        chores,
    })
}

/// `[login] method = "trusted_header"`: the SSO proxy's header, which the
/// gateway reads (for every request, not only the page's).
fn trusted_header(config: &Config) -> Option<TrustedHeader> {
    match &config.login.as_ref()?.method {
        LoginMethod::TrustedHeader {
            header,
            trusted_proxies,
        } => Some(TrustedHeader::new(header.clone(), trusted_proxies.clone())),
        LoginMethod::BackendSession { .. }
        | LoginMethod::Cas { .. }
        | LoginMethod::Oidc(_)
        | LoginMethod::Dev { .. } => None,
    }
}

// === impl Running ===

impl Running {
    /// SIGHUP: re-read the certificate files (and `admin.client_ca`) and
    /// the admin tokens; a bad file keeps the previous version.
    pub fn reload(&self) {
        for tls in self.tls.iter().chain(&self.admin_tls) {
            tls.reload();
        }
        self.tokens.reload();
    }

    /// Say not-ready, stop accepting, let the main (and auth) listener's
    /// requests finish within the grace period, then stop the admin
    /// listener. True if every main and auth connection finished in time.
    pub async fn shutdown(self) -> bool {
        self.draining.store(true, Ordering::Relaxed);
        let _ = self.shutdown_main.send(true);
        let drained = self.main.await.unwrap_or(false);
        let authz_drained = match self.authz {
            Some(authz) => authz.await.unwrap_or(false),
            None => true,
        };
        self.chores.stop().await;
        if let Some(member) = self.member {
            member.stop().await;
        }
        if let Some(webhooks) = self.webhooks {
            webhooks.stop();
        }
        let _ = self.shutdown_admin.send(true);
        let _ = self.admin.await;
        drained && authz_drained
    }
}
