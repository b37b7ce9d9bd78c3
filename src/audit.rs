//! Audit events: who did what to which keys, when, from where, how many.
//! Each event is one line on the `keygate::audit` log target and one entry
//! in the store's capped audit stream (Redis: a stream under the namespace,
//! so every instance's changes are read back from one place through
//! `GET /v1/audit`).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::keys::Source;
use crate::store::Store;

/// Events kept in the store; older ones are trimmed.
pub const KEEP: usize = 100_000;

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
}

pub fn time_of(at_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(at_ms)).to_string()
}

/// Log the event and append it to the store's audit stream. A failed append
/// is logged, not fatal: the change it describes has already happened.
pub async fn record(store: &Store, event: Event) {
    tracing::info!(
        target: "keygate::audit",
        actor = %event.actor,
        action = %event.action,
        target = %event.target,
        count = event.count,
        client = %event.client,
        source = event.source.map_or("-", Source::as_str),
    );
    if let Err(e) = store.append_audit(&event).await {
        tracing::error!(error = %e, "could not append the audit event to the store");
    }
}
