//! `KEYGATE_*` environment overrides for secrets (never required).

/// `KEYGATE_SECRET`: the store's HMAC secret, instead of `store.secret_file`.
pub fn secret() -> Option<String> {
    std::env::var("KEYGATE_SECRET")
        .ok()
        .filter(|s| !s.trim().is_empty())
}
