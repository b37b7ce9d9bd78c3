//! `[rate_limit]`: failed authentications per client address, requests per
//! key, and how many client addresses a limit may remember.

use super::*;

/// The most addresses `max_tracked_clients` may be: about 60 bytes each, so
/// ~6 GiB per table; beyond it the bound would no longer protect anything.
const MAX_TRACKED_CLIENTS: u64 = 100_000_000;

pub(super) fn section(raw: raw::RateLimit, p: &mut Problems) -> Option<RateLimit> {
    if !(1..=MAX_TRACKED_CLIENTS).contains(&raw.max_tracked_clients) {
        p.push(
            "rate_limit.max_tracked_clients",
            format!(
                "{} is not between 1 and {MAX_TRACKED_CLIENTS}",
                raw.max_tracked_clients
            ),
        );
        return None;
    }
    Some(RateLimit {
        failed_auth_per_minute: raw.failed_auth_per_minute,
        requests_per_second: raw.requests_per_second,
        max_tracked_clients: raw.max_tracked_clients as usize,
    })
}
