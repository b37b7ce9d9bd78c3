//! The shipped detection rule finds keygate keys, and only real ones:
//! detect-secrets (PyPI; scripts/test.sh installs it into
//! target/detect-secrets-venv) with `contrib/detect-secrets/keygate.py` over a
//! tree holding one real key, the same key with a typo, and look-alikes.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::typo;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// detect-secrets' `hashed_secret`.
fn sha1_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write(root: &Path, name: &str, text: &str) {
    let path = root.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
#[ignore = "needs detect-secrets: run through scripts/test.sh"]
fn detect_secrets_with_the_keygate_plugin_finds_exactly_the_real_key() {
    let (key, id) = keygate::keys::format::generate("kg", "alice");
    let key = key.expose().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "config/app.env", &format!("DEBUG=0\nAPI_KEY={key}\n"));
    // One character of the secret changed: the checksum no longer holds.
    write(
        root,
        "notes/typo.md",
        &format!("the key was {}\n", typo(&key, 30)),
    );
    // Cut short, or glued into a longer word.
    write(
        root,
        "notes/truncated.txt",
        &format!("{}\n", &key[..key.len() - 1]),
    );
    write(root, "notes/glued.txt", &format!("X{key}\n{key}_old\n"));
    // The right shape with a made-up checksum, the id alone, another vendor's token.
    let shaped = format!("kg_{id}_{}", "Ab1".repeat(16) + "Z");
    let ghp = format!("ghp_{}", "a1B2c3D4e5".repeat(4).get(..36).unwrap());
    write(
        root,
        "src/client.py",
        &format!("A = \"{shaped}\"\nB = \"kg_{id}\"\nC = \"{ghp}\"\n"),
    );

    let detect_secrets = repo().join("target/detect-secrets-venv/bin/detect-secrets");
    let out = Command::new(&detect_secrets)
        .current_dir(root)
        .args(["scan", "--all-files", "--plugin"])
        .arg(repo().join("contrib/detect-secrets/keygate.py"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/test.sh installs it)",
                detect_secrets.display()
            )
        });
    assert!(
        out.status.success(),
        "detect-secrets failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let baseline = String::from_utf8(out.stdout).unwrap();
    let json: Value = serde_json::from_str(&baseline).unwrap();
    let found: Vec<(String, String, u64)> = json["results"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_array().unwrap().clone())
        .filter(|f| f["type"] == "Keygate API Key")
        .map(|f| {
            (
                f["filename"].as_str().unwrap().to_owned(),
                f["hashed_secret"].as_str().unwrap().to_owned(),
                f["line_number"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [("config/app.env".to_owned(), sha1_hex(&key), 2)],
        "{baseline}"
    );

    // What `keygate keys revoke --leaked` reads back from this baseline is the key itself.
    let secrets = keygate::leaks::scan_report::secrets_in(&baseline, root).unwrap();
    assert_eq!(secrets, [key]);
}

/// `keygate keys …` with a config on a real Redis, run in `cwd`.
fn keys_cli(cfg: &Path, cwd: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = crate::keys_cli::keys_in(cfg, cwd, args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs detect-secrets: run through scripts/test.sh"]
fn a_detect_secrets_baseline_and_a_gitleaks_report_revoke_through_the_cli() {
    let redis = crate::support::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::keys_cli::config(dir.path(), &redis, "");
    let mut made = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let (code, out, err) = keys_cli(&cfg, dir.path(), &["create", "--user", user, "--json"]);
        assert_eq!(code, Some(0), "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        made.push(v["key"].as_str().unwrap().to_owned());
    }

    // alice's key is committed in a repository; detect-secrets finds it.
    let repo_dir = dir.path().join("repo");
    write(
        &repo_dir,
        "deploy/app.env",
        &format!("API_KEY={}\n", made[0]),
    );
    write(
        &repo_dir,
        "README.md",
        &format!("not a key: {}\n", typo(&made[1], 20)),
    );
    let out = Command::new(repo().join("target/detect-secrets-venv/bin/detect-secrets"))
        .current_dir(&repo_dir)
        .args(["scan", "--all-files", "--plugin"])
        .arg(repo().join("contrib/detect-secrets/keygate.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(repo_dir.join(".secrets.baseline"), &out.stdout).unwrap();
    let (code, out, err) = keys_cli(
        &cfg,
        &repo_dir,
        &["revoke", "--leaked", ".secrets.baseline"],
    );
    assert_eq!((code, out.trim()), (Some(0), "revoked 1 key"), "{err}");

    // bob's key in a gitleaks report; a redacted report is refused, naming why.
    let report = dir.path().join("gitleaks.json");
    std::fs::write(
        &report,
        json!([{"RuleID": "keygate-api-key", "File": "x.py", "StartLine": 3, "Secret": made[1]}])
            .to_string(),
    )
    .unwrap();
    let (code, out, err) = keys_cli(
        &cfg,
        dir.path(),
        &["revoke", "--leaked", report.to_str().unwrap()],
    );
    assert_eq!((code, out.trim()), (Some(0), "revoked 1 key"), "{err}");
    std::fs::write(
        &report,
        json!([{"RuleID": "keygate-api-key", "Secret": "REDACTED"}]).to_string(),
    )
    .unwrap();
    let (code, _, err) = keys_cli(
        &cfg,
        dir.path(),
        &["revoke", "--leaked", report.to_str().unwrap()],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--redact"), "{err}");
    // `--redact=50` keeps half of each secret and puts "..." for the rest:
    // as unusable, and said so (not "revoked 0 keys").
    let half = &made[2][..made[2].len() / 2];
    std::fs::write(
        &report,
        json!([{"RuleID": "keygate-api-key", "Secret": format!("{half}...")}]).to_string(),
    )
    .unwrap();
    let (code, out, err) = keys_cli(
        &cfg,
        dir.path(),
        &["revoke", "--leaked", report.to_str().unwrap()],
    );
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("--redact"), "{err}");

    let (_, out, _) = keys_cli(&cfg, dir.path(), &["list", "--json"]);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let users: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["carol"], "only carol's key is left");
}
