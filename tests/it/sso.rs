//! Self-service keys in a real browser (issue 6): headless Chromium signs in
//! through each `[login] method`, makes a key on `/.keygate/keys` the way a
//! person would (label, lifetime, "Generate API Key", "Copy to Clipboard",
//! "Done"), and curl uses it through keygate with a `.netrc`.
//!
//! These start real Chromium, Apache, django-cas-server and oidc-provider
//! (Node.js); scripts/test.sh installs them and runs these `#[ignore]`d
//! tests with `--include-ignored`.
//! A missing program fails the test loudly, it never skips.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::browser::Browser;
use crate::support::cas::{self, CasServer};
use crate::support::gateway::{builder, TestGateway};
use crate::support::oidc;
use crate::support::saml::{self, SamlRig};
use crate::support::webapp::WebApp;

/// The sign-in of the application in front of which keygate sits.
const APP_USER: &str = "alice@example.org";
const APP_PASSWORD: &str = "wonderland";

/// keygate in front of `app`, signing people in through the app's session.
fn backend_session_gateway(app: &WebApp) -> crate::support::gateway::Builder {
    let mut b = builder(&app.url(""));
    b.set("login", "method = \"backend_session\"")
        .set(
            "login",
            &format!("whoami_url = \"{}\"", app.url("/login-whoami.api")),
        )
        .set("login", "user_pointer = \"/email\"")
        .set("login", "login_url = \"/login?next=/.keygate/keys\"");
    b
}

/// Open the page signed out, follow its link to the app's sign-in, sign in
/// as `APP_USER`, and land back on the page.
async fn sign_in_to_the_app(browser: &Browser, gw: &crate::support::gateway::TestGateway) {
    browser.goto(&gw.url("/.keygate/keys")).await;
    browser.click("#login").await;
    browser.fill("#username", APP_USER).await;
    browser.fill("#password", APP_PASSWORD).await;
    browser.click("#sign-in").await;
    browser.wait_url(&gw.url("/.keygate/keys")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn backend_session() {
    let app = WebApp::start(&[(APP_USER, APP_PASSWORD)]).await;
    let gw = backend_session_gateway(&app).start().await;
    let browser = Browser::start().await;

    // Not signed in: the page sends people to the application's sign-in.
    sign_in_to_the_app(&browser, &gw).await;

    let page = KeysPage::new(&browser, &gw.url("")).await;
    page.signed_in_as(APP_USER).await;
    let (key, id) = page.generate("laptop scripts").await;
    // The picture in the README: a new key, copied, and the list of keys.
    browser.screenshot(&screenshot_path()).await;
    page.done(&key).await;

    let user = UserFiles::new(&gw.ca.pem(), &key);
    let (status, body) = user.curl(&gw.url("/whoami")).await;
    assert_eq!(status, 200, "curl with the new key: {body}");
    assert_eq!(identity(&body), Some(APP_USER.into()), "{body}");

    page.revoke(&id).await;
    let (status, body) = user.curl(&gw.url("/whoami")).await;
    assert_eq!(status, 401, "the revoked key: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser, Apache, SimpleSAMLphp: run by scripts/test.sh (--include-ignored)"]
async fn saml_trusted_header() {
    let app = WebApp::start(&[]).await;
    // Browsers see keygate at the SP's address: that is its public URL (the
    // origin its CSRF check expects), so the SP's port is chosen first.
    let sp_port = saml::free_port();
    let gw = builder(&app.url(""))
        .set("login", "method = \"trusted_header\"")
        .set("login", "header = \"X-Remote-User\"")
        .set(
            "login",
            &format!("trusted_proxies = [\"{}/32\"]", saml::PROXY_SOURCE),
        )
        .set(
            "login",
            &format!("public_url = \"http://127.0.0.1:{sp_port}\""),
        )
        .start()
        .await;
    let (port, ca) = (gw.addr.port(), gw.ca.pem());
    let rig = tokio::task::spawn_blocking(move || SamlRig::start(sp_port, port, &ca))
        .await
        .unwrap();
    let browser = Browser::start().await;

    // The SP sends the browser to the IdP, which signs alice in and posts
    // her back; mellon then proxies to keygate with X-Remote-User: alice.
    browser.goto(&rig.sp_url("/.keygate/keys")).await;
    browser.wait_url(&rig.idp_url("/")).await;
    browser.fill("input[name=username]", saml::USER).await;
    browser.fill("input[name=password]", saml::PASSWORD).await;
    browser.click("#submit_button").await;
    browser.wait_url(&rig.sp_url("/.keygate/keys")).await;

    let page = KeysPage::new(&browser, &rig.sp_url("")).await;
    page.signed_in_as(saml::USER).await;
    let (key, id) = page.generate("saml laptop").await;
    page.done(&key).await;

    // The key works through the SP (the site's one public address) and
    // straight at keygate; the application behind learns alice either way.
    let user = UserFiles::new(&gw.ca.pem(), &key);
    for url in [rig.sp_url("/whoami"), gw.url("/whoami")] {
        let (status, body) = user.curl(&url).await;
        assert_eq!(
            status,
            200,
            "curl {url} with the new key: {body}\n{}",
            rig.logs()
        );
        assert_eq!(identity(&body), Some(saml::USER.into()), "{url}: {body}");
    }
    // So does the browser's SAML session, for the application itself.
    browser.goto(&rig.sp_url("/app-page")).await;
    assert_eq!(
        identity(&browser.body_text().await),
        Some(saml::USER.into()),
        "the application behind keygate sees the SAML user"
    );

    // A client that is not the SP claims to be alice: nobody is signed in,
    // and the application never sees the claim.
    let spoofs = [("X-Remote-User", "alice"), ("X_Remote_User", "alice")];
    let direct = UserFiles::anonymous(&gw.ca.pem());
    let (status, body) = direct.curl_with(&gw.url("/.keygate/keys"), &spoofs).await;
    assert!(
        status != 200 && !body.contains("id=\"user\""),
        "a direct client's X-Remote-User signs nobody in: {status}\n{body}"
    );
    let (status, body) = direct
        .curl_with(&gw.url("/.keygate/api/keys"), &spoofs)
        .await;
    assert!(
        status == 401 || status == 403,
        "the JSON API refuses a spoofed user: {status} {body}"
    );
    let (status, body) = direct.curl_with(&gw.url("/direct-spoof"), &spoofs).await;
    assert_eq!((status, identity(&body)), (200, None), "{body}");
    assert_eq!(
        app.identities_seen("/direct-spoof"),
        vec![Vec::<String>::new()]
    );

    // Through the SP without a SAML session: mellon drops X-Remote-User but
    // forwards X_Remote_User; keygate, trusting the SP, must drop it itself.
    let (status, body) = direct
        .curl_with(&rig.sp_url("/via-sp-spoof"), &spoofs)
        .await;
    assert_eq!((status, identity(&body)), (200, None), "{body}");
    assert_eq!(
        app.identities_seen("/via-sp-spoof"),
        vec![Vec::<String>::new()]
    );
    // The same request from the SP's address straight to keygate (as if
    // mellon had let it through): only the exact header name signs in.
    let from_sp = |headers: &'static [(&'static str, &'static str)]| {
        direct.curl_from(saml::PROXY_SOURCE, gw.url("/.keygate/api/keys"), headers)
    };
    let (status, body) = from_sp(&[("X_Remote_User", "alice")]).await;
    assert!(
        status == 401 || status == 403,
        "X_Remote_User from the trusted proxy signs nobody in: {status} {body}"
    );
    let (status, body) = from_sp(&[("X-Remote-User", "alice")]).await;
    assert_eq!(
        status, 200,
        "X-Remote-User from the trusted proxy does: {body}"
    );

    browser.goto(&rig.sp_url("/.keygate/keys")).await;
    page.revoke(&id).await;
    let (status, body) = user.curl(&gw.url("/whoami")).await;
    assert_eq!(status, 401, "the revoked key: {body}");
}

/// The "External Tool Access" page, driven by its visible controls.
struct KeysPage<'a> {
    browser: &'a Browser,
}

impl<'a> KeysPage<'a> {
    /// The page is open in `browser`; let its origin use the clipboard.
    async fn new(browser: &'a Browser, origin: &str) -> KeysPage<'a> {
        browser.grant_clipboard(origin.trim_end_matches('/')).await;
        KeysPage { browser }
    }

    async fn signed_in_as(&self, user: &str) {
        self.browser
            .wait_text("#user", &format!("user {user}"), |t| t == user)
            .await;
    }

    /// Label, the first lifetime offered, "Generate API Key", "Copy to
    /// Clipboard" -> "Copied!". Returns the key and its listed id.
    async fn generate(&self, label: &str) -> (String, String) {
        let b = self.browser;
        b.fill("#label", label).await;
        let lifetime = b.find("#lifetime").await;
        lifetime
            .select_by_index(0)
            .await
            .expect("choose a lifetime");
        b.click_button("Generate API Key").await;
        let key = b
            .wait_text("#new-key", "a key", |t| t.starts_with("kg_"))
            .await;

        b.click_button("Copy to Clipboard").await;
        b.wait_text("#copy", "\"Copied!\"", |t| t == "Copied!")
            .await;
        assert_eq!(b.clipboard().await, key, "the clipboard holds the key");

        // The new key is listed, by its label (never its secret).
        let id = b
            .wait_js(
                "for (const r of document.querySelectorAll('#keys tr[data-key-id]')) \
                   if (r.cells[0].textContent === arguments[0]) return r.dataset.keyId; \
                 return null;",
                serde_json::json!(label),
                &format!("a row for {label:?} in #keys"),
            )
            .await;
        let id = id.as_str().expect("a key id").to_owned();

        (key, id)
    }

    /// "Done": the key is gone from the page for good.
    async fn done(&self, key: &str) {
        self.browser.click_button("Done").await;
        self.browser
            .wait_text("body", "the page without the key", |t| !t.contains(key))
            .await;
    }

    /// Click "Revoke" on the key `id`; its row goes away.
    async fn revoke(&self, id: &str) {
        let b = self.browser;
        let row = format!("#keys tr[data-key-id=\"{id}\"]");
        b.click(&format!("{row} button.revoke")).await;
        let deadline = std::time::Instant::now() + crate::support::browser::PAGE_WAIT;
        while b.client.find(fantoccini::Locator::Css(&row)).await.is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the revoked key's row is still listed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// A user's files for curl: the gateway's CA and a `.netrc` with the key,
/// as the README tells people to set it up.
struct UserFiles {
    dir: tempfile::TempDir,
}

impl UserFiles {
    fn new(ca_pem: &str, key: &str) -> UserFiles {
        let files = UserFiles::anonymous(ca_pem);
        let netrc = files.dir.path().join(".netrc");
        std::fs::write(
            &netrc,
            format!("machine 127.0.0.1 login apikey password {key}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&netrc, std::fs::Permissions::from_mode(0o600)).unwrap();
        files
    }

    /// No `.netrc`: a client without a key.
    fn anonymous(ca_pem: &str) -> UserFiles {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
        UserFiles { dir }
    }

    async fn curl(&self, url: &str) -> (u16, String) {
        self.curl_with(url, &[]).await
    }

    /// `curl` with `headers` sent as given: (status, body).
    async fn curl_with(&self, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
        self.curl_from("127.0.0.1", url.to_owned(), headers).await
    }

    /// `curl_with`, connecting from the loopback address `source`.
    async fn curl_from(
        &self,
        source: &str,
        url: String,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let url = url.as_str();
        let body = self.dir.path().join("body");
        let mut cmd = tokio::process::Command::new("curl");
        cmd.arg("--interface").arg(source);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .args(["-sS", "--max-time", "20", "-o"])
            .arg(&body)
            .args(["-w", "%{http_code}", "--cacert"])
            .arg(self.dir.path().join("ca.pem"));
        let netrc = self.dir.path().join(".netrc");
        if netrc.exists() {
            cmd.arg("--netrc-file").arg(&netrc);
        }
        for (name, value) in headers {
            cmd.arg("-H").arg(format!("{name}: {value}"));
        }
        let out = cmd.arg(url).output().await.expect("curl runs");
        assert!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status = String::from_utf8_lossy(&out.stdout).parse().unwrap();
        (status, std::fs::read_to_string(body).unwrap_or_default())
    }
}

/// Keys that expire within `keys.warn_before`'s first offset are in a
/// banner on the page, each with Rotate: one click shows the successor once,
/// the old key leaves the banner, its row says "Replaced", and the new key works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn the_page_warns_of_expiring_keys_and_rotates_them() {
    use keygate::keyring::Ttl;
    use keygate::keys::Scope;
    use std::time::Duration;

    let app = WebApp::start(&[(APP_USER, APP_PASSWORD)]).await;
    let gw = backend_session_gateway(&app)
        .set("keys", "warn_before = [\"14d\", \"1d\"]")
        .start()
        .await;
    let mint = |label: &'static str, days: u64| {
        let gw = &gw;
        async move {
            gw.keyring
                .mint(
                    &crate::support::gateway::test_actor(),
                    APP_USER,
                    Ttl::For(Duration::from_secs(days * 86400)),
                    label,
                    Scope::Read,
                )
                .await
                .unwrap()
                .record
                .id
                .to_string()
        }
    };
    let soon = mint("nightly backup", 3).await;
    let later = mint("laptop", 60).await;

    let browser = Browser::start().await;
    sign_in_to_the_app(&browser, &gw).await;
    let page = KeysPage::new(&browser, &gw.url("")).await;
    page.signed_in_as(APP_USER).await;

    // The banner names the key that expires within 14 days, not the other.
    let banner = browser
        .wait_text("#expiring", "the expiring key", |t| {
            t.contains("nightly backup")
        })
        .await;
    assert!(!banner.contains("laptop"), "{banner}");
    assert!(banner.contains("Keys expiring soon"), "{banner}");
    // Every live key's row has Rotate too.
    for id in [&soon, &later] {
        browser
            .find(&format!("#keys tr[data-key-id=\"{id}\"] button.rotate"))
            .await;
    }

    browser
        .click(&format!(
            "#expiring li[data-key-id=\"{soon}\"] button.rotate"
        ))
        .await;
    let key = browser
        .wait_text("#new-key", "the successor", |t| t.starts_with("kg_"))
        .await;
    browser
        .wait_text("#status", "how long the old key works", |t| {
            t.contains("keeps working until")
        })
        .await;
    // The old key leaves the banner; its successor, as short-lived (it
    // lives as long as the old key did), takes its place.
    browser
        .wait_js(
            "const b = document.getElementById('expiring'); \
             return !b.hidden && !b.querySelector('li[data-key-id=\"' + arguments[0] + '\"]') \
               && b.querySelectorAll('li').length === 1 ? true : null;",
            serde_json::json!(soon),
            "the rotated key gone from the banner, its successor in it",
        )
        .await;
    browser
        .wait_text(
            &format!("#keys tr[data-key-id=\"{soon}\"]"),
            "the old key marked replaced",
            |t| t.contains("Replaced"),
        )
        .await;
    let rows = browser
        .wait_js(
            "const r = document.querySelectorAll('#keys tr[data-key-id]'); return r.length === 3 ? r.length : null;",
            serde_json::json!(null),
            "three rows: the old key in its grace period, its successor, the other key",
        )
        .await;
    assert_eq!(rows, 3);
    page.done(&key).await;

    // The successor works, read-only like the key it replaced.
    let user = UserFiles::new(&gw.ca.pem(), &key);
    let (status, body) = user.curl(&gw.url("/whoami")).await;
    assert_eq!(status, 200, "curl with the successor: {body}");
    assert_eq!(identity(&body), Some(APP_USER.into()), "{body}");
    let listed = gw.keyring.list(Some(APP_USER)).await.unwrap();
    let successor = listed
        .iter()
        .find(|r| r.rotated_from.is_some_and(|f| f.as_str() == soon))
        .expect("the successor is listed with rotated_from");
    assert_eq!(successor.scope, Scope::Read);
    assert_eq!(successor.label, "nightly backup");
}

/// The page signed in as `APP_USER` in namespace `ns`, with their key
/// "deploy" (`old`, listed as `id`), and Redis refusing keygate's PUBLISH
/// from then on: what the page changes now, not every instance is told of.
struct Unpublished {
    _redis: crate::support::redis::RedisServer,
    _dir: tempfile::TempDir,
    _app: WebApp,
    gw: TestGateway,
    browser: Browser,
    old: keygate::keys::NewKey,
    id: String,
}

async fn signed_in_where_publish_fails(ns: &str) -> Unpublished {
    let redis = crate::support::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let app = WebApp::start(&[(APP_USER, APP_PASSWORD)]).await;
    let gw = backend_session_gateway(&app)
        .redis(&redis, dir.path(), ns)
        .set("store", &format!("url = \"{}\"", redis.own_user("keygate")))
        .start()
        .await;
    let old = gw
        .keyring
        .mint(
            &crate::support::gateway::test_actor(),
            APP_USER,
            keygate::keyring::Ttl::Default,
            "deploy",
            keygate::keys::Scope::Full,
        )
        .await
        .unwrap();
    let id = old.record.id.to_string();
    let browser = Browser::start().await;
    sign_in_to_the_app(&browser, &gw).await;
    KeysPage::new(&browser, &gw.url(""))
        .await
        .signed_in_as(APP_USER)
        .await;
    gw.await_fleet(&crate::support::client::h1(&gw.ca)).await;
    redis.acl(&["SETUSER", "keygate", "-publish"]);
    Unpublished {
        _redis: redis,
        _dir: dir,
        _app: app,
        gw,
        browser,
        old,
        id,
    }
}

/// A rotation keygate could not tell every instance about (Redis refuses
/// its PUBLISH): the page still shows the successor, once, and its status
/// says that the old key may keep working elsewhere, in the answer's words;
/// Copy keeps that on screen, Done clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn a_rotation_not_every_instance_heard_of_warns_on_the_page() {
    let Unpublished {
        gw,
        browser,
        old,
        id,
        ..
    } = &signed_in_where_publish_fails("page-nopub").await;
    let page = KeysPage::new(browser, &gw.url("")).await;

    browser
        .click(&format!("#keys tr[data-key-id=\"{id}\"] button.rotate"))
        .await;
    let key = browser
        .wait_text("#new-key", "the successor", |t| t.starts_with("kg_"))
        .await;
    assert_ne!(key, old.key.expose());
    let said = browser
        .wait_text("#status", "the rotation", |t| t.contains("rotated"))
        .await;
    assert!(said.starts_with("Key deploy rotated."), "{said}");
    assert!(said.contains("shown only once"), "{said}");
    assert!(
        said.contains("Warning: the new key is made")
            && said.contains("not every keygate instance could be told"),
        "the answer's warning: {said}"
    );
    assert!(!said.contains("keeps working until"), "{said}");
    // For a person to look at (not compared): the warning as shown.
    browser
        .screenshot(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/screenshots/rotation-warning-page.png"),
        )
        .await;

    // Copying the key keeps the warning on screen; Done clears it.
    browser.click_button("Copy to Clipboard").await;
    let said = browser
        .wait_text("#status", "the copy", |t| t.starts_with("Copied"))
        .await;
    assert!(
        said.contains("not every keygate instance could be told"),
        "{said}"
    );
    assert_eq!(browser.clipboard().await, key);
    page.done(&key).await;
    browser
        .wait_text("#status", "nothing", |t| t.is_empty())
        .await;

    // The successor works.
    let user = UserFiles::new(&gw.ca.pem(), &key);
    let (status, body) = user.curl(&gw.url("/whoami")).await;
    assert_eq!(status, 200, "curl with the successor: {body}");
    assert_eq!(identity(&body), Some(APP_USER.into()), "{body}");
}

/// A revocation keygate could not tell every instance about (Redis refuses
/// its PUBLISH): the key is revoked, so its row goes and the status says
/// so with a warning, rather than "Could not revoke" with the store's
/// error and a Revoke button that would then answer "no such key".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn a_revocation_not_every_instance_heard_of_says_revoked_with_a_warning() {
    let Unpublished {
        gw,
        browser,
        old,
        id,
        ..
    } = &signed_in_where_publish_fails("page-nopub-revoke").await;
    let page = KeysPage::new(browser, &gw.url("")).await;

    page.revoke(id).await;
    let said = browser
        .wait_text("#status", "the revocation", |t| !t.is_empty())
        .await;
    assert!(said.starts_with("Key deploy revoked. Warning:"), "{said}");
    assert!(said.contains("not every keygate instance"), "{said}");
    assert!(
        !said.contains("NoPerm") && !said.contains("Could not"),
        "{said}"
    );
    let user = UserFiles::new(&gw.ca.pem(), old.key.expose());
    let (status, _) = user.curl(&gw.url("/whoami")).await;
    assert_eq!(status, 401);
}

/// A browser showing the page asks for its icon under `/.keygate/static/`,
/// never for the backend's `/favicon.ico`: visiting the page leaves no 401
/// in the access log (`keygate dev`: everyone is "demo", no key is anonymous).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn the_page_in_a_browser_leaves_no_failed_authentication_in_the_log() {
    let mut cmd = std::process::Command::new(crate::support::bin::BIN);
    cmd.args([
        "dev",
        "--log-format",
        "json",
        "--addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    let kg = crate::support::bin::Process::spawn(cmd);
    let url = format!("https://{}", kg.main_addr().await);
    let browser = Browser::start().await;
    browser.goto(&format!("{url}/.keygate/keys")).await;
    let page = KeysPage::new(&browser, &url).await;
    page.signed_in_as("demo").await;
    let access = || {
        kg.log_lines()
            .into_iter()
            .filter(|l| l["target"] == "keygate::access")
            .collect::<Vec<_>>()
    };
    crate::support::eventually(
        "the browser fetches the page's icon",
        1000,
        std::time::Duration::from_millis(20),
        || async {
            access()
                .iter()
                .any(|l| l["path"] == "/.keygate/static/icon.svg")
                .then_some(())
        },
    )
    .await;
    let lines = access();
    assert!(
        lines.iter().all(|l| l["status"] != 401
            && l["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/.keygate/"))),
        "{lines:#?}"
    );
}

/// Where `backend_session` saves its picture of the page: under `target/`,
/// or over the README's `docs/self-service.png` when `KEYGATE_UPDATE_SCREENSHOT`
/// is set (so a test run never dirties the work tree by itself).
fn screenshot_path() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("KEYGATE_UPDATE_SCREENSHOT").is_some() {
        root.join("docs/self-service.png")
    } else {
        root.join("target/screenshots/self-service.png")
    }
}

/// The user the test application says it was told about (`{"identity": …}`).
/// (A browser's page text may carry its JSON viewer's controls before it.)
fn identity(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&body[body.find('{')?..]).ok()?;
    v.get("identity")?.as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser and django-cas-server: run by scripts/test.sh (--include-ignored)"]
async fn cas() {
    let cas = tokio::task::spawn_blocking(CasServer::start).await.unwrap();
    let app = WebApp::start(&[]).await;
    // On a port chosen first: the CAS service URL is built on `login.public_url`.
    let gw = cas::gateway(&cas, &app.url("")).await;
    let browser = Browser::start().await;

    // keygate sends the browser to CAS, which sends it back with a ticket.
    sign_in_at_cas(&browser, &cas, &gw, cas::USER, cas::PASSWORD).await;
    browser.wait_url(&gw.url("/.keygate/keys")).await;
    a_key_from_the_page_names(&browser, &gw, &app, cas::USER, "cas laptop").await;
}

/// Login CSRF with CAS: the attacker starts a sign-in at keygate, signs in
/// at django-cas-server, and stops before the CAS server's redirect reaches
/// keygate (the browser blocks it), keeping the unused ticket. Opened in a
/// victim's fresh browser, that link is refused ("Sign-in failed", 403) and
/// the victim is not signed in, as the attacker or at all. The ticket was
/// good: in the attacker's own browser, the flow it was issued for, it
/// signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser and django-cas-server: run by scripts/test.sh (--include-ignored)"]
async fn cas_ticket_of_another_browser_signs_nobody_in() {
    let cas = tokio::task::spawn_blocking(CasServer::start).await.unwrap();
    let app = WebApp::start(&[]).await;
    let gw = cas::gateway(&cas, &app.url("")).await;

    let attacker = Browser::start().await;
    let callback = gw.url("/.keygate/login?*");
    cut_off(&attacker, Some(&callback)).await;
    sign_in_at_cas(&attacker, &cas, &gw, cas::USER, cas::PASSWORD).await;
    let link = attacker.wait_url(&gw.url("/.keygate/login?")).await;
    assert!(link.contains("ticket=ST-"), "{link}");

    let victim = Browser::start().await;
    victim.goto(&link).await;
    refused_at_sign_in(
        &victim,
        &gw,
        cas::USER,
        "no sign-in was started in this browser",
        "cas-flow",
    )
    .await;

    cut_off(&attacker, None).await;
    attacker.goto(&link).await;
    attacker.wait_url(&gw.url("/.keygate/keys")).await;
    KeysPage::new(&attacker, &gw.url(""))
        .await
        .signed_in_as(cas::USER)
        .await;
}

/// Requests of `browser` to URLs matching `pattern` fail as if offline
/// (the request never leaves the browser, the URL stays in its address
/// bar); `None` lifts that.
async fn cut_off(browser: &Browser, pattern: Option<&str>) {
    let rules: Vec<serde_json::Value> = pattern
        .into_iter()
        .map(|p| {
            serde_json::json!({
                "urlPattern": p, "offline": true, "latency": 0,
                "downloadThroughput": -1, "uploadThroughput": -1,
            })
        })
        .collect();
    browser.cdp("Network.enable", serde_json::json!({})).await;
    browser
        .cdp(
            "Network.emulateNetworkConditionsByRule",
            serde_json::json!({ "matchedNetworkConditions": rules }),
        )
        .await;
}

/// A CAS user name that is not ASCII (docs/reference.md, "User names"):
/// zoë signs in at django-cas-server, is shown as zoë, and her key reaches
/// the application as the UTF-8 bytes of zoë. A name with a right-to-left
/// override, which the CAS server signs in, is refused on keygate's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser and django-cas-server: run by scripts/test.sh (--include-ignored)"]
async fn cas_with_user_names_that_are_not_ascii() {
    let cas = tokio::task::spawn_blocking(CasServer::start).await.unwrap();
    let app = WebApp::start(&[]).await;
    let gw = cas::gateway(&cas, &app.url("")).await;

    let browser = Browser::start().await;
    sign_in_at_cas(&browser, &cas, &gw, cas::ZOE.user, cas::ZOE.password).await;
    browser.wait_url(&gw.url("/.keygate/keys")).await;
    a_key_from_the_page_names(&browser, &gw, &app, cas::ZOE.user, "zoë's laptop").await;

    let (user, password) = (cas::DISGUISED.user, cas::DISGUISED.password);
    let browser = Browser::start().await;
    sign_in_at_cas(&browser, &cas, &gw, user, password).await;
    refused_at_sign_in(
        &browser,
        &gw,
        user,
        "contains an invisible or direction-changing",
        "cas-name",
    )
    .await;
}

/// Go to the page signed out; keygate sends the browser to the CAS server,
/// where `user` signs in. Where it lands is the caller's to check.
async fn sign_in_at_cas(
    browser: &Browser,
    cas: &CasServer,
    gw: &TestGateway,
    user: &str,
    password: &str,
) {
    browser.goto(&gw.url("/.keygate/keys")).await;
    browser.wait_url(&format!("{}/login", cas.url())).await;
    browser.fill("#id_username", user).await;
    browser.fill("#id_password", password).await;
    browser.click("#login_form button[type=submit]").await;
}

/// On the page, signed in: the page names `user`, a key made there works
/// with curl, and the application behind keygate is told `user` byte for
/// byte (its UTF-8, never re-encoded nor normalised).
async fn a_key_from_the_page_names(
    browser: &Browser,
    gw: &TestGateway,
    app: &WebApp,
    user: &str,
    label: &str,
) {
    let page = KeysPage::new(browser, &gw.url("")).await;
    page.signed_in_as(user).await;
    let (key, _id) = page.generate(label).await;
    page.done(&key).await;

    let files = UserFiles::new(&gw.ca.pem(), &key);
    let (status, body) = files.curl(&gw.url("/whoami")).await;
    assert_eq!(status, 200, "curl with {user}'s new key: {body}");
    assert_eq!(identity(&body), Some(user.into()), "{body}");
    let seen = app.identity_bytes_seen("/whoami");
    assert_eq!(
        seen.last(),
        Some(&vec![user.as_bytes().to_vec()]),
        "the identity header the application received, as bytes"
    );
}

/// The sign-in of `user` ended on keygate's refusal page (403), saying
/// `why`: nobody is signed in, and no key of any name was made.
/// `shot` names its screenshot, `target/screenshots/sign-in-refused-{shot}.png`.
async fn refused_at_sign_in(
    browser: &Browser,
    gw: &TestGateway,
    user: &str,
    why: &str,
    shot: &str,
) {
    let keys_before = gw.keyring.list(None).await.unwrap().len();
    browser.wait_url(&gw.url("/.keygate/login?")).await;
    browser
        .wait_text("h1", "\"Sign-in failed\"", |t| t == "Sign-in failed")
        .await;
    let text = browser.body_text().await;
    // For a person to look at (not compared): the page as shown.
    browser
        .screenshot(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("target/screenshots/sign-in-refused-{shot}.png")),
        )
        .await;
    assert!(text.contains(why), "{text}");
    assert!(
        !text.contains(user),
        "the refused name is not shown: {text}"
    );
    let status = browser
        .client
        .execute(
            "return performance.getEntriesByType('navigation')[0].responseStatus;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "{text}");
    browser.goto(&gw.url("/.keygate/api/keys")).await;
    browser
        .wait_text("body", "\"not signed in\"", |t| t.contains("not signed in"))
        .await;
    assert_eq!(gw.keyring.list(None).await.unwrap().len(), keys_before);
}

/// OpenID Connect against a real provider (oidc-provider, ES256 ID tokens):
/// alice signs in at the provider and lands on the page as herself, makes
/// a key that works with curl; "Sign out" ends keygate's session and takes
/// her to the provider's sign-out; bob, outside `allowed_groups`, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser and oidc-provider: run by scripts/test.sh (--include-ignored)"]
async fn openid_connect() {
    let app = WebApp::start(&[]).await;
    let allowed = format!("allowed_groups = [\"{}\"]", oidc::STAFF);
    let (provider, gw) =
        oidc::provider_and_gateway(&app.url(""), oidc::ES256_CLIENT, &[&allowed]).await;
    let browser = Browser::start().await;

    // keygate sends the browser to the provider, which sends it back with a code.
    sign_in_at_the_provider(&browser, &provider, &gw, &oidc::ALICE).await;
    browser.wait_url(&gw.url("/.keygate/keys")).await;
    a_key_from_the_page_names(&browser, &gw, &app, oidc::ALICE.email, "oidc laptop").await;

    // "Sign out": keygate's session ends at once, then the provider asks.
    browser.click("a[href=\"/.keygate/logout\"]").await;
    browser
        .wait_url(&format!("{}/session/end", provider.issuer()))
        .await;
    browser.goto(&gw.url("/.keygate/api/keys")).await;
    browser
        .wait_text("body", "\"not signed in\"", |t| t.contains("not signed in"))
        .await;
    browser
        .goto(&format!(
            "{}/session/end?client_id={}",
            provider.issuer(),
            oidc::ES256_CLIENT
        ))
        .await;
    browser.click("#logout-yes").await;
    browser.find("#signed-out").await;
    // Signed out of both: the page leads to the provider's sign-in form again.
    browser.goto(&gw.url("/.keygate/keys")).await;
    browser
        .wait_url(&format!("{}/interaction/", provider.issuer()))
        .await;

    // Bob is who he says at the provider, but in none of allowed_groups.
    fill_the_providers_form(&browser, &oidc::BOB).await;
    browser.wait_url(&gw.url("/.keygate/login?")).await;
    browser
        .wait_text("h1", "\"Not allowed\"", |t| t == "Not allowed")
        .await;
    let text = browser.body_text().await;
    assert!(text.contains(oidc::BOB.email), "{text}");
    browser.goto(&gw.url("/.keygate/api/keys")).await;
    browser
        .wait_text("body", "\"not signed in\"", |t| t.contains("not signed in"))
        .await;
}

/// An OpenID Connect user that is not ASCII: josé (his `sub` too) signs in
/// at oidc-provider, is shown as his email josé@例え.jp (`login.user_claim`),
/// and his key reaches the application as that email's UTF-8 bytes. Eve,
/// whose email ends in U+3000, is refused on keygate's page: never trimmed
/// into eve@example.org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser and oidc-provider: run by scripts/test.sh (--include-ignored)"]
async fn openid_connect_with_user_names_that_are_not_ascii() {
    let app = WebApp::start(&[]).await;
    let allowed = format!("allowed_groups = [\"{}\"]", oidc::STAFF);
    let (provider, gw) =
        oidc::provider_and_gateway(&app.url(""), oidc::RS256_CLIENT, &[&allowed]).await;

    let browser = Browser::start().await;
    sign_in_at_the_provider(&browser, &provider, &gw, &oidc::JOSE).await;
    browser.wait_url(&gw.url("/.keygate/keys")).await;
    a_key_from_the_page_names(&browser, &gw, &app, oidc::JOSE.email, "josé's laptop").await;

    let browser = Browser::start().await;
    sign_in_at_the_provider(&browser, &provider, &gw, &oidc::EVE).await;
    refused_at_sign_in(
        &browser,
        &gw,
        oidc::EVE.email,
        "starts or ends with white space",
        "oidc-name",
    )
    .await;
}

/// Go to the page signed out; keygate sends the browser to the provider,
/// where `account` signs in. Where it lands is the caller's to check.
async fn sign_in_at_the_provider(
    browser: &Browser,
    provider: &oidc::OidcProvider,
    gw: &TestGateway,
    account: &oidc::Account,
) {
    browser.goto(&gw.url("/.keygate/keys")).await;
    browser
        .wait_url(&format!("{}/interaction/", provider.issuer()))
        .await;
    fill_the_providers_form(browser, account).await;
}

/// On the provider's sign-in form: `account`'s login and password, "Sign in".
async fn fill_the_providers_form(browser: &Browser, account: &oidc::Account) {
    browser.fill("#login", account.login).await;
    browser.fill("#password", account.password).await;
    browser.click("#sign-in").await;
}
