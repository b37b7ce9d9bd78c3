//! What a webhook says: its type and its body,
//! `{"type","timestamp","data":{…}}`, which never holds a secret: a key is
//! named by its id, user and label.
//!
//! Adding an event type is one line in `event_types!` (its name as
//! receivers see it), then an `Event::about_key(…)` where it happens; the
//! `[[webhooks]] events` check and the docs' list follow from the table.

use serde_json::{Map, Value};

use crate::keys::KeyRecord;

macro_rules! event_types {
    ($($variant:ident => $name:literal,)*) => {
        /// The event types a `[[webhooks]]` entry may ask for.
        // Every type so far is about a key (`Key…`); the table may grow others.
        #[allow(clippy::enum_variant_names)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($variant,)*
        }

        impl EventType {
            /// Every type, in the order the docs list them.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }
        }
    };
}

event_types! {
    KeyCreated => "key.created",
    KeyRevoked => "key.revoked",
    KeyLeaked => "key.leaked",
    KeyRotated => "key.rotated",
    KeyExpiring => "key.expiring",
    KeyExpired => "key.expired",
}

// === impl EventType ===

impl EventType {
    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == text)
    }

    /// `"key.created", "key.revoked", …` for messages.
    pub fn names() -> String {
        EventType::ALL
            .iter()
            .map(|t| format!("{:?}", t.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One event, ready to queue: its type and its JSON body.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    /// Unix milliseconds when it happened.
    pub at_ms: u64,
    data: Map<String, Value>,
    /// The `webhook-id` to send it under; `None`: a fresh random one.
    message_id: Option<String>,
}

// === impl Event ===

impl Event {
    /// An event about one key: `id`, `user`, `label`, `scope`, and `source`,
    /// the door the change came through (admin, cli, self-service,
    /// possession, github-secret-scanning, …).
    pub fn about_key(kind: EventType, key: &KeyRecord, source: &str) -> Event {
        Event::about(
            kind,
            key.id.as_str(),
            &key.user,
            &key.label,
            key.scope.as_str(),
        )
        .with("source", source)
    }

    /// An event about a key whose record may be gone (an expiry notice):
    /// `id`, `user`, `label`, `scope` as they were.
    pub fn about(kind: EventType, id: &str, user: &str, label: &str, scope: &str) -> Event {
        let mut data = Map::new();
        data.insert("id".into(), id.into());
        data.insert("user".into(), user.into());
        data.insert("label".into(), label.into());
        data.insert("scope".into(), scope.into());
        Event {
            kind,
            at_ms: now_ms(),
            data,
            message_id: None,
        }
    }

    /// Send it under this `webhook-id`: an event that may be queued again
    /// later (an expiry notice) keeps one id, so receivers can drop repeats.
    pub fn with_message_id(mut self, id: String) -> Event {
        self.message_id = Some(id);
        self
    }

    /// The `webhook-id` it asked for, if any.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// One more field of `data` (never a secret).
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Event {
        self.data.insert(field.into(), value.into());
        self
    }

    /// The body as sent (and signed): compact JSON.
    pub fn body(&self) -> String {
        serde_json::json!({
            "type": self.kind.as_str(),
            "timestamp": crate::audit::time_of(self.at_ms),
            "data": self.data,
        })
        .to_string()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        assert_eq!(EventType::parse("key.exploded"), None);
        assert!(EventType::names().contains("\"key.leaked\""));
    }

    #[test]
    fn bodies_name_the_key_never_its_secret() {
        let new = crate::keys::mint(
            "kg",
            &crate::keys::DigestKey::random(),
            "alice",
            "laptop",
            crate::keys::Scope::Read,
            None,
        );
        let body = Event::about_key(EventType::KeyRevoked, &new.record, "possession")
            .with("actor", "possession")
            .body();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "key.revoked");
        assert_eq!(v["data"]["id"], new.record.id.as_str());
        assert_eq!(v["data"]["user"], "alice");
        assert_eq!(v["data"]["scope"], "read");
        assert_eq!(v["data"]["source"], "possession");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(!body.contains(new.key.expose()));
        assert!(!body.contains(&new.record.digest.to_hex()));
    }
}
