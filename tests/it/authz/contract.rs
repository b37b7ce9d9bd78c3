//! Each route against its proxy's contract, asked directly over TLS (or
//! plain HTTP on loopback), as nginx, Caddy, Traefik and Envoy ask.

use std::time::Duration;

use http::{Method, StatusCode};
use keygate::keyring::Ttl;
use keygate::keys::Scope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ask, gateway};
use crate::support::client::{self, basic, get_with_key, Answer};
use crate::support::redis::RedisServer;
use crate::support::within;

const FORWARD_AUTH: &str = "/authz/forward-auth";
const AUTH_REQUEST: &str = "/authz/auth-request";

/// The headers each contract describes `method` and `uri` with, and the
/// path and method of the check itself (Envoy's keeps the original method
/// and appends the original path to its prefix).
fn described<'a>(
    route: &str,
    method: &'a str,
    uri: &'a str,
) -> (Method, String, Vec<(&'a str, &'a str)>) {
    match route {
        FORWARD_AUTH => (
            Method::GET,
            route.to_owned(),
            vec![
                ("x-forwarded-method", method),
                ("x-forwarded-uri", uri),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.example.org"),
            ],
        ),
        AUTH_REQUEST => (
            Method::GET,
            route.to_owned(),
            vec![("x-original-method", method), ("x-original-uri", uri)],
        ),
        _ => (
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("/authz/ext-authz{uri}"),
            Vec::new(),
        ),
    }
}

const ROUTES: [&str; 3] = [FORWARD_AUTH, AUTH_REQUEST, "ext-authz"];

/// Ask `route` about `method uri` with `credential` headers added.
async fn check(
    c: &client::HttpsClient,
    gw: &crate::support::gateway::TestGateway,
    route: &str,
    method: &str,
    uri: &str,
    credential: &[(&str, &str)],
) -> Answer {
    let (check_method, path, mut headers) = described(route, method, uri);
    headers.extend_from_slice(credential);
    ask(c, gw, check_method, &path, &headers).await
}

fn no_store(a: &Answer) {
    assert_eq!(a.headers["cache-control"], "no-store", "{:?}", a.headers);
}

#[tokio::test]
async fn each_route_answers_200_with_the_keys_user_for_the_proxy_to_copy() {
    let (up, gw) = gateway(|_| {}).await;
    let (key, id) = gw.key("alice@example.org").await;
    let bearer = format!("Bearer {key}");
    let basic = basic(&key);
    let spoofed = [
        ("x-remote-user", "mallory"),
        ("x_remote_user", "mallory"),
        ("x-keygate-key-id", "forged"),
    ];
    for (c, route, credential) in [
        (
            client::h1(&gw.ca),
            FORWARD_AUTH,
            ("authorization", basic.as_str()),
        ),
        (client::h1(&gw.ca), AUTH_REQUEST, ("apikey", key.as_str())),
        (
            client::h1(&gw.ca),
            "ext-authz",
            ("authorization", bearer.as_str()),
        ),
        // Envoy may ask over HTTP/2.
        (client::h2(&gw.ca), "ext-authz", ("apikey", key.as_str())),
    ] {
        let mut sent = vec![credential];
        sent.extend(spoofed);
        let a = check(&c, &gw, route, "GET", "/data?page=2", &sent).await;
        assert_eq!(a.status, StatusCode::OK, "{route}: {}", a.text());
        assert_eq!(a.headers.get_all("x-remote-user").iter().count(), 1);
        assert_eq!(a.headers["x-remote-user"], "alice@example.org", "{route}");
        assert_eq!(a.headers["x-keygate-key-id"], id.as_str(), "{route}");
        assert!(!a.headers.contains_key("www-authenticate"));
        no_store(&a);
        // Envoy is told to drop the credential; the others are told nothing.
        let to_remove = a.headers.get("x-envoy-auth-headers-to-remove");
        match route {
            "ext-authz" => assert_eq!(to_remove.unwrap(), credential.0, "{route}"),
            _ => assert!(to_remove.is_none(), "{route}"),
        }
    }
    assert!(
        up.requests().is_empty(),
        "the auth listener forwarded a check"
    );
}

/// A yes for a key expiring within `keys.warn_before`'s first offset says
/// when, as the gateway's answers do, for the proxy to pass on; a key with
/// longer to live gets no such header.
#[tokio::test]
async fn a_yes_for_a_key_expiring_soon_carries_keygate_key_expires() {
    use keygate::keys::{rfc3339, unix_now};
    let (_up, gw) = gateway(|b| {
        b.set("keys", "warn_before = [\"1d\"]");
    })
    .await;
    let earliest = unix_now() + 12 * 3600;
    let (soon, _) = gw
        .key_with(
            "nora",
            Ttl::For(Duration::from_secs(12 * 3600)),
            Scope::Full,
        )
        .await;
    let latest = unix_now() + 12 * 3600;
    let (later, _) = gw
        .key_with(
            "nora",
            Ttl::For(Duration::from_secs(30 * 86400)),
            Scope::Full,
        )
        .await;
    let c = client::h1(&gw.ca);
    for route in [FORWARD_AUTH, AUTH_REQUEST, "ext-authz"] {
        let a = check(&c, &gw, route, "GET", "/", &[("apikey", soon.as_str())]).await;
        assert_eq!(a.status, StatusCode::OK, "{route}: {}", a.text());
        let said = a
            .headers
            .get("keygate-key-expires")
            .unwrap_or_else(|| panic!("{route}: no keygate-key-expires"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            (earliest..=latest).any(|t| rfc3339(t) == said),
            "{route}: {said} is not the key's expiry"
        );
        let a = check(&c, &gw, route, "GET", "/", &[("apikey", later.as_str())]).await;
        assert_eq!(a.status, StatusCode::OK, "{route}");
        assert!(a.headers.get("keygate-key-expires").is_none(), "{route}");
    }
}

#[tokio::test]
async fn refusals_are_the_gateways_own_with_the_original_method() {
    let (_up, gw) = gateway(|_| {}).await;
    let c = client::h1(&gw.ca);
    let (read, _) = gw.key_with("reader", Ttl::Default, Scope::Read).await;
    let read_basic = basic(&read);
    let main_401 = get_with_key(&c, &gw.url("/"), "kg_wrong").await;
    assert_eq!(main_401.status, StatusCode::UNAUTHORIZED);
    let wrong = basic("kg_wrong");
    for route in ROUTES {
        // No key, a wrong key: the main listener's 401, challenge and body.
        for credential in [vec![], vec![("authorization", wrong.as_str())]] {
            let a = check(&c, &gw, route, "GET", "/", &credential).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{route}");
            assert_eq!(
                a.headers["www-authenticate"],
                main_401.headers["www-authenticate"]
            );
            assert_eq!(a.body, main_401.body);
            no_store(&a);
        }
        // Two credentials: 400, never a guess.
        let two = [
            ("authorization", read_basic.as_str()),
            ("apikey", read.as_str()),
        ];
        assert_eq!(
            check(&c, &gw, route, "GET", "/", &two).await.status,
            StatusCode::BAD_REQUEST
        );
        // A read key: the original method decides, not the check's.
        let cred = [("authorization", read_basic.as_str())];
        for (method, status) in [
            ("GET", StatusCode::OK),
            ("HEAD", StatusCode::OK),
            ("OPTIONS", StatusCode::OK),
            ("POST", StatusCode::FORBIDDEN),
            ("DELETE", StatusCode::FORBIDDEN),
            ("PATCH", StatusCode::FORBIDDEN),
        ] {
            let a = check(&c, &gw, route, method, "/items/1", &cred).await;
            assert_eq!(a.status, status, "{route} {method}: {}", a.text());
            no_store(&a);
        }
    }
    // The check's own method does not count for forward-auth: Traefik and
    // Caddy ask with GET whatever the client did, and any method may ask.
    let a = ask(
        &c,
        &gw,
        Method::POST,
        FORWARD_AUTH,
        &[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/"),
            ("authorization", &read_basic),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
}

/// A read key's GET that names another method in an override header
/// (which Flask's, ASP.NET's or OData's override handling makes the method
/// the app runs) is a 403, on every route and on the main listener; a full
/// key's is not keygate's business.
#[tokio::test]
async fn a_read_key_may_not_override_its_method() {
    let (up, gw) = gateway(|_| {}).await;
    let c = client::h1(&gw.ca);
    let (read, _) = gw.key_with("reader", Ttl::Default, Scope::Read).await;
    let (full, _) = gw.key("writer").await;
    for (name, value, read_status) in [
        ("x-http-method-override", "DELETE", StatusCode::FORBIDDEN),
        ("X-HTTP-Method", "put", StatusCode::FORBIDDEN),
        ("x-method-override", "PATCH", StatusCode::FORBIDDEN),
        ("x-http-method-override", "HEAD", StatusCode::OK),
    ] {
        for route in ROUTES {
            for (key, status) in [(&read, read_status), (&full, StatusCode::OK)] {
                let cred = [("apikey", key.as_str()), (name, value)];
                let a = check(&c, &gw, route, "GET", "/items/1", &cred).await;
                assert_eq!(a.status, status, "{route} {name}: {value}: {}", a.text());
            }
        }
        let req = http::Request::get(gw.url("/items/2"))
            .header("apikey", &read)
            .header(name, value)
            .body(crate::support::body::empty())
            .unwrap();
        let main = client::send(&c, req).await;
        assert_eq!(main.status, read_status, "main listener {name}: {value}");
    }
    assert!(
        !up.requests()
            .iter()
            .any(|r| r.uri.path() == "/items/2" && r.headers.contains_key("x-method-override")),
        "a read key's PATCH override reached the app"
    );
}

#[tokio::test]
async fn a_keys_request_rate_is_one_budget_on_both_listeners() {
    let (_up, gw) = gateway(|b| {
        b.set("rate_limit", "requests_per_second = 2");
    })
    .await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("busy").await;
    let cred = [("apikey", key.as_str())];
    assert_eq!(
        get_with_key(&c, &gw.url("/"), &key).await.status,
        StatusCode::OK
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(check(&c, &gw, FORWARD_AUTH, "GET", "/", &cred).await);
    }
    let limited = statuses
        .iter()
        .find(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .unwrap_or_else(|| {
            panic!(
                "no 429 in {:?}",
                statuses.iter().map(|a| a.status).collect::<Vec<_>>()
            )
        });
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    no_store(limited);
    assert_eq!(
        get_with_key(&c, &gw.url("/"), &key).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn failed_authentications_are_limited_per_client_the_proxy_names() {
    let (_up, gw) = gateway(|b| {
        b.set("rate_limit", "failed_auth_per_minute = 3");
    })
    .await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("owner").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let attacker = [("x-forwarded-for", "203.0.113.9"), ("apikey", "kg_guess")];
        statuses.push(
            check(&c, &gw, AUTH_REQUEST, "GET", "/", &attacker)
                .await
                .status,
        );
    }
    let unauthorized = StatusCode::UNAUTHORIZED;
    let limited = StatusCode::TOO_MANY_REQUESTS;
    assert_eq!(
        statuses,
        [unauthorized, unauthorized, unauthorized, limited, limited]
    );
    let owner = [
        ("x-forwarded-for", "198.51.100.20"),
        ("apikey", key.as_str()),
    ];
    assert_eq!(
        check(&c, &gw, AUTH_REQUEST, "GET", "/", &owner)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_store_outage_is_503_with_retry_after_never_an_allow() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (_up, gw) = gateway(|b| {
        b.redis(&redis, dir.path(), "authz-outage")
            .set("cache", "enabled = false");
    })
    .await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("frank").await;
    let cred = [("apikey", key.as_str())];
    assert_eq!(
        check(&c, &gw, FORWARD_AUTH, "GET", "/", &cred).await.status,
        StatusCode::OK
    );
    redis.kill();
    for route in ROUTES {
        let a = within(
            5,
            "an answer while the store is down",
            check(&c, &gw, route, "GET", "/", &cred),
        )
        .await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{route}");
        assert_eq!(a.headers["retry-after"], "5");
        no_store(&a);
    }
}

#[tokio::test]
async fn a_check_that_does_not_describe_the_request_is_a_400_naming_what_is_missing() {
    let (_up, gw) = gateway(|_| {}).await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("alice").await;
    let cred = ("apikey", key.as_str());
    for (path, headers, named) in [
        (
            FORWARD_AUTH,
            vec![("x-forwarded-uri", "/")],
            "X-Forwarded-Method",
        ),
        (
            FORWARD_AUTH,
            vec![("x-forwarded-method", "GET")],
            "X-Forwarded-Uri",
        ),
        (
            AUTH_REQUEST,
            vec![("x-original-uri", "/")],
            "X-Original-Method",
        ),
        (
            AUTH_REQUEST,
            vec![("x-original-method", "GET")],
            "X-Original-URI",
        ),
        // Traefik's and Caddy's headers on nginx's route, and the reverse.
        (
            AUTH_REQUEST,
            vec![("x-forwarded-method", "GET"), ("x-forwarded-uri", "/")],
            "X-Original-Method",
        ),
        (
            FORWARD_AUTH,
            vec![("x-original-method", "GET"), ("x-original-uri", "/")],
            "X-Forwarded-Method",
        ),
        (
            FORWARD_AUTH,
            vec![
                ("x-forwarded-method", "GET"),
                ("x-forwarded-method", "POST"),
                ("x-forwarded-uri", "/"),
            ],
            "X-Forwarded-Method",
        ),
        (
            FORWARD_AUTH,
            vec![
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "https://elsewhere/"),
            ],
            "X-Forwarded-Uri",
        ),
        (
            FORWARD_AUTH,
            vec![("x-forwarded-method", ""), ("x-forwarded-uri", "/")],
            "X-Forwarded-Method",
        ),
        (
            "/authz/ext-authz",
            vec![],
            "no original path after /authz/ext-authz",
        ),
    ] {
        let mut headers = headers;
        headers.push(cred);
        let a = ask(&c, &gw, Method::GET, path, &headers).await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "{path} {headers:?}: {}",
            a.text()
        );
        assert!(
            a.text().contains(named),
            "{path}: {} does not name {named}",
            a.text()
        );
        assert!(!a.headers.contains_key("x-remote-user"));
        no_store(&a);
    }
}

#[tokio::test]
async fn only_the_trusted_proxies_may_ask() {
    let (up, gw) = gateway(|b| {
        b.set("authz", "trusted_proxies = [\"127.0.0.2/32\"]");
    })
    .await;
    let (key, _) = gw.key("alice").await;
    let basic = basic(&key);
    let cred = vec![("authorization", basic.as_str())];
    let direct = client::h1(&gw.ca);
    let proxy = client::h1_from(&gw.ca, "127.0.0.2".parse().unwrap());
    for route in ROUTES {
        // A client that reaches the listener itself, forwarded headers forged.
        let mut forged = cred.clone();
        forged.push(("x-forwarded-for", "127.0.0.2"));
        let a = check(&direct, &gw, route, "GET", "/", &forged).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{route}");
        assert!(a.text().contains("authz.trusted_proxies"), "{}", a.text());
        assert_eq!(a.headers["connection"], "close", "{route}");
        assert!(!a.headers.contains_key("x-remote-user"));
        no_store(&a);
        assert_eq!(
            check(&proxy, &gw, route, "GET", "/", &cred).await.status,
            StatusCode::OK
        );
    }
    assert!(up.requests().is_empty());
}

/// Over HTTP/2 `Connection: close` says nothing: keygate ends the
/// stranger's connection with GOAWAY after the 403, so that it does not stay
/// open holding one of the listener's `max_connections`.
#[tokio::test]
async fn an_untrusted_peers_http2_connection_is_closed_after_its_403() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let (_up, gw) = gateway(|b| {
        b.set("authz", "trusted_proxies = [\"127.0.0.2/32\"]");
    })
    .await;
    let tcp = tokio::net::TcpStream::connect(gw.authz_addr.unwrap())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(gw.ca.client_config(&[b"h2"]))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(gw.authz_url(AUTH_REQUEST))
        .header("x-original-method", "GET")
        .header("x-original-uri", "/")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let answer = within(5, "the 403", h2.send_request(req)).await.unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert_eq!(answer.version(), http::Version::HTTP_2);
    // Well before idle_timeout (75 s): closed by keygate, not by the clock.
    within(5, "keygate closing the connection", conn)
        .await
        .unwrap()
        .expect("a graceful close (GOAWAY), not an error");
}

#[tokio::test]
async fn no_other_path_is_answered_and_nothing_is_forwarded() {
    let (up, gw) = gateway(|_| {}).await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("alice").await;
    for path in [
        "/",
        "/data",
        "/authz",
        "/authz/forward-auth/x",
        "/authz/ext-authzz",
        "/.keygate/keys",
        "/healthz",
    ] {
        let a = ask(&c, &gw, Method::GET, path, &[("apikey", &key)]).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        no_store(&a);
    }
    assert!(
        up.requests().is_empty(),
        "the auth listener forwarded a request"
    );
}

#[tokio::test]
async fn a_checks_body_is_never_read() {
    let (up, gw) = gateway(|_| {}).await;
    let (key, _) = gw.key("alice").await;
    let addr = gw.authz_addr.unwrap();
    for (path, extra) in [
        ("/authz/ext-authz/upload", ""),
        (
            FORWARD_AUTH,
            "x-forwarded-method: POST\r\nx-forwarded-uri: /upload\r\n",
        ),
    ] {
        let mut tls = client::raw_tls(addr, &gw.ca).await;
        // A body announced as 100 MB of which 5 bytes ever come: a server
        // that read it before answering would never answer.
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: {}\r\n{extra}content-length: 100000000\r\n\r\nhello",
            basic(&key)
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        within(5, "an answer without the body", async {
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tls.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed without an answer");
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
        assert!(
            text.to_lowercase().contains("x-remote-user: alice"),
            "{text}"
        );
    }
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn with_anonymous_passthrough_a_check_without_a_key_passes_as_nobody() {
    let (_up, gw) = gateway(|b| {
        b.set("auth", "anonymous = \"passthrough\"");
    })
    .await;
    let c = client::h1(&gw.ca);
    let spoofed = [
        ("x-remote-user", "mallory"),
        ("x-keygate-key-id", "forged"),
        ("authorization", "Bearer the-apps-own-token"),
    ];
    for route in ROUTES {
        let a = check(&c, &gw, route, "POST", "/", &spoofed).await;
        assert_eq!(a.status, StatusCode::OK, "{route}");
        no_store(&a);
        if route == "ext-authz" {
            // Envoy drops the client's copies; the app's own token stays.
            assert!(!a.headers.contains_key("x-remote-user"));
            assert!(!a.headers.contains_key("x-keygate-key-id"));
            assert_eq!(
                a.headers["x-envoy-auth-headers-to-remove"],
                "x-remote-user, x-keygate-key-id"
            );
        } else {
            // Empty: the proxy's copy replaces the client's with nothing.
            assert_eq!(a.headers["x-remote-user"], "", "{route}");
            assert_eq!(a.headers["x-keygate-key-id"], "", "{route}");
        }
        // A key that does not verify is refused even here.
        let bad = [("apikey", "kg_wrong")];
        assert_eq!(
            check(&c, &gw, route, "GET", "/", &bad).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn an_sso_user_is_answered_only_when_the_asking_proxy_is_the_sso_proxy() {
    let (_up, gw) = gateway(|b| {
        b.set("authz", "trusted_proxies = [\"127.0.0.0/8\"]")
            .set("login", "method = \"trusted_header\"")
            .set("login", "header = \"X-Sso-User\"")
            .set("login", "trusted_proxies = [\"127.0.0.2/32\"]")
            .set("login", "public_url = \"https://app.example.org\"");
    })
    .await;
    let sso_proxy = client::h1_from(&gw.ca, "127.0.0.2".parse().unwrap());
    let other_proxy = client::h1(&gw.ca);
    let sso = [("x-sso-user", "carol")];
    let a = check(&sso_proxy, &gw, FORWARD_AUTH, "GET", "/", &sso).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["x-remote-user"], "carol");
    assert_eq!(a.headers["x-keygate-key-id"], "");
    let a = check(&other_proxy, &gw, FORWARD_AUTH, "GET", "/", &sso).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // A key decides over the SSO user.
    let (key, _) = gw.key("dave").await;
    let both = [("x-sso-user", "carol"), ("apikey", key.as_str())];
    let a = check(&sso_proxy, &gw, "ext-authz", "GET", "/", &both).await;
    assert_eq!(a.headers["x-remote-user"], "dave");
}

/// A user whose name is not ASCII is answered with its UTF-8 bytes, for
/// the proxy to copy as they are: a key's user, and the SSO proxy's user.
#[tokio::test]
async fn a_utf8_user_is_answered_as_its_bytes() {
    let (_up, gw) = gateway(|b| {
        b.set("authz", "trusted_proxies = [\"127.0.0.0/8\"]")
            .set("login", "method = \"trusted_header\"")
            .set("login", "header = \"X-Sso-User\"")
            .set("login", "trusted_proxies = [\"127.0.0.2/32\"]")
            .set("login", "public_url = \"https://app.example.org\"");
    })
    .await;
    let bytes = |a: &Answer| -> Vec<Vec<u8>> {
        a.headers
            .get_all("x-remote-user")
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect()
    };
    let (key, _) = gw.key("josé@例え.jp").await;
    for (c, route) in [
        (client::h1(&gw.ca), FORWARD_AUTH),
        (client::h1(&gw.ca), AUTH_REQUEST),
        (client::h2(&gw.ca), "ext-authz"),
    ] {
        let a = check(&c, &gw, route, "GET", "/", &[("apikey", key.as_str())]).await;
        assert_eq!(a.status, StatusCode::OK, "{route}: {}", a.text());
        assert_eq!(bytes(&a), ["josé@例え.jp".as_bytes()], "{route}");
    }
    let sso_proxy = client::h1_from(&gw.ca, "127.0.0.2".parse().unwrap());
    let a = check(
        &sso_proxy,
        &gw,
        FORWARD_AUTH,
        "GET",
        "/",
        &[("x-sso-user", "zoë")],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(bytes(&a), ["zoë".as_bytes()]);
    // A right-to-left override is no user name: nobody, so 401.
    let a = check(
        &sso_proxy,
        &gw,
        FORWARD_AUTH,
        "GET",
        "/",
        &[("x-sso-user", "a\u{202E}b")],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn plain_http_on_loopback_when_the_config_says_so() {
    let (_up, gw) = gateway(|b| {
        b.set("authz", "plaintext = true");
    })
    .await;
    let (key, _) = gw.key("alice").await;
    let url = gw.authz_url("/authz/auth-request");
    assert!(url.starts_with("http://"));
    let out = crate::support::curl(&[
        "-i",
        "-H",
        "X-Original-Method: GET",
        "-H",
        "X-Original-URI: /",
        "-u",
        &format!("apikey:{key}"),
        &url,
    ])
    .await;
    assert_eq!(out.status, 200, "{}{}", out.body, out.stderr);
    assert!(
        out.body.to_lowercase().contains("x-remote-user: alice"),
        "{}",
        out.body
    );
}

#[test]
fn the_config_names_every_unsafe_or_useless_auth_listener() {
    let dir = tempfile::tempdir().unwrap();
    let token = crate::support::admin_token_file(dir.path());
    let config = |authz: &str| {
        let text = format!(
            "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
             [store]\nkind = \"memory\"\n[admin]\ntoken_file = \"{}\"\n[authz]\n{authz}\n",
            token.display()
        );
        match keygate::config::parse(&text) {
            Ok(c) => Ok(c.authz.map(|a| (a.addr.to_string(), a.tls))),
            Err(e) => Err(e.to_string()),
        }
    };
    let trusted = "trusted_proxies = [\"127.0.0.1\"]";
    assert_eq!(config(trusted), Ok(None), "no addr: off");
    assert_eq!(
        config(&format!(
            "addr = \"127.0.0.1:9444\"\nplaintext = true\n{trusted}"
        )),
        Ok(Some(("127.0.0.1:9444".into(), false)))
    );
    assert_eq!(
        config(&format!(
            "addr = \"0.0.0.0:9444\"\nplaintext = true\nplaintext_off_loopback = true\n{trusted}"
        )),
        Ok(Some(("0.0.0.0:9444".into(), false)))
    );
    for (authz, problem) in [
        (
            format!("addr = \"0.0.0.0:9444\"\nplaintext = true\n{trusted}"),
            "authz.plaintext: plain HTTP on 0.0.0.0:9444, which is not a loopback address",
        ),
        (
            format!("addr = \"127.0.0.1:9444\"\n{trusted}"),
            "authz.plaintext: the auth listener's TLS uses the [listen] certificate",
        ),
        (
            "addr = \"127.0.0.1:9444\"\nplaintext = true".to_owned(),
            "authz.trusted_proxies: required with authz.addr",
        ),
        (
            "addr = \"127.0.0.1:9444\"\nplaintext = true\ntrusted_proxies = [\"nope\"]".to_owned(),
            "authz.trusted_proxies[0]: invalid address or CIDR",
        ),
        (
            format!("addr = \"localhost:9444\"\nplaintext = true\n{trusted}"),
            "authz.addr: invalid socket address",
        ),
        (
            format!("addr = \"127.0.0.1:9444\"\nplaintext = true\ntls = true\n{trusted}"),
            "authz.tls: unknown key",
        ),
        (
            format!("addr = \"127.0.0.1:9444\"\nplaintext_off_loopback = true\n{trusted}"),
            "authz.plaintext_off_loopback: only means something with authz.plaintext = true",
        ),
        (
            format!("plaintext_off_loopback = true\n{trusted}"),
            "authz.plaintext_off_loopback: only means something with authz.plaintext = true",
        ),
    ] {
        let got = config(&authz);
        assert!(
            got.as_ref().is_err_and(|e| e.contains(problem)),
            "{authz}: {got:?}"
        );
    }
}
