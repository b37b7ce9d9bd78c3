//! A server certificate's validity period, read from its DER (RFC 5280
//! §4.1.2.5), so that `keygate check`, the start and a SIGHUP reload can say
//! "expired" before clients do: rustls serves any certificate it is given,
//! as nginx does. Anything unexpected reads as "unknown", never as an error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a certificate cannot be served now, in words; `None` when it is
/// within its validity period or its dates cannot be read.
pub fn problem(cert: &[u8], now: SystemTime) -> Option<String> {
    let (not_before, not_after) = validity(cert)?;
    let shown = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    if now > not_after {
        Some(format!(
            "the certificate expired on {}; clients refuse it: put a renewed one in place, then SIGHUP",
            shown(not_after)
        ))
    } else if now < not_before {
        Some(format!(
            "the certificate is not valid before {}; clients refuse it until then (is this host's clock right?)",
            shown(not_before)
        ))
    } else {
        None
    }
}

/// (notBefore, notAfter) of an X.509 certificate.
fn validity(cert: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (0x30, cert, _) = element(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = element(cert)? else {
        return None;
    };
    // [0] version (absent for v1), then serialNumber, signature, issuer.
    let mut rest = match element(tbs)? {
        (0xa0, _, after) => after,
        _ => tbs,
    };
    for _ in 0..3 {
        rest = element(rest)?.2;
    }
    let (0x30, validity, _) = element(rest)? else {
        return None;
    };
    let (tag, not_before, rest) = element(validity)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = element(rest)?;
    Some((not_before, time(tag, not_after)?))
}

/// One DER element: (tag, content, what follows).
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |len, &b| len << 8 | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`), as RFC 5280 requires them.
fn time(tag: u8, content: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(content).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: u64 = digits(text.get(..2)?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 => (digits(text.get(..4)?)?, text.get(4..)?),
        _ => return None,
    };
    if rest.len() != 10 {
        return None;
    }
    let field = |at: usize| digits(&rest[at..at + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let seconds = field(4)? * 3600 + field(6)? * 60 + field(8)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    let days = days_since_epoch(year, month, day);
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + seconds))
}

fn digits(text: &str) -> Option<u64> {
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse().ok())
        .flatten()
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (Howard Hinnant's `days_from_civil`), for years from 1970.
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn dates_are_read_in_both_time_forms() {
        // rcgen writes UTCTime up to 2049, GeneralizedTime from 2050.
        let (from, to) = validity(&cert((2020, 1, 1), (2051, 2, 28))).unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(from).to_string(),
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(
            humantime::format_rfc3339_seconds(to).to_string(),
            "2051-02-28T00:00:00Z"
        );
        assert_eq!(days_since_epoch(1970, 1, 1), 0);
        assert_eq!(days_since_epoch(2000, 3, 1), 11_017);
    }

    #[test]
    fn an_expired_or_future_certificate_is_said_and_a_current_one_is_not() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000); // 2027-01-15
        let expired = problem(&cert((2020, 1, 1), (2020, 2, 1)), now).unwrap();
        assert!(
            expired.starts_with("the certificate expired on 2020-02-01T00:00:00Z"),
            "{expired}"
        );
        let future = problem(&cert((2030, 1, 1), (2031, 1, 1)), now).unwrap();
        assert!(
            future.starts_with("the certificate is not valid before 2030-01-01"),
            "{future}"
        );
        assert_eq!(problem(&cert((2026, 1, 1), (2028, 1, 1)), now), None);
        assert_eq!(problem(b"not a certificate", now), None);
    }
}
