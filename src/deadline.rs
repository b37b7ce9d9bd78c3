//! Deadlines from configured durations. The config takes at most 100 years,
//! which the clock can add; past that (a duration from elsewhere) a
//! deadline waits forever, as tokio's own `sleep` and `timeout` do, instead
//! of panicking on the overflow.

use std::time::Duration;

use tokio::time::Instant;

/// About 30 years: tokio's choice for an overflowing timeout.
const FOREVER: Duration = Duration::from_secs(86400 * 365 * 30);

/// `since + after`, or `FOREVER` from now when that overflows.
pub fn after(since: Instant, after: Duration) -> Instant {
    since
        .checked_add(after)
        .unwrap_or_else(|| Instant::now() + FOREVER)
}

/// `d`, at most `FOREVER`: for a library that adds a timeout to the clock
/// unchecked (hyper's HTTP/1.1 header-read timeout).
pub fn capped(d: Duration) -> Duration {
    d.min(FOREVER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_too_far_to_add_is_far_not_a_panic() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(86400 * 365));
        assert!(now.checked_add(capped(Duration::MAX)).is_some());
    }
}
