//! Audit events: who did what to which keys, when, from where, how many.
//! Each event is one line on the `keygate::audit` log target (`log`) and one
//! entry in the store's capped audit stream (Redis: a stream under the
//! namespace, so every instance's changes are read back from one place
//! through `GET /v1/audit`). The keyring records both inside each change it
//! makes; callers only say who is acting (`Actor`).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::keys::Source;
use crate::telemetry::escaped;

/// Events kept in the store; older ones are trimmed.
pub const KEEP: usize = 100_000;

/// Who makes a change, through which door, from where: every change the
/// keyring makes is audited under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The admin token's name, `cli:<login>`, or the signed-in user.
    pub name: String,
    pub source: Source,
    /// The client address; `None` on the command line.
    pub client: Option<IpAddr>,
}

// === impl Actor ===

impl Actor {
    pub fn new(name: impl Into<String>, source: Source, client: Option<IpAddr>) -> Actor {
        Actor {
            name: name.into(),
            source,
            client,
        }
    }

    /// The command line's actor: `cli:<login>`, the login of the user who
    /// ran it (the real uid), from the system's user list; not `$USER`, which
    /// anyone can set. Through sudo: `cli:root (sudo <SUDO_USER>)`, which
    /// only root could have set.
    pub fn cli() -> Actor {
        Actor::new(format!("cli:{}", os_login()), Source::Cli, None)
    }
}

/// The process's login, `uid N` for a user the local user list does not
/// name (a directory user), `unknown` without `/proc`.
pub(crate) fn os_login() -> String {
    let Some(uid) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| real_uid(&status))
    else {
        return "unknown".into();
    };
    let login = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|users| login_of(&users, uid))
        .unwrap_or_else(|| format!("uid {uid}"));
    match std::env::var("SUDO_USER") {
        Ok(by) if uid == 0 && !by.is_empty() => format!("{login} (sudo {by})"),
        _ => login,
    }
}

/// The real uid (who ran the command, also for a setuid or setcap
/// binary) from the text of `/proc/self/status`: `Uid: real effective ...`.
fn real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The login of `uid` in the text of `/etc/passwd`.
fn login_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let (login, _password, id) = (fields.next()?, fields.next()?, fields.next()?);
        (id.parse() == Ok(uid)).then(|| login.to_owned())
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Unix milliseconds (also the stream position).
    #[serde(skip)]
    pub at_ms: u64,
    /// RFC 3339, milliseconds.
    pub time: String,
    /// The admin token's name, `cli:<user>`, or a self-service user.
    pub actor: String,
    pub action: String,
    /// Keys named by id or user, never by secret.
    pub target: String,
    pub count: u64,
    /// The client address, `-` for the command line.
    pub client: String,
    /// Where the change was made; absent on events from before it was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

// === impl Event ===

impl Event {
    pub fn new(
        actor: &str,
        action: &str,
        target: &str,
        count: u64,
        client: Option<IpAddr>,
    ) -> Event {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Event {
            at_ms,
            time: time_of(at_ms),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            count,
            client: client.map_or("-".to_owned(), |c| c.to_string()),
            source: None,
        }
    }

    pub fn with_source(mut self, source: Source) -> Event {
        self.source = Some(source);
        self
    }

    /// An event of `actor`'s, source included.
    pub fn by(actor: &Actor, action: &str, target: &str, count: u64) -> Event {
        Event::new(&actor.name, action, target, count, actor.client).with_source(actor.source)
    }
}

pub fn time_of(at_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(at_ms)).to_string()
}

/// A user name as an audit target writes it: as it is, or quoted (Rust
/// string syntax) when it holds a character the targets use to separate
/// their parts, so that one user "alice, bob" never reads as two users, nor
/// a user filter `x, label="prod"` as a label filter.
pub fn name(user: &str) -> std::borrow::Cow<'_, str> {
    if user.contains([',', '"', '=', ':', '(', ')']) {
        std::borrow::Cow::Owned(format!("{user:?}"))
    } else {
        std::borrow::Cow::Borrowed(user)
    }
}

/// The event's line on the `keygate::audit` log target.
pub fn log(event: &Event) {
    tracing::info!(
        target: "keygate::audit",
        actor = %escaped(&event.actor),
        action = %event.action,
        target = %escaped(&event.target),
        count = event.count,
        client = %event.client,
        source = event.source.map_or("-", Source::as_str),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::captured::Buffer;

    /// What `log` writes in the human format, as the lines a reader sees.
    fn human_lines(event: &Event) -> Vec<String> {
        let out = Buffer::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || log(event));
        out.text().lines().map(str::to_owned).collect()
    }

    #[test]
    fn a_login_is_found_by_its_uid() {
        let users =
            "root:x:0:0:root:/root:/bin/bash\n# comment\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(login_of(users, 0).as_deref(), Some("root"));
        assert_eq!(login_of(users, 1000).as_deref(), Some("alice"));
        assert_eq!(login_of(users, 1001), None);
        let status =
            "Name:\tkeygate\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(
            real_uid(status),
            Some(1000),
            "the real uid, not the effective one"
        );
        assert_eq!(real_uid("Name:\tx\n"), None);
    }

    #[test]
    fn a_newline_in_an_actor_or_target_cannot_forge_an_audit_line() {
        let forged = "\n2026-12-05T18:11:00.000000Z  INFO keygate::audit: actor=alice action=revoke target=all keys";
        let event = Event::new(
            &format!("mallory{forged}"),
            "revoke",
            &format!("users nobody{forged}"),
            0,
            None,
        );
        let lines = human_lines(&event);
        assert_eq!(lines.len(), 1, "{lines:#?}");
        // Quoted whole: neither the newline nor the `key=value` text in it
        // reads as the log's own.
        assert!(
            lines[0].contains(r#"target="users nobody\n2026-12-05"#)
                && lines[0].contains(r#"actor="mallory\n"#),
            "{}",
            lines[0]
        );
    }
}
