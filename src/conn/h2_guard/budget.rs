//! The allowance of control frames: a token bucket that refills with time
//! and with the traffic that explains control frames.

use std::time::Instant;

pub struct Budget {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

// === impl Budget ===

impl Budget {
    /// `burst` tokens to start with and at most; a tenth of it back per second.
    pub fn new(burst: u32) -> Budget {
        let burst = f64::from(burst);
        Budget {
            tokens: burst,
            burst,
            per_second: burst / 10.0,
            last: Instant::now(),
        }
    }

    /// Take one token; false when none is left.
    pub fn spend(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.last = now;
        self.tokens = (self.tokens + refill).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn earn(&mut self, n: u32) {
        self.tokens = (self.tokens + f64::from(n)).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_until_traffic_earns_more() {
        let mut b = Budget::new(100);
        // Spent within microseconds: the refill is a rounding error.
        let spent = (0..150).take_while(|_| b.spend()).count();
        assert!((100..=101).contains(&spent), "{spent}");
        b.earn(3);
        assert!(b.spend() && b.spend() && b.spend());
        b.earn(1_000_000);
        assert!(
            (0..150).take_while(|_| b.spend()).count() <= 101,
            "capped at the burst"
        );
    }
}
