//! `[store]` and `[cache]`: the Redis URL forms, the namespace, the
//! deployment secret and the validation cache's lease.

use super::*;

pub(super) fn section(raw: raw::Store, p: &mut Problems) -> Option<Store> {
    match raw.kind.as_str() {
        "memory" => Some(Store::Memory),
        "redis" => {
            // The URL may hold a password: the message names the key, not the value.
            let target = crate::store::parse_redis_url(&raw.url);
            let scheme_ok = match &target {
                Ok(_) => true,
                Err(message) => {
                    p.push("store.url", message);
                    false
                }
            };
            let ca_file = match raw.ca_file.as_deref() {
                Some(_) if target.as_ref().is_ok_and(|t| !t.is_tls()) => {
                    p.push(
                        "store.ca_file",
                        "applies to TLS connections only, and store.url is not a rediss URL",
                    );
                    None
                }
                Some(path) => {
                    let file = p.readable_file("store.ca_file", path);
                    if let Some(Err(e)) = file.as_deref().map(crate::tls::load_ca_file) {
                        p.push("store.ca_file", e);
                    }
                    file
                }
                None => None,
            };
            let ns_ok = !raw.namespace.is_empty()
                && raw
                    .namespace
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ns_ok {
                p.push(
                    "store.namespace",
                    "must be non-empty ASCII letters, digits, '-', '_' or '.'",
                );
            }
            let timeout = p.duration("store.timeout", &raw.timeout);
            let secret = match (super::env::secret(), raw.secret_file) {
                (Some(from_env), _) => check_secret("KEYGATE_SECRET", from_env, p),
                (None, Some(path)) => {
                    let path = p.path(&path);
                    match std::fs::read_to_string(&path) {
                        Ok(text) => check_secret(&path.display().to_string(), text, p),
                        Err(e) => {
                            let hint = super::missing_hint("store.secret_file", &path);
                            let shown = path.display();
                            p.push(
                                "store.secret_file",
                                format!("cannot read {shown}: {e}{hint}"),
                            );
                            None
                        }
                    }
                }
                (None, None) => {
                    p.push(
                        "store.secret_file",
                        "required for kind = \"redis\" (or set KEYGATE_SECRET)",
                    );
                    None
                }
            };
            let (secret, timeout) = (secret?, timeout?);
            (scheme_ok && ns_ok).then_some(Store::Redis {
                url: raw.url,
                namespace: raw.namespace,
                secret,
                timeout,
                ca_file,
            })
        }
        other => {
            p.push(
                "store.kind",
                format!("{other:?} is not one of \"redis\", \"memory\""),
            );
            None
        }
    }
}

/// Shortest and longest `cache.lease`: pings go out every third of it.
const LEASE_RANGE: (Duration, Duration) = (Duration::from_millis(300), Duration::from_secs(60));

pub(super) fn cache(raw: raw::Cache, p: &mut Problems) -> Option<Cache> {
    if raw.capacity == 0 {
        p.push(
            "cache.capacity",
            "must be at least 1 (turn the cache off with enabled = false)",
        );
    }
    let max_age = p.duration("cache.max_age", &raw.max_age);
    let lease = p.duration("cache.lease", &raw.lease);
    if let Some(l) = lease {
        if l < LEASE_RANGE.0 || l > LEASE_RANGE.1 {
            p.push("cache.lease", "must be between 300ms and 60s");
        }
    }
    (raw.capacity > 0).then_some(Cache {
        enabled: raw.enabled,
        capacity: raw.capacity,
        max_age: max_age?,
        lease: lease?,
    })
}

/// The HMAC secret, trimmed, long enough. Its content is never quoted.
fn check_secret(source: &str, text: String, p: &mut Problems) -> Option<crate::keys::DigestKey> {
    let secret = text.trim();
    if secret.chars().count() < MIN_SECRET_LEN {
        p.push(
            "store.secret_file",
            format!("{source} holds fewer than {MIN_SECRET_LEN} characters; make one with `openssl rand -hex 32`"),
        );
        return None;
    }
    Some(crate::keys::DigestKey::new(secret.as_bytes()))
}
