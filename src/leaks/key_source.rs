//! Where a secret scanner's verifying keys come from: its published list
//! (GitHub's `https://api.github.com/meta/public_keys/secret_scanning`) or a
//! local file of the same JSON, `{"public_keys":[{"key_identifier","key",
//! "is_current"}]}`, for offline deployments and tests.
//!
//! The keys are read on first use and kept. A report naming an identifier
//! not among them makes the list be read again (a scanner rotated its key),
//! at most once per `refetch_interval` and one read at a time, so a flood of
//! reports with made-up identifiers costs the scanner's server one request
//! per interval. Lists older than a day are read again on use, so a key the
//! scanner withdrew stops being trusted; if that read fails the old list
//! serves on. When the list cannot be read and the identifier is not in it,
//! keygate cannot know whether the report is genuine: `Unavailable`, a 503
//! that makes the scanner send it again later.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::signature::{key_list, PublicKey};
use crate::login::fetch::Fetch;
use http::header::{self, HeaderMap, HeaderValue};
use http::{StatusCode, Uri};

/// A list older than this is read again on use.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Where the list is read from.
pub enum Origin {
    Url { url: Uri, fetch: Fetch },
    File(PathBuf),
}

pub struct KeySource {
    origin: Origin,
    /// Serializes reads of the list: concurrent reports wait for one read.
    reading: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    refetch_interval: Duration,
}

#[derive(Default)]
struct State {
    keys: Arc<HashMap<String, PublicKey>>,
    /// When the list was last read successfully.
    read_at: Option<Instant>,
    /// When a read was last tried, and whether it worked.
    tried: Option<(Instant, bool)>,
}

/// The key list could not be read: answer 503 and let the scanner retry.
#[derive(Debug, thiserror::Error)]
#[error("the secret scanner's public keys cannot be read: {0}")]
pub struct Unavailable(pub String);

// === impl KeySource ===

impl KeySource {
    pub fn new(origin: Origin, refetch_interval: Duration) -> KeySource {
        KeySource {
            origin,
            reading: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
            refetch_interval,
        }
    }

    /// The key named `id`; `None` when the scanner does not publish it.
    pub async fn key(&self, id: &str) -> Result<Option<PublicKey>, Unavailable> {
        let (found, fresh) = self.cached(id);
        if found.is_some() && fresh {
            return Ok(found);
        }
        let _one_read = self.reading.lock().await;
        // Another report may have read the list while this one waited.
        let (again, fresh) = self.cached(id);
        if again.is_some() && fresh {
            return Ok(again);
        }
        let due = {
            let state = self.state.lock().expect("not poisoned");
            state
                .tried
                .is_none_or(|(at, _)| at.elapsed() >= self.refetch_interval)
        };
        if due {
            let read = self.read().await;
            let mut state = self.state.lock().expect("not poisoned");
            state.tried = Some((Instant::now(), read.is_ok()));
            match read {
                Ok(keys) => {
                    state.keys = Arc::new(keys);
                    state.read_at = Some(Instant::now());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the secret scanner's public keys")
                }
            }
        }
        let state = self.state.lock().expect("not poisoned");
        match state.keys.get(id) {
            Some(key) => Ok(Some(key.clone())),
            // The last read failed: the key may well exist.
            None if state.tried.is_some_and(|(_, ok)| !ok) => Err(Unavailable(format!(
                "key identifier {id:?} is unknown and the list could not be read"
            ))),
            None => Ok(None),
        }
    }

    /// How long a scanner should wait before sending a report again after `Unavailable`.
    pub fn retry_after(&self) -> Duration {
        self.refetch_interval.max(Duration::from_secs(5))
    }

    /// The cached key, and whether the list is young enough to trust as is.
    fn cached(&self, id: &str) -> (Option<PublicKey>, bool) {
        let state = self.state.lock().expect("not poisoned");
        let fresh = state.read_at.is_some_and(|at| at.elapsed() < MAX_AGE);
        (state.keys.get(id).cloned(), fresh)
    }

    async fn read(&self) -> Result<HashMap<String, PublicKey>, String> {
        let text = match &self.origin {
            Origin::File(path) => {
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
            }
            Origin::Url { url, fetch } => {
                let mut headers = HeaderMap::new();
                headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
                // api.github.com refuses requests without one.
                headers.insert(
                    header::USER_AGENT,
                    HeaderValue::from_static(concat!("keygate/", env!("CARGO_PKG_VERSION"))),
                );
                let (status, body) = fetch.get(url, headers).await.map_err(|e| e.to_string())?;
                if status != StatusCode::OK {
                    return Err(format!("{url} answered {status}"));
                }
                body.to_vec()
            }
        };
        key_list(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[&str]) -> String {
        let entries: Vec<_> = ids
            .iter()
            .map(|id| {
                let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
                serde_json::json!({"key_identifier": id, "key": pair.public_key_pem(), "is_current": true})
            })
            .collect();
        serde_json::json!({ "public_keys": entries }).to_string()
    }

    #[tokio::test]
    async fn a_file_is_read_again_for_an_unknown_identifier_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, list(&["a"])).unwrap();
        let source = KeySource::new(Origin::File(path.clone()), Duration::from_millis(200));
        assert!(source.key("a").await.unwrap().is_some());
        std::fs::write(&path, list(&["a", "b"])).unwrap();
        // Read a moment ago: "b" is not looked for yet.
        assert!(source.key("b").await.unwrap().is_none());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(source.key("b").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_unreadable_list_is_unavailable_not_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.json");
        let source = KeySource::new(Origin::File(path.clone()), Duration::from_secs(60));
        assert!(source.key("a").await.is_err());
        // Still within the interval: still unavailable, and the file is not read again.
        std::fs::write(&path, list(&["a"])).unwrap();
        assert!(source.key("a").await.is_err());
    }

    #[test]
    fn lists_without_a_usable_key_are_refused() {
        assert!(key_list(b"{}").is_err());
        assert!(key_list(br#"{"public_keys":[]}"#).is_err());
        let bad = r#"{"public_keys":[{"key_identifier":"x","key":"nope","is_current":true}]}"#;
        assert!(key_list(bad.as_bytes()).is_err());
        assert_eq!(key_list(list(&["x", "y"]).as_bytes()).unwrap().len(), 2);
    }
}
