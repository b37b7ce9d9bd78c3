//! `[leaks]` and `[[webhooks]]` problems, each named by its TOML key, and
//! no secret echoed (`keygate check`).

use crate::config_check::check_text_in as check_in;
use crate::support::webhook_receiver::SECRET;

#[test]
fn leaks_problems_are_named_by_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.json"), r#"{"public_keys":[]}"#).unwrap();
    let (code, err) = check_in(
        dir.path(),
        "[leaks]\ngitlab = true\naction = \"shout\"\nrefetch_interval = \"soon\"\nmax_report_bytes = 10\nverbose = true\n",
    );
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "leaks.action: \"shout\" is not one of \"revoke\", \"notify\"",
        "leaks.gitlab_keys_url: required with leaks.gitlab = true",
        "leaks.refetch_interval: invalid duration \"soon\"",
        "leaks.max_report_bytes: 10 is outside 1024..=268435456",
        "leaks.verbose: unknown key",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let (code, err) = check_in(
        dir.path(),
        &format!(
            "[leaks]\ngithub = true\npublic_keys_file = \"{}\"\n",
            dir.path().join("keys.json").display()
        ),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("leaks.public_keys_file: the list holds no ECDSA P-256 public key"),
        "{err}"
    );
    let (code, err) = check_in(
        dir.path(),
        "[leaks]\ngithub = true\ngithub_keys_url = \"ftp://x\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "leaks.github_keys_url: \"ftp://x\" must be an absolute http:// or https:// URL"
        ),
        "{err}"
    );
}

#[test]
fn webhook_problems_are_named_by_entry_and_key_without_echoing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let short = "whsec_c2hvcnQtYnV0LXNlY3JldA==";
    std::fs::write(dir.path().join("short"), short).unwrap();
    std::fs::write(dir.path().join("good"), SECRET).unwrap();
    let (code, err) = check_in(
        dir.path(),
        &format!(
            "[[webhooks]]\nurl = \"hooks.example.org/services/T0K3N\"\nsecret_file = \"{short}\"\nevents = [\"key.created\", \"key.exploded\"]\nkeep = \"10m\"\n\
             [[webhooks]]\nsecret_file = \"{good}\"\ncolour = 1\n\
             [[webhooks]]\nurl = \"https://a.example.org/h\"\nsecret_file = \"{good}\"\n\
             [[webhooks]]\nurl = \"https://a.example.org/h\"\nsecret_file = \"{good}\"\n\
             [[webhooks]]\nurl = \"https://hookuser:s3cretpass@b.example.org/h\"\nsecret_file = \"{good}\"\n",
            short = dir.path().join("short").display(),
            good = dir.path().join("good").display()
        ),
    );
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "webhooks[0].url: must be an absolute http:// or https:// URL",
        "webhooks[0].secret_file: ",
        "must decode to 24 to 64 bytes, not 16",
        "webhooks[0].events[1]: \"key.exploded\" is not one of \"key.created\", \"key.revoked\", \"key.leaked\"",
        "webhooks[0].keep: must be at least 1h",
        "webhooks[1].url: required",
        "webhooks[1].colour: unknown key",
        "webhooks[3].url: the same URL as an earlier entry",
        "webhooks[4].url: a user name or password in the URL is not supported",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        !err.contains(short)
            && !err.contains(SECRET)
            && !err.contains("T0K3N")
            && !err.contains("s3cretpass"),
        "a secret was echoed:\n{err}"
    );
    let (code, err) = check_in(
        dir.path(),
        "[webhooks]\nurl = \"https://a.example.org/h\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("webhooks: must be an array of tables ([[webhooks]] entries)"),
        "{err}"
    );
}

#[test]
fn a_file_of_scanner_keys_and_a_webhook_make_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = crate::support::scanner::Scanner::new("k1");
    std::fs::write(
        dir.path().join("keys.json"),
        crate::support::scanner::key_list(&[&scanner]),
    )
    .unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let (code, err) = check_in(
        dir.path(),
        "[leaks]\ngithub = true\ngitlab = true\npublic_keys_file = \"keys.json\"\naction = \"notify\"\n\
         [[webhooks]]\nurl = \"https://hooks.example.org/k\"\nsecret_file = \"secret\"\nevents = [\"key.leaked\"]\n",
    );
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_plain_http_webhook_off_loopback_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let (code, err) = check_in(
        dir.path(),
        "[[webhooks]]\nurl = \"http://hooks.example.org/k\"\nsecret_file = \"secret\"\n\
         [[webhooks]]\nurl = \"http://127.0.0.1:9000/k\"\nsecret_file = \"secret\"\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: webhooks[0].url: plain http"),
        "{err}"
    );
    assert!(
        !err.contains("  "),
        "a run of spaces in the sentence: {err}"
    );
    assert!(!err.contains("webhooks[1]"), "loopback is fine: {err}");
}
