//! Rate limits (governor, GCRA): failed authentications per client address,
//! so a brute-force client gets 429 while the key's owner elsewhere is not
//! locked out, and requests per key. Keyed state is pruned every minute.
//! An IPv6 client counts by its /64 (`client_net`): one subscriber's usual
//! allocation, whose 2^64 addresses are all theirs to rotate through.
//!
//! Memory: the per-key table only ever holds keys that verified (bounded by
//! the live keys used within the last minute or so); a table per client
//! address holds at most `rate_limit.max_tracked_clients` addresses, since
//! anyone can make up addresses (an IPv6 /64 has 2^64). When it is full and
//! pruning frees nothing, the limit refuses every client (429): only failed
//! authentications and `/.keygate/revoke` pass through these tables, so a
//! request with a good key is never refused for it.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config;
use crate::keys::KeyId;

pub struct Limiter {
    /// Counts failed authentications per client address; `None` = unlimited.
    failed_auth: Option<Arc<PerClient>>,
    /// Counts requests per key id; `None` = unlimited.
    per_key: Option<DefaultKeyedRateLimiter<KeyId>>,
    clock: DefaultClock,
}

/// Over the limit: try again after this long.
#[derive(Debug, Clone, Copy)]
pub struct RetryAfter(pub Duration);

impl Limiter {
    pub fn new(cfg: &config::RateLimit) -> Arc<Limiter> {
        let limiter = Arc::new(Limiter {
            failed_auth: NonZeroU32::new(cfg.failed_auth_per_minute)
                .map(|n| PerClient::per_minute(n, cfg.max_tracked_clients)),
            per_key: NonZeroU32::new(cfg.requests_per_second)
                .map(|n| RateLimiter::keyed(Quota::per_second(n))),
            clock: DefaultClock::default(),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(prune(Arc::downgrade(&limiter)));
        }
        limiter
    }

    /// Count one failed authentication from `client`.
    pub fn failed_auth(&self, client: IpAddr) -> Result<(), RetryAfter> {
        match &self.failed_auth {
            None => Ok(()),
            Some(l) => l.check(client),
        }
    }

    /// Count one request made with `key_id` (a `Copy` id: nothing allocated).
    pub fn request(&self, key_id: &KeyId) -> Result<(), RetryAfter> {
        match &self.per_key {
            None => Ok(()),
            Some(l) => check_key(l, key_id, &self.clock),
        }
    }
}

impl Prune for Limiter {
    fn retain_recent(&self) {
        if let Some(l) = &self.per_key {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn check_key<K: Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    clock: &DefaultClock,
) -> Result<(), RetryAfter> {
    limiter
        .check_key(key)
        .map_err(|not_until| RetryAfter(not_until.wait_time_from(clock.now())))
}

/// A limit per client address whose table holds at most `max_clients`
/// addresses: failed authentications (`[rate_limit]`) and
/// `/.keygate/revoke` (`[leaks] possession_per_minute`) each have one.
pub struct PerClient {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    max_clients: usize,
    /// What a client is told to wait while the table is full: one request's worth.
    full_retry: Duration,
    /// When a full table was last pruned (ms since `origin`): a flood of new
    /// addresses costs one sweep a second, not one per request.
    swept_at: AtomicU64,
    origin: Instant,
    clock: DefaultClock,
}

// === impl PerClient ===

impl PerClient {
    pub fn per_minute(n: NonZeroU32, max_clients: usize) -> Arc<PerClient> {
        let quota = Quota::per_minute(n);
        let limit = Arc::new(PerClient {
            limiter: RateLimiter::keyed(quota),
            max_clients,
            full_retry: quota.replenish_interval().max(Duration::from_secs(1)),
            swept_at: AtomicU64::new(0),
            origin: Instant::now(),
            clock: DefaultClock::default(),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(prune(Arc::downgrade(&limit)));
        }
        limit
    }

    /// Count one request from `client` (against its /64 for IPv6).
    pub fn check(&self, client: IpAddr) -> Result<(), RetryAfter> {
        if self.limiter.len() >= self.max_clients && !self.make_room() {
            return Err(RetryAfter(self.full_retry));
        }
        check_key(&self.limiter, &client_net(client), &self.clock)
    }

    /// The table is full: drop the addresses whose limit has recovered (at
    /// most once a second); whether there is room now.
    fn make_room(&self) -> bool {
        // Offset by a second so that the first sweep is due at once.
        let now = self.origin.elapsed().as_millis() as u64 + 1000;
        let last = self.swept_at.load(Relaxed);
        if now >= last + 1000
            && self
                .swept_at
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.retain_recent();
        }
        self.limiter.len() < self.max_clients
    }
}

impl Prune for PerClient {
    fn retain_recent(&self) {
        self.limiter.retain_recent();
        // A burst of addresses must not keep its table's capacity for good.
        self.limiter.shrink_to_fit();
    }
}

/// What a per-client limit counts `client` as: an IPv6 address by its /64
/// (else a client changing the low bits of its address each try would have
/// a fresh limit each time, and fill the table alone), an IPv4 address,
/// also one mapped into IPv6 by a dual-stack listener, by itself.
fn client_net(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
        },
    }
}

/// Keyed limiters whose recovered keys can be dropped.
trait Prune {
    fn retain_recent(&self);
}

/// Drop the state of keys whose limit has fully recovered; ends with the limiter.
async fn prune(limiter: Weak<impl Prune>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        match limiter.upgrade() {
            Some(l) => l.retain_recent(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_and_a_mapped_ipv4_as_itself() {
        assert_eq!(client_net(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_net(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(client_net(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_net(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_net(ip("192.0.2.7")), ip("192.0.2.7"));
    }
}
