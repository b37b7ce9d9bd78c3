//! `keygate keys create|list|revoke` against a real Redis: outputs, exit
//! codes 0/1/2 with a one-line cause, never a secret in a listing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::admin::NEW_KEY_FIELDS;
use crate::support::bin::BIN;
use crate::support::deploy::query;
use crate::support::redis::{store_section, RedisServer};

pub(crate) fn config(dir: &Path, redis: &RedisServer, extra: &str) -> PathBuf {
    let path = dir.join("keygate.toml");
    let store = store_section(redis, dir, "cli").join("\n");
    std::fs::write(
        &path,
        format!(
            "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:9\"\n[store]\n{store}\n[admin]\ntoken_file = \"{}\"\n{extra}",
            crate::support::admin_token_file(dir).display()
        ),
    )
    .unwrap();
    path
}

fn keys(cfg: &Path, args: &[&str]) -> Output {
    keys_in(cfg, Path::new("."), args)
}

/// `keys` run in the folder `cwd`.
pub(crate) fn keys_in(cfg: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(cwd)
        .arg("keys")
        .arg(args[0])
        .arg("-c")
        .arg(cfg)
        .args(&args[1..])
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn create_list_and_revoke_by_id_user_leaked_and_all() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &redis, "");

    let out = keys(
        &cfg,
        &[
            "create", "--user", "alice", "--label", "laptop", "--scope", "read", "--ttl", "7d",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for field in NEW_KEY_FIELDS {
        assert!(created.get(field).is_some(), "missing {field} in {created}");
    }
    assert_eq!(created["user"], "alice");
    assert_eq!(created["scope"], "read");
    let secret = created["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("kg_"));

    // Human output: the key alone on stdout, the rest on stderr.
    let out = keys(&cfg, &["create", "--user", "alice"]);
    assert_eq!(out.status.code(), Some(0));
    let second = stdout(&out).trim().to_owned();
    assert!(second.starts_with("kg_") && !second.contains(' '));
    let out = keys(&cfg, &["create", "--user", "bob"]);
    let bob = stdout(&out).trim().to_owned();
    let out = keys(&cfg, &["create", "--user", "carol", "--json"]);
    let carol: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();

    let out = keys(&cfg, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let listed = stdout(&out);
    let parsed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(parsed["keys"].as_array().unwrap().len(), 4);
    for s in [&secret, &second, &bob] {
        assert!(
            !listed.contains(&s[s.len() - 20..]),
            "a secret appears in the listing"
        );
    }
    assert!(!listed.contains("digest"));
    let out = keys(&cfg, &["list", "--user", "alice"]);
    assert_eq!(
        stdout(&out).lines().count(),
        3,
        "header + alice's two keys:\n{}",
        stdout(&out)
    );

    // A dry run counts what it would revoke and revokes nothing.
    for (args, want) in [
        (vec!["--user", "alice"], "would revoke 2 keys"),
        (vec!["--all"], "would revoke 4 keys"),
        (
            vec!["--id", created["id"].as_str().unwrap()],
            "would revoke 1 key",
        ),
    ] {
        let out = keys(&cfg, &[&["revoke", "--dry-run"], &args[..]].concat());
        assert_eq!(
            (out.status.code(), stdout(&out).trim()),
            (Some(0), &*format!("{want} (dry run: nothing revoked)")),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = keys(&cfg, &["list", "--json"]);
    let parsed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        parsed["keys"].as_array().unwrap().len(),
        4,
        "a dry run revoked"
    );

    let out = keys(&cfg, &["revoke", "--id", created["id"].as_str().unwrap()]);
    assert_eq!(
        (out.status.code(), stdout(&out).trim()),
        (Some(0), "revoked 1 key")
    );
    let leaked = dir.path().join("leaked.txt");
    std::fs::write(&leaked, format!("{bob}\nkg_not_a_key\n\n")).unwrap();
    let out = keys(&cfg, &["revoke", "--leaked", leaked.to_str().unwrap()]);
    assert_eq!(
        (out.status.code(), stdout(&out).trim()),
        (Some(0), "revoked 1 key")
    );
    // The entry that is no key of this deployment is counted, not echoed.
    let said = stderr(&out);
    assert!(
        said.contains("1 of the 2 entries of --leaked are not keys of this deployment"),
        "{said}"
    );
    assert!(!said.contains("kg_not_a_key"), "{said}");
    // The wrong file: nothing in it is a key, and stderr says so.
    let wrong = dir.path().join("notes.txt");
    std::fs::write(&wrong, "deploy notes\nrotate on friday\n").unwrap();
    let out = keys(
        &cfg,
        &["revoke", "--leaked", wrong.to_str().unwrap(), "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 of the 2 entries of --leaked are not keys"),
        "{}",
        stderr(&out)
    );
    let out = keys(&cfg, &["revoke", "--user", "alice"]);
    assert_eq!(stdout(&out).trim(), "revoked 1 key");
    let out = keys(&cfg, &["revoke", "--all"]);
    assert_eq!(stdout(&out).trim(), "revoked 1 key");
    let _ = carol;
    let out = keys(&cfg, &["list", "--json"]);
    let parsed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(parsed["keys"].as_array().unwrap().is_empty());
}

/// A user name that is not ASCII, as an SSO gives it: made, listed (the
/// name as it is) and revoked by it; names no key can carry, and bytes that
/// are not UTF-8, exit 2 naming `--user`.
#[test]
fn a_utf8_user_is_made_listed_and_revoked_and_a_non_name_exits_2() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &redis, "");
    let out = keys(&cfg, &["create", "--user", "josé@例え.jp", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(created["user"], "josé@例え.jp");
    let out = keys(&cfg, &["create", "--user", "zoë"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("for user \"zoë\""),
        "{}",
        stderr(&out)
    );
    let out = keys(&cfg, &["list", "--user", "josé@例え.jp"]);
    let listing = stdout(&out);
    assert_eq!(listing.lines().count(), 2, "header + one key:\n{listing}");
    assert!(listing.contains(" josé@例え.jp "), "{listing}");

    for (user, why) in [
        (
            "al\u{202E}ice",
            "contains an invisible or direction-changing",
        ),
        ("a\nb", "contains a control character"),
        (" zoë", "starts or ends with white space"),
    ] {
        for command in ["create", "revoke"] {
            let out = keys(&cfg, &[command, "--user", user]);
            assert_eq!(out.status.code(), Some(2), "{command} {user:?}");
            assert!(
                stderr(&out).contains(why) && stderr(&out).contains("--user"),
                "{command} {user:?}: {}",
                stderr(&out)
            );
        }
    }
    // Latin-1 `zoë` on the command line: not UTF-8, a usage error.
    use std::os::unix::ffi::OsStrExt;
    let out = Command::new(BIN)
        .args(["keys", "create", "-c"])
        .arg(&cfg)
        .arg("--user")
        .arg(std::ffi::OsStr::from_bytes(b"zo\xeb"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("UTF-8"), "{}", stderr(&out));

    // A key secret given as a user revokes nothing and is not echoed (it
    // would be in the audit log in clear): exit 2, the key still listed.
    let secret = created["key"].as_str().unwrap();
    let out = keys(&cfg, &["revoke", "--user", secret]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--leaked"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(secret) && !stdout(&out).contains(secret));

    let out = keys(&cfg, &["revoke", "--user", "zoë", "--user", "josé@例え.jp"]);
    assert_eq!(stdout(&out).trim(), "revoked 2 keys", "{}", stderr(&out));
    let out = keys(&cfg, &["list", "--json"]);
    let parsed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(parsed["keys"].as_array().unwrap().is_empty(), "{parsed}");
}

#[test]
fn bad_input_exits_2_and_a_dead_store_exits_1_with_one_line() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &redis, "[keys]\nmax_ttl = \"90d\"\n");

    let out = keys(&cfg, &["create", "--user", "alice", "--ttl", "100d"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--ttl: 100d is longer than max_ttl (90d)"),
        "{}",
        stderr(&out)
    );
    let out = keys(&cfg, &["create", "--user", "alice", "--ttl", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--ttl: invalid duration \"soon\""),
        "{}",
        stderr(&out)
    );
    let out = keys(&cfg, &["create", "--user", "alice", "--ttl", "never"]);
    assert_eq!(out.status.code(), Some(2));
    let out = keys(&cfg, &["revoke", "--id", "not/an-id"]);
    assert_eq!(out.status.code(), Some(2));
    let out = keys(&cfg, &["revoke"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "one of --id/--user/--all/--leaked is required"
    );

    let mem = dir.path().join("memory.toml");
    std::fs::write(
        &mem,
        format!(
            "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:9\"\n[store]\nkind = \"memory\"\n[admin]\ntoken_file = \"{}\"\n",
            crate::support::admin_token_file(dir.path()).display()
        ),
    )
    .unwrap();
    let out = keys(&mem, &["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("shared store"));

    redis.kill();
    let out = keys(&cfg, &["create", "--user", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("keygate: ") && err.contains("store"),
        "{err}"
    );

    // With the store down, a mistyped flag is still named, and exits 2.
    let mistyped = [
        (
            &["create", "--user", "alice", "--ttl", "soon"][..],
            "--ttl: invalid duration",
        ),
        (
            &["rotate", "--id", "AAAAAAAAAAAA", "--grace", "zz"],
            "--grace: invalid duration",
        ),
        (
            &["rotate", "--id", "not/an-id"],
            "--id: \"not/an-id\" is not a key id",
        ),
        (
            &["revoke", "--id", "AAAAAAAAAAAA", "not/an-id"],
            "--id: \"not/an-id\" is not a key id",
        ),
        (
            &["revoke", "--user", "bob\tx"],
            "--user \"bob\\tx\": contains a control character",
        ),
        (
            &["revoke", "--leaked", "/nonexistent/leaks.json"],
            "--leaked: cannot read /nonexistent/leaks.json",
        ),
        (
            &["create", "--user", " bob"],
            "--user: starts or ends with white space",
        ),
        (
            &["create", "--user", "bob", "--label", "a\u{1}b"],
            "--label: must be at most 200 characters without control characters or direction overrides",
        ),
        (
            &["list", "--user", "bob\tx"],
            "--user \"bob\\tx\": contains a control character",
        ),
    ];
    for (args, said) in mistyped {
        let out = keys(&cfg, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(said) && !err.contains("store"),
            "{args:?}: {err}"
        );
    }
    // A key secret pasted as an id is named as such, never echoed.
    let pasted = format!("kg_AAAAAAAAAAAA_{}CCCCCC", "B".repeat(43));
    let out = keys(&cfg, &["revoke", "--id", &pasted]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--id: looks like a key secret") && !err.contains(&pasted[3..]),
        "{err}"
    );
}

/// The `.netrc` hint names the Basic user keygate takes keys from.
#[test]
fn create_names_the_configured_basic_user_for_netrc() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &redis, "[auth]\nusername = \"token\"\n");
    let out = keys(&cfg, &["create", "--user", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("in ~/.netrc as the password of user \"token\""),
        "{}",
        stderr(&out)
    );
}

/// The audit names who ran the command as the system knows them, not as
/// `$USER` claims (anyone can set it).
#[test]
fn the_command_line_is_audited_as_the_user_it_runs_as_not_as_user_says() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &redis, "");
    let out = Command::new(BIN)
        .args(["keys", "create", "-c"])
        .arg(&cfg)
        .args(["--user", "alice"])
        .env("USER", "ceo")
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let whoami = Command::new("id").arg("-un").output().unwrap();
    let whoami = String::from_utf8(whoami.stdout).unwrap();
    let events: Vec<(String, Vec<(String, String)>)> = query(
        redis.port,
        redis::cmd("XRANGE").arg("cli:audit").arg("-").arg("+"),
    )
    .unwrap();
    let actors: Vec<&str> = events
        .iter()
        .flat_map(|(_, fields)| fields.iter())
        .filter(|(name, _)| name == "actor")
        .map(|(_, actor)| actor.as_str())
        .collect();
    assert_eq!(actors, [format!("cli:{}", whoami.trim())], "{events:?}");
}

/// `keygate keys list | head`: the reader leaves before the listing ends.
/// keygate stops writing without a panic; `create` says the secret it
/// could not print is of a key that exists, and how to revoke it.
#[test]
fn a_reader_that_leaves_early_gets_no_panic() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &redis, "");
    assert_eq!(
        keys(&cfg, &["create", "--user", "ann"]).status.code(),
        Some(0)
    );
    let closed = |args: &[&str]| {
        // A pipe whose reading end is gone before keygate writes.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        Command::new(BIN)
            .arg("keys")
            .arg(args[0])
            .arg("-c")
            .arg(&cfg)
            .args(&args[1..])
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap()
    };
    for args in [&["list"][..], &["list", "--json"]] {
        let out = closed(args);
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    let out = closed(&["create", "--user", "ann"]);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&keys(&cfg, &["list", "--json"]))).unwrap();
    let ids: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(
        err.contains("keygate keys revoke -c")
            && ids.iter().any(|id| err.contains(&format!("--id {id}"))),
        "{err}"
    );
}
