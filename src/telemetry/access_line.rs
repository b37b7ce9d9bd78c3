//! The access line, written as bytes straight into a reused buffer: no
//! tracing dispatch, no `fmt::Display`, no allocation (what nginx does for
//! its own). It is the JSON object or human line tracing-subscriber writes
//! for the same event, field for field (the tests below hold it to that);
//! other events, and the access line on a colour terminal, go through
//! tracing (`AccessLine::trace`).

use std::io::Write;
use std::net::IpAddr;
use std::time::SystemTime;

use super::timestamp::Timestamps;

/// One request's line.
pub struct AccessLine<'a> {
    pub client: IpAddr,
    pub method: &'a str,
    /// Without the query string.
    pub path: &'a str,
    pub status: u16,
    /// Sent.
    pub bytes: u64,
    pub micros: u64,
    pub user: &'a str,
    pub key_id: &'a str,
    pub key_expires: &'a str,
}

// === impl AccessLine ===

impl AccessLine<'_> {
    /// Append the line (with its `\n`) to `out`.
    pub fn write(&self, json: bool, now: SystemTime, stamps: &mut Timestamps, out: &mut Vec<u8>) {
        if json {
            out.extend_from_slice(b"{\"timestamp\":\"");
            out.extend_from_slice(stamps.rfc3339(now));
            out.extend_from_slice(b"\",\"level\":\"INFO\",\"client\":\"");
            client(out, self.client);
            out.extend_from_slice(b"\",\"method\":\"");
            json_escaped(out, self.method);
            out.extend_from_slice(b"\",\"path\":\"");
            json_escaped(out, self.path);
            out.extend_from_slice(b"\",\"status\":");
            out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
            out.extend_from_slice(b",\"bytes\":");
            out.extend_from_slice(itoa::Buffer::new().format(self.bytes).as_bytes());
            out.extend_from_slice(b",\"duration_ms\":");
            millis(out, self.micros);
            for (name, value) in self.strings() {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":\"");
                json_escaped(out, value);
                out.push(b'"');
            }
            out.extend_from_slice(b",\"target\":\"keygate::access\"}\n");
        } else {
            // `%` fields bare, `&str` ones quoted as `{:?}` quotes them.
            out.extend_from_slice(stamps.rfc3339(now));
            out.extend_from_slice(b"  INFO keygate::access: client=");
            client(out, self.client);
            out.extend_from_slice(b" method=");
            out.extend_from_slice(self.method.as_bytes());
            out.extend_from_slice(b" path=");
            out.extend_from_slice(self.human_path().as_bytes());
            out.extend_from_slice(b" status=");
            out.extend_from_slice(itoa::Buffer::new().format(self.status).as_bytes());
            out.extend_from_slice(b" bytes=");
            out.extend_from_slice(itoa::Buffer::new().format(self.bytes).as_bytes());
            out.extend_from_slice(b" duration_ms=");
            millis(out, self.micros);
            for (name, value) in self.strings() {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
                debug_quoted(out, value);
            }
            out.push(b'\n');
        }
    }

    /// The same line as a tracing event, for a subscriber of its own.
    pub fn trace(&self) {
        tracing::info!(
            target: "keygate::access",
            client = %self.client,
            method = %self.method,
            path = %self.human_path(),
            status = self.status,
            bytes = self.bytes,
            duration_ms = self.micros as f64 / 1000.0,
            user = self.user,
            key_id = self.key_id,
            key_expires = self.key_expires,
        );
    }

    /// The path bare, as tracing writes a `%` field, unless it could forge
    /// a line or a field: the URI parser lets UTF-8 through, so a line
    /// separator (U+2028), NEL or a direction override may be in it. An
    /// ASCII path holds none (the parser refuses controls and spaces).
    fn human_path(&self) -> std::borrow::Cow<'_, str> {
        match self.path.is_ascii() {
            true => std::borrow::Cow::Borrowed(self.path),
            false => super::escaped(self.path),
        }
    }

    fn strings(&self) -> [(&'static str, &str); 3] {
        [
            ("user", self.user),
            ("key_id", self.key_id),
            ("key_expires", self.key_expires),
        ]
    }
}

/// As `IpAddr`'s Display writes it; an IPv4 address octet by octet (its
/// Display goes through `write!`, about 1,400 instructions).
fn client(out: &mut Vec<u8>, ip: IpAddr) {
    let IpAddr::V6(v6) = ip else {
        let IpAddr::V4(v4) = ip else { unreachable!() };
        let [a, b, c, d] = v4.octets();
        let mut digits = itoa::Buffer::new();
        out.extend_from_slice(digits.format(a).as_bytes());
        for octet in [b, c, d] {
            out.push(b'.');
            out.extend_from_slice(digits.format(octet).as_bytes());
        }
        return;
    };
    let _ = write!(out, "{v6}");
}

/// Milliseconds to the microsecond as the `f64` `micros / 1000` prints
/// (ryu in JSON, `{:?}` in the human line): `0.073`, `12.5`, `3.0`.
fn millis(out: &mut Vec<u8>, micros: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(micros / 1000).as_bytes());
    let frac = micros % 1000;
    let digits = [
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let keep = match frac {
        0 => 2,
        f if f % 100 == 0 => 2,
        f if f % 10 == 0 => 3,
        _ => 4,
    };
    out.extend_from_slice(&digits[..keep]);
}

/// A JSON string's contents: `"`, `\` and control characters escaped.
fn json_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.extend_from_slice(escape);
        }
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
}

/// Quoted as `{:?}` quotes a `str`; directly when nothing needs escaping.
fn debug_quoted(out: &mut Vec<u8>, s: &str) {
    let plain = s
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::captured::Buffer;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample(micros: u64) -> AccessLine<'static> {
        AccessLine {
            client: "192.0.2.7".parse().unwrap(),
            method: "GET",
            path: "/a \"quoted\" path\\with\tescapes/é\u{1}",
            status: 200,
            bytes: 12_345,
            micros,
            user: "alice",
            key_id: "k\"é",
            key_expires: "-",
        }
    }

    fn ours(json: bool, line: &AccessLine<'_>) -> String {
        let mut out = Vec::new();
        line.write(
            json,
            SystemTime::now(),
            &mut Timestamps::default(),
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    /// The line tracing-subscriber writes for `line.trace()`.
    fn theirs(json: bool, line: &AccessLine<'_>) -> String {
        let out = Buffer::default();
        let sink = out.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone());
        let dispatch = if json {
            tracing::Dispatch::new(builder.json().flatten_event(true).finish())
        } else {
            tracing::Dispatch::new(builder.finish())
        };
        tracing::dispatcher::with_default(&dispatch, || line.trace());
        out.text()
    }

    #[test]
    fn the_json_line_is_tracing_subscribers_field_for_field() {
        // An ASCII path: `trace` escapes any other (for the human line).
        let line = AccessLine {
            path: "/a \"quoted\" path\\with/escapes",
            ..sample(73)
        };
        let parse = |s: &str| {
            let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
            let t = v["timestamp"].as_str().unwrap().to_owned();
            assert_eq!(t.len(), 27, "{t}");
            v["timestamp"] = "T".into();
            v
        };
        let (ours, theirs) = (ours(true, &line), theirs(true, &line));
        // The same bytes after the timestamp, in the same order.
        assert_eq!(ours[41..], theirs[41..], "{ours}{theirs}");
        assert_eq!(parse(&ours), parse(&theirs));
        assert_eq!(parse(&ours)["path"], line.path);
        // Any path as it came, JSON-escaped.
        let line = sample(73);
        assert_eq!(parse(&self::ours(true, &line))["path"], line.path);
    }

    #[test]
    fn a_path_that_could_forge_a_human_line_is_escaped() {
        let line = AccessLine {
            path: "/x\u{2028}2026-12-06T00:00:00Z  INFO keygate::audit: \u{202e}",
            ..sample(73)
        };
        let human = ours(false, &line);
        assert!(
            human.contains(
                r#" path="/x\u{2028}2026-12-06T00:00:00Z  INFO keygate::audit: \u{202e}" "#
            ),
            "{human}"
        );
        assert_eq!(human.lines().count(), 1);
        assert_eq!(human[27..], theirs(false, &line)[27..]);
        let plain = AccessLine {
            path: "/api/v1/items;x=1",
            ..sample(73)
        };
        assert!(ours(false, &plain).contains(" path=/api/v1/items;x=1 "));
    }

    #[test]
    fn the_human_line_is_tracing_subscribers_after_the_timestamp() {
        let line = sample(73);
        let (ours, theirs) = (ours(false, &line), theirs(false, &line));
        assert_eq!(ours[27..], theirs[27..], "{ours}{theirs}");
        assert!(ours.ends_with('\n'));
    }

    #[test]
    fn an_ipv6_client_is_written_as_display_writes_it() {
        let mut line = AccessLine {
            path: "/",
            ..sample(73)
        };
        for ip in ["::1", "2001:db8::8:1", "0.0.0.0", "255.255.255.255"] {
            line.client = ip.parse().unwrap();
            for (json, at) in [(true, 41), (false, 27)] {
                assert_eq!(ours(json, &line)[at..], theirs(json, &line)[at..]);
            }
        }
    }

    #[test]
    fn durations_print_as_the_f64_milliseconds_did() {
        for micros in (0..3000).chain([10_000, 12_345_678, 999_999_999]) {
            let mut out = Vec::new();
            millis(&mut out, micros);
            let ms = micros as f64 / 1000.0;
            let out = String::from_utf8(out).unwrap();
            assert_eq!(out, ryu::Buffer::new().format_finite(ms), "json {micros}");
            assert_eq!(out, format!("{ms:?}"), "human {micros}");
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = Vec::new();
        json_escaped(&mut out, "a\"b\\c\nd\u{1}é");
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "a\\\"b\\\\c\\nd\\u0001é");
        let parsed: String = serde_json::from_str(&format!("\"{s}\"")).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn the_timestamp_is_the_one_given() {
        let t = UNIX_EPOCH + Duration::from_micros(1_796_419_215_123_456);
        let mut out = Vec::new();
        sample(5).write(false, t, &mut Timestamps::default(), &mut out);
        assert!(out.starts_with(b"2026-12-04T21:20:15.123456Z  INFO"));
    }
}
