//! Signed webhooks to the systems of key owners (`[[webhooks]]`): what
//! happened to a key, delivered once per event across all instances.
//!
//! * [`event`]: the event types (`key.created`, `key.revoked`, `key.leaked`,
//!   `key.rotated`, `key.expiring`, `key.expired`) and their bodies, which
//!   never hold a secret;
//! * [`sign`]: the Standard Webhooks headers and signature;
//! * `deliver`: the worker that sends queued messages, with retries.
//!
//! The keyring emits events inside the change that causes them, after the
//! change is done: each event is queued in the store's outbox, once for
//! every entry that asked for its type (`Webhooks::emit`), and an instance's
//! delivery worker claims it, posts it and removes it, or tries again later
//! with a growing pause. A receiver that is down or hangs (each post is
//! bounded by the entry's `timeout`) costs the change nothing: the event
//! waits in the store, for `keep` (at least an hour), on every instance's
//! behalf. See `store/outbox.rs` for how one claim excludes the others.

pub mod event;
pub mod sign;

mod deliver;

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt as _};
use tokio::sync::Notify;

pub use self::deliver::Delivery;
pub use self::event::{Event, EventType};
pub use self::sign::Secret;
use crate::config;
use crate::metrics::Metrics;
use crate::store::Store;

/// Queue writes in flight at once when many events happen together.
const PUSHES_IN_FLIGHT: usize = 64;

/// The configured webhook entries; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    endpoints: Arc<[Arc<Endpoint>]>,
    /// Wakes this instance's workers when it queued something.
    wake: Arc<Notify>,
}

/// One `[[webhooks]]` entry at run time.
struct Endpoint {
    /// The outbox queue: derived from the URL, the same on every instance.
    queue: String,
    config: config::Webhook,
}

// === impl Webhooks ===

impl Webhooks {
    /// `None` without `[[webhooks]]` entries.
    pub fn new(entries: &[config::Webhook]) -> Option<Webhooks> {
        if entries.is_empty() {
            return None;
        }
        let endpoints: Vec<Arc<Endpoint>> = entries
            .iter()
            .map(|entry| {
                Arc::new(Endpoint {
                    queue: queue_of(&entry.url),
                    config: entry.clone(),
                })
            })
            .collect();
        Some(Webhooks {
            endpoints: endpoints.into(),
            wake: Arc::new(Notify::new()),
        })
    }

    /// Whether any entry asked for events of this type (skip building them otherwise).
    pub fn wants(&self, kind: EventType) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.config.events.contains(&kind))
    }

    /// Queue each event for every entry that asked for its type, under its
    /// own `webhook-id` or a fresh one; whether every queue write succeeded.
    /// Queued again under the same id, an event still queued is left as it
    /// is (its attempts and backoff go on), one delivered already is sent
    /// again with that id. A write that fails is logged; a change
    /// the event describes has happened and is not reported as failed for
    /// it, but a caller that can send the event again later (an expiry
    /// notice) does so when this is false.
    pub async fn emit(&self, store: &Store, events: Vec<Event>) -> bool {
        // Owned pushes: the futures stay `Send` whatever the caller's lifetimes.
        let mut pushes = Vec::new();
        for event in &events {
            let body = event.body();
            let id = event
                .message_id()
                .map_or_else(message_id, ToOwned::to_owned);
            for endpoint in self.endpoints.iter() {
                if endpoint.config.events.contains(&event.kind) {
                    pushes.push((endpoint.clone(), id.clone(), body.clone(), event.kind));
                }
            }
        }
        let (mut queued, mut lost) = (0usize, 0usize);
        let mut results = stream::iter(pushes)
            .map(|(endpoint, id, body, kind)| {
                let store = store.clone();
                async move {
                    let r = store
                        .outbox_push(&endpoint.queue, &id, &body, endpoint.config.keep)
                        .await;
                    (r, kind)
                }
            })
            .buffer_unordered(PUSHES_IN_FLIGHT);
        while let Some((result, kind)) = results.next().await {
            match result {
                Ok(()) => queued += 1,
                Err(e) => {
                    lost += 1;
                    tracing::error!(event = kind.as_str(), error = %e, "could not queue a webhook event");
                }
            }
        }
        if queued > 0 {
            self.wake.notify_waiters();
        }
        lost == 0
    }

    /// Start this instance's delivery workers (one per entry); an https
    /// URL trusts the system roots and `ca_file`.
    pub fn deliver(
        &self,
        store: Store,
        ca_file: Option<&std::path::Path>,
        metrics: Arc<Metrics>,
    ) -> Result<Delivery, String> {
        Delivery::start(&self.endpoints, store, self.wake.clone(), ca_file, metrics)
    }
}

/// A stable, short queue name for a URL (never the URL itself, which may
/// hold a token): the first 16 hex digits of its SHA-256.
fn queue_of(url: &http::Uri) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(url.to_string().as_bytes());
    hash[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `msg_` and 128 random bits in hex: the `webhook-id`, the same on retries.
fn message_id() -> String {
    format!("msg_{}", crate::random::hex::<16>())
}

/// The pause before attempt `attempts + 1`: 5 s, doubling, at most `max`,
/// give or take a tenth so that instances do not retry in step.
fn backoff(attempts: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(5).saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let pause = base.min(max);
    let [r] = crate::random::bytes::<1>();
    // 0.9 to 1.1 of the pause.
    pause.mul_f64(0.9 + f64::from(r) / 255.0 * 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap() {
        let cap = Duration::from_secs(1800);
        let b1 = backoff(1, cap);
        assert!(b1 >= Duration::from_millis(4500) && b1 <= Duration::from_millis(5500));
        let b3 = backoff(3, cap);
        assert!(b3 >= Duration::from_secs(18) && b3 <= Duration::from_secs(22));
        let b40 = backoff(40, cap);
        assert!(b40 <= cap.mul_f64(1.1) && b40 >= cap.mul_f64(0.9));
        assert!(backoff(5, Duration::from_secs(1)) <= Duration::from_millis(1100));
    }

    #[test]
    fn queues_are_named_by_url_never_with_it() {
        let a: http::Uri = "https://hooks.example.org/k?token=abc".parse().unwrap();
        let b: http::Uri = "https://hooks.example.org/other".parse().unwrap();
        assert_eq!(queue_of(&a), queue_of(&a));
        assert_ne!(queue_of(&a), queue_of(&b));
        assert!(!queue_of(&a).contains("token"));
        assert_eq!(queue_of(&a).len(), 16);
        assert_ne!(message_id(), message_id());
    }

    /// An event with its own `webhook-id`, queued twice (an expiry notice
    /// tried again after another entry's queue write failed), is one
    /// message under that id; others get a fresh id each time.
    #[tokio::test]
    async fn an_event_queued_again_keeps_its_id() {
        let entry = config::Webhook {
            url: "https://hooks.example.org/k".parse().unwrap(),
            secret: Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            events: vec![EventType::KeyExpired],
            timeout: Duration::from_secs(5),
            keep: Duration::from_secs(3600),
            max_retry_interval: Duration::from_secs(60),
        };
        let queue = queue_of(&entry.url);
        let hooks = Webhooks::new(&[entry]).unwrap();
        let store = Store::memory();
        let event = || Event::about(EventType::KeyExpired, "id", "u", "l", "full");
        for _ in 0..2 {
            let fixed = event().with_message_id("msg_fixed".to_owned());
            assert!(hooks.emit(&store, vec![fixed]).await);
        }
        let got = store
            .outbox_claim(&queue, Duration::from_secs(60), 10)
            .await
            .unwrap()
            .messages;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "msg_fixed");
        for _ in 0..2 {
            assert!(hooks.emit(&store, vec![event()]).await);
        }
        let got = store
            .outbox_claim(&queue, Duration::from_secs(60), 10)
            .await
            .unwrap()
            .messages;
        assert_eq!(got.len(), 2);
        assert_ne!(got[0].id, got[1].id);
    }
}
