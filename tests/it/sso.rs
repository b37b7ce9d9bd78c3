//! Self-service keys in a real browser (issue 6): headless Chromium signs in
//! through each `[login] method`, makes a key on `/.keygate/keys`, and curl
//! uses it through keygate.
//!
//! These start real Chromium, Apache and django-cas-server; scripts/test.sh
//! installs them and runs these `#[ignore]`d tests with `--include-ignored`.
//! A missing program fails the test, it never skips.

use std::time::Instant;

use crate::support::browser::Browser;
use crate::support::gateway::builder;
use crate::support::webapp::WebApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn backend_session() {
    let t0 = Instant::now();
    let app = WebApp::start(&[("alice@example.org", "wonderland")]).await;
    let gw = builder(&app.url("")).start().await;
    let browser = Browser::start().await;
    eprintln!("browser up after {:?}", t0.elapsed());
    browser.goto(&gw.url("/login?next=/hello")).await;
    browser.fill("#username", "alice@example.org").await;
    browser.fill("#password", "wonderland").await;
    browser.click("#sign-in").await;
    browser.wait_url(&gw.url("/hello")).await;
    let origin = gw.url("");
    browser.grant_clipboard(origin.trim_end_matches('/')).await;
    browser
        .client
        .execute("navigator.clipboard.writeText('hello clip')", vec![])
        .await
        .unwrap();
    assert_eq!(browser.clipboard().await, "hello clip");
    browser
        .screenshot(std::path::Path::new("target/sso-smoke.png"))
        .await;
    eprintln!("done after {:?}", t0.elapsed());
}
