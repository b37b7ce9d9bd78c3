//! Leaked keys die by themselves: secret scanners' reports, revocation by
//! possession, the shipped detection rule, and signed webhooks to the keys'
//! owners. Real processes on loopback: Redis, keygate instances sharing it,
//! a scanner's key list, a webhook receiver.

mod config;
mod detect;
mod possession;
mod report;
mod successors;
pub(crate) mod webhooks;

use http::{Request, StatusCode};

use crate::support::body;
use crate::support::client::{self, send, Answer, HttpsClient};
use crate::support::gateway::{builder, Builder, TestGateway};
use crate::support::redis::RedisServer;
use crate::support::scanner::{key_list, Scanner};
use crate::support::upstream::Upstream;

/// keygate instances sharing one Redis, each with a client.
pub(crate) struct Fleet {
    pub gateways: Vec<TestGateway>,
    pub clients: Vec<HttpsClient>,
    /// The scanner whose key `[leaks] public_keys_file` lists.
    pub scanner: Scanner,
    _dir: tempfile::TempDir,
    pub redis: RedisServer,
    _upstream: Upstream,
}

/// `n` instances on one Redis (namespace `ns`), validation cache on, the
/// GitHub intake on with `scanner`'s key in a file; `configure` adds to each.
pub(crate) async fn fleet(n: usize, ns: &str, configure: impl Fn(&mut Builder)) -> Fleet {
    let f = fleet_on(RedisServer::start(), n, ns, configure).await;
    f.await_joined().await;
    f
}

/// The same on a Redis the caller prepared (an ACL user, say: `configure`
/// then points `store.url` at it), returned as soon as the instances
/// started, joined to the fleet or not (see `Fleet::await_joined`).
pub(crate) async fn fleet_on(
    redis: RedisServer,
    n: usize,
    ns: &str,
    configure: impl Fn(&mut Builder),
) -> Fleet {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let scanner = Scanner::new("test-key-1");
    let keys = dir.path().join("scanner-keys.json");
    std::fs::write(&keys, key_list(&[&scanner])).unwrap();
    let mut gateways = Vec::new();
    for _ in 0..n {
        let mut b = builder(&upstream.url());
        b.redis(&redis, dir.path(), ns)
            .set("auth", "anonymous = \"reject\"")
            .set("cache", "lease = \"1s\"")
            .set("rate_limit", "failed_auth_per_minute = 0")
            .set("leaks", "github = true")
            .set(
                "leaks",
                &format!("public_keys_file = \"{}\"", keys.display()),
            );
        configure(&mut b);
        gateways.push(b.start().await);
    }
    let clients: Vec<HttpsClient> = gateways.iter().map(|g| client::h1(&g.ca)).collect();
    Fleet {
        gateways,
        clients,
        scanner,
        _dir: dir,
        redis,
        _upstream: upstream,
    }
}

impl Fleet {
    /// Wait until every instance has joined the fleet (its cache is on).
    pub async fn await_joined(&self) {
        for (g, c) in self.gateways.iter().zip(&self.clients) {
            g.await_fleet(c).await;
        }
    }

    /// The status a request with `key` gets from instance `i`.
    pub async fn status(&self, i: usize, key: &str) -> StatusCode {
        status(&self.clients[i], &self.gateways[i], key).await
    }

    /// POST `body` to `path` on instance `i` signed by this fleet's scanner
    /// with GitHub's headers.
    pub async fn report(&self, i: usize, body: &str) -> Answer {
        let sig = self.scanner.sign(body.as_bytes());
        post_report(
            &self.clients[i],
            &self.gateways[i],
            "github",
            &self.scanner.key_id,
            &sig,
            body,
        )
        .await
    }
}

/// The status of `GET /` with `key` as Basic credentials.
pub(crate) async fn status(c: &HttpsClient, gw: &TestGateway, key: &str) -> StatusCode {
    let req = Request::get(gw.url("/"))
        .header("authorization", basic(key))
        .body(body::empty())
        .unwrap();
    crate::support::within(5, "an answer, never a hang", send(c, req))
        .await
        .status
}

/// `text` with the character at `at` changed to another one (never the
/// same text: a key whose character was already `a` gets `b`).
pub(super) fn typo(text: &str, at: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

pub(crate) fn basic(key: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("apikey:{key}"))
    )
}

/// POST a report to `/.keygate/leaks/{scanner}` with that scanner's headers.
pub(super) async fn post_report(
    c: &HttpsClient,
    gw: &TestGateway,
    scanner: &str,
    key_id: &str,
    signature: &str,
    body: &str,
) -> Answer {
    let prefix = match scanner {
        "github" => "Github",
        _ => "Gitlab",
    };
    let req = Request::post(gw.url(&format!("/.keygate/leaks/{scanner}")))
        .header("content-type", "application/json")
        .header(format!("{prefix}-Public-Key-Identifier"), key_id)
        .header(format!("{prefix}-Public-Key-Signature"), signature)
        .body(body::full(body.to_owned()))
        .unwrap();
    crate::support::within(30, "a report is answered", send(c, req)).await
}

/// The audit events of `action` (every instance's, from the shared store).
pub(crate) async fn audit_events(
    c: &HttpsClient,
    gw: &TestGateway,
    action: &str,
) -> Vec<serde_json::Value> {
    let a =
        crate::support::admin::call(c, gw, http::Method::GET, "/v1/audit?limit=1000", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    crate::support::admin::json_of(&a)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}
