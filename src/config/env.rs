//! `KEYGATE_*` environment overrides for secrets (never required).

/// `KEYGATE_SECRET`: the store's HMAC secret, instead of `store.secret_file`.
pub fn secret() -> Option<String> {
    non_empty("KEYGATE_SECRET")
}

/// `KEYGATE_OIDC_CLIENT_SECRET`: the OpenID client's secret, instead of
/// `login.client_secret_file`.
pub fn oidc_client_secret() -> Option<String> {
    non_empty(OIDC_CLIENT_SECRET)
}

pub const OIDC_CLIENT_SECRET: &str = "KEYGATE_OIDC_CLIENT_SECRET";

fn non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.trim().is_empty())
}
