//! RFC 3339 UTC to the microsecond, as tracing-subscriber writes it
//! (`2026-12-04T21:20:15.123456Z`). The date and time up to the second
//! are formatted once a second and reused (nginx caches its time the same
//! way); each line writes only its six digits of microseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One thread's cache: the last second formatted, and its text.
pub struct Timestamps {
    second: u64,
    text: [u8; 27],
}

impl Default for Timestamps {
    fn default() -> Self {
        let mut stamps = Timestamps {
            second: 0,
            text: *b"1970-01-01T00:00:00.000000Z",
        };
        stamps.format_second(0);
        stamps
    }
}

// === impl Timestamps ===

impl Timestamps {
    pub fn rfc3339(&mut self, now: SystemTime) -> &[u8; 27] {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        if since.as_secs() != self.second {
            self.format_second(since.as_secs());
        }
        put(&mut self.text[20..26], u64::from(since.subsec_micros()));
        &self.text
    }

    /// The date and time to the second, by humantime (once a second).
    fn format_second(&mut self, secs: u64) {
        let text =
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
        // "YYYY-MM-DDTHH:MM:SS" then "Z": the first 19 bytes are ours.
        self.text[..19].copy_from_slice(&text.as_bytes()[..19]);
        self.second = secs;
    }
}

/// `v` in decimal, zero-padded to the slice's width.
fn put(digits: &mut [u8], mut v: u64) {
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stamps: &mut Timestamps, micros: u64) -> String {
        let t = UNIX_EPOCH + Duration::from_micros(micros);
        String::from_utf8(stamps.rfc3339(t).to_vec()).unwrap()
    }

    #[test]
    fn timestamps_are_rfc3339_to_the_microsecond() {
        let mut s = Timestamps::default();
        assert_eq!(
            at(&mut s, 1_796_419_215_123_456),
            "2026-12-04T21:20:15.123456Z"
        );
        assert_eq!(
            at(&mut s, 951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(at(&mut s, 0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn the_cached_second_moves_on() {
        let mut s = Timestamps::default();
        // Within one second only the microseconds change; the next one is formatted anew.
        assert_eq!(
            at(&mut s, 1_796_428_799_000_001),
            "2026-12-04T23:59:59.000001Z"
        );
        assert_eq!(
            at(&mut s, 1_796_428_799_999_999),
            "2026-12-04T23:59:59.999999Z"
        );
        assert_eq!(
            at(&mut s, 1_796_428_800_000_000),
            "2026-12-05T00:00:00.000000Z"
        );
        // And back (the wall clock may be set back).
        assert_eq!(
            at(&mut s, 1_796_428_799_500_000),
            "2026-12-04T23:59:59.500000Z"
        );
    }
}
