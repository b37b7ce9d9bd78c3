//! Membership: keep the subscription, apply invalidations to the cache,
//! acknowledge them, and renew the cache's lease (protocol in `fleet`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, sleep_until};

use super::cache::KeyCache;
use super::outage::{self, Outage, Say};
use super::{bounded, Fleet, Message};
use crate::metrics::Metrics;
use crate::store::StoreError;

/// A running member; `stop` ends it and deregisters.
pub struct Member {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Member {
    /// Join the fleet with `cache`; the cache serves nothing until the
    /// first successful ping.
    pub fn start(fleet: Fleet, cache: Arc<KeyCache>, metrics: Arc<Metrics>) -> Member {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(fleet, cache, metrics, stopped));
        Member { stop, task }
    }

    /// Without a cache (`cache.enabled = false`) this instance hears no
    /// revocation: check its open key tunnels' keys in the store every
    /// lease instead (no store call while it has none).
    pub fn watch_tunnels(fleet: Fleet) -> Member {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            // Checks come a lease apart: one that cannot read a key ends no
            // tunnel, two in a row do (a revoked key's, found gone, ends at
            // the first).
            let mut sure_until = Instant::now() + 2 * fleet.lease;
            loop {
                tokio::select! {
                    _ = sleep(fleet.lease) => {
                        if fleet.recheck_tunnels(Some(sure_until)).await {
                            sure_until = Instant::now() + 2 * fleet.lease;
                        }
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Member { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The wait before the first retry of an outage; it doubles up to the lease.
const FIRST_RETRY: Duration = Duration::from_millis(50);

async fn run(
    fleet: Fleet,
    cache: Arc<KeyCache>,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_RETRY;
    let mut outage = Outage::default();
    // The end of the last lease held: until then the tunnels' keys are as
    // sure as the cache's entries were.
    let mut sure_until = None;
    loop {
        let outcome = session(&fleet, &cache, &metrics, &mut stopped, &mut outage).await;
        sure_until = cache.leased_until().or(sure_until);
        cache.suspend();
        metrics.fleet_connected(false);
        let instance = fleet.instance();
        match outcome {
            Ok(()) => break,
            Err(e) => match outage.failed(Instant::now()) {
                Say::Lost => {
                    // A new outage: the first retry comes soon again, however
                    // long the retries of earlier outages had grown.
                    backoff = FIRST_RETRY;
                    if e.is_no_permission() {
                        tracing::warn!(error = %e, instance,
                            "lost touch with the fleet: Redis refuses a fleet command (NOPERM): the Redis user needs every grant of the README's ACL SETUSER line (README, Redis ACL: the keys `<namespace>:*`, the channels `<namespace>:fleet:invalidate` and `<namespace>:fleet:ack:*`, the commands, `+time` included; the refusal is in Redis' ACL LOG); key cache emptied, every request asks the store until it is back (reminder every minute)");
                    } else {
                        tracing::warn!(error = %e, instance,
                            "lost touch with the fleet: key cache emptied, every request asks the store until it is back (reminder every minute)");
                    }
                }
                Say::Still { lasted, failures } => tracing::warn!(error = %e, instance,
                    out_of_touch = %outage::shown(lasted), failures,
                    "still out of touch with the fleet: every request asks the store"),
                Say::Nothing => tracing::debug!(error = %e, instance, "fleet: rejoining failed"),
            },
        }
        // Revocations published meanwhile go unheard: the tunnels' keys are
        // checked at each retry (a key that cannot be read ends its tunnel
        // once the last lease has run out, as the cache stops serving then),
        // and once back in touch (in `session`).
        fleet.recheck_tunnels(sure_until).await;
        // Back to check when the last lease runs out, not a backoff later.
        let now = Instant::now();
        let wait = match sure_until {
            Some(until) if until > now => backoff.min(until - now),
            _ => backoff,
        };
        tokio::select! {
            _ = sleep(wait) => {}
            _ = stopped.changed() => break,
        }
        backoff = (backoff * 2).min(fleet.lease);
    }
    let _ = fleet.store.leave(&fleet.member_name()).await;
}

/// One subscription's life: `Ok` when asked to stop, `Err` when it broke.
async fn session(
    fleet: &Fleet,
    cache: &KeyCache,
    metrics: &Metrics,
    stopped: &mut watch::Receiver<bool>,
    outage: &mut Outage,
) -> Result<(), StoreError> {
    let (mut sink, mut stream) = fleet.store.pubsub().await?.split();
    let channel = fleet.store.channel("invalidate");
    // On a reply channel's name (`ack:*`), which every member needs to
    // publish on anyway: no ACL permission beyond the documented ones.
    // Each renewal's probe comes back here: proof that the subscription is
    // on the server the commands (and so the revokers' deletions and
    // publishes) reach, not on another one behind the same address.
    let probe = fleet
        .store
        .channel(&format!("ack:probe:{}", fleet.instance()));
    let deadline = Instant::now() + fleet.lease;
    bounded(
        deadline,
        fleet.lease,
        sink.subscribe(&[channel.as_str(), probe.as_str()]),
    )
    .await?;
    // The store's epoch we cache under: made before the first renewal, so
    // an emptied store shows at the next one.
    let (epoch, _) = fleet.store.epoch(&crate::random::hex::<8>()).await?;
    // Acknowledgements that could not be published end the session.
    let (failed, mut failures) = mpsc::unbounded_channel();
    let member = fleet.member_name();
    let registration = 2 * fleet.lease.as_millis() as u64;
    let mut announced = false;
    loop {
        // Renew: ping through the subscription, re-register, check that we
        // can publish (or no revoker hears our acknowledgements) and that
        // what we publish comes back on our subscription, and that the
        // store still has our epoch, applying whatever arrives meanwhile.
        let sent = Instant::now();
        let deadline = sent + fleet.lease;
        let nonce = crate::random::hex::<8>();
        let renewal = async {
            let ping = bounded(deadline, fleet.lease, sink.ping::<redis::Value>());
            let beat = fleet.store.heartbeat(&member, registration);
            let publish = fleet.store.publish(&probe, &nonce);
            let current = fleet.store.current_epoch();
            let (ping, beat, publish, current) = tokio::join!(ping, beat, publish, current);
            ping?;
            fleet.saw_lease(beat?);
            publish?;
            match current? {
                Some(e) if e == epoch => Ok(()),
                _ => Err(StoreError::Emptied),
            }
        };
        tokio::pin!(renewal);
        let (mut renewed, mut probe_heard) = (false, false);
        while !(renewed && probe_heard) {
            tokio::select! {
                biased;
                Some(e) = failures.recv() => return Err(e),
                msg = stream.next() => {
                    if apply(fleet, cache, metrics, msg, &failed, &probe)?.is_some_and(|p| p == nonce) {
                        probe_heard = true;
                    }
                }
                done = &mut renewal, if !renewed => { done?; renewed = true; }
                // The lease this renewal would grant is over before it began.
                _ = sleep_until(deadline.into()) => return Err(match renewed {
                    true => StoreError::ProbeUnheard(fleet.lease),
                    false => StoreError::Timeout(fleet.lease),
                }),
            }
        }
        // Messages that came before the PONG are queued already: apply them
        // before the lease says so.
        while let Some(msg) = stream.next().now_or_never() {
            apply(fleet, cache, metrics, msg, &failed, &probe)?;
        }
        cache.renew(deadline);
        if !announced {
            announced = true;
            // Subscribed now: what was revoked before is gone from the store.
            // Off this task: a GET per tunnel must not hold up the messages
            // (and their acknowledgements) meanwhile.
            let checking = fleet.clone();
            tokio::spawn(async move { checking.recheck_tunnels(None).await });
            metrics.fleet_connected(true);
            let instance = fleet.instance();
            match outage.back(Instant::now()) {
                None => tracing::info!(instance, "joined the fleet: key cache on"),
                Some(lasted) => tracing::info!(instance, out_of_touch = %outage::shown(lasted),
                    "back in touch with the fleet: key cache on"),
            }
        }
        let next = sent + fleet.lease / 3;
        loop {
            tokio::select! {
                biased;
                Some(e) = failures.recv() => return Err(e),
                msg = stream.next() => { apply(fleet, cache, metrics, msg, &failed, &probe)?; }
                _ = sleep_until(next.into()) => break,
                _ = stopped.changed() => return Ok(()),
            }
        }
    }
}

/// Apply one message to the cache, then acknowledge it; an
/// acknowledgement that cannot be published goes to `failed`. A message on
/// our `probe` channel is no invalidation: its payload is returned.
fn apply(
    fleet: &Fleet,
    cache: &KeyCache,
    metrics: &Metrics,
    msg: Option<redis::Msg>,
    failed: &mpsc::UnboundedSender<StoreError>,
    probe: &str,
) -> Result<Option<String>, StoreError> {
    let msg = msg.ok_or(StoreError::Closed)?;
    let payload: String = msg.get_payload().unwrap_or_default();
    if msg.get_channel_name() == probe {
        return Ok(Some(payload));
    }
    let Ok(message) = serde_json::from_str::<Message>(&payload) else {
        // Not ours to understand: forgetting everything is always safe, and
        // it may have been a revocation: every key tunnel's key is checked.
        tracing::warn!(
            "unreadable fleet message; emptying the key cache and checking every key tunnel"
        );
        cache.invalidate_all();
        // Noted first: a tunnel admitted meanwhile, and registered after
        // the check's snapshot, is ended when it registers.
        fleet.tunnels.note(&super::Forget::All);
        let fleet = fleet.clone();
        tokio::spawn(async move { fleet.recheck_tunnels(None).await });
        return Ok(None);
    };
    message.forget.apply_to(cache);
    metrics.fleet_invalidation();
    // Acknowledge off this task: the next message must not wait for it.
    let fleet = fleet.clone();
    let failed = failed.clone();
    tokio::spawn(async move {
        // A revocation's tunnels end before we acknowledge: the revoker's
        // answer then means they are closed here too.
        if !message.refresh {
            fleet.end_revoked_tunnels(&message.forget).await;
        }
        if let Err(e) = fleet.store.publish(&message.reply, &fleet.instance).await {
            // The revoker waits out our lease; we stop renewing it (the
            // session ends and the cache empties) until we can publish again.
            tracing::warn!(error = %e, "could not acknowledge an invalidation (the revoker waits out our lease)");
            let _ = failed.send(e);
        }
    });
    Ok(None)
}
