//! Rate limits (governor, GCRA): failed authentications per client address,
//! so a brute-force client gets 429 while the key's owner elsewhere is not
//! locked out, and requests per key. Keyed state is pruned every minute.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config;
use crate::keys::KeyId;

pub struct Limiter {
    /// Counts failed authentications per client address; `None` = unlimited.
    failed_auth: Option<DefaultKeyedRateLimiter<IpAddr>>,
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
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
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
        self.check(self.failed_auth.as_ref(), &client)
    }

    /// Count one request made with `key_id` (a `Copy` id: nothing allocated).
    pub fn request(&self, key_id: &KeyId) -> Result<(), RetryAfter> {
        self.check(self.per_key.as_ref(), key_id)
    }

    fn check<K: Hash + Eq + Clone>(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<K>>,
        key: &K,
    ) -> Result<(), RetryAfter> {
        match limiter {
            None => Ok(()),
            Some(l) => l
                .check_key(key)
                .map_err(|not_until| RetryAfter(not_until.wait_time_from(self.clock.now()))),
        }
    }
}

impl Prune for Limiter {
    fn retain_recent(&self) {
        if let Some(l) = &self.failed_auth {
            l.retain_recent();
        }
        if let Some(l) = &self.per_key {
            l.retain_recent();
        }
    }
}

/// A limit per client address of its own (`[leaks] possession_per_minute`).
pub struct PerClient {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

// === impl PerClient ===

impl PerClient {
    pub fn per_minute(n: NonZeroU32) -> Arc<PerClient> {
        let limit = Arc::new(PerClient {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            clock: DefaultClock::default(),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(prune(Arc::downgrade(&limit)));
        }
        limit
    }

    /// Count one request from `client`.
    pub fn check(&self, client: IpAddr) -> Result<(), RetryAfter> {
        self.limiter
            .check_key(&client)
            .map_err(|not_until| RetryAfter(not_until.wait_time_from(self.clock.now())))
    }
}

impl Prune for PerClient {
    fn retain_recent(&self) {
        self.limiter.retain_recent();
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
