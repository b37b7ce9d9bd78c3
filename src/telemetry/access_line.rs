//! The access line's own formatter. tracing-subscriber's formatters are
//! general: its JSON one goes through serde and re-checks every piece of
//! output as UTF-8, about 20,000 instructions a line, four times what
//! nginx spends on its whole access log. The access line's shape is known,
//! so it is written straight into the line buffer: the same JSON object or
//! human line as before, field for field. Every other event (and the access
//! line on a colour terminal) goes to tracing-subscriber's formatter.

use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub const TARGET: &str = "keygate::access";

/// `inner` for every event but the access line.
pub struct AccessFirst<F> {
    pub inner: F,
    pub json: bool,
}

impl<S, N, F> FormatEvent<S, N> for AccessFirst<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() != TARGET || w.has_ansi_escapes() {
            return self.inner.format_event(ctx, w, event);
        }
        let level = meta.level().as_str();
        if self.json {
            w.write_str("{\"timestamp\":\"")?;
            timestamp(&mut w, SystemTime::now())?;
            write!(w, "\",\"level\":\"{level}\"")?;
            fields(&mut w, true, event)?;
            w.write_str(",\"target\":\"keygate::access\"}\n")
        } else {
            timestamp(&mut w, SystemTime::now())?;
            write!(w, " {level:>5} keygate::access:")?;
            fields(&mut w, false, event)?;
            w.write_char('\n')
        }
    }
}

fn fields(w: &mut impl Write, json: bool, event: &Event<'_>) -> fmt::Result {
    let mut fields = Fields {
        w,
        json,
        done: Ok(()),
    };
    event.record(&mut fields);
    fields.done
}

/// RFC 3339 UTC to the microsecond, as tracing-subscriber writes it:
/// `2026-12-04T21:20:15.123456Z`.
fn timestamp(w: &mut impl Write, now: SystemTime) -> fmt::Result {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y as u64);
    put(5, 2, u64::from(mo));
    put(8, 2, u64::from(d));
    put(11, 2, s / 3600);
    put(14, 2, s / 60 % 60);
    put(17, 2, s % 60);
    put(20, 6, u64::from(since.subsec_micros()));
    w.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The fields: `,"name":value` (what tracing-subscriber's JSON formatter
/// writes with `flatten_event(true)`, strings escaped) or ` name=value`
/// (its human one: `%` values bare, strings quoted). Numbers by itoa and
/// ryu, pieces by `write_str`: `write!` costs a few hundred instructions a
/// call, which is what this formatter is here to save.
struct Fields<'a, W> {
    w: &'a mut W,
    json: bool,
    done: fmt::Result,
}

impl<W: Write> Fields<'_, W> {
    fn field(&mut self, name: &str, value: impl FnOnce(&mut W, bool) -> fmt::Result) {
        if self.done.is_ok() {
            let (before, after) = if self.json {
                (",\"", "\":")
            } else {
                (" ", "=")
            };
            self.done = (|| {
                self.w.write_str(before)?;
                self.w.write_str(name)?;
                self.w.write_str(after)?;
                value(self.w, self.json)
            })();
        }
    }
}

impl<W: Write> Visit for Fields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field.name(), |w, json| {
            // Human: quoted as `{:?}` quotes it, directly when nothing needs escaping.
            let plain = json
                || value
                    .bytes()
                    .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
            if !plain {
                return write!(w, "{value:?}");
            }
            w.write_char('"')?;
            JsonEscaped(&mut *w).write_str(value)?;
            w.write_char('"')
        });
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field.name(), |w, _| {
            w.write_str(itoa::Buffer::new().format(value))
        });
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field.name(), |w, _| {
            w.write_str(itoa::Buffer::new().format(value))
        });
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field.name(), |w, json| match (json, value.is_finite()) {
            (true, true) => w.write_str(ryu::Buffer::new().format_finite(value)),
            (true, false) => w.write_str("null"),
            (false, _) => write!(w, "{value:?}"),
        });
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field.name(), |w, _| {
            w.write_str(if value { "true" } else { "false" })
        });
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field.name(), |w, json| {
            if !json {
                return write!(w, "{value:?}");
            }
            w.write_char('"')?;
            write!(JsonEscaped(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// Writes a JSON string's contents: `"`, `\` and control characters escaped.
struct JsonEscaped<'a, W>(&'a mut W);

impl<W: Write> Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut from = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[from..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            from = i + 1;
        }
        self.0.write_str(&s[from..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// The lines an access event becomes, with (`ours`) and without this formatter.
    fn line(json: bool, ours: bool) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let make = move || Sink(sink.clone());
        let builder = tracing_subscriber::fmt().with_ansi(false).with_writer(make);
        let dispatch = match (json, ours) {
            (true, true) => tracing::Dispatch::new(
                builder
                    .json()
                    .flatten_event(true)
                    .map_event_format(|inner| AccessFirst { inner, json })
                    .finish(),
            ),
            (true, false) => tracing::Dispatch::new(builder.json().flatten_event(true).finish()),
            (false, true) => tracing::Dispatch::new(
                builder
                    .map_event_format(|inner| AccessFirst { inner, json })
                    .finish(),
            ),
            (false, false) => tracing::Dispatch::new(builder.finish()),
        };
        tracing::dispatcher::with_default(&dispatch, || {
            let client: std::net::IpAddr = "192.0.2.7".parse().unwrap();
            tracing::info!(
                target: "keygate::access",
                client = %client,
                method = %http::Method::GET,
                path = %"/a \"quoted\" path\\with\tescapes/é",
                status = 200u16,
                bytes = 12_345u64,
                duration_ms = 0.073,
                user = "alice",
                key_id = "k\"é",
            );
        });
        let bytes = out.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_json_line_is_tracing_subscribers_field_for_field() {
        let parse = |ours| {
            let mut v: serde_json::Value = serde_json::from_str(&line(true, ours)).unwrap();
            let t = v["timestamp"].as_str().unwrap().to_owned();
            assert_eq!(t.len(), 27, "{t}");
            v["timestamp"] = "T".into();
            v
        };
        let (ours, theirs) = (parse(true), parse(false));
        assert_eq!(ours, theirs);
        assert_eq!(ours["path"], "/a \"quoted\" path\\with\tescapes/é");
    }

    #[test]
    fn the_human_line_is_tracing_subscribers_after_the_timestamp() {
        let (ours, theirs) = (line(false, true), line(false, false));
        assert_eq!(ours[27..], theirs[27..], "{ours}{theirs}");
        assert!(ours.ends_with('\n'));
    }

    #[test]
    fn timestamps_are_rfc3339_to_the_microsecond() {
        let mut s = String::new();
        let t = UNIX_EPOCH + Duration::from_micros(1_796_419_215_123_456);
        timestamp(&mut s, t).unwrap();
        assert_eq!(s, "2026-12-04T21:20:15.123456Z");
        s.clear();
        timestamp(&mut s, UNIX_EPOCH + Duration::from_secs(951_782_400)).unwrap();
        assert_eq!(s, "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        write!(JsonEscaped(&mut s), "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(s, "a\\\"b\\\\c\\nd\\u0001é");
        let parsed: String = serde_json::from_str(&format!("\"{s}\"")).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }
}
