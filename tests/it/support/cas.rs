//! A real CAS 3.0 server for the tests: django-cas-server 3.1.0 (PyPI) under
//! waitress, from the venv `scripts/test.sh` makes in `target/cas-venv`,
//! on a free 127.0.0.1 port, with the users `USER` / `PASSWORD`, `ZOE` (a
//! name that is not ASCII) and `DISGUISED` (a name keygate refuses), and a
//! service pattern that allows every `https://127.0.0.1:*/` service.
//! Killed on drop. The Django project is `tests/it/support/cas/`.
//!
//! `login` drives the CAS login form with a plain HTTP client (cookie jar,
//! Django CSRF token, login ticket) and returns the service URL with its
//! ticket, where the CAS server sends the browser.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::body::{self, TestBody};
use super::gateway::{builder, TestGateway};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-cas-password";

/// A person at the CAS server: the user name it signs them in as (its
/// `cas:user`), and their password.
pub struct Account {
    pub user: &'static str,
    pub password: &'static str,
}

/// A user name that is not ASCII, which keygate takes as it is.
pub const ZOE: Account = Account {
    user: "zo\u{00EB}",
    password: "zoe-cas-password",
};
/// A right-to-left override: the name reads "zoëadmin". No user name to
/// keygate (`keys::user`), though the CAS server signs it in.
pub const DISGUISED: Account = Account {
    user: "zo\u{00EB}\u{202E}nimda",
    password: "disguised-cas-password",
};

pub struct CasServer {
    pub port: u16,
    child: Child,
    /// The SQLite database of this server.
    _dir: tempfile::TempDir,
}

/// The venv's python; panics with the way to make it.
pub fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/cas-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh (it installs django-cas-server there)",
        python.display()
    );
    python
}

// === impl CasServer ===

impl CasServer {
    /// Start the server and wait (bounded) until it answers.
    pub fn start() -> CasServer {
        let python = python();
        let project = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/cas");
        // A port taken between the probe and waitress's bind makes it exit: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            let mut child = Command::new(&python)
                .arg(project.join("serve.py"))
                .arg(port.to_string())
                .args([USER, PASSWORD])
                .args([ZOE.user, ZOE.password])
                .args([DISGUISED.user, DISGUISED.password])
                .env("KEYGATE_CAS_DB", dir.path().join("cas.sqlite3"))
                // No __pycache__ in the source tree.
                .env("PYTHONDONTWRITEBYTECODE", "1")
                // The user names in argv are UTF-8, whatever the locale.
                .env("PYTHONUTF8", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("the CAS server's python starts");
            // "ready" comes after migrations; then wait for the port itself.
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let ready = BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .any(|l| l == "ready");
                let _ = tx.send(ready);
            });
            let deadline = Instant::now() + Duration::from_secs(60);
            if rx.recv_timeout(Duration::from_secs(60)) == Ok(true) {
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                        return CasServer {
                            port,
                            child,
                            _dir: dir,
                        };
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("django-cas-server did not start");
    }

    /// The CAS base URL (`login.cas_url`): `http://127.0.0.1:PORT/cas`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cas", self.port)
    }
}

impl Drop for CasServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sign in at `login_url` (`{cas}/login?service=…`, as keygate redirects to
/// it) as `user`; the `Location` the CAS server answers: `service?ticket=ST-…`.
pub async fn login(login_url: &str, user: &str, password: &str) -> String {
    let client: Client<HttpConnector, TestBody> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut jar = BTreeMap::new();
    let form = {
        let resp = client
            .request(Request::get(login_url).body(body::empty()).unwrap())
            .await
            .expect("the CAS login page answers");
        assert_eq!(resp.status(), StatusCode::OK, "CAS login page");
        keep_cookies(&mut jar, resp.headers());
        let html = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&html).into_owned()
    };
    let mut fields = form_urlencoded::Serializer::new(String::new());
    for name in ["csrfmiddlewaretoken", "lt", "service"] {
        if let Some(value) = hidden_input(&form, name) {
            fields.append_pair(name, &value);
        }
    }
    fields.append_pair("username", user);
    fields.append_pair("password", password);
    let action = login_url.split('?').next().unwrap();
    let cookie: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let resp = client
        .request(
            Request::post(action)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, cookie.join("; "))
                .body(body::full(fields.finish()))
                .unwrap(),
        )
        .await
        .expect("the CAS login form answers");
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "CAS login: wrong password or form?"
    );
    resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

/// keygate in front of `upstream_url` with `[login] method = "cas"` against
/// `cas`, on a port chosen first so that `login.public_url` names it
/// (`https://127.0.0.1:PORT`, which the server's service pattern allows).
pub async fn gateway(cas: &CasServer, upstream_url: &str) -> TestGateway {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut b = builder(upstream_url);
    b.set("listen", &format!("addr = \"127.0.0.1:{port}\""))
        .set("login", "method = \"cas\"")
        .set("login", &format!("cas_url = \"{}\"", cas.url()))
        .set(
            "login",
            &format!("public_url = \"https://127.0.0.1:{port}\""),
        );
    b.start().await
}

fn keep_cookies(jar: &mut BTreeMap<String, String>, headers: &http::HeaderMap) {
    for v in headers.get_all(header::SET_COOKIE) {
        let pair = v.to_str().unwrap().split(';').next().unwrap().trim();
        if let Some((k, v)) = pair.split_once('=') {
            jar.insert(k.to_owned(), v.to_owned());
        }
    }
}

/// The value of `<input … name="NAME" value="…">` in a Django form (HTML-unescaped `&amp;`).
fn hidden_input(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let end = v + tag[v..].find('"')?;
    Some(tag[v..end].replace("&amp;", "&"))
}
