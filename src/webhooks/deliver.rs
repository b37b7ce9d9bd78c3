//! This instance's delivery workers, one per `[[webhooks]]` entry: claim
//! due messages from the outbox (a batch at a time, for a lease that
//! outlasts the post), post each one signed, then remove it (a 2xx answer)
//! or make it due again after a pause that grows with its attempts.
//! A worker wakes when this instance queues an event, and otherwise looks
//! every `POLL` for events queued by other instances or come due again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{backoff, Endpoint};
use crate::fleet::outage::Outage;
use crate::keys::unix_now;
use crate::login::fetch::Fetch;
use crate::metrics::Metrics;
use crate::store::{Claimed, Store};
use crate::telemetry::throttle::Throttled;

/// Messages claimed (and posted concurrently) at a time, per entry.
const BATCH: usize = 16;
/// How often a worker looks for messages it was not woken for.
const POLL: Duration = Duration::from_secs(1);

/// The running workers; stopped on drop or by `stop`.
pub struct Delivery {
    workers: Vec<JoinHandle<()>>,
}

// === impl Delivery ===

impl Delivery {
    pub(super) fn start(
        endpoints: &[Arc<Endpoint>],
        store: Store,
        wake: Arc<Notify>,
        ca_file: Option<&std::path::Path>,
        metrics: Arc<Metrics>,
    ) -> Result<Delivery, String> {
        let mut workers = Vec::with_capacity(endpoints.len());
        for (i, endpoint) in endpoints.iter().enumerate() {
            let config = &endpoint.config;
            let https = config.url.scheme_str() == Some("https");
            let fetch = Fetch::new(config.timeout, https, ca_file)
                .map_err(|e| format!("webhooks[{i}].url: {e}"))?;
            let worker = Worker {
                endpoint: endpoint.clone(),
                fetch,
                store: store.clone(),
                metrics: metrics.clone(),
                failures: Mutex::new(Throttled::each_minute()),
            };
            workers.push(tokio::spawn(worker.run(wake.clone())));
        }
        Ok(Delivery { workers })
    }

    /// Stop delivering. A message being posted right now comes due again
    /// when its lease runs out, for this or another instance.
    pub fn stop(self) {}
}

impl Drop for Delivery {
    fn drop(&mut self) {
        for w in &self.workers {
            w.abort();
        }
    }
}

/// One entry's worker on this instance.
struct Worker {
    endpoint: Arc<Endpoint>,
    fetch: Fetch,
    store: Store,
    metrics: Arc<Metrics>,
    /// Failed attempts are logged at most once a minute per entry and
    /// instance, with the count since: a backlog for a receiver that is
    /// down fails every message at every backoff step, tens of lines per
    /// event for as long as `keep`. The first delivery after failures
    /// says the receiver recovered, with the failures not yet logged.
    failures: Mutex<Throttled>,
}

// === impl Worker ===

impl Worker {
    async fn run(self, wake: Arc<Notify>) {
        // Long enough that a post still in flight is never claimed twice.
        let lease = self.endpoint.config.timeout * 2 + Duration::from_secs(5);
        let queue = &self.endpoint.queue;
        // A store outage is said once, then a minute, not at every poll.
        let mut outage = Outage::default();
        loop {
            // Registered before draining, so an event queued meanwhile still wakes us.
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            loop {
                let batch = match self.store.outbox_claim(queue, lease, BATCH).await {
                    Ok(claim) => {
                        outage.say_back("reading the webhook outbox again");
                        self.expired(claim.expired);
                        claim.messages
                    }
                    Err(e) => {
                        outage.say_failed("read the webhook outbox", &e);
                        break;
                    }
                };
                let full = batch.len() == BATCH;
                join_all(batch.into_iter().map(|m| self.post(m))).await;
                if !full {
                    break;
                }
            }
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Say that `n` messages were dropped undelivered: events the
    /// receiver will never get, which retries alone would not tell.
    fn expired(&self, n: u64) {
        if n > 0 {
            self.metrics.webhooks_expired.inc_by(n);
            tracing::error!(
                webhook = %origin(&self.endpoint.config.url),
                dropped = n,
                "webhook events dropped undelivered: their messages are gone from the store (webhooks.keep passed since they were queued, or Redis evicted or deleted them)"
            );
        }
    }

    /// Post one message; remove it when the receiver took it, else schedule the next try.
    async fn post(&self, message: Claimed) {
        let config = &self.endpoint.config;
        let headers = config
            .secret
            .headers(&message.id, unix_now(), message.body.as_bytes());
        let outcome = self
            .fetch
            .post_status(&config.url, headers, Bytes::from(message.body))
            .await;
        let failure = match outcome {
            Ok(status) if status.is_success() => None,
            Ok(status) => Some(format!("answered {status}")),
            Err(e) => Some(e.to_string()),
        };
        let queue = &self.endpoint.queue;
        let stored = match failure {
            None => {
                self.metrics.webhooks_delivered.inc();
                tracing::debug!(webhook_id = %message.id, attempts = message.attempts, "webhook delivered");
                // Failures counted since the last line are said now, or never.
                let over = self.failures.lock().expect("not poisoned").over();
                if let Some(unlogged) = over {
                    tracing::info!(
                        webhook = %origin(&config.url),
                        unlogged,
                        "webhook receiver recovered: delivered again ({unlogged} failed attempts since the last line)"
                    );
                }
                self.store.outbox_done(queue, &message.id).await
            }
            Some(why) => {
                self.metrics.webhook_failures.inc();
                let pause = backoff(message.attempts, config.max_retry_interval);
                let log = self
                    .failures
                    .lock()
                    .expect("not poisoned")
                    .due(Instant::now());
                if let Some(unlogged) = log {
                    tracing::warn!(
                        webhook = %origin(&config.url),
                        webhook_id = %message.id,
                        attempts = message.attempts,
                        retry_in_ms = pause.as_millis() as u64,
                        unlogged,
                        "webhook not delivered: {why}"
                    );
                }
                self.store.outbox_retry(queue, &message.id, pause).await
            }
        };
        if let Err(e) = stored {
            // The lease brings the message back: at worst it is posted again.
            tracing::warn!(webhook_id = %message.id, error = %e, "could not record a webhook delivery");
        }
    }
}

/// `scheme://host:port` of a URL: its path or query may hold a token (and
/// a userinfo, which the configuration refuses, a password).
fn origin(url: &http::Uri) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}",
        url.scheme_str().unwrap_or("http"),
        url.host().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::origin;

    #[test]
    fn the_origin_shows_no_path_query_or_userinfo() {
        for (url, shown) in [
            (
                "https://hooks.example.org/T0K3N?sig=x",
                "https://hooks.example.org",
            ),
            ("http://u:s3cret@127.0.0.1:8090/h", "http://127.0.0.1:8090"),
            ("https://[::1]:8443/h", "https://[::1]:8443"),
        ] {
            assert_eq!(origin(&url.parse().unwrap()), shown);
        }
    }
}
