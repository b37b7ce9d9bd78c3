//! A real OpenID provider for the tests: oidc-provider 9 (npm, certified by
//! the OpenID Foundation) under Node.js, from `target/oidc-provider` where
//! `scripts/test.sh` installs it (`npm ci`, pinned by
//! `tests/oidc/package-lock.json`), run by `tests/oidc/provider.mjs` on a
//! free 127.0.0.1 port over plain http. Killed on drop.
//!
//! Two clients, both with `CLIENT_SECRET` and the redirect URI the test
//! gives: `RS256_CLIENT` gets RS256 ID tokens, `ES256_CLIENT` ES256 ones.
//! Four users: `ALICE` (in `STAFF` and `ADMINS`), `BOB` (in `CONTRACTORS`),
//! and, in `STAFF`, `JOSE` (a login and an email that are not ASCII) and
//! `EVE` (an email keygate refuses as a user name).
//!
//! `sign_in` drives the provider's sign-in form with a plain HTTP client
//! (cookie jar) and returns where the provider sends the browser back.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::body::{self, TestBody};
use super::gateway::{builder, TestGateway};

pub const RS256_CLIENT: &str = "keygate-rs256";
pub const ES256_CLIENT: &str = "keygate-es256";
pub const CLIENT_SECRET: &str = "test-client-secret-9f8e7d6c";
pub const STAFF: &str = "keygate-users";
pub const ADMINS: &str = "keygate-admins";
pub const CONTRACTORS: &str = "contractors";

/// A person at the provider: login, password, the email keygate names them by.
pub struct Account {
    pub login: &'static str,
    pub password: &'static str,
    pub email: &'static str,
}

pub const ALICE: Account = Account {
    login: "alice",
    password: "alice-oidc-password",
    email: "alice@example.org",
};
pub const BOB: Account = Account {
    login: "bob",
    password: "bob-oidc-password",
    email: "bob@example.org",
};
/// Not ASCII: the login (so `sub` and `preferred_username`) and the email.
pub const JOSE: Account = Account {
    login: "jos\u{00E9}",
    password: "jose-oidc-password",
    email: "jos\u{00E9}@\u{4F8B}\u{3048}.jp",
};
/// An email ending in an ideographic space (U+3000): no user name to
/// keygate (`keys::user`), and never trimmed into eve@example.org.
pub const EVE: Account = Account {
    login: "eve",
    password: "eve-oidc-password",
    email: "eve@example.org\u{3000}",
};

pub struct OidcProvider {
    pub port: u16,
    child: Child,
    /// Holds `client_secret_file`.
    dir: tempfile::TempDir,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// === impl OidcProvider ===

impl OidcProvider {
    /// Start the provider for clients redirecting to `redirect_uri` and wait
    /// (bounded) until it says it listens.
    pub fn start(redirect_uri: &str) -> OidcProvider {
        let modules = root().join("target/oidc-provider");
        assert!(
            modules.join("node_modules/oidc-provider").exists(),
            "{} is missing: run scripts/test.sh (it installs oidc-provider there with npm ci)",
            modules.display()
        );
        let client = |id: &str, alg: &str| {
            serde_json::json!({
                "client_id": id, "client_secret": CLIENT_SECRET,
                "redirect_uri": redirect_uri, "alg": alg,
            })
        };
        let user = |a: &Account, groups: &[&str]| {
            serde_json::json!({
                "id": a.login, "password": a.password, "email": a.email, "groups": groups,
            })
        };
        let config = serde_json::json!({
            "clients": [client(RS256_CLIENT, "RS256"), client(ES256_CLIENT, "ES256")],
            "users": [
                user(&ALICE, &[STAFF, ADMINS]),
                user(&BOB, &[CONTRACTORS]),
                user(&JOSE, &[STAFF]),
                user(&EVE, &[STAFF]),
            ],
        });
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("provider.log");
        // Bounded, not a sleep: Node answers "ready" in about a second. About
        // one start in twenty under the test harness never does: Debian's
        // Node 20 (oidc-provider 9 asks for 22) stops while loading the
        // package, its event loop idle and no socket opened. A fresh process
        // is tried (3 at most), and a failure shows what Node wrote to stderr.
        let mut tries = 0;
        let (port, child) = loop {
            tries += 1;
            let mut child = Command::new("node")
                .arg(root().join("tests/oidc/provider.mjs"))
                .arg(&modules)
                .arg(config.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("node starts (scripts/test.sh installs Debian's nodejs)");
            match ready_port(&mut child, Duration::from_secs(20)) {
                Some(port) => break (port, child),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    assert!(
                        tries < 3,
                        "oidc-provider did not say ready within 20 s, 3 times; its stderr: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        std::fs::write(
            dir.path().join("client-secret"),
            format!("{CLIENT_SECRET}\n"),
        )
        .unwrap();
        OidcProvider { port, child, dir }
    }

    /// `login.issuer`: `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `login.client_secret_file`.
    pub fn secret_file(&self) -> PathBuf {
        self.dir.path().join("client-secret")
    }
}

/// The port in the provider's "ready PORT" line, if it comes within `wait`.
fn ready_port(child: &mut Child, wait: Duration) -> Option<u16> {
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line.strip_prefix("ready ") {
                let _ = tx.send(port.parse::<u16>().ok());
            }
        }
    });
    rx.recv_timeout(wait).ok().flatten()
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free 127.0.0.1 port, for a gateway whose `public_url` (and so the
/// redirect URI the provider registers) must be known before it starts.
pub use super::redis::free_port;

/// keygate on `port` in front of `upstream_url`, signing in through
/// `issuer` as `client_id`, plus the test's `[login]` and `[admin]` lines.
pub async fn gateway(
    port: u16,
    upstream_url: &str,
    issuer: &str,
    client_id: &str,
    secret_file: &Path,
    login: &[&str],
    admin: &[&str],
) -> TestGateway {
    let mut b = builder(upstream_url);
    for line in admin {
        b.set("admin", line);
    }
    b.set("listen", &format!("addr = \"127.0.0.1:{port}\""))
        .set("login", "method = \"oidc\"")
        .set("login", &format!("issuer = \"{issuer}\""))
        .set("login", &format!("client_id = \"{client_id}\""))
        .set(
            "login",
            &format!("client_secret_file = \"{}\"", secret_file.display()),
        )
        .set(
            "login",
            &format!("public_url = \"https://127.0.0.1:{port}\""),
        );
    for line in login {
        b.set("login", line);
    }
    b.start().await
}

/// A provider, and keygate in front of `upstream_url` signing in through
/// it as `client_id` (both clients' redirect URI is that gateway's, so its
/// port is chosen first), asking for the scopes `openid email groups`,
/// plus the test's `[login]` lines.
pub async fn provider_and_gateway(
    upstream_url: &str,
    client_id: &str,
    login: &[&str],
) -> (OidcProvider, TestGateway) {
    provider_and_gateway_with(upstream_url, client_id, login, &[]).await
}

/// `provider_and_gateway`, plus the test's `[admin]` lines.
pub async fn provider_and_gateway_with(
    upstream_url: &str,
    client_id: &str,
    login: &[&str],
    admin: &[&str],
) -> (OidcProvider, TestGateway) {
    let port = free_port();
    let redirect_uri = format!("https://127.0.0.1:{port}/.keygate/login");
    let provider = tokio::task::spawn_blocking(move || OidcProvider::start(&redirect_uri))
        .await
        .unwrap();
    let mut lines = vec!["scopes = [\"openid\", \"email\", \"groups\"]"];
    lines.extend_from_slice(login);
    let gw = gateway(
        port,
        upstream_url,
        &provider.issuer(),
        client_id,
        &provider.secret_file(),
        &lines,
        admin,
    )
    .await;
    (provider, gw)
}

/// Sign in at `authorize_url` (the provider's authorization endpoint, as
/// keygate redirects to it) as `account`; the `Location` the provider
/// answers at the end: `redirect_uri?code=…&state=…&iss=…`.
pub async fn sign_in(authorize_url: &str, account: &Account) -> String {
    let client: Client<HttpConnector, TestBody> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let origin = {
        let u: http::Uri = authorize_url.parse().unwrap();
        format!("http://{}", u.authority().unwrap())
    };
    let mut jar = BTreeMap::new();
    let mut url = authorize_url.to_owned();
    let mut form: Option<String> = None;
    // authorize -> form -> post -> authorize again -> redirect_uri: a few hops.
    for _ in 0..8 {
        let cookie: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let req = match form.take() {
            Some(fields) => Request::post(&url)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body::full(fields)),
            None => Request::get(&url).body(body::empty()),
        };
        let mut req = req.unwrap();
        req.headers_mut()
            .insert(header::COOKIE, cookie.join("; ").parse().unwrap());
        let resp = client.request(req).await.expect("the provider answers");
        for v in resp.headers().get_all(header::SET_COOKIE) {
            let pair = v.to_str().unwrap().split(';').next().unwrap().trim();
            if let Some((k, v)) = pair.split_once('=') {
                jar.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = resp.status();
        if status.is_redirection() {
            let to = resp.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned();
            if !to.starts_with('/') && !to.starts_with(&origin) {
                return to;
            }
            url = if to.starts_with('/') {
                format!("{origin}{to}")
            } else {
                to
            };
            continue;
        }
        let html = resp.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8_lossy(&html).into_owned();
        assert_eq!(
            status,
            StatusCode::OK,
            "the provider's sign-in page: {html}"
        );
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|a| a.split('"').next())
            .unwrap_or_else(|| panic!("no form on the provider's page: {html}"));
        url = format!("{origin}{action}");
        form = Some(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("login", account.login)
                .append_pair("password", account.password)
                .finish(),
        );
    }
    panic!("the provider never sent the browser back to the client");
}
