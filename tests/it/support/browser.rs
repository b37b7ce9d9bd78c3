//! A real browser for the SSO tests: Debian's Chromium, headless, driven
//! through its own `chromedriver` (WebDriver) on an ephemeral loopback port.
//!
//! Each [`Browser`] has its own chromedriver, its own fresh profile directory
//! and so its own cookies; dropping it kills chromedriver and every Chromium
//! process it started (they share one process group), then removes that
//! directory, which is also their `TMPDIR`: Chromium's singleton-socket
//! folders (`org.chromium.Chromium.*`), which it removes only on a clean
//! exit, go with it rather than pile up in /tmp.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// Debian's `chromium-driver`; named explicitly so nothing tries to download one.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's `chromium` (the packaged launcher script).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long any one wait for the page may take before the test fails.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);

pub struct Browser {
    pub client: Client,
    _driver: Driver,
    /// Chromium's profile (`profile/`), fresh per browser, so no cookie or
    /// permission leaks between tests, and chromedriver's and Chromium's
    /// `TMPDIR` (`tmp/`). Removed after `_driver` has killed them (fields
    /// drop in order).
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Start chromedriver and a headless Chromium session that accepts the
    /// tests' self-signed certificates.
    pub async fn start() -> Browser {
        for path in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser tests need Debian's chromium and \
                 chromium-driver (scripts/test.sh installs them)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let (profile, tmp) = (dir.path().join("profile"), dir.path().join("tmp"));
        for d in [&profile, &tmp] {
            std::fs::create_dir(d).unwrap();
        }
        // Owned before the session starts, so a failed start still kills it.
        let driver = spawn_driver(&tmp);
        let client = connect(driver.port, &profile).await;
        Browser {
            client,
            _driver: driver,
            _dir: dir,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// The element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(PAGE_WAIT)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!(
                "no element {css:?} within {PAGE_WAIT:?} on {}: {e}\n{}",
                self.url().await,
                self.body_text().await
            ),
        }
    }

    /// Type `text` into the field matching `css`, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css:?}: {e}"));
    }

    /// Click the button whose visible text is exactly `text`.
    pub async fn click_button(&self, text: &str) {
        self.button(text)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click button {text:?}: {e}"));
    }

    /// The button whose visible text is exactly `text`, waiting for it.
    pub async fn button(&self, text: &str) -> fantoccini::elements::Element {
        let xpath = format!("//button[normalize-space(.)={}]", xpath_literal(text));
        match self
            .client
            .wait()
            .at_most(PAGE_WAIT)
            .every(Duration::from_millis(50))
            .for_element(Locator::XPath(&xpath))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!(
                "no button {text:?} within {PAGE_WAIT:?} on {}: {e}\n{}",
                self.url().await,
                self.body_text().await
            ),
        }
    }

    /// Wait until `check` holds for the visible text of `css`; returns that text.
    pub async fn wait_text(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PAGE_WAIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = e.text().await {
                    if check(&t) {
                        return t;
                    }
                    last = t;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{css:?} never showed {what} within {PAGE_WAIT:?} (last text {last:?}) on {}\n{}",
            self.url().await,
            self.body_text().await
        );
    }

    /// Run `script` (with `arg` as `arguments[0]`) until it returns non-null; returns that.
    pub async fn wait_js(&self, script: &str, arg: Value, what: &str) -> Value {
        let deadline = Instant::now() + PAGE_WAIT;
        while Instant::now() < deadline {
            if let Ok(v) = self.client.execute(script, vec![arg.clone()]).await {
                if !v.is_null() {
                    return v;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "never found {what} within {PAGE_WAIT:?} on {}\n{}",
            self.url().await,
            self.body_text().await
        );
    }

    /// Wait until the browser is on a URL that starts with `prefix`.
    pub async fn wait_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + PAGE_WAIT;
        let mut url = String::new();
        while Instant::now() < deadline {
            url = self.url().await;
            if url.starts_with(prefix) {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "never reached {prefix} within {PAGE_WAIT:?}; at {url}\n{}",
            self.body_text().await
        );
    }

    /// The page's visible text, for failure messages.
    pub async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Let pages of `origin` (`https://127.0.0.1:PORT`) use the clipboard
    /// without a prompt, so "Copy to Clipboard" works headless.
    pub async fn grant_clipboard(&self, origin: &str) {
        self.cdp(
            "Browser.grantPermissions",
            json!({
                "origin": origin,
                "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
            }),
        )
        .await;
    }

    /// What the page can read from the clipboard now.
    pub async fn clipboard(&self) -> String {
        let v = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 navigator.clipboard.readText().then(done, e => done('ERROR: ' + e));",
                vec![],
            )
            .await
            .expect("read the clipboard");
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Run a Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.client
            .issue_cmd(Cdp {
                cmd: cmd.to_owned(),
                params,
            })
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"))
    }

    /// Save a PNG screenshot of the whole page to `path` (folders created):
    /// the window is made as tall as the page first.
    pub async fn screenshot(&self, path: &Path) -> PathBuf {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(900);
        let (width, _) = self.client.get_window_size().await.unwrap();
        // Headless windows have no browser UI: the viewport is the window,
        // less the little the window manager keeps.
        self.client
            .set_window_size(width as u32, height.clamp(600, 4000) as u32 + 150)
            .await
            .expect("resize the window");
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
        path.to_owned()
    }
}

/// A running chromedriver and the port it listens on.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own process group (see `spawn_driver`), and the
        // Chromium processes it starts stay in it: one signal ends them all.
        let group = format!("-{}", self.child.id());
        let signal = |sig: &str| {
            Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        signal("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Until the group is gone (2 s at most), so that no Chromium still
        // writes into the folder `Browser` removes next.
        let deadline = Instant::now() + Duration::from_secs(2);
        while signal("-0") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `chromedriver --port=0` picks a free port and prints it; read that line.
/// It and the Chromium it starts (which inherits its environment) make
/// their temporary folders in `tmp`.
fn spawn_driver(tmp: &Path) -> Driver {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(CHROMEDRIVER)
        .args(["--port=0", "--allowed-ips=127.0.0.1"])
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start chromedriver");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = tx.send(port.parse::<u16>().ok());
            }
        }
        // chromedriver's stdout ends with the process; the reader just stops.
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Some(port)) => Driver { child, port },
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromedriver did not report its port within 20s: {other:?}");
        }
    }
}

async fn connect(port: u16, profile: &Path) -> Client {
    let caps = json!({
        "acceptInsecureCerts": true,
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--ignore-certificate-errors",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let url = format!("http://127.0.0.1:{port}");
    match tokio::time::timeout(
        Duration::from_secs(60),
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url),
    )
    .await
    {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => panic!("chromedriver at {url} could not start Chromium: {e}"),
        Err(_) => panic!("chromedriver at {url} did not start Chromium within 60s"),
    }
}

/// chromedriver's extension `POST /session/{id}/goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// `text` as an XPath string literal (XPath 1.0 has no escapes).
fn xpath_literal(text: &str) -> String {
    if !text.contains('"') {
        format!("\"{text}\"")
    } else {
        format!("'{text}'")
    }
}
