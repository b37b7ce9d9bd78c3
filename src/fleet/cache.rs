//! The validation cache: key records recently read from the store, so that a
//! request with a known key costs no store round trip.
//!
//! An entry is only as good as the instance's link to the fleet's
//! invalidations (see the `fleet` module), so the cache is a *lease*: entries are
//! served only while `lease_until` lies ahead, and the fleet member renews it
//! each time a ping on its subscription comes back (which proves every
//! invalidation published before the ping has been applied). When the link
//! is lost the member calls `suspend`, which empties the cache; until the
//! next renewal every lookup goes to the store and nothing is cached.
//!
//! Races with invalidations are closed by an epoch: a store read may fill the
//! cache only if no invalidation (or suspension) happened between taking the
//! ticket and filling, so a record read just before its revocation can never
//! be cached after the invalidation for it was applied.
//!
//! Entries also never outlive the key's expiry nor `cache.max_age`. Only
//! found keys whose secret verified are cached, each with the secret's
//! fingerprint (`keys::seen`, never the secret): a hit compares fingerprints
//! instead of computing the HMAC again. A key id is random and unknown
//! before it is minted, so no cached answer can refuse a newly created key.
//!
//! Beside the entries, a memo of Basic credentials as sent (their
//! fingerprint, `Sent`) that verified, with their key's id: a client's
//! repeated `Authorization` value is recalled without decoding base64 or
//! parsing the key, about a twentieth of a keyed request's instructions.
//! The id's entry still decides (lease, staleness, invalidation), so the
//! memo needs no invalidation of its own: a credential's bytes fix its key,
//! and a key's id and digest never change.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::keys::seen::{Seen, SeenKey, Sent};
use crate::keys::{ApiKey, KeyId, KeyRecord};

pub struct KeyCache {
    entries: Entries,
    /// Basic credentials as sent that verified, and their key's id.
    sent: Memo,
    /// Keys the fingerprints of verified secrets (drawn at start).
    seen: SeenKey,
    /// Bumped by every invalidation and suspension.
    epoch: AtomicU64,
    /// Nanoseconds since `origin` until which entries may be served; 0 = suspended.
    lease_until: AtomicU64,
    origin: Instant,
    max_age: Duration,
}

/// Entries by key id. Only a key that verified is inserted, so nobody can
/// choose the ids to collide: foldhash, seeded per process, need not be
/// SipHash (std's default, ten times the instructions per lookup).
type Entries =
    quick_cache::sync::Cache<KeyId, Entry, quick_cache::UnitWeighter, foldhash::fast::RandomState>;

/// Keyed by fingerprints of verified credentials, which nobody can choose
/// to collide either.
type Memo =
    quick_cache::sync::Cache<Sent, KeyId, quick_cache::UnitWeighter, foldhash::fast::RandomState>;

/// A record shared with the requests it authenticates (cloning it is one
/// reference count).
#[derive(Clone)]
struct Entry {
    record: Arc<KeyRecord>,
    /// The fingerprint of the secret that verified against `record`.
    seen: Seen,
    /// Nanoseconds since `origin` after which the entry is stale.
    stale_at: u64,
}

/// What the cache knows of a presented key.
pub enum Lookup {
    /// Cached, and the presented secret is the one that verified.
    Verified(Arc<KeyRecord>),
    /// Cached, and the presented secret is another: the key does not match.
    Mismatch,
    /// Not cached (or the lease lapsed): ask the store.
    Miss,
}

/// Permission to cache what a store read returns, taken before the read.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

// === impl KeyCache ===

impl KeyCache {
    /// A suspended cache: nothing is served until the first `renew`.
    pub fn new(capacity: usize, max_age: Duration) -> Arc<KeyCache> {
        Arc::new(KeyCache {
            entries: Entries::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                foldhash::fast::RandomState::default(),
                Default::default(),
            ),
            sent: Memo::with(
                capacity,
                capacity as u64,
                quick_cache::UnitWeighter,
                foldhash::fast::RandomState::default(),
                Default::default(),
            ),
            seen: SeenKey::random(),
            epoch: AtomicU64::new(0),
            lease_until: AtomicU64::new(0),
            origin: Instant::now(),
            max_age,
        })
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_nanos() as u64
    }

    fn leased(&self, now: u64) -> bool {
        now < self.lease_until.load(SeqCst)
    }

    /// What the cache says of `key` (whose id is `id`), if the lease holds
    /// and the entry is fresh.
    pub fn get(&self, id: &KeyId, key: &ApiKey) -> Lookup {
        let Some(entry) = self.fresh(id) else {
            return Lookup::Miss;
        };
        match self.seen.of(key.expose()).matches(&entry.seen) {
            true => Lookup::Verified(entry.record),
            false => Lookup::Mismatch,
        }
    }

    /// The fingerprint of a Basic credential as sent, to `recall` it.
    pub fn sent(&self, credential: &[u8]) -> Sent {
        self.seen.sent(credential)
    }

    /// The record a credential sent so before verified against, if the
    /// lease holds and its key's entry is fresh.
    pub fn recall(&self, sent: &Sent) -> Option<Arc<KeyRecord>> {
        let id = self.sent.get(sent)?;
        self.fresh(&id).map(|entry| entry.record)
    }

    /// `id`'s entry, if the lease holds and it is fresh.
    fn fresh(&self, id: &KeyId) -> Option<Entry> {
        let now = self.now();
        if !self.leased(now) {
            return None;
        }
        let entry = self.entries.get(id)?;
        if now >= entry.stale_at {
            self.entries.remove(id);
            return None;
        }
        Some(entry)
    }

    /// Taken before a store read; `None` while suspended (the read is not cached).
    pub fn ticket(&self) -> Option<Ticket> {
        let epoch = self.epoch.load(SeqCst);
        self.leased(self.now()).then_some(Ticket(epoch))
    }

    /// Cache a record read from the store under `ticket`, once `key`
    /// verified against it.
    pub fn fill(&self, ticket: Ticket, record: &Arc<KeyRecord>, key: &ApiKey) {
        if self.epoch.load(SeqCst) != ticket.0 {
            return;
        }
        let now = self.now();
        let mut stale_at = now.saturating_add(self.max_age.as_nanos() as u64);
        if let Some(expires) = record.expires_at {
            // To the nanosecond: a rotated key's grace ends on its second,
            // not up to a second later.
            let left = (u128::from(expires) * 1_000_000_000).saturating_sub(unix_now_nanos());
            stale_at = stale_at.min(now.saturating_add(left.min(u128::from(u64::MAX)) as u64));
        }
        let id = record.id;
        self.entries.insert(
            id,
            Entry {
                record: record.clone(),
                seen: self.seen.of(key.expose()),
                stale_at,
            },
        );
        // An invalidation that ran between the check above and the insert
        // may have missed this entry: take it out again.
        if self.epoch.load(SeqCst) != ticket.0 {
            self.entries.remove(&id);
        }
    }

    /// `sent` carried the key `id`, which verified: `recall` it while
    /// `id`'s entry is served.
    pub fn remember(&self, sent: Sent, id: KeyId) {
        self.sent.insert(sent, id);
    }

    /// Forget these keys (revoked by id); a text that is no key id was never cached.
    pub fn invalidate_ids<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.epoch.fetch_add(1, SeqCst);
        for id in ids.into_iter().filter_map(KeyId::parse) {
            self.entries.remove(&id);
        }
    }

    /// Forget every key of these users.
    pub fn invalidate_users(&self, users: &[String]) {
        self.epoch.fetch_add(1, SeqCst);
        // A set: a leaked-key list can name thousands of users, and every
        // entry of the cache is looked up in it.
        let users: std::collections::HashSet<&str> = users.iter().map(String::as_str).collect();
        self.entries
            .retain(|_, e| !users.contains(e.record.user.as_str()));
    }

    pub fn invalidate_all(&self) {
        self.epoch.fetch_add(1, SeqCst);
        self.entries.clear();
        self.sent.clear();
    }

    /// The link to the fleet is lost: serve nothing, cache nothing, forget everything.
    pub fn suspend(&self) {
        self.lease_until.store(0, SeqCst);
        self.invalidate_all();
    }

    /// Serve entries until `until` (the lease a confirmed ping grants).
    pub fn renew(&self, until: Instant) {
        self.lease_until.store(self.nanos(until).max(1), SeqCst);
    }

    /// Until when the lease lets entries be served (`None`: suspended).
    pub fn leased_until(&self) -> Option<Instant> {
        match self.lease_until.load(SeqCst) {
            0 => None,
            nanos => Some(self.origin + Duration::from_nanos(nanos)),
        }
    }

    pub fn is_leased(&self) -> bool {
        self.leased(self.now())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn unix_now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{mint, DigestKey, Scope};

    /// A minted key: its record and the secret that verifies against it.
    struct Minted {
        record: Arc<KeyRecord>,
        key: ApiKey,
    }

    fn record(user: &str, ttl: Option<Duration>) -> Minted {
        let new = mint("kg", &DigestKey::random(), user, "", Scope::Full, ttl);
        Minted {
            record: Arc::new(new.record),
            key: new.key,
        }
    }

    fn served(c: &KeyCache, m: &Minted) -> bool {
        matches!(c.get(&m.record.id, &m.key), Lookup::Verified(_))
    }

    fn leased() -> Arc<KeyCache> {
        let c = KeyCache::new(100, Duration::from_secs(60));
        c.renew(Instant::now() + Duration::from_secs(60));
        c
    }

    #[test]
    fn serves_nothing_until_the_first_renewal() {
        let c = KeyCache::new(100, Duration::from_secs(60));
        assert!(c.ticket().is_none());
        c.renew(Instant::now() + Duration::from_secs(60));
        let r = record("ann", None);
        c.fill(c.ticket().unwrap(), &r.record, &r.key);
        assert!(served(&c, &r));
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let c = leased();
        let r = record("ann", None);
        let ticket = c.ticket().unwrap();
        c.invalidate_ids([r.record.id.as_str()]);
        c.fill(ticket, &r.record, &r.key);
        assert!(!served(&c, &r));
    }

    #[test]
    fn suspension_empties_and_refuses_until_renewed() {
        let c = leased();
        let r = record("ann", None);
        let ticket = c.ticket().unwrap();
        c.fill(ticket, &r.record, &r.key);
        c.suspend();
        assert!(!served(&c, &r));
        assert!(c.ticket().is_none());
        c.fill(ticket, &r.record, &r.key);
        c.renew(Instant::now() + Duration::from_secs(60));
        assert!(!served(&c, &r), "a pre-suspension read came back");
        assert!(c.is_empty());
    }

    #[test]
    fn a_lapsed_lease_serves_nothing() {
        let c = leased();
        let r = record("ann", None);
        c.fill(c.ticket().unwrap(), &r.record, &r.key);
        c.renew(Instant::now());
        assert!(!served(&c, &r));
    }

    #[test]
    fn users_are_invalidated_with_all_their_keys_only() {
        let c = leased();
        let (a1, a2, b) = (
            record("ann", None),
            record("ann", None),
            record("bob", None),
        );
        for r in [&a1, &a2, &b] {
            c.fill(c.ticket().unwrap(), &r.record, &r.key);
        }
        c.invalidate_users(&["ann".into()]);
        assert!(!served(&c, &a1));
        assert!(!served(&c, &a2));
        assert!(served(&c, &b));
    }

    #[test]
    fn entries_never_outlive_max_age_or_the_key() {
        let c = KeyCache::new(100, Duration::ZERO);
        c.renew(Instant::now() + Duration::from_secs(60));
        let r = record("ann", None);
        c.fill(c.ticket().unwrap(), &r.record, &r.key);
        assert!(!served(&c, &r), "max_age 0 must not serve");

        let c = leased();
        let new = mint("kg", &DigestKey::random(), "ann", "", Scope::Full, None);
        let mut expired = new.record;
        expired.expires_at = Some((unix_now_nanos() / 1_000_000_000) as u64);
        let r = Minted {
            record: Arc::new(expired),
            key: new.key,
        };
        c.fill(c.ticket().unwrap(), &r.record, &r.key);
        assert!(!served(&c, &r), "an expired key was served");
    }

    #[test]
    fn another_secret_for_a_cached_id_is_a_mismatch() {
        let c = leased();
        let r = record("ann", None);
        c.fill(c.ticket().unwrap(), &r.record, &r.key);
        let other = ApiKey::new(format!("{}x", r.key.expose()));
        assert!(matches!(c.get(&r.record.id, &other), Lookup::Mismatch));
        assert!(served(&c, &r), "the right secret still passes");
    }

    /// A credential as sent, remembered for `m` as a request would leave it.
    fn sent_for(c: &KeyCache, m: &Minted) -> Sent {
        let sent = c.sent(format!("Basic {}", m.key.expose()).as_bytes());
        c.remember(sent, m.record.id);
        sent
    }

    #[test]
    fn a_remembered_credential_is_recalled_only_while_its_entry_is_served() {
        let c = leased();
        let (r, other) = (record("ann", None), record("bob", None));
        c.fill(c.ticket().unwrap(), &r.record, &r.key);
        c.fill(c.ticket().unwrap(), &other.record, &other.key);
        let sent = sent_for(&c, &r);
        assert_eq!(c.recall(&sent).map(|rec| rec.id), Some(r.record.id));
        assert!(
            c.recall(&c.sent(b"Basic other")).is_none(),
            "an unseen credential"
        );

        c.invalidate_ids([r.record.id.as_str()]);
        assert!(c.recall(&sent).is_none(), "a revoked key was recalled");
        c.fill(c.ticket().unwrap(), &r.record, &r.key);
        assert!(c.recall(&sent).is_some(), "refilled: recalled again");

        c.invalidate_users(&["ann".into()]);
        assert!(
            c.recall(&sent).is_none(),
            "a revoked user's key was recalled"
        );
        c.fill(c.ticket().unwrap(), &r.record, &r.key);
        c.renew(Instant::now());
        assert!(c.recall(&sent).is_none(), "recalled after the lease lapsed");
        c.renew(Instant::now() + Duration::from_secs(60));
        let other_sent = sent_for(&c, &other);
        c.suspend();
        c.renew(Instant::now() + Duration::from_secs(60));
        c.fill(c.ticket().unwrap(), &other.record, &other.key);
        assert!(
            c.recall(&other_sent).is_none(),
            "suspension forgets the memo too"
        );
    }

    #[test]
    fn a_remembered_credential_dies_with_its_entry() {
        let c = KeyCache::new(100, Duration::ZERO);
        c.renew(Instant::now() + Duration::from_secs(60));
        let r = record("ann", None);
        c.fill(c.ticket().unwrap(), &r.record, &r.key);
        let sent = sent_for(&c, &r);
        assert!(c.recall(&sent).is_none(), "max_age 0 must not serve");
    }
}
