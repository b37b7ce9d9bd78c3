//! One access-log line per request, written when the response is finished
//! (or abandoned), with the bytes actually sent.
//!
//! The path is logged without its query string: a client may put anything
//! there, a key included, and the log must never carry a secret. A key in
//! the path itself (a link, a client's mistake) is redacted.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, StatusCode};

use super::admission::Admitted;
use crate::conn::ConnStats;
use crate::keys::format::{contains_key, redact_keys_as, REDACTED_IN_PATH};
use crate::telemetry::AccessLine;

/// What the log line needs, collected along the request's path.
pub struct Completion {
    status: StatusCode,
    /// `None` when access logging is off: only the in-flight count is kept.
    line: Option<Box<Line>>,
    /// The connection's bookkeeping: the idle watchdog must not close a
    /// connection that still has a response going out.
    conn: Arc<ConnStats>,
}

struct Line {
    start: Instant,
    client: IpAddr,
    method: Method,
    path: String,
    bytes: u64,
    user: Option<String>,
    key_id: Option<String>,
    /// The key's expiry when the answer carried `KeyGate-Key-Expires`.
    key_expires: Option<String>,
}

impl Completion {
    /// `start` is `None` when access logging is off (no clock read, no allocation).
    pub fn new(
        conn: Arc<ConnStats>,
        start: Option<Instant>,
        client: IpAddr,
        method: &Method,
        path: &str,
    ) -> Self {
        conn.in_flight.fetch_add(1, Ordering::Relaxed);
        conn.started.store(true, Ordering::Relaxed);
        let line = start.map(|start| {
            Box::new(Line {
                start,
                client,
                method: method.clone(),
                path: logged_path(path),
                bytes: 0,
                user: None,
                key_id: None,
                key_expires: None,
            })
        });
        Completion {
            status: StatusCode::OK,
            line,
            conn,
        }
    }

    pub fn set_status(&mut self, status: StatusCode) {
        self.status = status;
    }

    pub fn set_identity(&mut self, user: &str, key_id: &str) {
        if let Some(l) = &mut self.line {
            l.user = Some(user.to_owned());
            l.key_id = Some(key_id.to_owned());
        }
    }

    /// Who the request passed as: a key's user and id, an SSO user, or nobody.
    pub fn set_admitted(&mut self, admitted: &Admitted) {
        if self.line.is_none() {
            return;
        }
        match admitted {
            Admitted::Key(p) => self.set_identity(p.user(), p.key_id().as_str()),
            Admitted::Sso(user) => self.set_identity(user, "-"),
            Admitted::Anonymous => {}
        }
    }

    /// The answer told the client its key expires soon (`KeyGate-Key-Expires`).
    pub fn set_key_expires(&mut self, at: &str) {
        if let Some(l) = &mut self.line {
            l.key_expires = Some(at.to_owned());
        }
    }

    /// The connection's responses watched for `limits.send_timeout`.
    pub fn sends(&self) -> &crate::conn::send_stall::Sends {
        &self.conn.sends
    }

    pub fn add_bytes(&mut self, n: u64) {
        if let Some(l) = &mut self.line {
            l.bytes += n;
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.conn.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(m) = &self.conn.metrics {
            m.response(self.status);
        }
        if let Some(l) = &self.line {
            crate::telemetry::access(&AccessLine {
                client: l.client,
                method: l.method.as_str(),
                path: &l.path,
                status: self.status.as_u16(),
                bytes: l.bytes,
                // Whole microseconds: "12.345", not "12.345678901".
                micros: l.start.elapsed().as_micros() as u64,
                user: l.user.as_deref().unwrap_or("-"),
                key_id: l.key_id.as_deref().unwrap_or("-"),
                key_expires: l.key_expires.as_deref().unwrap_or("-"),
            });
        }
    }
}

/// The path as logged: a key in it is `[redacted-key]`; a segment that
/// holds one only once percent-decoded (`kg%5F…`) is, whole.
fn logged_path(path: &str) -> String {
    let path = redact_keys_as(path, REDACTED_IN_PATH);
    if !path.contains('%') {
        return path.into_owned();
    }
    let encoded_key = |segment: &str| {
        // Keys hold no `&`, `=` or `+`: each part is decoded as it stands.
        form_urlencoded::parse(segment.as_bytes())
            .any(|(name, value)| contains_key(&name) || contains_key(&value))
    };
    path.split('/')
        .map(
            |segment| match segment.contains('%') && encoded_key(segment) {
                true => REDACTED_IN_PATH,
                false => segment,
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}
