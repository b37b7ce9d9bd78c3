//! The admin console, "External Tool Settings", in headless Chromium
//! (issue 11): an admin signs in through the application, follows the link
//! on their own page, changes the lifetimes users may choose, filters the
//! grid, deletes selected rows and every key a filter matches, and reads
//! the audit log; the keys stop working through the gateway at once.
//! A real Redis, a real upstream, real TLS. `#[ignore]`d for a bare
//! `cargo test`: scripts/test.sh installs Chromium and runs it.

use std::path::{Path, PathBuf};

use keygate::keyring::Ttl;
use keygate::keys::Scope;
use serde_json::{json, Value};

use crate::support::browser::Browser;
use crate::support::client::{self, HttpsClient};
use crate::support::gateway::{builder, test_actor, Builder, TestGateway};
use crate::support::redis::RedisServer;
use crate::support::webapp::WebApp;

const ADMIN: &str = "root@example.org";
const PASSWORD: &str = "root-password";

/// A key minted for `user` with `label`: (secret, id).
async fn key(gw: &TestGateway, user: &str, label: &str) -> (String, String) {
    let new = gw
        .keyring
        .mint(&test_actor(), user, Ttl::Default, label, Scope::Full)
        .await
        .unwrap();
    (new.key.expose().to_owned(), new.record.id.to_string())
}

/// The grid's rows as the page shows them: `[id, user, label]`.
async fn rows(b: &Browser) -> Vec<[String; 3]> {
    let v = b
        .client
        .execute(
            "return Array.from(document.querySelectorAll('#grid tbody tr')).map(r => \
             [r.dataset.keyId, r.cells[1].textContent, r.cells[2].textContent]);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

/// Wait until the grid shows exactly `n` rows.
async fn wait_rows(b: &Browser, n: usize) -> Vec<[String; 3]> {
    let got = b
        .wait_js(
            "const r = document.querySelectorAll('#grid tbody tr'); \
             return r.length === arguments[0] ? r.length : null;",
            json!(n),
            &format!("{n} rows in the grid"),
        )
        .await;
    assert_eq!(got, json!(n));
    rows(b).await
}

/// Type the grid's filter and apply it.
async fn filter(b: &Browser, user: &str, label: &str) {
    b.fill("#f-user", user).await;
    b.fill("#f-label", label).await;
    b.click_button("Apply").await;
}

/// Click `button` (a deletion) and wait for the answer: "Revoked …".
async fn delete(b: &Browser, button: &str) -> String {
    b.click_button(button).await;
    b.wait_text("#grid-status", "the revocation", |t| {
        t.starts_with("Revoked")
    })
    .await
}

/// keygate in front of the application, whose sign-in it trusts; `ADMIN` an admin.
async fn console_gateway(redis: &RedisServer, app: &WebApp) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    console_builder(redis, app, dir.path()).start().await
}

/// The same, to change before it starts; `dir` holds the store's secret.
fn console_builder(redis: &RedisServer, app: &WebApp, dir: &Path) -> Builder {
    let mut b = builder(&app.url(""));
    b.redis(redis, dir, "console-ui")
        .set("admin", &format!("users = [\"{ADMIN}\"]"))
        .set("login", "method = \"backend_session\"")
        .set(
            "login",
            &format!("whoami_url = \"{}\"", app.url("/login-whoami.api")),
        )
        .set("login", "user_pointer = \"/email\"")
        .set("login", "login_url = \"/login?next=/.keygate/keys\"");
    b
}

/// Sign in through the application as `ADMIN` and follow the link on their
/// own page to the console.
async fn open_console(gw: &TestGateway) -> Browser {
    let browser = Browser::start().await;
    browser.goto(&gw.url("/.keygate/keys")).await;
    browser.click("#login").await;
    browser.fill("#username", ADMIN).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("#sign-in").await;
    browser.wait_url(&gw.url("/.keygate/keys")).await;
    browser.click("#console-link").await;
    browser.wait_url(&gw.url("/.keygate/admin")).await;
    browser
        .grant_clipboard(gw.url("").trim_end_matches('/'))
        .await;
    browser
        .wait_text("h1", "the console", |t| t == "External Tool Settings")
        .await;
    browser
}

/// Wait for the audit log's newest `action` row and check that it names
/// the admin, from the console.
async fn by_admin_in_console(b: &Browser, action: &str) {
    let row = b
        .wait_js(
            "for (const r of document.querySelectorAll('#audit tbody tr')) \
               if (r.cells[2].textContent === arguments[0]) \
                 return Array.from(r.cells).map(c => c.textContent); \
             return null;",
            json!(action),
            &format!("{action} in the audit log"),
        )
        .await;
    assert_eq!(row[1], ADMIN, "{row}");
    assert_eq!(row[5], "admin-console", "{row}");
}

async fn status(gw: &TestGateway, c: &HttpsClient, key: &str) -> u16 {
    gw.status_with_key(c, key).await.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn an_admin_sets_lifetimes_filters_deletes_and_reads_the_audit_log() {
    let redis = RedisServer::start();
    let app = WebApp::start(&[(ADMIN, PASSWORD)]).await;
    let gw = console_gateway(&redis, &app).await;
    let c = client::h1(&gw.ca);
    let mut alice = Vec::new();
    for label in ["laptop", "ci runner", "notebook"] {
        alice.push(key(&gw, "alice", label).await);
    }
    // One batch label over three users' keys, and a label with markup.
    let mut batch = Vec::new();
    for user in ["bob", "carol", "dave"] {
        batch.push(key(&gw, user, "nightly batch").await);
    }
    let (bob_other, _) = key(&gw, "bob", "<img src=x onerror=alert(1)>").await;
    let erin = [key(&gw, "erin", "a").await, key(&gw, "erin", "b").await];

    let browser = open_console(&gw).await;
    let all = wait_rows(&browser, 9).await;
    // The label with markup is text, never an element.
    assert!(
        all.iter().any(|r| r[2] == "<img src=x onerror=alert(1)>"),
        "{all:?}"
    );
    let imgs = browser
        .client
        .execute(
            "return document.querySelectorAll('#grid img').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(imgs, json!(0));
    // The picture in the README.
    browser.screenshot(&screenshot_path()).await;
    // A key's id can be copied; its secret is nowhere on the page.
    let first = &all[0][0];
    browser
        .click(&format!("#grid tr[data-key-id=\"{first}\"] button.copy-id"))
        .await;
    browser
        .wait_text("#grid-status", "copied", |t| t.ends_with("copied."))
        .await;
    assert_eq!(browser.clipboard().await, *first);
    let text = browser.body_text().await;
    assert!(!text.contains("kg_") && !alice[0].0.is_empty(), "{text}");

    // Settings: a value out of range is named beside its field, nothing saved.
    let before = gw.keyring.settings().await.unwrap();
    browser.fill("#ttl_choices", "2d, 7d").await;
    browser.fill("#default_ttl", "30d").await;
    browser.fill("#max_ttl", "7d").await;
    browser.click_button("Save settings").await;
    let error = browser
        .wait_text("#default_ttl-error", "the field's error", |t| !t.is_empty())
        .await;
    assert!(error.contains("longer than max_ttl"), "{error}");
    browser
        .wait_text("#settings-status", "nothing saved", |t| {
            t.starts_with("Nothing was saved")
        })
        .await;
    assert_eq!(gw.keyring.settings().await.unwrap(), before);
    browser.fill("#default_ttl", "7d").await;
    browser.click_button("Save settings").await;
    browser
        .wait_text("#settings-status", "saved", |t| t == "Settings saved.")
        .await;
    let error = browser
        .find("#default_ttl-error")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(error, "");

    // Filter by user, select two rows, Delete: those two stop working.
    filter(&browser, "alice", "").await;
    let shown = wait_rows(&browser, 3).await;
    assert!(shown.iter().all(|r| r[1] == "alice"), "{shown:?}");
    let (gone, kept): (Vec<_>, Vec<_>) = alice.iter().partition(|(_, id)| id != &alice[2].1);
    for (_, id) in &gone {
        browser
            .click(&format!("#grid tr[data-key-id=\"{id}\"] input.pick"))
            .await;
    }
    let said = delete(&browser, "Delete 2 keys").await;
    assert!(
        said.starts_with("Revoked 2 keys. Acknowledged by 1 instance"),
        "{said}"
    );
    wait_rows(&browser, 1).await;
    for (secret, _) in &gone {
        assert_eq!(status(&gw, &c, secret).await, 401);
    }
    assert_eq!(status(&gw, &c, &kept[0].0).await, 200);

    // Every key the filter matches, over three users, after a dry run.
    filter(&browser, "", "nightly batch").await;
    wait_rows(&browser, 3).await;
    browser
        .click_button("Select every key that matches the filter")
        .await;
    let asked = browser
        .wait_text("#confirm-text", "the count", |t| !t.is_empty())
        .await;
    assert!(
        asked.starts_with("3 keys match label \u{201c}nightly batch\u{201d}"),
        "{asked}"
    );
    let said = delete(&browser, "Delete 3 keys").await;
    assert!(said.starts_with("Revoked 3 keys."), "{said}");
    wait_rows(&browser, 0).await;
    for (secret, _) in &batch {
        assert_eq!(status(&gw, &c, secret).await, 401);
    }
    assert_eq!(status(&gw, &c, &bob_other).await, 200);

    // A filter that matches nothing: no rows, Delete disabled, the count 0.
    filter(&browser, "nobody", "").await;
    browser
        .wait_js(
            "return document.getElementById('no-match').hidden ? null : true;",
            Value::Null,
            "\"No key matches\"",
        )
        .await;
    assert!(!browser.find("#delete").await.is_enabled().await.unwrap());
    browser
        .click_button("Select every key that matches the filter")
        .await;
    let asked = browser
        .wait_text("#confirm-text", "the count", |t| !t.is_empty())
        .await;
    assert!(asked.starts_with("No key matches user nobody"), "{asked}");
    assert!(!browser
        .find("#confirm-delete")
        .await
        .is_enabled()
        .await
        .unwrap());
    browser.click_button("Cancel").await;

    // A stale page: someone else revokes one of the selected rows first.
    filter(&browser, "erin", "").await;
    wait_rows(&browser, 2).await;
    browser.click("#select-page").await;
    gw.keyring
        .revoke(
            &test_actor(),
            keygate::keyring::Revocation::Ids(vec![
                keygate::keys::KeyId::parse(&erin[0].1).unwrap()
            ]),
        )
        .await
        .unwrap();
    let said = delete(&browser, "Delete 2 keys").await;
    assert!(
        said.starts_with("Revoked 1 key; 1 of the 2 selected was already revoked or expired."),
        "{said}"
    );
    assert_eq!(status(&gw, &c, &erin[1].0).await, 401);

    // The audit log names the admin, from the console.
    let row = browser
        .wait_js(
            "for (const r of document.querySelectorAll('#audit tbody tr')) \
               if (r.cells[1].textContent === arguments[0] && r.cells[5].textContent === 'admin-console' \
                   && r.cells[3].textContent.includes('nightly batch')) \
                 return Array.from(r.cells).map(c => c.textContent); \
             return null;",
            json!(ADMIN),
            "the filtered revocation in the audit log",
        )
        .await;
    assert_eq!(row[4], "3", "{row}");

    // Pages of 50 by cursor; they follow the applied filter, not what is
    // typed but not yet applied.
    for i in 0..60 {
        key(&gw, "frank", &format!("job {i}")).await;
    }
    browser
        .find("#f-limit")
        .await
        .select_by_value("50")
        .await
        .unwrap();
    let sort = browser.find("#f-sort").await;
    sort.select_by_value("expires:asc").await.unwrap();
    filter(&browser, "frank", "").await;
    wait_rows(&browser, 50).await;
    let sorted = browser.find("#th-expires").await.attr("aria-sort").await;
    assert_eq!(sorted.unwrap().as_deref(), Some("ascending"));
    let other = browser.find("#th-created").await.attr("aria-sort").await;
    assert_eq!(other.unwrap(), None);
    browser.fill("#f-user", "someone else").await;
    browser.click_button("Next page").await;
    let second = wait_rows(&browser, 10).await;
    assert!(second.iter().all(|r| r[1] == "frank"), "{second:?}");
    browser
        .wait_text("#page-number", "page 2", |t| t == "Page 2")
        .await;
    assert!(!browser.find("#next-page").await.is_enabled().await.unwrap());
    browser.click_button("Previous page").await;
    wait_rows(&browser, 50).await;

    // Revoke all asks for the count typed in.
    filter(&browser, "", "").await;
    browser.click_button("Revoke all keys").await;
    let asked = browser
        .wait_text("#confirm-text", "the count", |t| !t.is_empty())
        .await;
    assert!(asked.contains(": 62 keys."), "{asked}");
    // The keyboard lands where the count is typed.
    browser
        .wait_js(
            "return document.activeElement.id === 'confirm-count' ? true : null;",
            Value::Null,
            "focus on the count to type",
        )
        .await;
    let confirm = browser.button("Delete 62 keys").await;
    assert!(!confirm.is_enabled().await.unwrap());
    browser.fill("#confirm-count", "6").await;
    assert!(!confirm.is_enabled().await.unwrap());
    browser.fill("#confirm-count", "62").await;
    assert!(confirm.is_enabled().await.unwrap());
    confirm.click().await.unwrap();
    browser
        .wait_text("#grid-status", "the revocation", |t| {
            t.starts_with("Revoked 62 keys.")
        })
        .await;
    assert_eq!(status(&gw, &c, &kept[0].0).await, 401);
    assert_eq!(status(&gw, &c, &bob_other).await, 401);

    // The user's page offers the lifetimes set above.
    browser.click("a[href=\"/.keygate/keys\"]").await;
    browser.wait_url(&gw.url("/.keygate/keys")).await;
    let offered = browser
        .wait_js(
            "const o = Array.from(document.querySelectorAll('#lifetime option')).map(o => o.value); \
             return o.length ? o : null;",
            Value::Null,
            "the lifetimes offered",
        )
        .await;
    assert_eq!(offered, json!(["2d", "7d"]));
}

/// Issue 13: an admin rotates a user's key from the grid with the keyboard;
/// the successor is shown once beside Copy and works through the gateway,
/// the old key keeps working for its grace, the row says what replaced it,
/// and the audit log names the admin, from the console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn an_admin_rotates_a_users_key_from_the_grid() {
    let redis = RedisServer::start();
    let app = WebApp::start(&[(ADMIN, PASSWORD)]).await;
    let gw = console_gateway(&redis, &app).await;
    let c = client::h1(&gw.ca);
    let (old, old_id) = key(&gw, "alice", "deploy").await;
    let browser = open_console(&gw).await;
    wait_rows(&browser, 1).await;

    // The row's Rotate, named for screen readers, pressed from the keyboard.
    let rotate = browser.button("Rotate").await;
    assert_eq!(
        rotate.attr("aria-label").await.unwrap().as_deref(),
        Some("Rotate key deploy of alice")
    );
    let enter = char::from(fantoccini::key::Key::Enter).to_string();
    rotate.send_keys(&enter).await.unwrap();
    let said = browser
        .wait_text("#grid-status", "the rotation", |t| t.starts_with("Rotated"))
        .await;
    assert!(
        said.starts_with("Rotated key deploy of alice: the new key is "),
        "{said}"
    );
    assert!(said.contains("shown only once"), "{said}");
    // Every instance heard of it: no warning, the grace period's end.
    assert!(
        said.contains("The old key keeps working until ") && !said.contains("Warning"),
        "{said}"
    );
    let new = browser.find("#new-key").await.text().await.unwrap();
    assert!(new.starts_with("kg_") && new != old, "{new}");
    // Focus lands on Copy; Copy puts the new key on the clipboard.
    browser
        .wait_js(
            "return document.activeElement.id === 'copy' ? true : null;",
            Value::Null,
            "focus on Copy",
        )
        .await;
    browser.click_button("Copy to Clipboard").await;
    browser
        .wait_text("#copy", "copied", |t| t == "Copied!")
        .await;
    assert_eq!(browser.clipboard().await, new);

    // The new key works, and the old one still does during its grace.
    assert_eq!(status(&gw, &c, &new).await, 200);
    assert_eq!(status(&gw, &c, &old).await, 200);
    let successor = gw
        .keyring
        .get(&keygate::keys::KeyId::parse(&old_id).unwrap())
        .await;
    let successor = successor
        .unwrap()
        .unwrap()
        .rotated_to
        .expect("rotated")
        .to_string();
    assert!(said.contains(&successor), "{said}");

    // The grid: the old row says what replaced it and offers no Rotate;
    // the new row (alice's, same label) offers it.
    wait_rows(&browser, 2).await;
    let rotation = browser
        .wait_js(
            "const r = document.querySelector('#grid tr[data-key-id=\"' + arguments[0] + '\"]'); \
             return r ? r.cells[9].textContent : null;",
            json!(old_id),
            "the old row's rotation cell",
        )
        .await;
    assert_eq!(rotation, json!(format!("replaced by {successor}")));
    let buttons = browser
        .client
        .execute(
            "return Array.from(document.querySelectorAll('#grid button.rotate')) \
             .map(b => b.closest('tr').dataset.keyId);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(buttons, json!([successor]));

    // The audit log: the admin rotated it, from the console.
    by_admin_in_console(&browser, "rotate").await;

    // Done: the key is gone from the page for good.
    browser.click_button("Done").await;
    browser
        .wait_js(
            "return document.getElementById('new-key-panel').hidden ? true : null;",
            Value::Null,
            "the panel hidden",
        )
        .await;
    let text = browser.body_text().await;
    assert!(!text.contains(&new), "{text}");
}

/// An admin pastes a secret scanner's report into the console: the live
/// keys of this deployment in it are counted, then revoked on
/// confirmation, whoever owns them; a key-shaped word of another
/// deployment revokes nothing; the pasted text leaves the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn an_admin_revokes_the_keys_pasted_from_a_leak_report() {
    let redis = RedisServer::start();
    let app = WebApp::start(&[(ADMIN, PASSWORD)]).await;
    let gw = console_gateway(&redis, &app).await;
    let c = client::h1(&gw.ca);
    let (alice, _) = key(&gw, "alice", "deploy").await;
    let (bob, _) = key(&gw, "bob", "ci").await;
    let (carol, carol_id) = key(&gw, "carol", "kept").await;
    let browser = open_console(&gw).await;
    wait_rows(&browser, 3).await;

    // A gitleaks finding, a .netrc line and the same key again, and a key
    // of another deployment's prefix.
    let foreign = format!("zz{}", &alice[alice.find('_').unwrap()..]);
    let report = format!(
        "[{{\"File\": \"deploy.sh\", \"Secret\": \"{alice}\"}},\n          {{\"File\": \"old.env\", \"Secret\": \"{foreign}\"}}]\n\
         machine example.org login apikey password {bob}\npassword_{bob}\n"
    );
    browser.click_button("Revoke leaked keys").await;
    browser.fill("#leaked-text", &report).await;
    browser.click_button("Find these keys").await;
    let asked = browser
        .wait_text("#confirm-text", "the count", |t| !t.is_empty())
        .await;
    assert_eq!(
        asked,
        "2 live keys of this deployment: among the 3 keys found in the pasted text, \
         or rotated from one of them. Revoke them? Scripts using them stop working at once."
    );
    assert_eq!(status(&gw, &c, &alice).await, 200, "a dry run revoked");
    // For a person to look at (not compared): the pasted report and the count.
    browser
        .screenshot(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/screenshots/leaked-keys-console.png"),
        )
        .await;

    let said = delete(&browser, "Delete 2 keys").await;
    assert!(said.starts_with("Revoked 2 keys."), "{said}");
    let shown = wait_rows(&browser, 1).await;
    assert_eq!(shown[0][0], carol_id, "{shown:?}");
    assert_eq!(status(&gw, &c, &alice).await, 401);
    assert_eq!(status(&gw, &c, &bob).await, 401);
    assert_eq!(status(&gw, &c, &carol).await, 200);
    let pasted = browser
        .client
        .execute(
            "return [document.getElementById('leaked').hidden, \
             document.getElementById('leaked-text').value];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(pasted, json!([true, ""]));

    // More than one console request holds: said, nothing sent.
    let many: Vec<String> = (0..300)
        .map(|i| format!("kg_{i:012}_{}", "A".repeat(49)))
        .collect();
    browser.click_button("Revoke leaked keys").await;
    browser.fill("#leaked-text", &many.join("\n")).await;
    browser.click_button("Find these keys").await;
    let said = browser
        .wait_text("#grid-status", "the limit", |t| t.contains("300 keys"))
        .await;
    assert!(
        said.contains("more than the console takes at once"),
        "{said}"
    );

    // The audit log: leaked, by the admin, from the console.
    by_admin_in_console(&browser, "leaked").await;
    let text = browser.body_text().await;
    assert!(!text.contains(&alice[alice.len() - 20..]), "{text}");
}

/// A console gateway on its own Redis user, which a test may refuse
/// commands (`refuse_publish`).
async fn console_as_own_user(
    redis: &RedisServer,
    app: &WebApp,
    dir: &std::path::Path,
) -> TestGateway {
    let mut b = console_builder(redis, app, dir);
    b.set("store", &format!("url = \"{}\"", redis.own_user("keygate")));
    b.start().await
}

/// From now on Redis refuses keygate's PUBLISH (once it joined the fleet):
/// what the console changes, not every instance is told of.
async fn refuse_publish(gw: &TestGateway, redis: &RedisServer) {
    gw.await_fleet(&client::h1(&gw.ca)).await;
    redis.acl(&["SETUSER", "keygate", "-publish"]);
}

/// A rotation keygate could not tell every instance about (Redis refuses
/// its PUBLISH): the grid still shows the successor, once, and its status
/// says that the old key may keep working elsewhere, in the answer's words;
/// Copy keeps that on screen, Done clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn a_rotation_not_every_instance_heard_of_warns_in_the_grid() {
    let redis = RedisServer::start();
    let app = WebApp::start(&[(ADMIN, PASSWORD)]).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = console_as_own_user(&redis, &app, dir.path()).await;
    let (old, _) = key(&gw, "alice", "deploy").await;
    let browser = open_console(&gw).await;
    wait_rows(&browser, 1).await;
    refuse_publish(&gw, &redis).await;

    browser.click_button("Rotate").await;
    let said = browser
        .wait_text("#grid-status", "the rotation", |t| t.starts_with("Rotated"))
        .await;
    assert!(
        said.starts_with("Rotated key deploy of alice: the new key is "),
        "{said}"
    );
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
                .join("target/screenshots/rotation-warning-console.png"),
        )
        .await;
    let new = browser.find("#new-key").await.text().await.unwrap();
    assert!(new.starts_with("kg_") && new != old, "{new}");
    assert_eq!(status(&gw, &client::h1(&gw.ca), &new).await, 200);

    // Copying the key keeps the warning on screen; Done clears it.
    browser.click_button("Copy to Clipboard").await;
    let said = browser
        .wait_text("#grid-status", "the copy", |t| t.starts_with("Copied"))
        .await;
    assert!(
        said.contains("not every keygate instance could be told"),
        "{said}"
    );
    assert_eq!(browser.clipboard().await, new);
    browser.click_button("Done").await;
    browser
        .wait_text("#grid-status", "nothing", |t| t.is_empty())
        .await;
}

/// A filter the store's index cannot answer alone (a label within one
/// user's keys) over more keys than a page looks through: the first pages
/// come back empty with a cursor. The grid looks on and shows the match; it
/// does not say "No key matches this filter".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn a_match_past_an_empty_page_is_shown_not_denied() {
    use futures_util::stream::{self, StreamExt};
    let redis = RedisServer::start();
    let app = WebApp::start(&[(ADMIN, PASSWORD)]).await;
    let gw = console_gateway(&redis, &app).await;
    // Older than the others, or as old and expiring sooner: the last key
    // of the grid's order (newest first).
    let rare = gw
        .keyring
        .mint(
            &test_actor(),
            "svc",
            Ttl::For(std::time::Duration::from_secs(3_600)),
            "rare",
            Scope::Full,
        )
        .await
        .unwrap()
        .record
        .id
        .to_string();
    stream::iter(0..5_200)
        .for_each_concurrent(32, |_| async {
            key(&gw, "svc", "bulk").await;
        })
        .await;
    let browser = open_console(&gw).await;
    wait_rows(&browser, 100).await;

    filter(&browser, "svc", "rare").await;
    let shown = wait_rows(&browser, 1).await;
    assert_eq!(shown[0][0], rare, "{shown:?}");
    assert!(browser
        .find("#no-match")
        .await
        .attr("hidden")
        .await
        .unwrap()
        .is_some());
}

/// A filter the server refuses (a key secret pasted as the user) says why
/// and empties the grid: the rows of the listing before would read as
/// this filter's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn a_refused_filter_says_why_and_shows_no_rows_of_the_one_before() {
    let redis = RedisServer::start();
    let app = WebApp::start(&[(ADMIN, PASSWORD)]).await;
    let gw = console_gateway(&redis, &app).await;
    let (secret, _) = key(&gw, "alice", "deploy").await;
    key(&gw, "bob", "other").await;
    let browser = open_console(&gw).await;
    wait_rows(&browser, 2).await;

    filter(&browser, &secret, "").await;
    let said = browser
        .wait_text("#grid-status", "the refusal", |t| !t.is_empty())
        .await;
    assert!(
        said.starts_with("Could not list keys: user: looks like a key secret"),
        "{said}"
    );
    assert!(!said.contains(&secret), "{said}");
    wait_rows(&browser, 0).await;
    assert!(!browser.find("#next-page").await.is_enabled().await.unwrap());
}

/// A deletion the store made but not every instance could be told about
/// (Redis refuses its PUBLISH): the grid says the key is revoked and the
/// fleet not told, in the answer's words, and no longer lists it; not
/// "Nothing was revoked".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real browser: run by scripts/test.sh (--include-ignored)"]
async fn a_deletion_not_every_instance_heard_of_warns_that_it_is_revoked() {
    let redis = RedisServer::start();
    let app = WebApp::start(&[(ADMIN, PASSWORD)]).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = console_as_own_user(&redis, &app, dir.path()).await;
    let (secret, id) = key(&gw, "alice", "deploy").await;
    key(&gw, "bob", "other").await;
    let browser = open_console(&gw).await;
    wait_rows(&browser, 2).await;
    refuse_publish(&gw, &redis).await;

    browser
        .click(&format!("#grid tr[data-key-id=\"{id}\"] input.pick"))
        .await;
    browser.click_button("Delete 1 key").await;
    let said = browser
        .wait_text("#grid-status", "the revocation", |t| !t.is_empty())
        .await;
    assert!(
        said.starts_with("Warning: Revoked 1 key in the store")
            && said.contains("could not tell every keygate instance"),
        "{said}"
    );
    assert!(!said.contains("Nothing was revoked"), "{said}");
    let shown = wait_rows(&browser, 1).await;
    assert_ne!(shown[0][0], id, "{shown:?}");
    // For a person to look at (not compared): the warning as shown.
    browser
        .screenshot(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/screenshots/revocation-warning-console.png"),
        )
        .await;
    assert_eq!(status(&gw, &client::h1(&gw.ca), &secret).await, 401);
}

/// Where the picture of the grid goes: under `target/`, or over the
/// README's `docs/admin-console.png` when `KEYGATE_UPDATE_SCREENSHOT` is set.
fn screenshot_path() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("KEYGATE_UPDATE_SCREENSHOT").is_some() {
        root.join("docs/admin-console.png")
    } else {
        root.join("target/screenshots/admin-console.png")
    }
}
