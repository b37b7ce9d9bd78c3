//! The shipped detection rule finds keygate keys, and only real ones:
//! detect-secrets (PyPI; scripts/test.sh installs it into
//! target/detect-secrets-venv) with `contrib/detect-secrets/keygate.py` over a
//! tree holding one real key, the same key with a typo, and look-alikes.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

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

/// `text` with the character at `at` replaced by another base62 one.
fn typo(text: &str, at: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
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
