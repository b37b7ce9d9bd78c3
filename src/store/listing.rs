//! What a listing asks of a store, the same for both stores: which keys
//! (`KeyFilter`), in which order (`Order`), from where (`Position`), and the
//! page the store answers (`Listed`).
//!
//! A page costs time in proportion to its size, never to the number of
//! keys: each store keeps its keys in indexes ordered by creation and by
//! expiry, overall, per user and per label, and a page walks one of them
//! from the position where the previous page stopped. The user filter picks
//! the user's index, else the label filter the label's, else the overall
//! one; the filters that index cannot answer (a label within a user's keys,
//! `expires_before` in creation order) are checked entry by entry, at most
//! `SCAN_BUDGET` entries per page. A page that reaches that bound comes back
//! short (even empty) with a position to go on from: only a page without
//! one is the last.

use crate::keys::{KeyId, KeyRecord};

/// Which keys a listing shows, a count counts or a revocation revokes;
/// every field narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFilter {
    pub user: Option<String>,
    /// The exact label.
    pub label: Option<String>,
    /// Expiring before this unix second (keys that never expire do not match).
    pub expires_before: Option<u64>,
}

// === impl KeyFilter ===

impl KeyFilter {
    pub fn matches(&self, r: &KeyRecord) -> bool {
        self.user.as_ref().is_none_or(|u| &r.user == u)
            && self.label.as_ref().is_none_or(|l| &r.label == l)
            && self
                .expires_before
                .is_none_or(|t| r.expires_at.is_some_and(|e| e < t))
    }

    /// No field set: every key.
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.label.is_none() && self.expires_before.is_none()
    }
}

/// What a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Created,
    /// Keys that never expire come last in ascending order.
    Expires,
}

/// A sort and its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub sort: Sort,
    pub descending: bool,
}

impl Default for Order {
    /// Newest first.
    fn default() -> Self {
        Order {
            sort: Sort::Created,
            descending: true,
        }
    }
}

/// `Position`'s time for a key that never expires: after every other.
pub const NEVER: u64 = u64::MAX;

/// A place in an order: the sort's time first (creation or expiry, unix
/// seconds, `NEVER`), the other time second, the id last. Every index of
/// one sort orders its keys by this, so a position found in one index (or
/// in one bucket of it) is a place in every other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub first: u64,
    pub second: u64,
    pub id: KeyId,
}

// === impl Position ===

impl Position {
    /// Where a key with these times stands in `sort`.
    pub fn of(sort: Sort, created: u64, expires: Option<u64>, id: KeyId) -> Position {
        let expires = expires.unwrap_or(NEVER);
        let (first, second) = match sort {
            Sort::Created => (created, expires),
            Sort::Expires => (expires, created),
        };
        Position { first, second, id }
    }

    /// (created, expires) back from a position in `sort`.
    pub fn times(&self, sort: Sort) -> (u64, Option<u64>) {
        let (created, expires) = match sort {
            Sort::Created => (self.first, self.second),
            Sort::Expires => (self.second, self.first),
        };
        (created, (expires != NEVER).then_some(expires))
    }
}

/// One page: the keys, and where the next page starts (`None`: this was the last).
#[derive(Debug)]
pub struct Listed {
    pub keys: Vec<KeyRecord>,
    pub next: Option<Position>,
}

/// Entries a page may examine (at least twice its size): the bound on the
/// work of a filter that the chosen index cannot answer.
pub const SCAN_BUDGET: usize = 5_000;

/// How far the clocks of instances may disagree, in seconds. An index entry
/// whose record is missing is removed only once its key is older than this
/// (a younger one may belong to a creation still under way on another
/// instance); a revocation of "everything" covers keys created up to this
/// far in the future of its own clock.
pub const CLOCK_SKEW: u64 = 60;

/// How many entries a page may examine.
pub fn budget(limit: usize) -> usize {
    SCAN_BUDGET.max(limit.saturating_mul(2))
}
