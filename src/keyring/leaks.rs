//! Keys seen outside their owners' hands: reported by a secret scanner, or
//! sent to `POST /.keygate/revoke` by whoever found them.

use std::collections::HashMap;

use futures_util::stream::{self, StreamExt as _};

use super::events::READS_IN_FLIGHT;
use super::{Keyring, Revocation, RevokeError, Revoked};
use crate::audit::{Actor, Event};
use crate::keys::{format, ApiKey, KeyRecord};
use crate::store::StoreError;
use crate::webhooks::{self, EventType};

/// Longest `url` or `found_in` kept in an audit entry or an event.
const MAX_WHERE: usize = 512;

/// One place a key was seen.
#[derive(Debug, Clone)]
pub struct Sighting {
    pub key: ApiKey,
    /// Where (a commit, an issue, a package), when the reporter says.
    pub url: Option<String>,
    /// What kind of place (`content`, `commit`, `npm`, …), when the reporter says.
    pub found_in: Option<String>,
}

// === impl Keyring (leaks) ===

/// The sightings of live keys, and of keys rotated away whose successors
/// live (a key's successors die with it, so its sighting counts).
struct Found {
    /// By secret: the key's record.
    live: HashMap<String, KeyRecord>,
    /// By secret: the ids of its live successors.
    successors: HashMap<String, Vec<String>>,
}

impl Keyring {
    /// Which of `sightings` are live keys of this deployment, in order. The
    /// live ones are revoked through the barrier when `revoke` (else only
    /// reported); then each sighting of a live key is audited as `leaked`
    /// (the key, its user, where it was seen) and each live key announced
    /// (`key.leaked`). Tokens of other formats and bad checksums cost no
    /// lookup; a token seen twice is looked up once. A store error stops it
    /// before anything is revoked or recorded: the sender retries. Keys
    /// deleted whose revocation could not be told to every instance are
    /// recorded and announced all the same before that error.
    pub async fn leaked(
        &self,
        actor: &Actor,
        sightings: Vec<Sighting>,
        revoke: bool,
    ) -> Result<Vec<bool>, RevokeError> {
        let found = self.found(&sightings).await?;
        let flags: Vec<bool> = sightings
            .iter()
            .map(|s| found.live.contains_key(s.key.expose()))
            .collect();
        if found.live.is_empty() {
            return Ok(flags);
        }
        // Deleted but not yet told to every instance (it is told in the
        // background): still audited and announced, then the error. The
        // sender's retry finds no live key, so it would never say where
        // the keys were found or send `key.leaked`.
        let mut unpublished = None;
        if revoke {
            let keys = found.live.keys().map(|k| ApiKey::new(k.clone())).collect();
            match self.revoke_only(actor, Revocation::Leaked(keys)).await {
                Ok(_) => {}
                Err(e @ RevokeError::NotPropagated { .. }) => unpublished = Some(e),
                Err(e) => return Err(e),
            }
        }
        self.settle_leaked(actor, &found, &sightings, revoke).await;
        match unpublished {
            Some(e) => Err(e),
            None => Ok(flags),
        }
    }

    /// An operator's list of leaked secrets (`keys revoke --leaked`,
    /// `POST /v1/revoke` `keys`, the console): revoked as any list is
    /// (also when none is live: a retry tells the fleet again), then its
    /// live keys audited and announced as leaked, as a report's are,
    /// without where they were found.
    pub(super) async fn revoke_leaked(
        &self,
        actor: &Actor,
        secrets: Vec<ApiKey>,
    ) -> Result<Revoked, RevokeError> {
        // A secret listed twice is one sighting (one audit event).
        let mut listed = std::collections::HashSet::new();
        let sightings: Vec<Sighting> = secrets
            .iter()
            .filter(|key| listed.insert(key.expose()))
            .map(|key| Sighting {
                key: key.clone(),
                url: None,
                found_in: None,
            })
            .collect();
        let found = self.found(&sightings).await?;
        let revoked = self.revoke_only(actor, Revocation::Leaked(secrets)).await;
        if let Ok(_) | Err(RevokeError::NotPropagated { .. }) = &revoked {
            self.settle_leaked(actor, &found, &sightings, true).await;
        }
        revoked
    }

    /// The live keys among `sightings` (see `Found`), read from the store.
    async fn found(&self, sightings: &[Sighting]) -> Result<Found, StoreError> {
        let candidates: Vec<ApiKey> = sightings
            .iter()
            .filter(|s| format::parse(&self.0.prefix, s.key.expose()).is_some())
            .map(|s| s.key.clone())
            .collect();
        let leaked = self.leaked_keys(&candidates).await?;
        let successors = leaked
            .iter()
            .map(|l| {
                let ids = l.successors.iter().map(|r| r.id.to_string()).collect();
                (l.secret.expose().to_owned(), ids)
            })
            .collect();
        let live = leaked
            .into_iter()
            .map(|l| (l.secret.expose().to_owned(), l.record))
            .collect();
        Ok(Found { live, successors })
    }

    /// Count the live keys found, audit each sighting of one as `leaked`
    /// and announce each key once (`key.leaked`).
    async fn settle_leaked(
        &self,
        actor: &Actor,
        found: &Found,
        sightings: &[Sighting],
        revoked: bool,
    ) {
        if found.live.is_empty() {
            return;
        }
        self.0.metrics.keys_leaked.inc_by(found.live.len() as u64);
        let seen: Vec<(&KeyRecord, &Sighting)> = sightings
            .iter()
            .filter_map(|s| Some((found.live.get(s.key.expose())?, s)))
            .collect();
        let targets: Vec<String> = seen
            .iter()
            .map(|(record, sighting)| {
                let heirs = &found.successors[sighting.key.expose()];
                let heirs = match heirs.len() {
                    0 => String::new(),
                    _ => format!(" (successors {})", heirs.join(", ")),
                };
                format!(
                    "key {} of user {}{heirs}{}",
                    record.id,
                    crate::audit::name(&record.user),
                    where_seen(sighting)
                )
            })
            .collect();
        stream::iter(targets)
            .for_each_concurrent(READS_IN_FLIGHT, |target| {
                let (keyring, actor) = (self.clone(), actor.clone());
                async move {
                    keyring
                        .record(Event::by(&actor, "leaked", &target, 1))
                        .await;
                }
            })
            .await;
        if self.wants(EventType::KeyLeaked) {
            let mut announced = std::collections::HashSet::new();
            let events = seen
                .iter()
                .filter(|(record, _)| announced.insert(record.id))
                .map(|(record, sighting)| {
                    let heirs = &found.successors[sighting.key.expose()];
                    webhooks::Event::about_key(EventType::KeyLeaked, record, actor.source.as_str())
                        .with("successors", heirs.clone())
                        .with("url", sighting.url.as_deref().map(clip))
                        .with("found_in", sighting.found_in.as_deref().map(clip))
                        .with("action", if revoked { "revoked" } else { "notified" })
                })
                .collect();
            self.emit(events).await;
        }
    }
}

/// `, found at <url> (<found_in>)`, or nothing when the reporter said nothing.
fn where_seen(s: &Sighting) -> String {
    match (s.url.as_deref(), s.found_in.as_deref()) {
        (Some(url), Some(kind)) => format!(", found at {} ({})", clip(url), clip(kind)),
        (Some(url), None) => format!(", found at {}", clip(url)),
        (None, Some(kind)) => format!(", found in {}", clip(kind)),
        (None, None) => String::new(),
    }
}

/// At most `MAX_WHERE` bytes of a reporter's text, cut at a character.
fn clip(text: &str) -> &str {
    let mut end = text.len().min(MAX_WHERE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
