//! Memory that grows with what clients send is bounded (docs/memory.md):
//! the tables of client addresses behind the failed-authentication limit
//! hold at most `rate_limit.max_tracked_clients` addresses, however many
//! distinct addresses fail; a good key is never refused for it.

use http::{Request, StatusCode};

use crate::support::body;
use crate::support::client::{self, send, Answer, HttpsClient};
use crate::support::gateway::{builder, TestGateway};
use crate::support::upstream::Upstream;

const TRACKED: usize = 40;
const CLIENTS: usize = 400;

async fn from(c: &HttpsClient, gw: &TestGateway, client: &str, key: &str) -> Answer {
    let req = Request::get(gw.url("/"))
        .header("x-forwarded-for", client)
        .header("apikey", key)
        .body(body::empty())
        .unwrap();
    send(c, req).await
}

#[tokio::test]
async fn failed_authentications_remember_at_most_max_tracked_clients_addresses() {
    let up = Upstream::start().await;
    // One failure a minute per address: nothing a client did here recovers
    // during the test, so no address can be pruned to make room.
    let gw = builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .set("listen", "trusted_proxies = [\"127.0.0.1/32\"]")
        .set("rate_limit", "failed_auth_per_minute = 1")
        .set("rate_limit", &format!("max_tracked_clients = {TRACKED}"))
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("owner").await;

    let mut statuses = Vec::new();
    for i in 0..CLIENTS {
        // One /64 each: an IPv6 client counts by its /64.
        let client = format!("2001:db8:{:x}::1", i + 1);
        statuses.push(from(&c, &gw, &client, "kg_guess").await);
    }
    let refused = statuses
        .iter()
        .filter(|a| a.status == StatusCode::UNAUTHORIZED)
        .count();
    let limited: Vec<_> = statuses
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        refused, TRACKED,
        "each of the first {TRACKED} addresses gets its one 401 and is remembered"
    );
    assert_eq!(
        limited.len(),
        CLIENTS - TRACKED,
        "every further address is limited: the table is full"
    );
    assert!(limited
        .iter()
        .all(|a| a.headers.contains_key("retry-after")));
    // The first addresses are still remembered (their second try is limited),
    // and a good key from a new address is not affected by the full table.
    assert_eq!(
        from(&c, &gw, "2001:db8:1::1", "kg_guess").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let owner = from(&c, &gw, "2001:db8:ffff::1", &key).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.text());
}

#[test]
fn max_tracked_clients_is_validated_by_name() {
    let (code, err) = crate::config_check::check_text("[rate_limit]\nmax_tracked_clients = 0\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("rate_limit.max_tracked_clients: 0 is not between 1 and 100000000"),
        "{err}"
    );
}
