//! keygate started in-process from a TOML config that the test shapes:
//! a TLS listener on 127.0.0.1:0 with a per-test CA, an upstream URL, and
//! any extra keys per section.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use keygate::app::{self, Running, TlsMode};
use keygate::audit::Actor;
use keygate::keyring::{Claim, Keyring, Ttl};
use keygate::keys::{Scope, Source};

use super::tls::Ca;

pub struct Builder {
    sections: BTreeMap<&'static str, Vec<String>>,
    /// `[[webhooks]]` entries, each its lines.
    webhooks: Vec<Vec<String>>,
    plaintext: bool,
}

pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The auth listener (`[authz] addr`), when the config has one.
    pub authz_addr: Option<SocketAddr>,
    /// Whether the auth listener speaks TLS (`[authz] plaintext` unset).
    authz_tls: bool,
    /// The gateway's keys: tests mint and revoke through it.
    pub keyring: Keyring,
    pub ca: Ca,
    /// Holds the certificate files for the gateway's lifetime.
    _dir: tempfile::TempDir,
    running: Option<Running>,
}

/// A gateway in front of `upstream_url`, anonymous passthrough, memory store.
pub fn builder(upstream_url: &str) -> Builder {
    let mut b = Builder {
        sections: BTreeMap::new(),
        webhooks: Vec::new(),
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

    /// Remove `key` from `[section]`.
    pub fn unset(&mut self, section: &'static str, key: &str) -> &mut Self {
        if let Some(lines) = self.sections.get_mut(section) {
            lines.retain(|l| l.split('=').next().unwrap_or("").trim() != key);
        }
        self
    }

    /// Add a `[[webhooks]]` entry of these `key = value` lines.
    pub fn webhook(&mut self, lines: &[String]) -> &mut Self {
        self.webhooks.push(lines.to_vec());
        self
    }

    /// Use a real Redis (namespace `ns`) instead of the memory store.
    pub fn redis(
        &mut self,
        redis: &super::redis::RedisServer,
        dir: &std::path::Path,
        ns: &str,
    ) -> &mut Self {
        self.sections.remove("store");
        for line in super::redis::store_section(redis, dir, ns) {
            self.set("store", &line);
        }
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
        let token_file = super::admin_token_file(dir.path());
        if !self
            .sections
            .get("admin")
            .is_some_and(|l| l.iter().any(|l| l.starts_with("token_file")))
        {
            self.set(
                "admin",
                &format!("token_file = \"{}\"", token_file.display()),
            );
        }
        if !self
            .sections
            .get("admin")
            .is_some_and(|l| l.iter().any(|l| l.starts_with("addr")))
        {
            self.set("admin", "addr = \"127.0.0.1:0\"");
        }
        let mut text = String::from("[listen]\n");
        if !self
            .sections
            .get("listen")
            .is_some_and(|l| l.iter().any(|l| l.starts_with("addr")))
        {
            text.push_str("addr = \"127.0.0.1:0\"\n");
        }
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
        for entry in &self.webhooks {
            text.push_str("\n[[webhooks]]\n");
            for line in entry {
                text.push_str(line);
                text.push('\n');
            }
        }
        let config = keygate::config::parse(&text)
            .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{text}"));
        let keyring = Keyring::from_config(&config, Claim::IfProven)
            .await
            .expect("the key store is reachable");
        let running = app::start(&config, TlsMode::FromConfig, &keyring)
            .await
            .expect("keygate starts");
        TestGateway {
            addr: running.main_addr,
            admin_addr: running.admin_addr,
            authz_addr: running.authz_addr,
            authz_tls: config.authz.as_ref().is_some_and(|a| a.tls),
            keyring,
            ca,
            _dir: dir,
            running: Some(running),
        }
    }
}

/// Who the tests' own changes through `TestGateway::keyring` are made by.
pub fn test_actor() -> Actor {
    Actor::new("test", Source::Admin, None)
}

impl TestGateway {
    /// Wait (5 s at most) until this instance has joined the fleet on its
    /// Redis: its cache holds a lease and it hears invalidations.
    pub async fn await_fleet(&self, client: &super::client::HttpsClient) {
        super::eventually(
            "the instance joins the fleet",
            100,
            std::time::Duration::from_millis(50),
            || async {
                (self.metric(client, "keygate_fleet_connected").await == 1.0).then_some(())
            },
        )
        .await;
    }

    /// A counter or gauge from the admin listener's /metrics.
    pub async fn metric(&self, client: &super::client::HttpsClient, name: &str) -> f64 {
        let a = super::client::get(client, &self.admin_url("/metrics")).await;
        a.text()
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(' ')?;
                (n == name || n == format!("{name}_total")).then(|| v.parse().unwrap())
            })
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{}", a.text()))
    }

    /// The status of `GET /` with `key` (HTTP Basic), never a hang.
    pub async fn status_with_key(
        &self,
        client: &super::client::HttpsClient,
        key: &str,
    ) -> http::StatusCode {
        let url = self.url("/");
        let answer = super::client::get_with_key(client, &url, key);
        super::within(5, "an answer, never a hang", answer)
            .await
            .status
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.admin_addr.port())
    }

    /// `path` on the auth listener: https://, or http:// when it is plaintext.
    pub fn authz_url(&self, path: &str) -> String {
        let addr = self.authz_addr.expect("the config has [authz] addr");
        let scheme = if self.authz_tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", addr.port())
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// Mint a full-scope key for `user` with the default lifetime; returns (secret, id).
    pub async fn key(&self, user: &str) -> (String, String) {
        self.key_with(user, Ttl::Default, Scope::Full).await
    }

    pub async fn key_with(&self, user: &str, ttl: Ttl, scope: Scope) -> (String, String) {
        let new = self
            .keyring
            .mint(&test_actor(), user, ttl, "test", scope)
            .await
            .expect("key minted");
        (new.key.expose().to_owned(), new.record.id.to_string())
    }

    /// Shut down gracefully; true if every connection finished in time.
    pub async fn stop(mut self) -> bool {
        self.running.take().unwrap().shutdown().await
    }
}
