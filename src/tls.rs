//! PEM files -> rustls `ServerConfig` (TLS 1.2 and 1.3, ALPN h2 + http/1.1),
//! published through a `watch` channel so that a SIGHUP reload reaches every
//! new handshake while a bad new pair leaves the last good one in place; and
//! the client side keygate dials with (the upstream, login URLs): system
//! roots plus a PEM CA file (`load_ca_file`, also what the config check reads).
//!
//! With `[admin] client_ca`, the admin listener's config requires a client
//! certificate issued by that CA (rustls' `WebPkiClientVerifier`): without
//! one, or with another CA's, the handshake fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

mod validity;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate chain from {path}: {}", pem_text(.source))]
    Cert {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCert { path: PathBuf },
    #[error("cannot read private key from {path}: {}", pem_text(.source))]
    Key {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error(
        "{path} holds no PEM private key (\"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" \
         or \"BEGIN EC PRIVATE KEY\")"
    )]
    NoKey { path: PathBuf },
    #[error(
        "{path} holds an encrypted (passphrase-protected) private key; keygate reads \
         unencrypted keys only: `openssl pkey -in {path} -out key.pem`, kept 0600"
    )]
    EncryptedKey { path: PathBuf },
    #[error(
        "the private key in {key} is not the key of the first certificate in {cert}, \
         which must be the server's own (then its intermediates)"
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "{cert} is in the wrong order: certificate {position} is the private key's; put \
         the server's certificate first, then its intermediates"
    )]
    ChainOrder { cert: PathBuf, position: usize },
    #[error("certificate and key do not make a usable pair: {0}")]
    Pair(#[source] rustls::Error),
    #[error("cannot read client CA certificates from {path}: {}", pem_text(.source))]
    ClientCa {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no usable client CA certificate: {reason}")]
    ClientCaUnusable { path: PathBuf, reason: String },
}

impl TlsError {
    /// The TOML key an operator has to look at.
    pub fn config_key(&self) -> &'static str {
        match self {
            TlsError::Cert { .. }
            | TlsError::NoCert { .. }
            | TlsError::KeyMismatch { .. }
            | TlsError::ChainOrder { .. }
            | TlsError::Pair(_) => "listen.tls_cert",
            TlsError::Key { .. } | TlsError::NoKey { .. } | TlsError::EncryptedKey { .. } => {
                "listen.tls_key"
            }
            TlsError::ClientCa { .. } | TlsError::ClientCaUnusable { .. } => "admin.client_ca",
        }
    }
}

/// The crypto provider used everywhere (server and upstream client).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Build a server config from a PEM chain and a PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_for_clients(cert, key, None)
}

/// Like `server_config`; with `client_ca`, clients must present a
/// certificate issued by one of the CA certificates in that PEM file.
pub fn server_config_for_clients(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = client_ca.map(client_verifier).transpose()?;
    let chain = read_certs(cert).map_err(|source| TlsError::Cert {
        path: cert.to_owned(),
        source,
    })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: cert.to_owned(),
        });
    }
    let key_path = key;
    let key = read_key(key_path)?;
    key_fits(&chain, &key, cert, key_path)?;
    build(chain, key, verifier)
}

/// The private key of the PEM file at `path`, or why there is none usable.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| {
        // Said in words: rustls finds no item, or fails to decode the
        // base64 of an encrypted PKCS#1 key's headers.
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let path = path.to_owned();
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || text.contains("Proc-Type: 4,ENCRYPTED")
        {
            TlsError::EncryptedKey { path }
        } else if matches!(source, rustls_pki_types::pem::Error::NoItemsFound) {
            TlsError::NoKey { path }
        } else {
            TlsError::Key { path, source }
        }
    })
}

/// Whether the key is the first certificate's; when it is another one's
/// of the chain, the chain is in the wrong order (rustls says only
/// "KeyMismatch" for both).
fn key_fits(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), TlsError> {
    let signing = provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(TlsError::Pair)?;
    let mismatch = |cert: &CertificateDer<'static>| {
        matches!(
            CertifiedKey::new(vec![cert.clone()], signing.clone()).keys_match(),
            Err(rustls::Error::InconsistentKeys(
                rustls::InconsistentKeys::KeyMismatch
            ))
        )
    };
    if !mismatch(&chain[0]) {
        return Ok(());
    }
    Err(match chain.iter().skip(1).position(|c| !mismatch(c)) {
        Some(i) => TlsError::ChainOrder {
            cert: cert_path.to_owned(),
            position: i + 2,
        },
        None => TlsError::KeyMismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
        },
    })
}

/// A PEM reading error in words (rustls-pki-types prints byte arrays).
fn pem_text(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { end_marker } => format!(
            "a PEM block is cut short: no \"-----END {}-----\" line",
            String::from_utf8_lossy(end_marker)
        ),
        Error::IllegalSectionStart { .. } => "a PEM block's BEGIN line is malformed".into(),
        other => other.to_string(),
    }
}

/// Why the first certificate of the chain at `path` cannot be served now
/// (expired, not yet valid), when it can be read; clients would refuse it.
pub fn validity_problem(path: &Path) -> Option<String> {
    let chain = read_certs(path).ok()?;
    validity::problem(chain.first()?, std::time::SystemTime::now())
}

/// Every PEM certificate in the file at `path`.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, rustls_pki_types::pem::Error> {
    CertificateDer::pem_file_iter(path).and_then(|it| it.collect())
}

/// The verifier of `[admin] client_ca`: a certificate chaining to one of
/// the file's CA certificates is required.
pub fn client_verifier(ca: &Path) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let certs = read_certs(ca).map_err(|source| TlsError::ClientCa {
        path: ca.to_owned(),
        source,
    })?;
    let unusable = |reason: String| TlsError::ClientCaUnusable {
        path: ca.to_owned(),
        reason,
    };
    if certs.is_empty() {
        return Err(unusable("no PEM certificate in it".into()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| unusable(e.to_string()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| unusable(e.to_string()))
}

/// Build a server config from DER parts (used by `keygate dev`'s self-signed pair).
pub fn from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    build(chain, key, None)
}

fn build(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    clients: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let versions = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Pair)?;
    let builder = match clients {
        Some(verifier) => versions.with_client_cert_verifier(verifier),
        None => versions.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(TlsError::Pair)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Stateless tickets let returning clients resume without a full handshake.
    if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
        config.ticketer = ticketer;
    }
    Ok(Arc::new(config))
}

/// Read the PEM certificates of a CA file (`upstream.ca_file`, `store.ca_file`).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = read_certs(path)
        .map_err(|e| format!("cannot read PEM certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// A client config for HTTP/1.1 over TLS that trusts the system roots and
/// the certificates of `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        for cert in load_ca_file(path)? {
            roots.add(cert).map_err(|e| e.to_string())?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The current server config, swapped on reload; every handshake reads the latest.
#[derive(Clone)]
pub struct TlsSource {
    rx: watch::Receiver<Arc<ServerConfig>>,
}

impl TlsSource {
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.rx.borrow().clone())
    }
}

/// Owns the files and the sending side; `reload` is called on SIGHUP.
pub struct TlsReloader {
    /// Certificate, key and (admin listener) client CA.
    files: Option<(PathBuf, PathBuf, Option<PathBuf>)>,
    tx: watch::Sender<Arc<ServerConfig>>,
}

impl TlsReloader {
    /// A reloadable source backed by `cert` and `key` (and `client_ca`,
    /// for a listener that requires client certificates).
    pub fn from_files(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<(Self, TlsSource), TlsError> {
        let config = server_config_for_clients(cert, key, client_ca)?;
        let (tx, rx) = watch::channel(config);
        let reloader = TlsReloader {
            files: Some((
                cert.to_owned(),
                key.to_owned(),
                client_ca.map(Path::to_owned),
            )),
            tx,
        };
        Ok((reloader, TlsSource { rx }))
    }

    /// A fixed config (no files to reload from).
    pub fn fixed(config: Arc<ServerConfig>) -> (Self, TlsSource) {
        let (tx, rx) = watch::channel(config);
        (TlsReloader { files: None, tx }, TlsSource { rx })
    }

    /// Re-read the PEM files; keep the old config if the new pair is bad.
    pub fn reload(&self) {
        let Some((cert, key, client_ca)) = &self.files else {
            return;
        };
        match server_config_for_clients(cert, key, client_ca.as_deref()) {
            Ok(config) => {
                self.tx.send_replace(config);
                tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
                if let Some(problem) = validity_problem(cert) {
                    tracing::warn!(cert = %cert.display(), "listen.tls_cert: {problem}");
                }
            }
            Err(e) => tracing::error!(
                error = %e,
                "TLS reload failed; still serving the previous certificate"
            ),
        }
    }
}
