//! Pages, counts and bulk revocations over the indexes (`index.rs`): a
//! `Plan` picks the index a filter narrows most and the range of it to
//! walk, a `Scan` walks it, and each member is checked against the filter
//! by its tags and times before any record is read.

use super::index::{label_tag, prefix, time11, Entry, Pair, BUCKETS};
use super::scan::Scan;
use super::{unexpected, RedisStore};
use crate::keys::format::user_tag;
use crate::keys::{unix_now, KeyId, KeyRecord};
use crate::store::listing::{budget, KeyFilter, Listed, Order, Position, Sort, CLOCK_SKEW};
use crate::store::StoreError;

/// Keys removed per round of a bulk revocation.
const REVOKE_BATCH: usize = 1_000;
/// Most passes one revocation by user, filter or "all" makes (`revoke_where`).
const REVOKE_PASSES: usize = 4;

/// How one walk goes: over which sets, between which bounds, and what a
/// member must show to be worth reading its record.
struct Plan {
    pairs: Vec<Pair>,
    order: Order,
    /// `ZRANGEBYLEX` bounds: where the walk starts and where it ends.
    start: String,
    end: String,
    now: u64,
    user_tag: Option<String>,
    label_tag: Option<String>,
    expires_before: Option<u64>,
}

// === impl Plan ===

impl Plan {
    /// The user's pair when the filter names a user, else the label's,
    /// else the overall buckets; the walk starts after `after`, and in
    /// expiry order skips expired keys and stops at `expires_before`.
    fn new(filter: &KeyFilter, order: Order, after: Option<&Position>, now: u64) -> Plan {
        let pairs = match (&filter.user, &filter.label) {
            (Some(user), _) => vec![Pair::User(user_tag(user))],
            (None, Some(label)) => vec![Pair::Label(label_tag(label))],
            (None, None) => (0..BUCKETS).map(Pair::Bucket).collect(),
        };
        // Bounds as (inclusive?, text): the tightest of each side wins.
        let live = (order.sort == Sort::Expires).then(|| (true, time11(now + 1)));
        let before = match (order.sort, filter.expires_before) {
            (Sort::Expires, Some(t)) => Some((false, time11(t))),
            _ => None,
        };
        let (start, end) = match order.descending {
            false => {
                let after = after.map(|p| (false, format!("{}~", prefix(p))));
                (
                    tightest(after, live, true, "-"),
                    tightest(before, None, false, "+"),
                )
            }
            true => {
                let after = after.map(|p| (false, prefix(p)));
                (
                    tightest(after, before, false, "+"),
                    tightest(live, None, true, "-"),
                )
            }
        };
        Plan {
            pairs,
            order,
            start,
            end,
            now,
            user_tag: filter.user.as_deref().map(user_tag),
            label_tag: filter.label.as_deref().map(label_tag),
            expires_before: filter.expires_before,
        }
    }

    /// Only keys created up to `t` (a creation-order walk upwards).
    fn created_until(mut self, t: u64) -> Plan {
        self.end = format!("({}", time11(t + 1));
        self
    }

    fn scan<'a>(&self, store: &'a RedisStore, batch: usize) -> Scan<'a> {
        let sets = self
            .pairs
            .iter()
            .map(|p| (store.pair(p).2, store.pair_set(p, self.order.sort)))
            .collect();
        Scan::new(
            store,
            sets,
            self.order.descending,
            self.start.clone(),
            self.end.clone(),
            batch,
        )
    }

    /// Whether a member may be a live key of the filter (its record decides).
    fn may_match(&self, e: &Entry) -> bool {
        e.expires > self.now
            && self.expires_before.is_none_or(|t| e.expires < t)
            && self.user_tag.as_ref().is_none_or(|t| &e.user_tag == t)
            && self.label_tag.as_ref().is_none_or(|t| &e.label_tag == t)
    }
}

/// The tighter of two bounds (`low`: the larger is tighter), as a
/// `ZRANGEBYLEX` bound; `open` when there is none.
fn tightest(a: Option<(bool, String)>, b: Option<(bool, String)>, low: bool, open: &str) -> String {
    let pick = match (a, b) {
        (Some(a), Some(b)) => Some(if (a.1 > b.1) == low { a } else { b }),
        (a, b) => a.or(b),
    };
    match pick {
        Some((true, text)) => format!("[{text}"),
        Some((false, text)) => format!("({text}"),
        None => open.to_owned(),
    }
}

// === impl RedisStore (listing) ===

impl RedisStore {
    /// One page of live keys that match `filter`, after `after` in `order`.
    pub async fn page(
        &self,
        order: Order,
        filter: &KeyFilter,
        after: Option<&Position>,
        limit: usize,
    ) -> Result<Listed, StoreError> {
        let now = unix_now();
        let plan = Plan::new(filter, order, after, now);
        self.sweep(&plan.pairs, now).await?;
        let mut scan = plan.scan(self, limit * 3 / (2 * plan.pairs.len()) + 8);
        let (mut candidates, mut examined, mut last, mut more) = (Vec::new(), 0, None, false);
        while let Some(member) = scan.next().await? {
            if candidates.len() >= limit || examined >= budget(limit) {
                more = true;
                break;
            }
            examined += 1;
            // A member keygate did not write is passed over.
            let Some(e) = Entry::parse(&member, order.sort) else {
                continue;
            };
            last = Some(e.position(order.sort));
            if plan.may_match(&e) {
                candidates.push(e);
            }
        }
        let mut keys = Vec::with_capacity(candidates.len());
        let mut dead = Vec::new();
        let ids: Vec<KeyId> = candidates.iter().map(|e| e.id).collect();
        for (e, record) in candidates.into_iter().zip(self.records(&ids).await?) {
            match record {
                Some(r) if filter.matches(&r) && r.expires_at.is_none_or(|t| t > now) => {
                    keys.push(r)
                }
                Some(_) => {}
                None if e.created + CLOCK_SKEW < now => dead.push(e),
                None => {}
            }
        }
        self.unindex(&dead).await?;
        Ok(Listed {
            keys,
            next: if more { last } else { None },
        })
    }

    /// How many live keys match `filter`: a count of index members when
    /// the filter names no user or label, else a walk of their index.
    pub async fn count(&self, filter: &KeyFilter) -> Result<u64, StoreError> {
        let now = unix_now();
        let order = Order {
            sort: Sort::Expires,
            descending: false,
        };
        let plan = Plan::new(filter, order, None, now);
        if filter.user.is_none() && filter.label.is_none() {
            let cmds = plan
                .pairs
                .iter()
                .map(|p| {
                    let mut cmd = redis::cmd("ZLEXCOUNT");
                    cmd.arg(self.pair_set(p, Sort::Expires))
                        .arg(&plan.start)
                        .arg(&plan.end);
                    (self.pair(p).2, cmd)
                })
                .collect();
            let mut n = 0;
            for v in self.read_by_tag(cmds).await? {
                n += redis::from_redis_value::<u64>(v).map_err(|_| unexpected("ZLEXCOUNT"))?;
            }
            return Ok(n);
        }
        let mut scan = plan.scan(self, REVOKE_BATCH);
        let (mut n, mut batch) = (0, Vec::new());
        loop {
            let member = scan.next().await?;
            if let Some(e) = member
                .as_deref()
                .and_then(|m| Entry::parse(m, Sort::Expires))
            {
                if plan.may_match(&e) {
                    batch.push(e.id);
                }
            }
            if batch.len() >= REVOKE_BATCH || (member.is_none() && !batch.is_empty()) {
                let records = self.records(&batch).await?;
                n += records
                    .iter()
                    .flatten()
                    .filter(|r| filter.matches(r))
                    .count() as u64;
                batch.clear();
            }
            if member.is_none() {
                return Ok(n);
            }
        }
    }

    /// Revoke every live key that matches `filter` and was created before
    /// the call (give or take `CLOCK_SKEW`), in batches.
    /// The ids of the live keys it revoked.
    pub async fn revoke_matching(&self, filter: &KeyFilter) -> Result<Vec<KeyId>, StoreError> {
        let ids = self.revoke_where(filter).await?;
        self.replicated().await?;
        Ok(ids)
    }

    pub async fn revoke_users(&self, users: &[String]) -> Result<u64, StoreError> {
        let mut n = 0;
        for user in users {
            let filter = KeyFilter {
                user: Some(user.clone()),
                ..KeyFilter::default()
            };
            n += self.revoke_where(&filter).await?.len() as u64;
        }
        self.replicated().await?;
        Ok(n)
    }

    /// Passes over the index until one finds nothing: a rotation of a key
    /// that a pass listed, run before the pass deleted it, makes a
    /// successor (same user and label, created now) that the pass never
    /// saw; the next pass takes it. A rotation needs a live old key, so
    /// each pass leaves fewer; a few are plenty.
    async fn revoke_where(&self, filter: &KeyFilter) -> Result<Vec<KeyId>, StoreError> {
        let now = unix_now();
        let mut ids = self.revoke_pass(filter, now).await?;
        for _ in 1..REVOKE_PASSES {
            let more = self.revoke_pass(filter, now).await?;
            if more.is_empty() {
                break;
            }
            ids.extend(more);
        }
        Ok(ids)
    }

    /// One pass of `revoke_where`: the keys that match `filter` and were
    /// created by `now` (give or take `CLOCK_SKEW`), in batches.
    async fn revoke_pass(&self, filter: &KeyFilter, now: u64) -> Result<Vec<KeyId>, StoreError> {
        let order = Order {
            sort: Sort::Created,
            descending: false,
        };
        let plan = Plan::new(filter, order, None, now).created_until(now + CLOCK_SKEW);
        let mut scan = plan.scan(self, REVOKE_BATCH / plan.pairs.len().max(1));
        let (mut ids, mut batch) = (Vec::new(), Vec::new());
        loop {
            let member = scan.next().await?;
            if let Some(e) = member
                .as_deref()
                .and_then(|m| Entry::parse(m, Sort::Created))
            {
                if plan.may_match(&e) {
                    batch.push(e);
                }
            }
            if batch.len() >= REVOKE_BATCH || (member.is_none() && !batch.is_empty()) {
                let batch = std::mem::take(&mut batch);
                ids.extend(self.revoke_entries(batch, filter, now).await?);
            }
            if member.is_none() {
                return Ok(ids);
            }
        }
    }

    /// Delete the records of `entries` that match `filter` (read first
    /// when it names a user or label: tags can collide), then take them
    /// out of every index; answers the ids of the records it deleted.
    async fn revoke_entries(
        &self,
        mut entries: Vec<Entry>,
        filter: &KeyFilter,
        now: u64,
    ) -> Result<Vec<KeyId>, StoreError> {
        if filter.user.is_some() || filter.label.is_some() {
            let ids: Vec<KeyId> = entries.iter().map(|e| e.id).collect();
            let records = self.records(&ids).await?;
            let mut keep_entry = records.iter().map(|r| match r {
                Some(r) => filter.matches(r),
                // Gone already: only its index members are left to remove.
                None => true,
            });
            entries.retain(|_| keep_entry.next().unwrap_or(false));
        }
        let deleted = self.delete_records(entries.iter().map(|e| e.id)).await?;
        let mut gone = Vec::with_capacity(entries.len());
        let mut ids = Vec::new();
        for (e, deleted) in entries.into_iter().zip(deleted) {
            if deleted {
                ids.push(e.id);
                gone.push(e);
            } else if e.created + CLOCK_SKEW < now {
                gone.push(e);
            }
        }
        self.unindex(&gone).await?;
        Ok(ids)
    }

    pub async fn revoke_ids(&self, ids: &[KeyId]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let entries: Vec<Entry> = self
            .records(ids)
            .await?
            .iter()
            .flatten()
            .map(Entry::of)
            .collect();
        let n = self
            .delete_records(ids.iter().copied())
            .await?
            .into_iter()
            .filter(|&d| d)
            .count() as u64;
        self.unindex(&entries).await?;
        self.replicated().await?;
        Ok(n)
    }

    /// The live records of `ids`, in their order (`None`: no such key).
    pub(super) async fn records(
        &self,
        ids: &[KeyId],
    ) -> Result<Vec<Option<KeyRecord>>, StoreError> {
        let cmds = ids
            .iter()
            .map(|id| {
                let mut cmd = redis::cmd("HGETALL");
                cmd.arg(self.record(id.as_str()));
                (super::layout::tag_of(id.as_str()).to_owned(), cmd)
            })
            .collect();
        let answers = self.read_by_tag(cmds).await?;
        ids.iter()
            .zip(answers)
            .map(|(id, v)| {
                let fields = redis::from_redis_value(v).map_err(|_| unexpected("HGETALL"))?;
                super::layout::parse(id.as_str(), fields)
            })
            .collect()
    }

    /// DEL each record; whether each existed. Safe to repeat: deleting
    /// again deletes nothing.
    async fn delete_records(
        &self,
        ids: impl Iterator<Item = KeyId>,
    ) -> Result<Vec<bool>, StoreError> {
        let cmds = ids
            .map(|id| {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(self.record(id.as_str()));
                (super::layout::tag_of(id.as_str()).to_owned(), cmd)
            })
            .collect();
        self.by_tag(cmds)
            .await?
            .into_iter()
            .map(|v| {
                redis::from_redis_value::<u64>(v)
                    .map(|n| n > 0)
                    .map_err(|_| unexpected("DEL").into())
            })
            .collect()
    }
}
