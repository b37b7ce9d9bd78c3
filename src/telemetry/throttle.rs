//! A condition said at most once per period, with how often it recurred
//! unsaid in between: a full listener, a webhook receiver that is down, a
//! Redis server that keeps refusing writes are each one condition, not a
//! log line (or a new connection) per occurrence.

use std::time::{Duration, Instant};

pub struct Throttled {
    every: Duration,
    last: Option<Instant>,
    unsaid: u64,
    /// Whether it occurred since it was last over (`over`).
    ongoing: bool,
}

impl Throttled {
    pub const fn every(every: Duration) -> Self {
        Throttled {
            every,
            last: None,
            unsaid: 0,
            ongoing: false,
        }
    }

    /// Once a minute: how often operators are told of a lasting condition.
    pub const fn each_minute() -> Self {
        Throttled::every(Duration::from_secs(60))
    }

    /// The condition again at `now`: `Some(times unsaid since the last)`
    /// when it is due to be said (or done), else `None`, counted.
    pub fn due(&mut self, now: Instant) -> Option<u64> {
        self.ongoing = true;
        if self
            .last
            .is_some_and(|at| now.saturating_duration_since(at) < self.every)
        {
            self.unsaid += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unsaid))
    }

    /// The condition is over: `Some(times unsaid)` when it occurred since
    /// it was last over (say that it is over, with those, or they are never
    /// said), else `None`. The period goes on: a condition back within it
    /// is counted, not said at once, so one that comes and goes is not a
    /// line per occurrence.
    pub fn over(&mut self) -> Option<u64> {
        if !std::mem::take(&mut self.ongoing) {
            return None;
        }
        Some(std::mem::take(&mut self.unsaid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn said_once_a_period_with_the_count_between() {
        let mut t = Throttled::each_minute();
        let start = Instant::now();
        assert_eq!(t.due(start), Some(0), "the first is said");
        for i in 1..100 {
            assert_eq!(t.due(start + Duration::from_millis(i * 100)), None);
        }
        let minute = Duration::from_secs(60);
        assert_eq!(t.due(start + minute), Some(99));
        assert_eq!(t.due(start + minute), None);
    }

    #[test]
    fn over_says_the_count_unsaid_once() {
        let mut t = Throttled::each_minute();
        let start = Instant::now();
        assert_eq!(t.over(), None, "nothing occurred");
        assert_eq!(t.due(start), Some(0));
        assert_eq!(t.due(start), None);
        assert_eq!(t.due(start), None);
        assert_eq!(t.over(), Some(2));
        assert_eq!(t.over(), None, "said once");
        assert_eq!(t.due(start), None, "back within the period: counted");
        assert_eq!(t.over(), Some(1));
        assert_eq!(t.due(start + Duration::from_secs(60)), Some(0));
    }
}
