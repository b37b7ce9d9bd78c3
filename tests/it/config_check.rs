//! `keygate check`: exit 0 for a valid file; otherwise every problem, each
//! named by its TOML key, and exit 2. Secrets are never echoed.

use std::path::PathBuf;

use crate::support::bin;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_valid_file_passes_with_exit_0() {
    let out = bin::check(&fixture("valid_minimal.toml"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn every_problem_is_reported_with_its_toml_key() {
    let out = bin::check(&fixture("many_problems.toml"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for expected in [
        "listen.addr: invalid socket address \"localhost-8443\"",
        "listen.adress: unknown key",
        "upstrem: unknown section",
        "upstream.url: required",
        "auth.anonymous: \"maybe\" is not one of \"reject\", \"passthrough\"",
        "keys.max_ttl: invalid duration \"forever\"",
        "limits.max_header_bytes: invalid type: string \"big\", expected a whole number",
        "runtime.shutdown_grace: must be greater than zero",
        "log.format: \"xml\" is not one of \"human\", \"json\"",
        "store.kind: \"postgres\" is not one of \"redis\", \"memory\"",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn a_short_secret_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "hunter2-not-long\n").unwrap();
    let cfg = dir.path().join("k.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n[store]\nkind = \"redis\"\nsecret_file = \"{}\"\n",
            secret.display()
        ),
    )
    .unwrap();
    let out = bin::check(&cfg);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("store.secret_file:") && err.contains("fewer than 32 characters"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the secret was echoed: {err}");
}

/// A duration longer than 100 years is refused by its key, wherever it is:
/// added to the clock it would overflow (a panic, or a key that expires in
/// the past), and nothing needs longer.
#[test]
fn a_duration_over_100_years_is_refused_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("k.toml");
    std::fs::write(
        &cfg,
        "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
         [limits]\nidle_timeout = \"300000000000y\"\nsend_timeout = \"100y\"\n\
         [keys]\nmax_ttl = \"101y\"\n",
    )
    .unwrap();
    let out = bin::check(&cfg);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for expected in [
        "limits.idle_timeout: duration \"300000000000y\" is longer than 100 years",
        "keys.max_ttl: duration \"101y\" is longer than 100 years",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("send_timeout"), "100 years is allowed: {err}");
}

#[test]
fn missing_tls_files_and_syntax_errors_are_named() {
    let out = bin::check(&fixture("missing_tls.toml"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("listen.tls_cert: cannot read /nonexistent/cert.pem"),
        "{err}"
    );
    assert!(
        err.contains("listen.tls_key: cannot read /nonexistent/key.pem"),
        "{err}"
    );

    let out = bin::check(&fixture("syntax_error.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("(line 3)"), "{}", stderr(&out));

    let out = bin::check(&fixture("does_not_exist.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read the configuration file"));
}

/// `check` on `[listen] + [upstream] + extra`: its stderr and exit code.
pub(crate) fn check_text(extra: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    check_text_in(dir.path(), extra)
}

/// `check_text` with the file in `dir` (beside files `extra` names).
pub(crate) fn check_text_in(dir: &std::path::Path, extra: &str) -> (Option<i32>, String) {
    let cfg = dir.join("k.toml");
    let token = crate::support::admin_token_file(dir);
    std::fs::write(
        &cfg,
        format!(
            "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n[store]\nkind = \"memory\"\n[admin]\ntoken_file = \"{}\"\n{extra}",
            token.display()
        ),
    )
    .unwrap();
    let out = bin::check(&cfg);
    (out.status.code(), stderr(&out))
}

#[test]
fn login_and_self_service_problems_are_named_by_their_keys() {
    let (code, err) = check_text(
        "[login]\nmethod = \"backend_session\"\nwhoami_url = \"/relative\"\nheader = \"X-User\"\ncolour = 1\n[self_service]\nmax_live_keys = 0\ncreates_per_hour = 0\n",
    );
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "login.whoami_url: must be an absolute http:// or https:// URL",
        "login.header: only used with method = \"trusted_header\"",
        "login.colour: unknown key",
        "self_service.max_live_keys: must be from 1 to 10000",
        "self_service.creates_per_hour: must be at least 1",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let (code, err) = check_text("[login]\nmethod = \"cas\"\ncas_url = \"cas.example.org\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("login.public_url: required with method = \"cas\""),
        "{err}"
    );
    assert!(
        err.contains("login.cas_url: must be an absolute https:// URL"),
        "{err}"
    );
    let (code, err) = check_text(
        "[login]\nmethod = \"trusted_header\"\ntrusted_proxies = [\"10.0.0.0/33\"]\ntimeout = \"soon\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("login.trusted_proxies[0]: invalid address or CIDR"),
        "{err}"
    );
    assert!(err.contains("login.timeout: invalid duration"), "{err}");
    let (code, err) = check_text("[login]\nmethod = \"saml\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("login.method: \"saml\" is not one of"),
        "{err}"
    );
    let (code, err) = check_text(
        "[login]\nmethod = \"backend_session\"\nwhoami_url = \"http://127.0.0.1:8080/login-whoami.api\"\nlogin_url = \"javascript:alert(1)\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("login.login_url: must be a path"), "{err}");
    // Browsers read `/\host` as `//host`: another site, not a path.
    let (code, err) = check_text(
        "[login]\nmethod = \"backend_session\"\nwhoami_url = \"http://127.0.0.1:8080/login-whoami.api\"\nlogin_url = '/\\sso.example.org/login'\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("login.login_url: must be a path"), "{err}");
    let (code, err) = check_text(
        "[login]\nmethod = \"cas\"\ncas_url = \"https://cas.example.org/cas/\"\npublic_url = \"https://keygate.example.org/\"\n",
    );
    assert_eq!(code, Some(0), "{err}");
}

/// `[admin] users`: only with a `[login]` (the only way to be signed in),
/// each a user name as `[login]` gives it.
#[test]
fn admin_users_problems_are_named_by_their_keys() {
    let (code, err) = check_text("users = [\"alice\"]\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("admin.users: needs a [login] section"),
        "{err}"
    );
    let login = "[login]\nmethod = \"trusted_header\"\nheader = \"X-User\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n";
    let (code, err) = check_text(&format!(
        "users = [\"alice\", \" \", \"tab\\there\", \"zoë\", \"al\\u202Eice\", \"zo\\u200Bë\", \"{}\"]\n{login}",
        "é".repeat(129)
    ));
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "admin.users[1]: starts or ends with white space: a user name is 1-256 bytes of UTF-8",
        "admin.users[2]: contains a control character: a user name is 1-256 bytes of UTF-8",
        "admin.users[4]: contains an invisible or direction-changing formatting character",
        "admin.users[5]: contains an invisible or direction-changing formatting character",
        "admin.users[6]: is longer than 256 bytes",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(!err.contains("admin.users[0]"), "{err}");
    // UTF-8 names as an SSO gives them.
    assert!(!err.contains("admin.users[3]"), "{err}");
    let (code, err) = check_text(&format!(
        "users = [\"alice@example.org\", \"zoë\", \"josé@例え.jp\", \"{}\"]\n{login}",
        "é".repeat(128)
    ));
    assert_eq!(code, Some(0), "{err}");
    // Latin-1 `zoë`: the file is not UTF-8 (TOML must be), exit 2 saying so.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("k.toml");
    let token = crate::support::admin_token_file(dir.path());
    let mut text = format!(
        "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n[store]\nkind = \"memory\"\n[admin]\ntoken_file = \"{}\"\n",
        token.display()
    )
    .into_bytes();
    text.extend_from_slice(b"users = [\"zo\xeb\"]\n");
    text.extend_from_slice(login.as_bytes());
    std::fs::write(&cfg, text).unwrap();
    let out = bin::check(&cfg);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not contain valid UTF-8"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_example_config_documents_valid_keys() {
    // The example's paths do not exist here; every other key must be known and valid.
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/keygate.example.toml"),
    )
    .unwrap();
    let err =
        keygate::config::parse(&text).expect_err("example paths do not exist on a test machine");
    for p in &err.0 {
        assert!(
            [
                "listen.tls_cert",
                "listen.tls_key",
                "store.secret_file",
                "admin.token_file"
            ]
            .contains(&p.key.as_str()),
            "unexpected problem in the example config: {p}"
        );
    }
}

#[test]
fn store_urls_of_every_deployment_are_checked_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    let check = |url: &str, ca: Option<&str>| {
        let cfg = dir.path().join("k.toml");
        std::fs::write(
            &cfg,
            format!(
                "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
                 [store]\nkind = \"redis\"\nurl = \"{url}\"\nsecret_file = \"{}\"\n{}\n\
                 [admin]\ntoken_file = \"{}\"\n",
                secret.display(),
                ca.map(|c| format!("ca_file = \"{c}\"")).unwrap_or_default(),
                fixture("admin-token").display()
            ),
        )
        .unwrap();
        bin::check(&cfg)
    };
    for url in [
        "redis://127.0.0.1:6379/0",
        "rediss://:pw@redis.example.org:6380/1",
        "redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3",
        "redis+sentinel://:pw@s1:26379,s2:26379,s3/mymaster/2",
        "rediss+sentinel://s1/mymaster",
    ] {
        let out = check(url, None);
        assert_eq!(out.status.code(), Some(0), "{url}: {}", stderr(&out));
    }
    for url in [
        "redis+sentinel://:hunter2pass@s1:26379",
        "redis+cluster://:hunter2pass@a:7000/3",
        "memcached://:hunter2pass@a",
    ] {
        let out = check(url, None);
        assert_eq!(out.status.code(), Some(2), "{url}");
        let err = stderr(&out);
        assert!(err.contains("store.url: "), "{err}");
        assert!(!err.contains("hunter2pass"), "the URL was echoed: {err}");
    }
    // What is wrong, in redis-rs's fixed words (it said only "not valid").
    let out = check("redis://:hunter2pass@127.0.0.1:6379/x", None);
    assert!(
        stderr(&out).contains("store.url: is not a valid redis:// URL: Invalid database number"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("hunter2pass"), "{}", stderr(&out));
    let out = check("redis://h/0", Some("/etc/hostname"));
    assert!(
        stderr(&out).contains("store.ca_file: applies to TLS connections only"),
        "{}",
        stderr(&out)
    );
    let out = check("rediss://h/0", Some("/nonexistent/ca.pem"));
    assert!(
        stderr(&out).contains("store.ca_file: cannot read /nonexistent/ca.pem"),
        "{}",
        stderr(&out)
    );
}

/// Ticket validation over plain http to another machine lets anyone on the
/// path answer with any user (and browsers would post passwords in clear):
/// `cas_url` must be https, except to a CAS server on loopback.
#[test]
fn a_cas_server_over_plain_http_is_refused_unless_on_loopback() {
    let cas = |url: &str| {
        check_text(&format!(
            "[login]\nmethod = \"cas\"\ncas_url = \"{url}\"\npublic_url = \"https://keygate.example.org\"\n"
        ))
    };
    let (code, err) = cas("http://cas.example.org/cas");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("login.cas_url: must be an absolute https:// URL"),
        "{err}"
    );
    assert_eq!(cas("http://10.0.0.5:8080/cas").0, Some(2));
    for ok in [
        "https://cas.example.org/cas",
        "http://127.0.0.1:8080/cas",
        "http://[::1]:8080/cas",
        "http://localhost/cas",
    ] {
        let (code, err) = cas(ok);
        assert_eq!(code, Some(0), "{ok}: {err}");
    }
}

#[test]
fn cache_problems_are_named_by_their_keys() {
    let (code, err) =
        check_text("[cache]\ncapacity = 0\nmax_age = \"soon\"\nlease = \"10ms\"\nsize = 5\n");
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "cache.capacity: must be at least 1",
        "cache.max_age: invalid duration \"soon\"",
        "cache.lease: must be between 300ms and 60s",
        "cache.size: unknown key",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let (code, err) = check_text("[cache]\nenabled = false\nlease = \"1s\"\nmax_age = \"30s\"\n");
    assert_eq!(code, Some(0), "{err}");
}

/// The Basic user name goes into every client's `~/.netrc`, whose fields
/// are split at whitespace: one with a space could never be used from it.
#[test]
fn a_basic_user_name_that_netrc_cannot_hold_is_refused() {
    for name in ["api key", "api:key", "", "tab\\there"] {
        let (code, err) = check_text(&format!("[auth]\nusername = \"{name}\"\n"));
        assert_eq!(code, Some(2), "{name:?}: {err}");
        assert!(
            err.contains("auth.username: must be non-empty, without ':', spaces"),
            "{name:?}: {err}"
        );
    }
    let (code, err) = check_text("[auth]\nusername = \"api-key_2\"\n");
    assert_eq!(code, Some(0), "{err}");
}

/// Half of `leaks.answer_within` bounds every body keygate reads itself:
/// too short, no admin list or page request could arrive.
#[test]
fn a_leaks_answer_within_too_short_for_a_body_is_refused() {
    let (code, err) = check_text("[leaks]\nanswer_within = \"1s\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("leaks.answer_within: must be at least 2s"),
        "{err}"
    );
    let (code, err) = check_text("[leaks]\nanswer_within = \"2s\"\n");
    assert_eq!(code, Some(0), "{err}");
}

/// `[listen]`, `[upstream]`, `[store]`, `[admin]` with relative paths only.
fn relative_config(store: &str) -> String {
    format!(
        "[listen]\naddr = \"127.0.0.1:0\"\ntls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n\
         [upstream]\nurl = \"http://127.0.0.1:8080\"\n[store]\n{store}\n\
         [admin]\naddr = \"127.0.0.1:0\"\ntoken_file = \"admin-token\"\n"
    )
}

/// A folder `conf/` holding a config, its TLS pair, secret and token, all
/// named by relative paths; and another folder to run keygate from.
fn conf_folder(store: &str) -> (tempfile::TempDir, PathBuf, crate::support::tls::Ca) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(conf.join("tls")).unwrap();
    let ca = crate::support::tls::Ca::new("relative paths CA");
    let leaf = ca.leaf("relative");
    std::fs::write(conf.join("tls/cert.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(conf.join("tls/key.pem"), &leaf.key_pem).unwrap();
    std::fs::write(conf.join("secret"), "0123456789abcdef0123456789abcdef\n").unwrap();
    crate::support::admin_token_file(&conf);
    std::fs::write(conf.join("keygate.toml"), relative_config(store)).unwrap();
    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    (dir, conf, ca)
}

fn check_from(cwd: &std::path::Path, config: &std::path::Path) -> std::process::Output {
    std::process::Command::new(bin::BIN)
        .args(["check", "-c"])
        .arg(config)
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[test]
fn relative_paths_name_files_beside_the_config_whatever_the_current_directory() {
    let redis = "kind = \"redis\"\nsecret_file = \"secret\"";
    let (dir, conf, _) = conf_folder(redis);
    let elsewhere = dir.path().join("elsewhere");
    let out = check_from(&elsewhere, &conf.join("keygate.toml"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A relative -c is relative to the current directory; the paths in
    // the file are still relative to the file's folder.
    let out = check_from(dir.path(), std::path::Path::new("conf/keygate.toml"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    std::fs::remove_file(conf.join("secret")).unwrap();
    std::fs::write(
        elsewhere.join("secret"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    // Named as resolved, from anywhere: never the secret of another folder.
    let expected = format!(
        "store.secret_file: cannot read {}:",
        conf.join("secret").display()
    );
    let configs = [
        (&elsewhere, conf.join("keygate.toml")),
        (&conf, PathBuf::from("keygate.toml")),
    ];
    for (cwd, config) in configs {
        let out = check_from(cwd, &config);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(err.contains(&expected), "{err}");
    }
}

#[tokio::test]
async fn serve_reads_relative_paths_from_the_configs_folder() {
    let (dir, conf, ca) = conf_folder("kind = \"memory\"");
    let elsewhere = dir.path().join("elsewhere");
    let kg = bin::Process::serve_in(&conf.join("keygate.toml"), &elsewhere);
    let admin = kg.admin_addr().await;
    // The certificate from conf/tls/ and the token from conf/admin-token.
    let client = crate::support::client::h1(&ca);
    let req = http::Request::get(format!("https://127.0.0.1:{}/v1/keys", admin.port()))
        .header(
            "authorization",
            format!("Bearer {}", crate::support::ADMIN_TOKEN),
        )
        .body(crate::support::body::empty())
        .unwrap();
    let answer = crate::support::client::send(&client, req).await;
    assert_eq!(answer.status, http::StatusCode::OK, "{}", answer.text());
}

#[test]
fn unknown_keys_and_sections_name_the_nearest_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("k.toml");
    std::fs::write(
        &cfg,
        "[listen]\nplaintext = true\nadress = \"0.0.0.0:1\"\n\
         [upstream]\nurl = \"http://127.0.0.1:8080\"\ntimeout = \"3s\"\n\
         [upstrem]\n[login]\nmethod = \"cas\"\ncolour = 1\n",
    )
    .unwrap();
    let out = bin::check(&cfg);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for expected in [
        "upstream.timeout: unknown key; did you mean connect_timeout or response_timeout?\n",
        "listen.adress: unknown key; did you mean addr?\n",
        "upstrem: unknown section; did you mean [upstream]?\n",
        // Nothing close: no guess.
        "login.colour: unknown key\n",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

/// The example names the files `keygate init /etc/keygate` writes: on a
/// machine without them, `check` says so for each and how to make it; once
/// `init` has written them, the example passes as it is.
#[test]
fn the_example_fails_only_for_the_files_init_writes_and_passes_once_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc-keygate");
    let example = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/keygate.example.toml"),
    )
    .unwrap();
    assert!(example.contains("\"/etc/keygate/"));
    let cfg = dir.path().join("example.toml");
    std::fs::write(&cfg, example.replace("/etc/keygate", etc.to_str().unwrap())).unwrap();

    let out = bin::check(&cfg);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let problems: Vec<&str> = err.lines().skip(1).map(str::trim).collect();
    let etc = etc.display();
    assert_eq!(problems.len(), 4, "{err}");
    for (key, file, hint) in [
        (
            "listen.tls_cert",
            "tls/fullchain.pem",
            "`keygate init DIR --self-signed HOST`",
        ),
        (
            "listen.tls_key",
            "tls/key.pem",
            "`keygate init DIR --self-signed HOST`",
        ),
        (
            "store.secret_file",
            "secret",
            &format!("`keygate init {etc}` writes it"),
        ),
        (
            "admin.token_file",
            "admin-token",
            &format!("`keygate init {etc}` writes it"),
        ),
    ] {
        let p = problems
            .iter()
            .find(|p| p.starts_with(&format!("{key}: cannot read {etc}/{file}")))
            .unwrap_or_else(|| panic!("no problem for {key} in:\n{err}"));
        assert!(p.contains(hint), "{p}");
    }

    let init = std::process::Command::new(bin::BIN)
        .args(["init", &etc.to_string(), "--self-signed", "localhost"])
        .output()
        .unwrap();
    assert_eq!(init.status.code(), Some(0), "{}", stderr(&init));
    let out = bin::check(&cfg);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn http2_limits_and_send_timeout_are_named_by_their_keys() {
    let (code, err) = check_text(
        "[limits]\nsend_timeout = \"0s\"\nh2_max_concurrent_streams = 0\n\
         h2_max_pending_accept_reset_streams = 0\nh2_max_local_error_reset_streams = 0\n\
         h2_max_header_list_size = 10\nh2_max_send_buf_size = 100\nh2_max_control_frames = 1\n",
    );
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "limits.send_timeout: must be greater than zero",
        "limits.h2_max_concurrent_streams: 0 is outside 1..=10000",
        "limits.h2_max_pending_accept_reset_streams: 0 is outside 1..=100000",
        "limits.h2_max_local_error_reset_streams: 0 is outside 1..=100000",
        "limits.h2_max_header_list_size: 10 is outside 1024..=16777216",
        "limits.h2_max_send_buf_size: 100 is outside 16384..=16777216",
        "limits.h2_max_control_frames: 1 is outside 10..=1000000",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let (code, err) = check_text(
        "[limits]\nsend_timeout = \"2m\"\nh2_max_concurrent_streams = 64\nh2_max_header_list_size = 32768\n",
    );
    assert_eq!(code, Some(0), "{err}");
}

/// `limits.max_connections` has a ceiling: beyond tokio's semaphore bound
/// (2^61 - 1) both listeners' tasks panicked at start while the process
/// logged "keygate listening" and served nothing.
#[test]
fn max_connections_is_bounded_by_its_key() {
    for n in ["0", "10000001", "9223372036854775807"] {
        let (code, err) = check_text(&format!("[limits]\nmax_connections = {n}\n"));
        assert_eq!(code, Some(2), "{n}: {err}");
        assert!(
            err.contains(&format!(
                "limits.max_connections: {n} is outside 1..=10000000"
            )),
            "{n}: {err}"
        );
    }
    let (code, err) = check_text("[limits]\nmax_connections = 10000000\n");
    assert_eq!(code, Some(0), "{err}");
}

/// The TLS pair's usual mistakes are said in words an operator acts on,
/// not as rustls' "KeyMismatch", "no items found" or a base64 error.
#[test]
fn tls_pair_mistakes_are_said_in_words_by_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::support::tls::Ca::new("check-ca");
    let leaf = ca.leaf("keygate");
    let (cert, key) = leaf.write(dir.path());
    let check_pair = |cert: &std::path::Path, key: &std::path::Path| {
        check_whole(&format!(
            "[listen]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
             [store]\nkind = \"memory\"\n[admin]\ntoken_file = \"{{token}}\"\n",
            cert.display(),
            key.display()
        ))
    };
    // Intermediates (here the CA) before the server's certificate.
    let reversed = dir.path().join("reversed.pem");
    std::fs::write(&reversed, format!("{}{}", ca.pem(), leaf.cert_pem)).unwrap();
    let (code, err) = check_pair(&reversed, &key);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("listen.tls_cert: ")
            && err.contains("is in the wrong order: certificate 2 is the private key's"),
        "{err}"
    );
    // Another certificate's key.
    let other = dir.path().join("other-key.pem");
    std::fs::write(&other, ca.leaf("other").key_pem).unwrap();
    let (code, err) = check_pair(&cert, &other);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("listen.tls_cert: the private key in")
            && err.contains("is not the key of the first certificate"),
        "{err}"
    );
    // Passphrase-protected keys, PKCS#8 and traditional PKCS#1.
    for name in ["encrypted-key.pem", "encrypted-rsa-key.pem"] {
        let (code, err) = check_pair(&cert, &fixture(name));
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("listen.tls_key: ")
                && err.contains("holds an encrypted (passphrase-protected) private key"),
            "{name}: {err}"
        );
    }
    // A key file with no key in it (the certificate twice).
    let (code, err) = check_pair(&cert, &cert);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("listen.tls_key: ") && err.contains("holds no PEM private key"),
        "{err}"
    );
    // The pair as it should be.
    let (code, err) = check_pair(&cert, &key);
    assert_eq!(code, Some(0), "{err}");
}

/// An empty `log.level` is a filter that allows errors only: every
/// warning (a store outage, a reload that failed) would be lost.
#[test]
fn an_empty_log_level_is_refused_by_its_key() {
    let (code, err) = check_text("[log]\nlevel = \" \"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("log.level: is empty"), "{err}");
}

/// A word that is no level names a log target in a tracing filter:
/// `level = "warning"` passed and keygate ran without one line, its
/// warnings and access log included.
#[test]
fn a_log_level_that_lets_no_keygate_line_through_is_refused_by_its_key() {
    let (code, err) = check_text("[log]\nlevel = \"warning\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("log.level: \"warning\" lets none of keygate's lines through"),
        "{err}"
    );
    assert!(err.contains("did you mean \"warn\"?"), "{err}");
    for fine in ["warn", "keygate=debug,info", "hyper=trace,info"] {
        let (code, err) = check_text(&format!("[log]\nlevel = \"{fine}\"\n"));
        assert_eq!(code, Some(0), "{fine}: {err}");
    }
}

/// The realm is a quoted-string in every 401's challenge (through each
/// proxy too): a `\` escapes the closing quote and the header no longer
/// says `realm="…"`.
#[test]
fn a_realm_that_would_break_the_challenge_is_refused_by_its_key() {
    for realm in ["corp\\\\", "DOMAIN\\\\users"] {
        let (code, err) = check_text(&format!("[auth]\nrealm = \"{realm}\"\n"));
        assert_eq!(code, Some(2), "{realm}: {err}");
        assert!(err.contains("auth.realm: "), "{realm}: {err}");
    }
    let (code, err) = check_text("[auth]\nrealm = \"Corp API (zoë)\"\n");
    assert_eq!(code, Some(0), "{err}");
}

/// rustls serves any certificate it is given: an expired one (a renewal
/// that failed) is a warning of `check`, which still exits 0, as it is of
/// the start and of a SIGHUP reload.
#[test]
fn an_expired_certificate_is_a_warning_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 2, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let (code, err) = check_whole(&format!(
        "[listen]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
         [store]\nkind = \"memory\"\n[admin]\ntoken_file = \"{{token}}\"\n",
        cert_path.display(),
        key_path.display()
    ));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: listen.tls_cert: the certificate expired on 2020-02-01T00:00:00Z"),
        "{err}"
    );
}

/// `h2_max_header_list_size` defaults to `max_header_bytes`: a bad
/// `max_header_bytes` is one problem, not a second one under a key the
/// operator never wrote.
#[test]
fn a_bad_max_header_bytes_is_not_also_blamed_on_the_h2_list_size_it_defaults() {
    let (code, err) = check_text("[limits]\nmax_header_bytes = 100\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("limits.max_header_bytes: 100 is outside 1024..=16777216"),
        "{err}"
    );
    assert!(!err.contains("h2_max_header_list_size"), "{err}");
}

/// A trusted-proxy list that holds every address (`0.0.0.0/0`, `::/0`)
/// trusts every client: valid, so a warning naming the entry.
#[test]
fn trusting_every_address_as_a_proxy_is_a_warning_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let token = crate::support::admin_token_file(dir.path());
    let cfg = dir.path().join("k.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listen]\nplaintext = true\ntrusted_proxies = [\"0.0.0.0/0\"]\n\
             [upstream]\nurl = \"http://127.0.0.1:8080\"\n[store]\nkind = \"memory\"\n\
             [admin]\ntoken_file = \"{}\"\n\
             [login]\nmethod = \"trusted_header\"\ntrusted_proxies = [\"10.0.0.7\", \"::/0\"]\n\
             public_url = \"https://app.example.org\"\n",
            token.display()
        ),
    )
    .unwrap();
    let out = bin::check(&cfg);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for expected in [
        "warning: listen.trusted_proxies[0]: 0.0.0.0/0 trusts every address",
        "warning: login.trusted_proxies[1]: ::/0 trusts every address: any client can send x-remote-user and be signed in as whoever it names",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

/// Expiry warnings as long as the longest lifetime a key may have would
/// warn about every key from its creation: valid, so a warning naming it.
#[test]
fn warnings_before_expiry_as_long_as_max_ttl_are_a_warning() {
    let (code, err) = check_text("[keys]\nmax_ttl = \"30d\"\nwarn_before = [\"7d\", \"30d\"]\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: keys.warn_before: 30d is not shorter than keys.max_ttl (30d)"),
        "{err}"
    );
    let (code, err) = check_text("[keys]\nmax_ttl = \"30d\"\nwarn_before = [\"7d\", \"1d\"]\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("keys.warn_before"), "{err}");
}

#[test]
fn admin_client_ca_must_be_readable_pem_on_a_tls_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let ca = crate::support::tls::Ca::new("check CA");
    let leaf = ca.leaf("localhost");
    let (cert, key) = leaf.write(dir.path());
    let ca_file = dir.path().join("clients.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let token = crate::support::admin_token_file(dir.path());
    let write = |client_ca: &std::path::Path, admin_plaintext: bool| {
        let cfg = dir.path().join("k.toml");
        std::fs::write(
            &cfg,
            format!(
                "[listen]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
                 [store]\nkind = \"memory\"\n[admin]\ntoken_file = \"{}\"\nplaintext = {admin_plaintext}\nclient_ca = \"{}\"\n",
                cert.display(),
                key.display(),
                token.display(),
                client_ca.display()
            ),
        )
        .unwrap();
        let out = bin::check(&cfg);
        (out.status.code(), stderr(&out))
    };
    let (code, err) = write(&ca_file, false);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = write(&not_pem, false);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("admin.client_ca: ") && err.contains("no usable client CA certificate"),
        "{err}"
    );
    let (code, err) = write(std::path::Path::new("/nonexistent/ca.pem"), false);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("admin.client_ca: cannot read /nonexistent/ca.pem"),
        "{err}"
    );
    let (code, err) = write(&ca_file, true);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("admin.client_ca: needs TLS on the admin listener"),
        "{err}"
    );
}

/// `[login] method = "oidc"`: every missing or bad key named, the client
/// secret never echoed, `KEYGATE_OIDC_CLIENT_SECRET` in place of the file,
/// and the OIDC keys (and `[admin] groups`) refused with another method.
#[test]
fn oidc_login_problems_are_named_by_their_keys() {
    let (code, err) = check_text("[login]\nmethod = \"oidc\"\n");
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "login.public_url: required with method = \"oidc\"",
        "login.issuer: required with method = \"oidc\"",
        "login.client_id: required with method = \"oidc\"",
        "login.client_secret_file: required with method = \"oidc\" (or set KEYGATE_OIDC_CLIENT_SECRET)",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }

    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("oidc-secret");
    std::fs::write(&secret, "\n").unwrap();
    let (code, err) = check_text(&format!(
        "groups = [\"\"]\n[login]\nmethod = \"oidc\"\npublic_url = \"https://kg.example.org\"\n\
         issuer = \"http://id.example.org/realms/main\"\nclient_id = \"keygate\"\n\
         client_secret_file = \"{}\"\nscopes = [\"email\", \"two words\"]\nuser_claim = \"\"\n\
         allowed_groups = [\"staff\", \"\"]\n",
        secret.display()
    ));
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "login.issuer: must be an absolute https:// URL without a query (http:// only on a loopback address)",
        "login.client_secret_file: ",
        "the client secret must be one non-empty line",
        "login.scopes[1]: \"two words\" is not a scope",
        "login.scopes: must include \"openid\"",
        "login.user_claim: must be a claim name",
        "login.allowed_groups[1]: must be a non-empty group name",
        "admin.groups[0]: must be a non-empty group name",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }

    // Valid, with the secret from the file or from the environment; never printed.
    std::fs::write(&secret, "s3cret-value-never-shown\n").unwrap();
    let valid = |secret_line: &str| {
        format!(
            "groups = [\"keygate-admins\"]\n[login]\nmethod = \"oidc\"\npublic_url = \"https://kg.example.org\"\n\
             issuer = \"https://id.example.org/realms/main\"\nclient_id = \"keygate\"\n{secret_line}\
             allowed_groups = [\"staff\"]\nuser_claim = \"preferred_username\"\n"
        )
    };
    let (code, err) = check_text(&valid(&format!(
        "client_secret_file = \"{}\"\n",
        secret.display()
    )));
    assert_eq!(code, Some(0), "{err}");
    let cfg = dir.path().join("k.toml");
    let token = crate::support::admin_token_file(dir.path());
    std::fs::write(
        &cfg,
        format!(
            "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n[store]\nkind = \"memory\"\n\
             [admin]\ntoken_file = \"{}\"\n{}",
            token.display(),
            valid("")
        ),
    )
    .unwrap();
    let without = bin::check(&cfg);
    assert_eq!(without.status.code(), Some(2));
    let with_env = std::process::Command::new(bin::BIN)
        .args(["check", "-c"])
        .arg(&cfg)
        .env("KEYGATE_OIDC_CLIENT_SECRET", "from-the-environment")
        .output()
        .unwrap();
    assert_eq!(with_env.status.code(), Some(0), "{}", stderr(&with_env));
    let (_, err) = check_text(&valid(&format!(
        "client_secret_file = \"{}\"\nscopes = []\n",
        secret.display()
    )));
    assert!(!err.contains("s3cret-value-never-shown"), "{err}");

    // OIDC's keys with another method, and admin groups without OIDC.
    let (code, err) = check_text(
        "groups = [\"keygate-admins\"]\n[login]\nmethod = \"cas\"\ncas_url = \"https://cas.example.org/cas\"\n\
         public_url = \"https://kg.example.org\"\nissuer = \"https://id.example.org\"\nallowed_groups = [\"staff\"]\n",
    );
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "login.issuer: only used with method = \"oidc\"",
        "login.allowed_groups: only used with method = \"oidc\"",
        "admin.groups: only used with [login] method = \"oidc\"",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    for ok in [
        "http://127.0.0.1:8080",
        "http://[::1]:9000/realms/x",
        "https://id.example.org/",
    ] {
        let (code, err) = check_text(
            &valid(&format!("client_secret_file = \"{}\"\n", secret.display()))
                .replace("https://id.example.org/realms/main", ok),
        );
        assert_eq!(code, Some(0), "{ok}: {err}");
    }
}

#[test]
fn key_lifecycle_problems_are_named_by_their_keys() {
    let (code, err) = check_text(
        "[keys]\nwarn_before = [\"14d\", \"soon\", \"14d\", \"0s\"]\nrotation_grace = \"later\"\nmax_rotation_grace = \"1h\"\nrevoke_unused_after = \"0s\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "keys.warn_before[1]: invalid duration \"soon\"",
        "keys.warn_before[2]: 14d is given twice",
        "keys.warn_before[3]: must be greater than zero",
        "keys.rotation_grace: invalid duration \"later\"",
        "keys.revoke_unused_after: must be greater than zero",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let (code, err) = check_text("[keys]\nself_rotation = \"yes\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("keys.self_rotation: invalid type"), "{err}");
    let (code, err) = check_text("[keys]\nrotation_grace = \"2d\"\nmax_rotation_grace = \"1d\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("keys.rotation_grace: 2d is longer than keys.max_rotation_grace (1d)"),
        "{err}"
    );
    let (code, err) = check_text(
        "[keys]\nwarn_before = []\nrotation_grace = \"0s\"\nself_rotation = true\nrevoke_unused_after = \"90d\"\n",
    );
    assert_eq!(code, Some(0), "{err}");
}

/// A key's expiry is kept to the second, and an API or CLI `ttl` of
/// "1500ms" is refused: `keys.default_ttl` and `keys.max_ttl` are too, by
/// their keys. Taken, "1ms" made every key creation panic and "1500ms"
/// quietly became 1 s.
#[test]
fn key_lifetimes_that_are_not_whole_seconds_are_refused_by_their_keys() {
    let (code, err) = check_text("[keys]\ndefault_ttl = \"1500ms\"\nmax_ttl = \"1d 500ms\"\n");
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "keys.default_ttl: must be a whole number of seconds",
        "keys.max_ttl: must be a whole number of seconds",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    let (code, err) = check_text("[keys]\ndefault_ttl = \"1ms\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("keys.default_ttl: must be a whole number of seconds"),
        "{err}"
    );
    let (code, err) = check_text("[keys]\ndefault_ttl = \"90s\"\nmax_ttl = \"1d 1s\"\n");
    assert_eq!(code, Some(0), "{err}");
}

/// `check` on a whole file written in a temp dir beside an admin token
/// (`{token}` in `text` is its path): exit code and stderr.
fn check_whole(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let token = crate::support::admin_token_file(dir.path());
    let cfg = dir.path().join("k.toml");
    std::fs::write(&cfg, text.replace("{token}", &token.display().to_string())).unwrap();
    let out = bin::check(&cfg);
    (out.status.code(), stderr(&out))
}

/// keygate sends no credentials of its own upstream: a `user:password@` in
/// `upstream.url` would only be a host name it cannot resolve (every request
/// a 502) and a password printed at start. Refused, and never quoted.
#[test]
fn an_upstream_url_with_a_user_or_password_is_refused_without_echoing_it() {
    for url in [
        "http://app:HUNTER2pw@127.0.0.1:8080",
        "https://app:HUNTER2pw@app.example.org/base",
        "http://HUNTER2pw@127.0.0.1:8080",
        "app:HUNTER2pw@127.0.0.1:8080",
    ] {
        let (code, err) = check_whole(&format!(
            "[listen]\nplaintext = true\n[upstream]\nurl = \"{url}\"\n[store]\nkind = \"memory\"\n\
             [admin]\ntoken_file = \"{{token}}\"\n"
        ));
        assert_eq!(code, Some(2), "{url}: {err}");
        assert!(
            err.contains("upstream.url: a user name or password in the URL is not supported"),
            "{url}: {err}"
        );
        assert!(!err.contains("HUNTER2pw"), "the password was echoed: {err}");
    }
}

/// An upstream URL keygate cannot dial is refused by its key, not found
/// out as a 502 on every request.
#[test]
fn an_upstream_url_without_a_host_or_with_port_0_is_refused() {
    for (url, said) in [
        ("http://:8080", "has no host"),
        ("http://127.0.0.1:0", "has port 0"),
    ] {
        let (code, err) = check_whole(&format!(
            "[listen]\nplaintext = true\n[upstream]\nurl = \"{url}\"\n[store]\nkind = \"memory\"\n\
             [admin]\ntoken_file = \"{{token}}\"\n"
        ));
        assert_eq!(code, Some(2), "{url}: {err}");
        assert!(
            err.contains(&format!("upstream.url: \"{url}\" {said}")),
            "{url}: {err}"
        );
    }
}

/// The login URLs take no `user:password@` either: keygate sends none, the
/// CAS server's and the provider's would reach every browser in a redirect,
/// and `public_url`'s was quoted in its own error message.
#[test]
fn login_urls_with_a_user_or_password_are_refused_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("oidc-secret");
    std::fs::write(&secret, "client-secret\n").unwrap();
    let secret = secret.display();
    let pw = "https://app:HUNTER2pw@";
    for (key, login) in [
        ("login.public_url", format!("method = \"cas\"\ncas_url = \"https://cas.example.org/cas\"\npublic_url = \"{pw}kg.example.org/x\"")),
        ("login.public_url", format!("method = \"cas\"\ncas_url = \"https://cas.example.org/cas\"\npublic_url = \"{pw}kg.example.org\"")),
        ("login.cas_url", format!("method = \"cas\"\ncas_url = \"{pw}cas.example.org/cas\"\npublic_url = \"https://kg.example.org\"")),
        ("login.issuer", format!("method = \"oidc\"\nissuer = \"{pw}id.example.org/realms/main\"\nclient_id = \"keygate\"\nclient_secret_file = \"{secret}\"\npublic_url = \"https://kg.example.org\"")),
        ("login.whoami_url", format!("method = \"backend_session\"\nwhoami_url = \"{pw}127.0.0.1:8080/whoami\"")),
        ("login.login_url", format!("method = \"backend_session\"\nwhoami_url = \"http://127.0.0.1:8080/whoami\"\nlogin_url = \"{pw}sso.example.org/login\"")),
    ] {
        let (code, err) = check_text_in(dir.path(), &format!("[login]\n{login}\n"));
        assert_eq!(code, Some(2), "{key}: {err}");
        assert!(
            err.contains(&format!("{key}: a user name or password in the URL is not supported")),
            "{key}: {err}"
        );
        assert!(!err.contains("HUNTER2pw"), "the password was echoed: {err}");
    }
    // An '@' in a path is no user name.
    let (code, err) = check_text(
        "[login]\nmethod = \"backend_session\"\nwhoami_url = \"http://127.0.0.1:8080/u/@me\"\nlogin_url = \"/login?next=https://a@b\"\n",
    );
    assert_eq!(code, Some(0), "{err}");
}

/// Headers keygate reads (the credentials), sets or removes cannot carry
/// the user's name: `apikey` as the identity header would send the user to
/// the app as an API key and make the `apikey` credential never work.
#[test]
fn identity_and_login_headers_keygate_reads_or_manages_are_refused() {
    for name in [
        "apikey",
        "APIKey",
        "authorization",
        "host",
        "x-keygate-key-id",
        "keygate-key-expires",
        "connection",
        "transfer-encoding",
        "x-forwarded-for",
        "X-Forwarded-Host",
        "x_forwarded_proto",
        "cookie",
    ] {
        let (code, err) = check_text(&format!("[auth]\nidentity_header = \"{name}\"\n"));
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(
            err.contains("auth.identity_header:") && err.contains("keygate reads or manages"),
            "{name}: {err}"
        );
        let (code, err) = check_text(&format!(
            "[login]\nmethod = \"trusted_header\"\nheader = \"{name}\"\ntrusted_proxies = [\"127.0.0.1\"]\n"
        ));
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(
            err.contains("login.header:") && err.contains("keygate reads or manages"),
            "{name}: {err}"
        );
    }
    // oauth2-proxy's user header, the usual login header behind it.
    let (code, err) = check_text("[auth]\nidentity_header = \"X-Forwarded-User\"\n");
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check_text(
        "[login]\nmethod = \"trusted_header\"\nheader = \"X-Forwarded-User\"\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check_text("[auth]\nidentity_header = \"X-Apikey-User\"\n");
    assert_eq!(code, Some(0), "{err}");
}

/// Two listeners on one address pass nothing but a bind error at start,
/// which blames "another process": refused, naming both keys.
#[test]
fn listeners_on_one_address_are_refused_naming_both_keys() {
    let file = |listen: &str, admin: &str, authz: &str| {
        format!(
            "[listen]\nplaintext = true\naddr = \"{listen}\"\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
             [store]\nkind = \"memory\"\n[admin]\naddr = \"{admin}\"\ntoken_file = \"{{token}}\"\n\
             [authz]\naddr = \"{authz}\"\nplaintext = true\ntrusted_proxies = [\"127.0.0.1/32\"]\n"
        )
    };
    for (listen, admin, authz, expected) in [
        (
            "127.0.0.1:47741",
            "127.0.0.1:47741",
            "127.0.0.1:47742",
            "admin.addr: 127.0.0.1:47741 clashes with listen.addr",
        ),
        (
            "0.0.0.0:47741",
            "127.0.0.1:47741",
            "127.0.0.1:47742",
            "admin.addr: 127.0.0.1:47741 clashes with listen.addr",
        ),
        (
            "127.0.0.1:47741",
            "127.0.0.1:47742",
            "127.0.0.1:47741",
            "authz.addr: 127.0.0.1:47741 clashes with listen.addr",
        ),
        (
            "127.0.0.1:47741",
            "127.0.0.1:47742",
            "127.0.0.1:47742",
            "authz.addr: 127.0.0.1:47742 clashes with admin.addr",
        ),
    ] {
        let (code, err) = check_whole(&file(listen, admin, authz));
        assert_eq!(code, Some(2), "{listen} {admin} {authz}: {err}");
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    for (listen, admin, authz) in [
        ("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"),
        ("127.0.0.1:47741", "127.0.0.2:47741", "127.0.0.1:47742"),
    ] {
        let (code, err) = check_whole(&file(listen, admin, authz));
        assert_eq!(code, Some(0), "{listen} {admin} {authz}: {err}");
    }
}

/// `check` opens `log.file` for appending as `serve` does, so a file the
/// service user cannot write fails the check, not the start; a file that
/// is not there yet is not left behind by the check.
#[test]
fn a_log_file_that_cannot_be_opened_fails_check_under_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("logs");
    std::fs::create_dir(&folder).unwrap();
    let (code, err) = check_text_in(
        dir.path(),
        &format!("[log]\nfile = \"{}\"\n", folder.display()),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "log.file: cannot open {} for appending",
            folder.display()
        )),
        "{err}"
    );

    let log = folder.join("keygate.log");
    let (code, err) = check_text_in(
        dir.path(),
        &format!("[log]\nfile = \"{}\"\n", log.display()),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(!log.exists(), "check leaves no file of its own behind");
}

/// A value of the wrong type is reported alone: the other keys of its
/// section keep their values and are checked (not thrown back to defaults,
/// which named files the operator never wrote and hid real problems).
#[test]
fn a_value_of_the_wrong_type_leaves_the_rest_of_its_section_checked() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    let (code, err) = check_whole(&format!(
        "[listen]\nplaintext = true\n\
         [upstream]\nurl = \"http://127.0.0.1:8080\"\npool_max_idle = -1\nconnect_timeout = \"0s\"\n\
         [store]\nkind = \"redis\"\nsecret_file = \"{}\"\ntimeout = 5\n\
         [cache]\nenabled = \"yes\"\ncapacity = -5\n\
         [rate_limit]\nfailed_auth_per_minute = -1\nmax_tracked_clients = 0\n\
         [admin]\ntoken_file = \"{{token}}\"\n",
        secret.display()
    ));
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "upstream.pool_max_idle: invalid value",
        "upstream.connect_timeout: must be greater than zero",
        "store.timeout: invalid type",
        "cache.enabled: invalid type",
        "cache.capacity: invalid value",
        "rate_limit.failed_auth_per_minute: invalid value",
        "rate_limit.max_tracked_clients: 0 is not between",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    for wrong in ["upstream.url", "store.secret_file"] {
        assert!(!err.contains(wrong), "{wrong} is set and good:\n{err}");
    }
}

/// A value of the wrong type is said in an operator's words (serde said
/// `expected usize`, `expected a sequence`), with how to write it when
/// only its quoting is wrong.
#[test]
fn a_value_of_the_wrong_type_says_how_to_write_it() {
    let (code, err) = check_text(
        "[limits]\nmax_connections = \"10000\"\n\
         [rate_limit]\nfailed_auth_per_minute = -1\n\
         [runtime]\nshutdown_grace = 30\n\
         [keys]\nself_rotation = \"no\"\nwarn_before = \"14d\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "limits.max_connections: invalid type: string \"10000\", expected a whole number, 0 or more; write it without quotes: 10000",
        "rate_limit.failed_auth_per_minute: invalid value: integer `-1`, expected a whole number from 0 to 4294967295",
        "runtime.shutdown_grace: invalid type: integer `30`, expected a string; write it in quotes: \"30\" (a duration with its unit: \"30s\")",
        "keys.self_rotation: invalid type: string \"no\", expected a boolean; write true or false, without quotes",
        "keys.warn_before: invalid type: string \"14d\", expected a list; write it in brackets: [\"14d\"]",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    for serde_word in ["usize", "u32", "a sequence"] {
        assert!(!err.contains(serde_word), "{serde_word}: {err}");
    }
}

/// A key written under the wrong `[section]` line (a forgotten header, a
/// paste) was only "unknown": the sections that have it are named.
#[test]
fn a_key_under_the_wrong_section_names_the_sections_that_have_it() {
    let (code, err) = check_text(
        "[log]\nformat = \"human\"\ntoken_file = \"x\"\n\
         [runtime]\nlevel = \"debug\"\nsecret_file = \"s\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "log.token_file: unknown key; did you mean admin.token_file? (a key belongs to the [section] line above it)",
        "runtime.level: unknown key; did you mean log.level?",
        "runtime.secret_file: unknown key; did you mean store.secret_file or webhooks.secret_file?",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

/// A bad value does not hide the next one in its section.
/// A value of the wrong type is named once, by its type: its default,
/// which stands in for it, is not faulted as if the operator had written
/// it (`cannot read /etc/keygate/secret`, `required`).
#[test]
fn a_value_of_the_wrong_type_is_named_once_not_again_as_its_default() {
    let (code, err) = check_whole(
        "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
         [store]\nkind = \"redis\"\nsecret_file = 5\n[admin]\ntoken_file = \"{token}\"\n\
         [login]\nmethod = \"backend_session\"\nwhoami_url = 5\n",
    );
    assert_eq!(code, Some(2), "{err}");
    for key in ["store.secret_file", "login.whoami_url"] {
        let lines: Vec<_> = err
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("{key}:")))
            .collect();
        assert_eq!(lines.len(), 1, "{key}: {err}");
        assert!(
            lines[0].contains("invalid type: integer `5`, expected a string"),
            "{err}"
        );
    }
    assert!(!err.contains("/etc/keygate/secret"), "{err}");
}

#[test]
fn every_bad_value_of_a_section_is_reported_not_only_the_first() {
    let (code, err) = check_text(
        "[log]\nlevel = \"verbose==\"\nbuffer_lines = 0\nfile = \"/nonexistent-folder/k.log\"\n\
         [runtime]\nworkers = 5000\nshutdown_grace = \"forever\"\n\
         [login]\nmethod = \"backend_session\"\nuser_pointer = \"email\"\nlogin_url = \"javascript:x\"\nwhoami_url = \"/whoami\"\n\
         [[webhooks]]\nurl = \"https://hooks.example.org/k\"\nsecret_file = \"/nonexistent-folder/s\"\nkeep = \"1m\"\nmax_retry_interval = \"soon\"\n",
    );
    assert_eq!(code, Some(2), "{err}");
    for expected in [
        "log.level: invalid filter",
        "log.buffer_lines: 0 is not between",
        "log.file: the folder /nonexistent-folder does not exist; make it, writable by the user keygate runs as (`install -d -o keygate -g keygate -m 0750 /nonexistent-folder`",
        "runtime.workers: 5000 is more than 1024",
        "runtime.shutdown_grace: invalid duration \"forever\"",
        "login.user_pointer: a JSON pointer starts with '/'",
        "login.login_url: must be a path",
        "login.whoami_url: must be an absolute http:// or https:// URL",
        "webhooks[0].keep: must be at least 1h",
        "webhooks[0].max_retry_interval: invalid duration \"soon\"",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

/// A webhook's longest pause between tries: at least a second (500ms
/// would send a message again almost at once, over and over), at most
/// `keep` (a message is dropped then).
#[test]
fn a_webhook_retry_interval_is_between_a_second_and_keep() {
    let hook = |keep: &str, max: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s"),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
        )
        .unwrap();
        check_text_in(
            dir.path(),
            &format!(
                "[[webhooks]]\nurl = \"https://hooks.example.org/k\"\nsecret_file = \"{}\"\nkeep = \"{keep}\"\nmax_retry_interval = \"{max}\"\n",
                dir.path().join("s").display()
            ),
        )
    };
    let (code, err) = hook("1h", "500ms");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("webhooks[0].max_retry_interval: must be at least 1s"),
        "{err}"
    );
    let (code, err) = hook("1h", "6h");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("webhooks[0].max_retry_interval: 6h is longer than webhooks[0].keep (1h)"),
        "{err}"
    );
    let (code, err) = hook("1h", "1h");
    assert_eq!(code, Some(0), "{err}");
}

/// The auth listener's requests come from the proxy, with its client's
/// headers: a login header believed from a proxy that also asks is a
/// warning that says what the proxy must do; other proxies, no warning.
#[test]
fn a_login_header_trusted_from_an_asking_proxy_is_a_warning() {
    let authz =
        "[authz]\naddr = \"127.0.0.1:0\"\nplaintext = true\ntrusted_proxies = [\"127.0.0.1/32\"]\n";
    let login = |proxies: &str| {
        format!(
            "[login]\nmethod = \"trusted_header\"\nheader = \"X-Sso-User\"\n\
             trusted_proxies = [\"{proxies}\"]\npublic_url = \"https://app.example.org\"\n"
        )
    };
    let (code, err) = check_text(&format!("{authz}{}", login("127.0.0.0/8")));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: login.trusted_proxies: includes proxies that ask the auth listener")
            && err.contains(
                "takes their x-sso-user as the signed-in user, so each must clear a client's copy"
            ),
        "{err}"
    );
    let (code, err) = check_text(&format!("{authz}{}", login("10.0.0.7/32")));
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("login.trusted_proxies"), "{err}");
}

/// A file the checking user may not read said "Permission denied" and no
/// more: the message names the user the check runs as and the step that
/// lets the service's user in. As root (which reads anything) the check
/// runs as nobody.
#[test]
fn a_file_the_user_may_not_read_names_the_user_and_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let token = crate::support::admin_token_file(dir.path());
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let cfg = dir.path().join("k.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
             [store]\nsecret_file = \"secret\"\n[admin]\ntoken_file = \"{}\"\n",
            token.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let mut cmd = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            crate::support::bin::BIN,
        ]);
        c
    } else {
        std::process::Command::new(crate::support::bin::BIN)
    };
    let out = cmd.args(["check", "-c"]).arg(&cfg).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("store.secret_file:"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("Permission denied"), "{line}");
    assert!(line.contains("this process runs as "), "{line}");
    assert!(
        line.contains(&format!(
            "chgrp keygate {0} && chmod g+r {0}",
            secret.display()
        )),
        "{line}"
    );
    assert!(!line.contains("keygate init"), "the file is there: {line}");
}
