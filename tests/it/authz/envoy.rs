//! Envoy with deploy/envoy/envoy.yaml, played by support::envoy (no Envoy
//! binary is in the registries the tests install from): the check request
//! Envoy's HTTP ext_authz client builds from that configuration goes to a
//! real keygate, and keygate's answer is applied as Envoy applies it; what
//! Envoy forwards reaches a real app. Through it: a key reaches the app as
//! its user without the credential, client copies of the identity headers
//! never do, no key or a wrong key is a 401 with its challenge, a read key
//! cannot write, 429s keep Retry-After and name the client Envoy saw, a
//! revocation is obeyed by the next request, and a Redis outage is Envoy's
//! 503 (an ext_authz 5xx is an error to Envoy), never a pass.

use std::net::IpAddr;

use http::header::HeaderMap;
use http::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keygate::keyring::Ttl;
use keygate::keys::Scope;

use super::gateway;
use crate::support::admin::call;
use crate::support::body;
use crate::support::client::{self, basic, HttpsClient};
use crate::support::envoy::{ExtAuthz, Outcome};
use crate::support::gateway::{Builder, TestGateway};
use crate::support::redis::RedisServer;
use crate::support::upstream::{Recorded, Upstream};

const CONFIG: &str = "deploy/envoy/envoy.yaml";

/// A client's address as Envoy sees it (it appends it to X-Forwarded-For).
const CLIENT: [u8; 4] = [198, 51, 100, 7];

/// keygate, the app behind "Envoy", and the client Envoy talks to keygate with.
struct Setup {
    envoy: ExtAuthz,
    up: Upstream,
    gw: TestGateway,
    c: HttpsClient,
}

async fn setup(shape: impl FnOnce(&mut Builder)) -> Setup {
    let envoy = ExtAuthz::from_file(CONFIG);
    let (up, gw) = gateway(shape).await;
    let c = client::h1(&gw.ca);
    Setup { envoy, up, gw, c }
}

// === impl Setup ===

impl Setup {
    /// `method path` from `client` through Envoy: the forwarded request as
    /// the app received it, or Envoy's answer.
    async fn send(
        &self,
        client: IpAddr,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Recorded, (StatusCode, HeaderMap, String)> {
        let authz = self.gw.authz_url("");
        let mut all = vec![("host", "app.example.org")];
        all.extend_from_slice(headers);
        match self
            .envoy
            .pass(&self.c, &authz, client, &method, path, &all)
            .await
        {
            Outcome::Forward(headers) => {
                let mut req = Request::builder()
                    .method(method)
                    .uri(format!("{}{path}", self.up.url()));
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                let app = Client::builder(TokioExecutor::new()).build_http::<body::TestBody>();
                let resp = app.request(req.body(body::empty()).unwrap()).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                Ok(self.up.last())
            }
            Outcome::Answer(status, headers, text) => Err((status, headers, text)),
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Recorded, StatusCode> {
        self.send(CLIENT.into(), Method::GET, path, headers)
            .await
            .map_err(|(status, _, _)| status)
    }
}

fn values(r: &Recorded, name: &str) -> Vec<String> {
    r.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
#[ignore = "reads the Envoy example with PyYAML (target/k8s-validate-venv): run through scripts/test.sh"]
async fn the_example_asks_keygates_route_and_never_fails_open() {
    let envoy = ExtAuthz::from_file(CONFIG);
    assert_eq!(envoy.path_prefix, "/authz/ext-authz");
    assert!(envoy.server_uri.starts_with("https://"), "{envoy:?}");
    assert!(!envoy.failure_mode_allow, "keygate unreachable must refuse");
    assert_eq!(envoy.status_on_error, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
#[ignore = "reads the Envoy example with PyYAML (target/k8s-validate-venv): run through scripts/test.sh"]
async fn a_key_reaches_the_app_as_its_user_and_client_copies_never_do() {
    let s = setup(|_| {}).await;
    let (key, id) = s.gw.key("alice@example.org").await;
    let basic = basic(&key);
    let bearer = format!("Bearer {key}");
    let spoofed = [
        ("x-remote-user", "mallory"),
        ("x_remote_user", "mallory"),
        ("x-keygate-key-id", "forged"),
    ];
    for credential in [
        ("authorization", basic.as_str()),
        ("apikey", key.as_str()),
        ("authorization", bearer.as_str()),
    ] {
        let mut headers = vec![credential];
        headers.extend(spoofed);
        let got = s.get("/data?page=2", &headers).await.unwrap();
        assert_eq!(got.uri.path(), "/data");
        assert_eq!(values(&got, "x-remote-user"), ["alice@example.org"]);
        assert_eq!(values(&got, "x-keygate-key-id"), [id.as_str()]);
        assert!(values(&got, "x_remote_user").is_empty());
        for name in ["authorization", "apikey"] {
            assert!(values(&got, name).is_empty(), "the app got {name}");
        }
    }

    // No key: 401 and the challenge reach the client; nothing is forwarded.
    let before = s.up.requests().len();
    for headers in [vec![], vec![("apikey", "kg_wrong")]] {
        let (status, headers, _) = s
            .send(CLIENT.into(), Method::GET, "/secret", &headers)
            .await
            .unwrap_err();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm=\"keygate\""));
    }
    assert_eq!(s.up.requests().len(), before);

    // A read key may read, not write (the original method is Envoy's check's).
    let (reader, _) = s.gw.key_with("reader", Ttl::Default, Scope::Read).await;
    let cred = [("apikey", reader.as_str())];
    for method in [Method::POST, Method::DELETE] {
        let (status, _, _) = s
            .send(CLIENT.into(), method, "/items", &cred)
            .await
            .unwrap_err();
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        values(&s.get("/items", &cred).await.unwrap(), "x-remote-user"),
        ["reader"]
    );

    // A revocation is obeyed by the very next check (Envoy caches nothing).
    let admin = client::h1(&s.gw.ca);
    let answer = call(
        &admin,
        &s.gw,
        Method::DELETE,
        &format!("/v1/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let apikey = [("apikey", key.as_str())];
    assert_eq!(
        s.get("/data", &apikey).await.unwrap_err(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
#[ignore = "reads the Envoy example with PyYAML (target/k8s-validate-venv): run through scripts/test.sh"]
async fn without_a_key_in_passthrough_the_app_sees_nobody() {
    let s = setup(|b| {
        b.set("auth", "anonymous = \"passthrough\"");
    })
    .await;
    let spoofed = [("x-remote-user", "mallory"), ("x-keygate-key-id", "forged")];
    let got = s.get("/public", &spoofed).await.unwrap();
    assert!(
        values(&got, "x-remote-user").is_empty(),
        "{:?}",
        got.headers
    );
    assert!(values(&got, "x-keygate-key-id").is_empty());
}

#[tokio::test]
#[ignore = "reads the Envoy example with PyYAML (target/k8s-validate-venv): run through scripts/test.sh"]
async fn limits_keep_retry_after_and_name_the_client_envoy_saw() {
    let s = setup(|b| {
        b.set("rate_limit", "failed_auth_per_minute = 2");
    })
    .await;
    let guess = [("apikey", "kg_guess")];
    let mut statuses = Vec::new();
    let mut retry = None;
    for _ in 0..3 {
        let (status, headers, _) = s
            .send(CLIENT.into(), Method::GET, "/", &guess)
            .await
            .unwrap_err();
        statuses.push(status);
        retry = headers.get("retry-after").cloned().or(retry);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert!(
        retry.is_some(),
        "the 429 reaches the client with Retry-After"
    );
    // Another client behind the same Envoy has its own budget: keygate
    // reads the address Envoy appended to X-Forwarded-For.
    let (status, _, _) = s
        .send([203, 0, 113, 50].into(), Method::GET, "/", &guess)
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A client cannot reset its budget with its own X-Forwarded-For.
    let forged = [("apikey", "kg_guess"), ("x-forwarded-for", "192.0.2.1")];
    let (status, _, _) = s
        .send(CLIENT.into(), Method::GET, "/", &forged)
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
#[ignore = "reads the Envoy example with PyYAML (target/k8s-validate-venv): run through scripts/test.sh"]
async fn a_redis_outage_is_envoys_503_never_a_pass() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let s = setup(|b| {
        b.redis(&redis, dir.path(), "authz-envoy")
            .set("cache", "enabled = false");
    })
    .await;
    let (key, _) = s.gw.key("frank").await;
    let cred = [("apikey", key.as_str())];
    s.get("/", &cred).await.unwrap();
    redis.kill();
    let before = s.up.requests().len();
    for _ in 0..3 {
        assert_eq!(
            s.get("/during-outage", &cred).await.unwrap_err(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(s.up.requests().len(), before, "forwarded during the outage");
}
