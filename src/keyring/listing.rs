//! Reading keys and the audit log back: never a secret nor a digest leaves
//! through a listing's views (`KeyRecord::view`). Pages cost what they
//! show (`store::listing`); their cursors are signed (`cursor.rs`).

use std::time::Duration;

use super::cursor::Cursors;
use super::{Keyring, Revocation};
use crate::audit::Event;
use crate::keys::{KeyId, KeyRecord};
use crate::store::{AuditFrom, KeyFilter, Order, StoreError};

/// What a listing shows, and in which order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub filter: KeyFilter,
    pub order: Order,
}

/// One page of keys; `next_cursor` asks for the next (`None`: the last).
/// A page may hold fewer keys than asked for, even none, and still have a
/// next one: only a missing `next_cursor` ends the listing.
#[derive(Debug)]
pub struct Page {
    pub keys: Vec<KeyRecord>,
    pub next_cursor: Option<String>,
}

/// Why a page cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The cursor was not issued by this deployment for this listing.
    #[error("cursor: not a cursor of this listing (changed, or made for other filters or another order); list again without it")]
    Cursor,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of the audit log, newest first; `before` of the next.
#[derive(Debug)]
pub struct AuditPage {
    pub events: Vec<Event>,
    pub before: Option<String>,
}

// === impl Keyring (listing) ===

impl Keyring {
    /// The live record of key `id`, if there is one.
    pub async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.0.store.get(id.as_str()).await
    }

    /// Live keys, newest first; of one user if given. Reads every page:
    /// for a user's own keys and the command line, not for a grid.
    pub async fn list(&self, user: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        self.0.store.list(user).await
    }

    /// At most `limit` keys of `listing`, from where `cursor` says (the
    /// `next_cursor` of the previous page of the same listing).
    pub async fn page(
        &self,
        listing: &Listing,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, PageError> {
        let cursors = Cursors::new(self.derive_secret("list-cursor"));
        let after = match cursor {
            Some(c) => Some(cursors.read(listing, c).ok_or(PageError::Cursor)?),
            None => None,
        };
        let listed = self
            .0
            .store
            .page(listing.order, &listing.filter, after.as_ref(), limit)
            .await?;
        Ok(Page {
            keys: listed.keys,
            next_cursor: listed.next.map(|at| cursors.issue(listing, &at)),
        })
    }

    /// How many live keys `what` would revoke, revoking nothing (a dry run).
    pub async fn would_revoke(&self, what: &Revocation) -> Result<u64, StoreError> {
        let store = &self.0.store;
        // Counted as `revoke` counts: each id and user once. (Only those are
        // copied: leaked secrets are not duplicated in memory for a count.)
        let distinct;
        let what = match what {
            Revocation::Ids(_) | Revocation::Users(_) => {
                distinct = what.clone().distinct();
                &distinct
            }
            other => other,
        };
        Ok(match what {
            Revocation::Ids(ids) => {
                let mut n = 0;
                for id in ids {
                    n += u64::from(store.get(id.as_str()).await?.is_some());
                }
                n
            }
            Revocation::Users(users) => {
                let mut n = 0;
                for u in users {
                    let filter = KeyFilter {
                        user: Some(u.clone()),
                        ..KeyFilter::default()
                    };
                    n += store.count(&filter).await?;
                }
                n
            }
            Revocation::Leaked(secrets) => self.live_ids_of(secrets).await?.len() as u64,
            Revocation::Matching(filter) => store.count(filter).await?,
            Revocation::All => store.count(&KeyFilter::default()).await?,
        })
    }

    /// Audit events of every instance from `from`, oldest first, at most
    /// `limit`, each with its position (`ms-seq`, for `AuditFrom::After`).
    pub async fn audit_from(
        &self,
        from: AuditFrom,
        limit: usize,
    ) -> Result<Vec<(String, Event)>, StoreError> {
        self.0.store.audit_from(from, limit).await
    }

    /// The latest audit events, newest first: at most `limit` from before
    /// `before` (the `before` of the previous page). `None` when `before`
    /// is not a position (`<ms>-<seq>`).
    pub async fn audit_page(
        &self,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Option<AuditPage>, StoreError> {
        let before = match before {
            Some(text) => match audit_position(text) {
                Some(at) => Some(at),
                None => return Ok(None),
            },
            None => None,
        };
        let mut events = self.0.store.audit_before(before, limit + 1).await?;
        let more = events.len() > limit;
        events.truncate(limit);
        let before = more
            .then(|| events.last().map(|(id, _)| id.clone()))
            .flatten();
        Ok(Some(AuditPage {
            events: events.into_iter().map(|(_, e)| e).collect(),
            before,
        }))
    }

    /// One more key made by `user` within the hour, against `per_hour`
    /// (`self_service.creates_per_hour`), counted in the store before the
    /// key is made, so that concurrent ones on any instance cannot pass the
    /// limit: what to give back (`give_back_creation`) if no key is made,
    /// or, past the limit (not counted then), how long to wait.
    pub async fn count_creation(
        &self,
        user: &str,
        per_hour: u32,
    ) -> Result<Result<Counted, Duration>, StoreError> {
        let (count, left) = self.0.store.count_in_window(user, CREATION_WINDOW).await?;
        if count > u64::from(per_hour) {
            self.give_back_in_window(user, left).await;
            return Ok(Err(left.max(Duration::from_secs(1))));
        }
        Ok(Ok(Counted(left)))
    }

    /// A creation `count_creation` counted made no key: only what was made
    /// counts (a script retrying a 409 must not use up its owner's hour).
    pub async fn give_back_creation(&self, user: &str, counted: Counted) {
        self.give_back_in_window(user, counted.0).await;
    }

    /// Take back a count of `user` (`left` as the count answered it). If
    /// the store cannot, the count stays (fail closed: the user waits, the
    /// limit holds); logged.
    async fn give_back_in_window(&self, user: &str, left: Duration) {
        if let Err(e) = self.0.store.give_back_in_window(user, left).await {
            tracing::warn!(error = %e, user, "could not give back a refused creation's count; it counts until the hour ends");
        }
    }
}

/// The window `self_service.creates_per_hour` counts in.
const CREATION_WINDOW: Duration = Duration::from_secs(3600);

/// A creation counted against the hourly limit: how long its window had
/// left when it was counted, which is how its give-back finds that window.
#[derive(Debug, Clone, Copy)]
#[must_use = "a counted creation that makes no key is given back"]
pub struct Counted(Duration);

/// `<ms>-<seq>`, as a stream writes its ids.
pub fn audit_position(text: &str) -> Option<(u64, u64)> {
    let (ms, seq) = text.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(ms) && digits(seq)).then(|| Some((ms.parse().ok()?, seq.parse().ok()?)))?
}
