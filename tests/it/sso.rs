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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn saml_rig() {
    use crate::support::saml::SamlRig;
    let t0 = Instant::now();
    let app = WebApp::start(&[]).await;
    let gw = builder(&app.url("")).start().await;
    let (port, ca) = (gw.addr.port(), gw.ca.pem());
    let rig = tokio::task::spawn_blocking(move || SamlRig::start(port, &ca))
        .await
        .unwrap();
    eprintln!("rig up after {:?}", t0.elapsed());
    let browser = Browser::start().await;
    browser.goto(&rig.sp_url("/.keygate/keys")).await;
    browser.fill("#username", "alice").await;
    browser.fill("#password", "wonderland").await;
    browser.click("#submit_button").await;
    browser.wait_url(&rig.sp_url("/.keygate/keys")).await;
    eprintln!("{}", browser.body_text().await);
    eprintln!("{:?}", app.paths_seen());
    eprintln!("done after {:?}", t0.elapsed());
    drop(browser);
    let t1 = Instant::now();
    let crate::support::saml::SamlRig { idp, sp, .. } = rig;
    drop(sp);
    eprintln!("sp stopped in {:?}", t1.elapsed());
    drop(idp);
    eprintln!("rig stopped in {:?}", t1.elapsed());
}
