//! A CA per test and leaf certificates for 127.0.0.1/localhost, as PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls_pki_types::CertificateDer;

pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub fn leaf(&self, cn: &str) -> Leaf {
        self.issue(cn, &["localhost", "127.0.0.1"], None)
    }

    /// A client certificate (extended key usage clientAuth) issued by this CA.
    pub fn client_leaf(&self, cn: &str) -> Leaf {
        self.issue(cn, &[], Some(rcgen::ExtendedKeyUsagePurpose::ClientAuth))
    }

    fn issue(
        &self,
        cn: &str,
        names: &[&str],
        usage: Option<rcgen::ExtendedKeyUsagePurpose>,
    ) -> Leaf {
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = usage.into_iter().collect();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A client config trusting only this CA that presents `client` (if
    /// any) and speaks only `versions`.
    pub fn client_config_with(
        &self,
        client: Option<&Leaf>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(keygate::tls::provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let cfg = match client {
            Some(leaf) => builder
                .with_client_auth_cert(
                    vec![leaf.der.clone()],
                    rustls_pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())
                        .unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        Arc::new(cfg)
    }

    /// A client config trusting only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(keygate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }
}

impl Leaf {
    /// Write `cert.pem` and `key.pem` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}
