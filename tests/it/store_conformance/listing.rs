//! The listing contract, the same for every store: each filter and order
//! walked page by page gives exactly the matching live keys in order, once
//! each, whatever the page size; counts agree; a cursor outlives the key it
//! stopped at; a filtered revocation removes exactly what it matches.

use std::collections::HashSet;
use std::time::Duration;

use keygate::keys::{self, unix_now, KeyId, KeyRecord, Scope};
use keygate::store::{KeyFilter, Order, Position, Sort, Store};

use super::digest_key;

const USERS: [&str; 4] = ["lina", "omar", "pia", "quinn"];
const LABELS: [&str; 4] = ["ci", "laptop", "", "<b>bold</b> & \"quoted\""];

/// A key of `user` with these times (unix seconds; `None`: never expires).
pub(crate) fn dated(user: &str, label: &str, created: u64, expires: Option<u64>) -> KeyRecord {
    let mut r = keys::mint("kg", &digest_key(), user, label, Scope::Full, None).record;
    r.created_at = created;
    r.expires_at = expires;
    r
}

fn orders() -> Vec<Order> {
    [Sort::Created, Sort::Expires]
        .into_iter()
        .flat_map(|sort| [false, true].map(|descending| Order { sort, descending }))
        .collect()
}

fn filters(now: u64) -> Vec<KeyFilter> {
    let f = |user: Option<&str>, label: Option<&str>, before: Option<u64>| KeyFilter {
        user: user.map(str::to_owned),
        label: label.map(str::to_owned),
        expires_before: before,
    };
    vec![
        f(None, None, None),
        f(Some("omar"), None, None),
        f(None, Some("ci"), None),
        f(None, Some(LABELS[3]), None),
        f(Some("pia"), Some("laptop"), None),
        f(None, None, Some(now + 10 * 86_400)),
        f(Some("lina"), None, Some(now + 20 * 86_400)),
        f(None, Some(""), Some(now + 40 * 86_400)),
        f(Some("nobody"), None, None),
        f(None, Some("no such label"), None),
    ]
}

/// Every page of `filter` in `order`, `limit` at a time: the ids in order.
pub(crate) async fn walk(
    store: &Store,
    order: Order,
    filter: &KeyFilter,
    limit: usize,
) -> Vec<KeyId> {
    let (mut ids, mut after) = (Vec::new(), None::<Position>);
    for _ in 0..10_000 {
        let page = store
            .page(order, filter, after.as_ref(), limit)
            .await
            .unwrap();
        assert!(
            page.keys.len() <= limit,
            "a page of {} over {limit}",
            page.keys.len()
        );
        ids.extend(page.keys.iter().map(|r| r.id));
        match page.next {
            Some(next) => {
                assert!(after.is_none_or(|a| a != next), "the walk did not move");
                after = Some(next);
            }
            None => return ids,
        }
    }
    panic!("10,000 pages and no end");
}

/// What a listing must show: the live keys of `filter`, in `order`.
fn expected(keys: &[KeyRecord], order: Order, filter: &KeyFilter) -> Vec<KeyId> {
    let now = unix_now();
    let mut want: Vec<&KeyRecord> = keys
        .iter()
        .filter(|r| filter.matches(r) && r.expires_at.is_none_or(|e| e > now))
        .collect();
    want.sort_by_key(|r| Position::of(order.sort, r.created_at, r.expires_at, r.id));
    if order.descending {
        want.reverse();
    }
    want.iter().map(|r| r.id).collect()
}

pub(crate) async fn listing_conformance(store: &Store) {
    store.revoke_all().await.unwrap();
    let now = unix_now();
    let day = 86_400;
    // 48 keys: four users, four labels (one with markup), creation times
    // with ties, expiries with ties, some never, one expired a minute ago.
    let mut keys = Vec::new();
    for i in 0..48u64 {
        let user = USERS[(i % 4) as usize];
        let label = LABELS[((i / 4) % 4) as usize];
        let created = now - 3_600 - (i % 7) * 100;
        let expires = match i % 5 {
            0 => None,
            1 => Some(now + 5 * day),
            n => Some(now + (n + i) * day),
        };
        keys.push(dated(user, label, created, expires));
    }
    let expired = dated("omar", "ci", now - 7_200, Some(now + 1));
    for r in keys.iter().chain([&expired]) {
        store.insert(r).await.unwrap();
    }
    // The short one expires (Redis: its TTL) and must not be listed after.
    crate::support::eventually(
        "a 1 s key expires",
        60,
        Duration::from_millis(100),
        || async {
            store
                .get(expired.id.as_str())
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;

    for filter in filters(now) {
        let want_count = expected(&keys, Order::default(), &filter).len() as u64;
        assert_eq!(
            store.count(&filter).await.unwrap(),
            want_count,
            "count of {filter:?}"
        );
        for order in orders() {
            let want = expected(&keys, order, &filter);
            for limit in [1, 5, 100] {
                let got = walk(store, order, &filter, limit).await;
                assert_eq!(got, want, "{filter:?} {order:?} by {limit}");
            }
        }
    }

    // A cursor outlives the key it stopped at (revoked meanwhile), and a
    // page lists what is live now, never an error for what is gone.
    let order = Order::default();
    let all = KeyFilter::default();
    let first = store.page(order, &all, None, 5).await.unwrap();
    let cursor = first.next.expect("more than 5 keys");
    let stopped_at = first.keys[4].id;
    assert_eq!(
        store
            .revoke_ids(&[stopped_at, first.keys[3].id])
            .await
            .unwrap(),
        2
    );
    let second = store.page(order, &all, Some(&cursor), 5).await.unwrap();
    let want = expected(&keys, order, &all);
    assert_eq!(
        second.keys.iter().map(|r| r.id).collect::<Vec<_>>(),
        want[5..10].to_vec()
    );
    keys.retain(|r| r.id != stopped_at && r.id != first.keys[3].id);

    // A filtered revocation removes exactly the keys it matches.
    let ci_of_lina = KeyFilter {
        user: Some("lina".into()),
        label: Some("ci".into()),
        expires_before: None,
    };
    let doomed: HashSet<KeyId> = expected(&keys, order, &ci_of_lina).into_iter().collect();
    assert!(!doomed.is_empty());
    assert_eq!(
        store.revoke_matching(&ci_of_lina).await.unwrap(),
        doomed.len() as u64
    );
    keys.retain(|r| !doomed.contains(&r.id));
    assert_eq!(
        walk(store, order, &all, 7).await,
        expected(&keys, order, &all)
    );
    let soon = KeyFilter {
        expires_before: Some(now + 6 * day),
        ..KeyFilter::default()
    };
    let n = expected(&keys, order, &soon).len() as u64;
    assert!(n > 0);
    assert_eq!(store.revoke_matching(&soon).await.unwrap(), n);
    keys.retain(|r| !soon.matches(r));
    assert_eq!(
        walk(store, order, &all, 100).await,
        expected(&keys, order, &all)
    );
    assert_eq!(store.count(&all).await.unwrap(), keys.len() as u64);
    assert_eq!(store.revoke_all().await.unwrap(), keys.len() as u64);
    assert_eq!(walk(store, order, &all, 100).await, Vec::<KeyId>::new());
}

/// A filter the chosen index cannot answer (`expires_before` in creation
/// order) over more keys than a page may examine: pages come back short,
/// even empty, but with a cursor, and following it finds the one match.
pub(crate) async fn a_scan_is_bounded_but_complete(store: &Store) {
    use futures_util::stream::{self, StreamExt};
    let now = unix_now();
    let rare = dated("early", "", now - 86_400, Some(now + 3_600));
    store.insert(&rare).await.unwrap();
    stream::iter(0..6_000u64)
        .for_each_concurrent(64, |i| async move {
            let r = dated(
                &format!("late{}", i % 50),
                "",
                now - 60,
                Some(now + 30 * 86_400),
            );
            store.insert(&r).await.unwrap();
        })
        .await;
    let soon = KeyFilter {
        expires_before: Some(now + 7_200),
        ..KeyFilter::default()
    };
    let order = Order::default();
    let first = store.page(order, &soon, None, 10).await.unwrap();
    assert!(first.keys.is_empty(), "the only match is the oldest key");
    assert!(
        first.next.is_some(),
        "a short page still says where to go on"
    );
    assert_eq!(walk(store, order, &soon, 10).await, vec![rare.id]);
    // In expiry order the same filter is a range: one page.
    let by_expiry = Order {
        sort: Sort::Expires,
        descending: false,
    };
    let page = store.page(by_expiry, &soon, None, 10).await.unwrap();
    assert_eq!(page.keys.len(), 1);
    assert!(page.next.is_none());
}
