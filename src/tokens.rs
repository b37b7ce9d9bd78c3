//! Admin bearer tokens from `[admin] token_file`: one per line, optionally
//! named (`name:token`) so the audit log says who acted. Compared in
//! constant time; the file is re-read on SIGHUP (a bad file keeps the old set).
//! A leaf: the config check reads the file with `read` as the admin API does.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use sha2::{Digest as _, Sha256};

/// Shortest token accepted, in characters.
const MIN_LEN: usize = 16;

/// The token set, swapped whole on reload.
pub struct Tokens {
    path: PathBuf,
    /// (name, SHA-256 of the token): compared digest to digest, in constant time.
    set: RwLock<Vec<(String, [u8; 32])>>,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let set = read(path)?;
        Ok(Tokens {
            path: path.to_owned(),
            set: RwLock::new(set),
        })
    }

    /// Re-read the file; on error keep the current set and say why.
    pub fn reload(&self) {
        match read(&self.path) {
            Ok(set) => {
                let n = set.len();
                *self.set.write().expect("token lock") = set;
                tracing::info!(tokens = n, "admin tokens reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "admin token reload failed; keeping the previous tokens")
            }
        }
    }

    /// The name of the token presented as `Authorization: Bearer <token>`, if valid.
    pub fn check(&self, authorization: Option<&[u8]>) -> Option<String> {
        let token = bearer_token(authorization?)?;
        let presented = hash_bytes(token.trim_ascii());
        let set = self.set.read().expect("token lock");
        let mut found = None;
        // Look at every token, so the time does not tell which one matched.
        for (name, digest) in set.iter() {
            if constant_time_eq(digest, &presented) {
                found = Some(name.clone());
            }
        }
        found
    }
}

/// The token of `Bearer <token>`; the scheme in any case (RFC 9110 §11.1).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(value.iter().position(|&b| b == b' ')?)?;
    scheme.eq_ignore_ascii_case(b"bearer").then_some(token)
}

/// Parse a token file; messages name the line, never the token.
pub fn read(path: &Path) -> Result<Vec<(String, [u8; 32])>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut set = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // A certificate's lines would be tokens, and it is served to
        // every client: "-----BEGIN CERTIFICATE-----" an admin token.
        if line.starts_with("-----BEGIN ") {
            return Err(format!(
                "{} line {}: a PEM block (a certificate or key), not a token; \
                 admin.token_file holds one token per line",
                path.display(),
                i + 1
            ));
        }
        let (name, token) = match line.split_once(':') {
            Some((name, token)) => (name.trim().to_owned(), token.trim()),
            None => (format!("token-{}", i + 1), line),
        };
        if name.is_empty() {
            return Err(format!(
                "{} line {}: no name before ':' (the name is the audit log's actor; \
                 leave out the ':' for token-{})",
                path.display(),
                i + 1,
                i + 1
            ));
        }
        if token.chars().count() < MIN_LEN {
            return Err(format!(
                "{} line {}: token shorter than {MIN_LEN} characters",
                path.display(),
                i + 1
            ));
        }
        set.push((name, hash(token)));
    }
    if set.is_empty() {
        return Err(format!(
            "{} holds no token (one per line, optionally name:token)",
            path.display()
        ));
    }
    Ok(set)
}

fn hash(token: &str) -> [u8; 32] {
    hash_bytes(token.as_bytes())
}

fn hash_bytes(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_plain_tokens_are_recognised_and_short_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            "# admins\nalice:0123456789abcdef-alice\n0123456789abcdef-anonymous\n",
        )
        .unwrap();
        let tokens = Tokens::load(&path).unwrap();
        assert_eq!(
            tokens.check(Some(b"Bearer 0123456789abcdef-alice")),
            Some("alice".into())
        );
        assert_eq!(
            tokens.check(Some(b"Bearer 0123456789abcdef-anonymous")),
            Some("token-3".into())
        );
        assert_eq!(tokens.check(Some(b"Bearer 0123456789abcdef-mallory")), None);
        assert_eq!(tokens.check(Some(b"Basic 0123456789abcdef-alice")), None);
        for scheme in ["BEARER", "bearer", "bEaReR"] {
            let header = format!("{scheme} 0123456789abcdef-alice");
            assert_eq!(
                tokens.check(Some(header.as_bytes())),
                Some("alice".into()),
                "{scheme}"
            );
        }
        assert_eq!(tokens.check(Some(b"Bearer0123456789abcdef-alice")), None);
        assert_eq!(tokens.check(Some(b"Bearers 0123456789abcdef-alice")), None);
        assert_eq!(tokens.check(None), None);

        // An empty name would make the audit log's actor nobody.
        std::fs::write(&path, ":0123456789abcdef-nameless\n").unwrap();
        let err = read(&path).unwrap_err();
        assert!(
            err.contains("line 1: no name before ':'") && !err.contains("nameless"),
            "{err}"
        );

        std::fs::write(&path, "bob:short\n").unwrap();
        let err = read(&path).unwrap_err();
        assert!(
            err.contains("line 1") && !err.contains("short\n") && !err.contains(":short"),
            "{err}"
        );
        tokens.reload();
        assert_eq!(
            tokens.check(Some(b"Bearer 0123456789abcdef-alice")),
            Some("alice".into()),
            "a bad file keeps the old tokens"
        );

        // The certificate's file given by mistake: its public lines are no tokens.
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nMIIBfTCCASOgAwIBAgIUY29tbW9ucHVibGljY2VydGxpbmU=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = read(&path).unwrap_err();
        assert!(err.contains("line 1: a PEM block"), "{err}");
        tokens.reload();
        assert_eq!(
            tokens.check(Some(b"Bearer -----BEGIN CERTIFICATE-----")),
            None
        );
        assert_eq!(
            tokens.check(Some(b"Bearer 0123456789abcdef-alice")),
            Some("alice".into()),
            "a bad file keeps the old tokens"
        );
    }
}
