//! keygate started in-process from a TOML config that the test shapes:
//! a TLS listener on 127.0.0.1:0 with a per-test CA, an upstream URL, and
//! any extra keys per section.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use keygate::app::{self, Running, TlsMode};

use super::tls::Ca;

pub struct Builder {
    sections: BTreeMap<&'static str, Vec<String>>,
    plaintext: bool,
}

pub struct TestGateway {
    pub addr: SocketAddr,
    pub ca: Ca,
    /// Holds the certificate files for the gateway's lifetime.
    _dir: tempfile::TempDir,
    running: Option<Running>,
}

/// A gateway in front of `upstream_url`, anonymous passthrough, memory store.
pub fn builder(upstream_url: &str) -> Builder {
    let mut b = Builder {
        sections: BTreeMap::new(),
        plaintext: false,
    };
    b.set("upstream", &format!("url = \"{upstream_url}\""));
    b.set("auth", "anonymous = \"passthrough\"");
    b.set("store", "kind = \"memory\"");
    b.set("log", "access_log = false");
    b
}

impl Builder {
    /// Set a `key = value` line in `[section]`, replacing an earlier value of that key.
    pub fn set(&mut self, section: &'static str, line: &str) -> &mut Self {
        let key = |l: &str| l.split('=').next().unwrap_or("").trim().to_owned();
        let lines = self.sections.entry(section).or_default();
        lines.retain(|l| key(l) != key(line));
        lines.push(line.to_owned());
        self
    }

    pub fn plaintext(&mut self) -> &mut Self {
        self.plaintext = true;
        self
    }

    pub async fn start(&mut self) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("keygate test CA");
        let (cert, key) = ca.leaf("keygate test").write(dir.path());
        let mut text = String::from("[listen]\naddr = \"127.0.0.1:0\"\n");
        if self.plaintext {
            text.push_str("plaintext = true\n");
        } else {
            text.push_str(&format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                cert.display(),
                key.display()
            ));
        }
        for line in self.sections.get("listen").into_iter().flatten() {
            text.push_str(line);
            text.push('\n');
        }
        for (section, lines) in &self.sections {
            if *section == "listen" {
                continue;
            }
            text.push_str(&format!("\n[{section}]\n"));
            for line in lines {
                text.push_str(line);
                text.push('\n');
            }
        }
        let config = keygate::config::parse(&text)
            .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{text}"));
        let running = app::start(&config, TlsMode::FromConfig)
            .await
            .expect("keygate starts");
        TestGateway {
            addr: running.main_addr,
            ca,
            _dir: dir,
            running: Some(running),
        }
    }
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// Shut down gracefully; true if every connection finished in time.
    pub async fn stop(mut self) -> bool {
        self.running.take().unwrap().shutdown().await
    }
}
