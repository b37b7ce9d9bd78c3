//! What a member says about losing touch with the fleet: one warning when
//! it happens, a reminder every minute while it lasts, one line when it is
//! back. A member retries every lease (3 s by default); a warning per
//! attempt would bury everything else in the log during a Redis outage.
//! The keyring's chores that retry the store say their failures the same
//! way (`keyring::chores`).

use std::time::{Duration, Instant};

/// How often a lasting outage is mentioned again.
pub const REMIND_EVERY: Duration = Duration::from_secs(60);

/// The member's view of its link to the fleet.
#[derive(Debug, Default)]
pub struct Outage {
    /// Since when touch is lost, and when that was last said.
    lost: Option<(Instant, Instant)>,
    /// Failed attempts in this outage.
    failures: u64,
}

/// What to log about a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Say {
    /// The outage begins: warn.
    Lost,
    /// It goes on: remind how long and how many attempts.
    Still { lasted: Duration, failures: u64 },
    /// Said recently enough.
    Nothing,
}

// === impl Outage ===

impl Outage {
    /// An attempt to join (or stay in) the fleet failed at `now`.
    pub fn failed(&mut self, now: Instant) -> Say {
        self.failures += 1;
        match &mut self.lost {
            None => {
                self.lost = Some((now, now));
                Say::Lost
            }
            Some((since, said)) if now.duration_since(*said) >= REMIND_EVERY => {
                *said = now;
                Say::Still {
                    lasted: now.duration_since(*since),
                    failures: self.failures,
                }
            }
            Some(_) => Say::Nothing,
        }
    }

    /// Joined at `now`: how long the outage lasted, if there was one.
    pub fn back(&mut self, now: Instant) -> Option<Duration> {
        self.failures = 0;
        self.lost.take().map(|(since, _)| now.duration_since(since))
    }
}

/// What a chore that retries the store every second says: "could not
/// {what}" when an outage begins, "still cannot {what}" a minute later,
/// `again` (info) when the store answers again.
impl Outage {
    pub fn say_failed(&mut self, what: &str, error: &dyn std::fmt::Display) {
        match self.failed(Instant::now()) {
            Say::Lost => tracing::warn!(%error,
                "could not {what}; trying again every second (reminder every minute)"),
            Say::Still { lasted, failures } => tracing::warn!(%error,
                failing_for = %shown(lasted), failures,
                "still cannot {what}; trying again every second"),
            Say::Nothing => tracing::debug!(%error, "could not {what}"),
        }
    }

    pub fn say_back(&mut self, again: &str) {
        if let Some(lasted) = self.back(Instant::now()) {
            tracing::info!(failing_for = %shown(lasted), "{again}");
        }
    }
}

/// "1m 3s 250ms": an outage's length to the millisecond.
pub fn shown(lasted: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(lasted.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_outage_then_a_reminder_a_minute() {
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut o = Outage::default();
        assert_eq!(o.back(at(0)), None, "joining the first time is no recovery");
        assert_eq!(o.failed(at(1)), Say::Lost);
        for s in (4..61).step_by(3) {
            assert_eq!(o.failed(at(s)), Say::Nothing, "at {s}s");
        }
        assert_eq!(
            o.failed(at(61)),
            Say::Still {
                lasted: Duration::from_secs(60),
                failures: 21
            }
        );
        assert_eq!(o.failed(at(64)), Say::Nothing);
        assert_eq!(o.back(at(70)), Some(Duration::from_secs(69)));
        assert_eq!(o.failed(at(80)), Say::Lost, "a new outage is said again");
    }
}
