//! The memory store's indexes: every key by creation and by expiry,
//! overall, per user and per label (Redis keeps the same, see
//! `store/redis/index.rs`), so a page walks only what it shows.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use crate::keys::{KeyId, KeyRecord};
use crate::store::listing::{budget, KeyFilter, Order, Position, Sort};

/// One scope's keys in both orders.
#[derive(Default)]
pub struct Index {
    by_created: BTreeSet<Position>,
    by_expiry: BTreeSet<Position>,
}

#[derive(Default)]
pub struct Indexes {
    all: Index,
    by_user: HashMap<String, Index>,
    by_label: HashMap<String, Index>,
}

// === impl Index ===

impl Index {
    fn add(&mut self, r: &KeyRecord) {
        self.by_created.insert(position(Sort::Created, r));
        self.by_expiry.insert(position(Sort::Expires, r));
    }

    fn remove(&mut self, r: &KeyRecord) {
        self.by_created.remove(&position(Sort::Created, r));
        self.by_expiry.remove(&position(Sort::Expires, r));
    }

    fn is_empty(&self) -> bool {
        self.by_created.is_empty()
    }

    fn of(&self, sort: Sort) -> &BTreeSet<Position> {
        match sort {
            Sort::Created => &self.by_created,
            Sort::Expires => &self.by_expiry,
        }
    }
}

// === impl Indexes ===

impl Indexes {
    pub fn add(&mut self, r: &KeyRecord) {
        self.all.add(r);
        self.by_user.entry(r.user.clone()).or_default().add(r);
        self.by_label.entry(r.label.clone()).or_default().add(r);
    }

    pub fn remove(&mut self, r: &KeyRecord) {
        self.all.remove(r);
        for (map, name) in [(&mut self.by_user, &r.user), (&mut self.by_label, &r.label)] {
            if let Some(index) = map.get_mut(name) {
                index.remove(r);
                if index.is_empty() {
                    map.remove(name);
                }
            }
        }
    }

    /// The index that answers the most of `filter`: the user's, else the
    /// label's, else all keys; `None` when no key can match.
    fn choose(&self, filter: &KeyFilter) -> Option<&Index> {
        match (&filter.user, &filter.label) {
            (Some(user), _) => self.by_user.get(user),
            (None, Some(label)) => self.by_label.get(label),
            (None, None) => Some(&self.all),
        }
    }

    /// The ids of the chosen index (`choose`), in creation order.
    pub fn chosen(&self, filter: &KeyFilter) -> Option<impl Iterator<Item = KeyId> + '_> {
        Some(self.choose(filter)?.by_created.iter().map(|p| p.id))
    }

    /// Walk the chosen index in `order` after `after`, handing each id to
    /// `visit`, which answers how many keys the page holds so far. Stops
    /// at `limit` keys or at the page's budget of entries, answering the
    /// last position examined when entries remain, else `None`.
    pub fn walk(
        &self,
        order: Order,
        filter: &KeyFilter,
        after: Option<&Position>,
        now: u64,
        limit: usize,
        mut visit: impl FnMut(KeyId) -> usize,
    ) -> Option<Position> {
        let set = self.choose(filter)?.of(order.sort);
        // In expiry order, `expires_before` and liveness are bounds of the walk.
        let (low, high) = match (order.sort, filter.expires_before) {
            (Sort::Expires, until) => (Some(before(now.saturating_add(1))), until.map(before)),
            (Sort::Created, _) => (None, None),
        };
        let entries: Box<dyn Iterator<Item = &Position>> = if order.descending {
            let top = match (after, high) {
                (Some(a), Some(h)) => Bound::Excluded(*a.min(&h)),
                (Some(a), None) => Bound::Excluded(*a),
                (None, Some(h)) => Bound::Excluded(h),
                (None, None) => Bound::Unbounded,
            };
            let bottom = low.map_or(Bound::Unbounded, Bound::Included);
            Box::new(range(set, bottom, top).rev())
        } else {
            let bottom = match (after, low) {
                (Some(a), Some(l)) if *a >= l => Bound::Excluded(*a),
                (Some(a), None) => Bound::Excluded(*a),
                (_, Some(l)) => Bound::Included(l),
                (None, None) => Bound::Unbounded,
            };
            let top = high.map_or(Bound::Unbounded, Bound::Excluded);
            Box::new(range(set, bottom, top))
        };
        let (mut examined, mut held, mut last) = (0, 0, None);
        for p in entries {
            if held >= limit || examined >= budget(limit) {
                return last;
            }
            examined += 1;
            last = Some(*p);
            held = visit(p.id);
        }
        None
    }

    /// Ids of keys expired at `now`.
    pub fn expired(&self, now: u64) -> Vec<KeyId> {
        self.all
            .by_expiry
            .range(..before(now.saturating_add(1)))
            .map(|p| p.id)
            .collect()
    }
}

/// A `BTreeSet::range` that is empty rather than a panic when the bounds cross.
fn range(
    set: &BTreeSet<Position>,
    low: Bound<Position>,
    high: Bound<Position>,
) -> std::collections::btree_set::Range<'_, Position> {
    let crossed = match (low, high) {
        (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) => l > h,
        _ => false,
    };
    if crossed {
        let nowhere = before(0);
        return set.range(nowhere..nowhere);
    }
    set.range((low, high))
}

/// The position before every key whose sort time is `time`.
fn before(time: u64) -> Position {
    Position {
        first: time,
        second: 0,
        id: KeyId::parse("000000000000").expect("a valid id"),
    }
}

fn position(sort: Sort, r: &KeyRecord) -> Position {
    Position::of(sort, r.created_at, r.expires_at, r.id)
}
