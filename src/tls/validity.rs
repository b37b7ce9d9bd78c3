//! A server certificate's validity period, read from its DER (RFC 5280
//! §4.1.2.5), so that `keygate check`, the start and a SIGHUP reload can say
//! "expired" before clients do: rustls serves any certificate it is given,
//! as nginx does. Anything unexpected reads as "unknown", never as an error.
//! The DER and the two time forms are read by yasna, already in the tree
//! through rcgen.

use std::time::{SystemTime, UNIX_EPOCH};

use yasna::tags::{TAG_GENERALIZEDTIME, TAG_UTCTIME};
use yasna::{ASN1Error, ASN1ErrorKind, ASN1Result, BERReader, BERReaderSeq, Tag};

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
    yasna::parse_der(cert, |cert| {
        cert.read_sequence(|cert| {
            let validity = cert.next().read_sequence(tbs_validity)?;
            // signatureAlgorithm, signatureValue: yasna wants a SEQUENCE read to its end.
            skip_rest(cert)?;
            Ok(validity)
        })
    })
    .ok()
}

/// The validity of a TBSCertificate: [0] version (absent for v1), then
/// serialNumber, signature, issuer, validity and what follows it.
fn tbs_validity(tbs: &mut BERReaderSeq) -> ASN1Result<(SystemTime, SystemTime)> {
    tbs.read_optional(|version| version.read_tagged(Tag::context(0), |v| v.read_der()))?;
    for _serial_signature_issuer in 0..3 {
        tbs.next().read_der()?;
    }
    let validity = tbs.next().read_sequence(|validity| {
        let not_before = time(validity.next())?;
        Ok((not_before, time(validity.next())?))
    })?;
    skip_rest(tbs)?;
    Ok(validity)
}

/// A UTCTime or a GeneralizedTime, the two forms RFC 5280 allows.
fn time(reader: BERReader) -> ASN1Result<SystemTime> {
    let time = match reader.lookahead_tag()? {
        TAG_UTCTIME => *reader.read_utctime()?.datetime(),
        TAG_GENERALIZEDTIME => *reader.read_generalized_time()?.datetime(),
        _ => return Err(ASN1Error::new(ASN1ErrorKind::Invalid)),
    };
    let time = SystemTime::from(time);
    // humantime shows no time before the epoch (it panics): unknown, as any surprise.
    if time < UNIX_EPOCH {
        return Err(ASN1Error::new(ASN1ErrorKind::Invalid));
    }
    Ok(time)
}

/// Reads past the remaining elements of a SEQUENCE.
fn skip_rest(seq: &mut BERReaderSeq) -> ASN1Result<()> {
    while seq.read_optional(|element| element.read_der())?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    }

    #[test]
    fn leap_days_and_the_no_expiry_date_of_rfc_5280_are_read() {
        let (from, to) = validity(&cert((2024, 2, 29), (9999, 12, 31))).unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(from).to_string(),
            "2024-02-29T00:00:00Z"
        );
        assert_eq!(
            humantime::format_rfc3339_seconds(to).to_string(),
            "9999-12-31T00:00:00Z"
        );
    }

    #[test]
    fn what_cannot_be_read_is_unknown_and_never_a_panic() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let good = cert((2020, 1, 1), (2020, 2, 1));
        assert!(problem(&good, now).is_some());
        for bad in [
            &b""[..],
            &b"not a certificate"[..],
            &good[..good.len() - 1],
            &good[..good.len() / 2],
            &[good.as_slice(), &[0]].concat(),
        ] {
            assert_eq!(problem(bad, now), None, "{bad:02x?}");
        }
        // UTCTime reaches back to 1950; humantime shows nothing before 1970.
        assert_eq!(problem(&cert((1960, 1, 1), (1965, 1, 1)), now), None);
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
