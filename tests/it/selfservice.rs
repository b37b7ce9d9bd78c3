//! The self-service page and its JSON API over real TLS, with real login
//! backends: a who-am-I web app (`backend_session`), a trusted proxy address
//! (`trusted_header`), and django-cas-server (`cas`, `#[ignore]`d for a bare
//! `cargo test`: scripts/test.sh installs it and runs them).

use http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::body;
use crate::support::cas::{self, CasServer};
use crate::support::client::{self, Answer, HttpsClient};
use crate::support::gateway::{builder, TestGateway};
use crate::support::redis::RedisServer;
use crate::support::upstream::Upstream;
use crate::support::whoami::WhoAmI;
use crate::support::ADMIN_TOKEN;

/// A browser as far as keygate can tell: a cookie jar, and the `Origin` its
/// scripts send.
struct Browser {
    client: HttpsClient,
    base: String,
    cookies: Vec<(String, String)>,
    origin: String,
}

impl Browser {
    fn new(gw: &TestGateway) -> Browser {
        Browser::with_client(gw, client::h1(&gw.ca))
    }

    fn with_client(gw: &TestGateway, client: HttpsClient) -> Browser {
        let base = gw.url("");
        Browser {
            client,
            origin: base.clone(),
            base,
            cookies: Vec::new(),
        }
    }

    fn set_cookie(&mut self, pair: &str) {
        let (k, v) = pair.split_once('=').unwrap();
        self.cookies.retain(|(name, _)| name != k);
        self.cookies.push((k.to_owned(), v.to_owned()));
    }

    fn keep(&mut self, a: &Answer) {
        for v in a.headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap().trim();
            if v.contains("Max-Age=0") {
                let name = pair.split('=').next().unwrap();
                self.cookies.retain(|(k, _)| k != name);
            } else {
                self.set_cookie(pair);
            }
        }
    }

    fn request(&self, method: Method, path: &str) -> http::request::Builder {
        let mut r = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            r = r.header(header::COOKIE, jar.join("; "));
        }
        r
    }

    async fn get(&mut self, path: &str) -> Answer {
        let a = client::send(
            &self.client,
            self.request(Method::GET, path).body(body::empty()).unwrap(),
        )
        .await;
        self.keep(&a);
        a
    }

    /// The page, and the CSRF token in it.
    async fn page(&mut self) -> (Answer, String) {
        let page = self.get("/.keygate/keys").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let token = between(&page.text(), "name=\"csrf-token\" content=\"", "\"").to_owned();
        (page, token)
    }

    /// A script's call: `Origin`, the token in `X-CSRF-Token`, JSON.
    async fn api(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut r = self
            .request(method, path)
            .header(header::ORIGIN, &self.origin);
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        let req = match body {
            Some(b) => r
                .header(header::CONTENT_TYPE, "application/json")
                .body(body::full(b.to_string())),
            None => r.body(body::empty()),
        };
        let a = client::send(&self.client, req.unwrap()).await;
        self.keep(&a);
        a
    }

    async fn create(&mut self, token: &str, label: &str, ttl: &str) -> Answer {
        self.api(
            Method::POST,
            "/.keygate/api/keys",
            Some(token),
            Some(json!({ "label": label, "ttl": ttl })),
        )
        .await
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let s = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in:\n{text}"))
        + start.len();
    let e = s + text[s..].find(end).unwrap();
    &text[s..e]
}

fn json_of(a: &Answer) -> Value {
    serde_json::from_slice(&a.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", a.text()))
}

/// keygate in front of `up` with `[login] method = "backend_session"` against `app`.
async fn backend_session(
    up: &Upstream,
    app: &WhoAmI,
    extra: &[(&'static str, &str)],
) -> TestGateway {
    let mut b = builder(&up.url());
    b.set("login", "method = \"backend_session\"")
        .set("login", &format!("whoami_url = \"{}\"", app.whoami_url()))
        .set("login", "user_pointer = \"/email\"")
        .set("login", "login_url = \"/login?next=/.keygate/keys\"");
    for (section, line) in extra {
        b.set(section, line);
    }
    b.start().await
}

async fn admin_get(gw: &TestGateway, path: &str) -> Value {
    let c = client::h1(&gw.ca);
    let req = Request::get(gw.admin_url(path))
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .body(body::empty())
        .unwrap();
    let a = client::send(&c, req).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    json_of(&a)
}

async fn basic_get(gw: &TestGateway, key: &str, path: &str) -> Answer {
    use base64::Engine;
    let c = client::h1(&gw.ca);
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("apikey:{key}"));
    let req = Request::get(gw.url(path))
        .header(header::AUTHORIZATION, format!("Basic {cred}"))
        .body(body::empty())
        .unwrap();
    client::send(&c, req).await
}

#[tokio::test]
async fn page_shows_the_user_the_controls_and_a_strict_csp() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice@example.org"));
    let (page, token) = alice.page().await;
    let html = page.text();
    assert!(!token.is_empty());
    assert!(
        html.contains("<title>External Tool Access</title>"),
        "{html}"
    );
    assert!(
        html.contains("<strong id=\"user\">alice@example.org</strong>"),
        "{html}"
    );
    assert!(
        html.contains("<label for=\"label\">") && html.contains("<input id=\"label\""),
        "{html}"
    );
    assert!(
        html.contains("<label for=\"lifetime\">") && html.contains("<select id=\"lifetime\""),
        "{html}"
    );
    assert!(
        html.contains("<option value=\"30d\" selected>30 days</option>"),
        "{html}"
    );
    for text in [
        ">Generate API Key</button>",
        ">Copy to Clipboard</button>",
        ">Done</button>",
    ] {
        assert!(html.contains(text), "{text} missing:\n{html}");
    }
    assert!(
        html.contains("<code id=\"new-key\"></code>") && html.contains("<table id=\"keys\">"),
        "{html}"
    );
    assert!(html.contains("aria-live=\"polite\""), "{html}");
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !html.contains("<script>"),
        "{csp}"
    );
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    let csrf_cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        csrf_cookie.starts_with("__Host-keygate-csrf="),
        "{csrf_cookie}"
    );
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(csrf_cookie.contains(attr), "{csrf_cookie}");
    }

    let js = alice.get("/.keygate/static/app.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let js = js.text();
    assert!(
        js.contains("navigator.clipboard.writeText") && js.contains("\"Copied!\""),
        "{js}"
    );
    assert!(
        !js.contains("innerHTML") && !js.contains("window.confirm"),
        "{js}"
    );
    let css = alice.get("/.keygate/static/app.css").await;
    assert!(css.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    // keygate's own paths never reach the upstream.
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn generate_list_use_and_revoke_a_key_with_a_real_redis() {
    let redis = RedisServer::start();
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let dir = tempfile::tempdir().unwrap();
    let mut b = builder(&up.url());
    b.redis(&redis, dir.path(), "selfservice")
        .set("auth", "anonymous = \"reject\"")
        .set("login", "method = \"backend_session\"")
        .set("login", &format!("whoami_url = \"{}\"", app.whoami_url()));
    let gw = b.start().await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    let (_, token) = alice.page().await;

    let created = alice.create(&token, "laptop R scripts", "1d").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let created = json_of(&created);
    let (key, id) = (
        created["key"].as_str().unwrap(),
        created["id"].as_str().unwrap(),
    );
    assert_eq!(created["user"], "alice");
    assert_eq!(created["source"], "self-service");
    assert!(key.starts_with("kg_"));

    // The key works through the gateway as alice.
    let used = basic_get(&gw, key, "/data").await;
    assert_eq!(used.status, StatusCode::OK);
    assert_eq!(up.last().headers["x-remote-user"], "alice");

    // Listed on the page and in the API, never with its secret.
    let (page, _) = alice.page().await;
    assert!(
        page.text().contains(&format!(
            "<tr data-key-id=\"{id}\"><td>laptop R scripts</td>"
        )),
        "{}",
        page.text()
    );
    assert!(!page.text().contains(key));
    let listed = alice
        .api(Method::GET, "/.keygate/api/keys", None, None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.text().contains(key));
    let listed = json_of(&listed);
    assert_eq!(listed["user"], "alice");
    assert_eq!(listed["keys"][0]["id"], id);
    assert_eq!(listed["keys"][0]["source"], "self-service");

    // The admin sees where it came from, in the listing and the audit log.
    let admin = admin_get(&gw, "/v1/keys?user=alice").await;
    assert_eq!(admin["keys"][0]["source"], "self-service", "{admin}");
    let audit = admin_get(&gw, "/v1/audit").await;
    let events = audit["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["action"] == "create"
            && e["actor"] == "alice"
            && e["source"] == "self-service"),
        "{audit}"
    );
    assert!(!audit.to_string().contains(key));

    let revoked = alice
        .api(
            Method::DELETE,
            &format!("/.keygate/api/keys/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());
    assert_eq!(
        basic_get(&gw, key, "/data").await.status,
        StatusCode::UNAUTHORIZED
    );
    let audit = admin_get(&gw, "/v1/audit").await;
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "revoke" && e["source"] == "self-service"),
        "{audit}"
    );
    let again = alice
        .api(
            Method::DELETE,
            &format!("/.keygate/api/keys/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn forged_or_missing_csrf_tokens_and_foreign_origins_are_403() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    let (_, token) = alice.page().await;
    let mut bob = Browser::new(&gw);
    bob.set_cookie(&app.sign_in("bob"));
    let (_, bobs_token) = bob.page().await;

    let body = Some(json!({ "label": "x", "ttl": "1d" }));
    let missing = alice
        .api(Method::POST, "/.keygate/api/keys", None, body.clone())
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN, "{}", missing.text());
    assert!(json_of(&missing)["error"]
        .as_str()
        .unwrap()
        .contains("CSRF"));
    let forged = alice
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some("AAAAforged"),
            body.clone(),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Bob's token is bound to bob and his browser.
    let borrowed = alice
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some(&bobs_token),
            body.clone(),
        )
        .await;
    assert_eq!(borrowed.status, StatusCode::FORBIDDEN);
    // The right token from another site's page (foreign Origin, or none).
    alice.origin = "https://evil.example".into();
    let foreign = alice
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some(&token),
            body.clone(),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    alice.origin = gw.url("");
    let req = alice
        .request(Method::POST, "/.keygate/api/keys")
        .header("x-csrf-token", &token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body::full(body.clone().unwrap().to_string()))
        .unwrap();
    assert_eq!(
        client::send(&alice.client, req).await.status,
        StatusCode::FORBIDDEN
    );
    let req = alice
        .request(Method::POST, "/.keygate/api/keys")
        .header(header::ORIGIN, gw.url(""))
        .header("sec-fetch-site", "cross-site")
        .header("x-csrf-token", &token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body::full(body.clone().unwrap().to_string()))
        .unwrap();
    assert_eq!(
        client::send(&alice.client, req).await.status,
        StatusCode::FORBIDDEN
    );
    // Without keygate's CSRF cookie the token is worth nothing.
    let mut cookieless = Browser::new(&gw);
    cookieless.set_cookie(&app.sign_in("alice"));
    let no_cookie = cookieless
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some(&token),
            body.clone(),
        )
        .await;
    assert_eq!(no_cookie.status, StatusCode::FORBIDDEN);
    // DELETE is protected the same way.
    let created = json_of(&alice.create(&token, "mine", "1d").await);
    let id = created["id"].as_str().unwrap();
    let del = alice
        .api(
            Method::DELETE,
            &format!("/.keygate/api/keys/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::FORBIDDEN);
    // Nothing above made a key but the last one.
    assert_eq!(gw.keyring.store.list(Some("alice")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn another_users_key_is_404_like_an_unknown_one() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let mut bob = Browser::new(&gw);
    bob.set_cookie(&app.sign_in("bob"));
    let (_, bobs_token) = bob.page().await;
    let bobs = json_of(&bob.create(&bobs_token, "bob's", "1d").await);
    let (bobs_key, bobs_id) = (bobs["key"].as_str().unwrap(), bobs["id"].as_str().unwrap());

    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    let (page, token) = alice.page().await;
    assert!(!page.text().contains(bobs_id), "alice sees only her keys");
    let theirs = alice
        .api(
            Method::DELETE,
            &format!("/.keygate/api/keys/{bobs_id}"),
            Some(&token),
            None,
        )
        .await;
    let unknown = alice
        .api(
            Method::DELETE,
            "/.keygate/api/keys/AAAAAAAAAAAA",
            Some(&token),
            None,
        )
        .await;
    let garbage = alice
        .api(
            Method::DELETE,
            "/.keygate/api/keys/%3Cscript%3E",
            Some(&token),
            None,
        )
        .await;
    for a in [&theirs, &unknown, &garbage] {
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    }
    assert_eq!(theirs.body, unknown.body);
    assert_eq!(
        basic_get(&gw, bobs_key, "/x").await.status,
        StatusCode::OK,
        "bob's key still works"
    );
    let listed = json_of(
        &alice
            .api(Method::GET, "/.keygate/api/keys", None, None)
            .await,
    );
    assert_eq!(listed["keys"], json!([]));
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    let (_, token) = alice.page().await;

    let not_offered = alice.create(&token, "x", "2d").await;
    assert_eq!(not_offered.status, StatusCode::BAD_REQUEST);
    let error = json_of(&not_offered)["error"].as_str().unwrap().to_owned();
    assert!(
        error.starts_with("ttl: \"2d\" is not one of the offered lifetimes"),
        "{error}"
    );
    let never = alice.create(&token, "x", "never").await;
    assert_eq!(never.status, StatusCode::BAD_REQUEST);
    let long = alice.create(&token, &"x".repeat(201), "1d").await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert!(json_of(&long)["error"]
        .as_str()
        .unwrap()
        .starts_with("label:"));
    let unknown = alice
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some(&token),
            Some(json!({ "ttl": "1d", "user": "admin" })),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        json_of(&unknown)["error"]
            .as_str()
            .unwrap()
            .contains("user"),
        "{}",
        unknown.text()
    );
    let wrong_type = alice
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some(&token),
            Some(json!({ "ttl": 30 })),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert!(json_of(&wrong_type)["error"]
        .as_str()
        .unwrap()
        .starts_with("ttl:"));
    let req = alice
        .request(Method::POST, "/.keygate/api/keys")
        .header(header::ORIGIN, gw.url(""))
        .header("x-csrf-token", &token)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body::full("{}"))
        .unwrap();
    assert_eq!(
        client::send(&alice.client, req).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let put = alice
        .api(Method::PUT, "/.keygate/api/keys", Some(&token), None)
        .await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.headers[header::ALLOW], "GET, POST");
    assert!(gw
        .keyring
        .store
        .list(Some("alice"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        alice.get("/.keygate/nothing").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_label_with_markup_is_escaped_on_the_page() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    let (_, token) = alice.page().await;
    let evil = "<script>alert(1)</script><img src=x onerror=\"alert('2')\">";
    let created = alice.create(&token, evil, "1d").await;
    assert_eq!(created.status, StatusCode::CREATED);
    let (page, _) = alice.page().await;
    let html = page.text();
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(
        html.contains("<td>&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(&#x27;2&#x27;)&quot;&gt;</td>"),
        "{html}"
    );
    // In the attribute too, where a quote would end it.
    assert!(
        html.contains("aria-label=\"Revoke &lt;script&gt;"),
        "{html}"
    );
}

#[tokio::test]
async fn signed_out_browsers_get_a_page_linking_to_the_login_url() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let mut nobody = Browser::new(&gw);
    let page = nobody.get("/.keygate/keys").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.text()
            .contains("<a id=\"login\" href=\"/login?next=/.keygate/keys\">Sign in</a>"),
        "{}",
        page.text()
    );
    // An unknown session, as the app sees it (401 from who-am-I): the same.
    nobody.set_cookie("app_session=expired");
    let page = nobody.get("/.keygate/keys").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.text().contains("Sign in"));
    let api = nobody
        .api(Method::GET, "/.keygate/api/keys", None, None)
        .await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert_eq!(json_of(&api)["error"], "not signed in");
}

#[tokio::test]
async fn a_whoami_url_that_is_down_or_hangs_is_a_503_page() {
    let up = Upstream::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut b = builder(&up.url());
    b.set("login", "method = \"backend_session\"").set(
        "login",
        &format!("whoami_url = \"http://{closed}/login-whoami.api\""),
    );
    let gw = b.start().await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie("app_session=s1");
    let page = alice.get("/.keygate/keys").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.headers.contains_key(header::RETRY_AFTER));
    assert!(
        page.text().contains("Sign-in is unavailable"),
        "{}",
        page.text()
    );
    let api = alice
        .api(Method::GET, "/.keygate/api/keys", None, None)
        .await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);

    let app = WhoAmI::start().await;
    let mut b = builder(&up.url());
    b.set("login", "method = \"backend_session\"")
        .set(
            "login",
            &format!("whoami_url = \"http://{}/hang\"", app.addr),
        )
        .set("login", "timeout = \"300ms\"");
    let gw = b.start().await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie("app_session=s1");
    let started = std::time::Instant::now();
    let page = alice.get("/.keygate/keys").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn without_login_config_or_when_switched_off_the_page_says_so() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let mut b = Browser::new(&gw);
    let page = b.get("/.keygate/keys").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.text().contains("Self-service is not configured"),
        "{}",
        page.text()
    );
    let api = b.api(Method::GET, "/.keygate/api/keys", None, None).await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(json_of(&api)["error"]
        .as_str()
        .unwrap()
        .contains("not configured"));

    let app = WhoAmI::start().await;
    let gw = backend_session(&up, &app, &[]).await;
    let mut settings = gw.keyring.settings().await.unwrap();
    settings.self_service = false;
    gw.keyring.put_settings(&settings).await.unwrap();
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    let page = alice.get("/.keygate/keys").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.text().contains("Self-service is turned off"),
        "{}",
        page.text()
    );
    let api = alice
        .api(
            Method::POST,
            "/.keygate/api/keys",
            Some("x"),
            Some(json!({})),
        )
        .await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert!(json_of(&api)["error"]
        .as_str()
        .unwrap()
        .contains("turned off"));
}

#[tokio::test]
async fn per_user_limits_on_live_keys_and_creation_rate() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(
        &up,
        &app,
        &[
            ("self_service", "max_live_keys = 2"),
            ("self_service", "creates_per_hour = 3"),
        ],
    )
    .await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    let (_, token) = alice.page().await;
    let first = json_of(&alice.create(&token, "1", "1d").await);
    assert_eq!(
        alice.create(&token, "2", "1d").await.status,
        StatusCode::CREATED
    );
    let full = alice.create(&token, "3", "1d").await;
    assert_eq!(full.status, StatusCode::CONFLICT, "{}", full.text());
    assert!(json_of(&full)["error"]
        .as_str()
        .unwrap()
        .contains("2 live keys"));
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        alice
            .api(
                Method::DELETE,
                &format!("/.keygate/api/keys/{id}"),
                Some(&token),
                None
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        alice.create(&token, "3", "1d").await.status,
        StatusCode::CREATED
    );
    let id = json_of(
        &alice
            .api(Method::GET, "/.keygate/api/keys", None, None)
            .await,
    )["keys"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice
        .api(
            Method::DELETE,
            &format!("/.keygate/api/keys/{id}"),
            Some(&token),
            None,
        )
        .await;
    // Three made this hour: the fourth waits, however many are live.
    let limited = alice.create(&token, "4", "1d").await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text()
    );
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    // Another user has their own allowance.
    let mut bob = Browser::new(&gw);
    bob.set_cookie(&app.sign_in("bob"));
    let (_, bobs) = bob.page().await;
    assert_eq!(
        bob.create(&bobs, "b", "1d").await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn trusted_header_from_the_proxy_is_the_user_for_page_and_upstream() {
    let up = Upstream::start().await;
    let proxy: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut b = builder(&up.url());
    b.set("auth", "anonymous = \"reject\"")
        .set("login", "method = \"trusted_header\"")
        .set("login", "header = \"X-Sso-User\"")
        .set("login", "trusted_proxies = [\"127.0.0.2/32\"]");
    let gw = b.start().await;
    let via_proxy = client::h1_from(&gw.ca, proxy);
    let direct = client::h1(&gw.ca);
    let get = |path: &str, headers: &[(&str, &str)]| {
        let mut r = Request::get(gw.url(path));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(body::empty()).unwrap()
    };

    // The page, from the proxy, is alice's.
    let page = client::send(
        &via_proxy,
        get("/.keygate/keys", &[("X-Sso-User", "alice")]),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("<strong id=\"user\">alice</strong>"));
    // Proxied requests go upstream as alice (a SAML-protected app keeps working).
    let app = client::send(&via_proxy, get("/app", &[("X-Sso-User", "alice")])).await;
    assert_eq!(app.status, StatusCode::OK);
    let seen = up.last().headers;
    assert_eq!(seen["x-remote-user"], "alice");
    assert!(
        !seen.contains_key("x-sso-user"),
        "the login header is not forwarded"
    );
    // An API key, when present, decides.
    let (key, _) = gw.key("bob").await;
    use base64::Engine;
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("apikey:{key}"));
    let with_key = client::send(
        &via_proxy,
        get(
            "/app",
            &[
                ("X-Sso-User", "alice"),
                ("authorization", &format!("Basic {cred}")),
            ],
        ),
    )
    .await;
    assert_eq!(with_key.status, StatusCode::OK);
    assert_eq!(up.last().headers["x-remote-user"], "bob");
    let bad_key = client::send(
        &via_proxy,
        get(
            "/app",
            &[
                ("X-Sso-User", "alice"),
                ("authorization", "Basic YXBpa2V5OmtnX25vcGU="),
            ],
        ),
    )
    .await;
    assert_eq!(bad_key.status, StatusCode::UNAUTHORIZED);
    // A spelling the proxy does not overwrite is not believed, and is stripped.
    let n = up.requests().len();
    let underscore = client::send(&via_proxy, get("/app", &[("X_Sso_User", "mallory")])).await;
    assert_eq!(underscore.status, StatusCode::UNAUTHORIZED);
    assert_eq!(up.requests().len(), n);

    // From anyone else the header means nothing.
    let page = client::send(&direct, get("/.keygate/keys", &[("X-Sso-User", "alice")])).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!page.text().contains("alice"));
    let app = client::send(&direct, get("/app", &[("X-Sso-User", "alice")])).await;
    assert_eq!(app.status, StatusCode::UNAUTHORIZED);
    let with_key = client::send(
        &direct,
        get(
            "/app",
            &[
                ("x-sso-user", "alice"),
                ("X_SSO_USER", "alice"),
                ("authorization", &format!("Basic {cred}")),
            ],
        ),
    )
    .await;
    assert_eq!(with_key.status, StatusCode::OK);
    let seen = up.last().headers;
    assert_eq!(seen["x-remote-user"], "bob");
    assert!(
        !seen
            .keys()
            .any(|k| k.as_str().replace('_', "-") == "x-sso-user"),
        "{seen:?}"
    );
}

/// keygate with `[login] method = "cas"` against `cas`, on a port chosen
/// first so that `login.public_url` can name it.
pub async fn cas_gateway(up: &Upstream, cas: &CasServer) -> TestGateway {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut b = builder(&up.url());
    b.set("listen", &format!("addr = \"127.0.0.1:{port}\""))
        .set("login", "method = \"cas\"")
        .set("login", &format!("cas_url = \"{}\"", cas.url()))
        .set(
            "login",
            &format!("public_url = \"https://127.0.0.1:{port}\""),
        );
    b.start().await
}

#[tokio::test]
#[ignore = "needs django-cas-server: run through scripts/test.sh"]
async fn cas_login_makes_a_session_and_refuses_replayed_or_foreign_tickets() {
    let cas = CasServer::start();
    let up = Upstream::start().await;
    let gw = cas_gateway(&up, &cas).await;
    let mut browser = Browser::new(&gw);

    // No session: off to the CAS server, with keygate's one service URL.
    let to_cas = browser.get("/.keygate/keys").await;
    assert_eq!(to_cas.status, StatusCode::FOUND);
    let login_url = to_cas.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let service = gw.url("/.keygate/login");
    assert_eq!(
        login_url,
        format!(
            "{}/login?service={}",
            cas.url(),
            form_urlencoded::byte_serialize(service.as_bytes()).collect::<String>()
        )
    );
    let back = cas::login(&login_url, cas::USER, cas::PASSWORD).await;
    assert!(back.starts_with(&format!("{service}?ticket=ST-")), "{back}");
    let callback = back.strip_prefix(&gw.url("")).unwrap().to_owned();

    let signed_in = browser.get(&callback).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text()
    );
    assert_eq!(signed_in.headers[header::LOCATION], "/.keygate/keys");
    let cookie = signed_in.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("__Host-keygate-session="), "{cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Max-Age=28800"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let (page, token) = browser.page().await;
    assert!(page.text().contains("<strong id=\"user\">alice</strong>"));
    assert!(page.text().contains("href=\"/.keygate/logout\""));
    let created = browser.create(&token, "cas", "1d").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(json_of(&created)["user"], "alice");

    // The same ticket again: the CAS server refuses it, keygate says so (403, not 500).
    let mut replay = Browser::new(&gw);
    let replayed = replay.get(&callback).await;
    assert_eq!(
        replayed.status,
        StatusCode::FORBIDDEN,
        "{}",
        replayed.text()
    );
    assert!(
        replayed.text().contains("INVALID_TICKET"),
        "{}",
        replayed.text()
    );
    assert!(!replayed.headers.contains_key(header::SET_COOKIE));

    // A ticket issued for another service is refused as well.
    let other_service = format!("https://127.0.0.1:{}/other-app/", gw.addr.port() + 1);
    let other_login = format!(
        "{}/login?service={}",
        cas.url(),
        form_urlencoded::byte_serialize(other_service.as_bytes()).collect::<String>()
    );
    let other = cas::login(&other_login, cas::USER, cas::PASSWORD).await;
    let ticket = other.split("ticket=").nth(1).unwrap();
    let foreign = replay
        .get(&format!("/.keygate/login?ticket={ticket}"))
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN, "{}", foreign.text());
    assert!(
        foreign.text().contains("INVALID_SERVICE"),
        "{}",
        foreign.text()
    );

    // A made-up or tampered session cookie is no session.
    replay.set_cookie("__Host-keygate-session=YWRtaW4.99999999999.forged");
    assert_eq!(replay.get("/.keygate/keys").await.status, StatusCode::FOUND);

    // Sign out: the cookie is cleared and the CAS server ends its session too.
    let out = browser.get("/.keygate/logout").await;
    assert_eq!(out.status, StatusCode::FOUND);
    assert_eq!(
        out.headers[header::LOCATION].to_str().unwrap(),
        format!("{}/logout", cas.url())
    );
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        browser.get("/.keygate/keys").await.status,
        StatusCode::FOUND
    );
}

#[tokio::test]
async fn a_cas_server_that_is_down_is_a_503_page() {
    let up = Upstream::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut b = builder(&up.url());
    b.set("login", "method = \"cas\"")
        .set("login", &format!("cas_url = \"http://{closed}/cas\""))
        .set("login", "public_url = \"https://127.0.0.1:1\"");
    let gw = b.start().await;
    let mut browser = Browser::new(&gw);
    let page = browser.get("/.keygate/login?ticket=ST-1-abc").await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.text()
    );
    assert!(page.text().contains("Sign-in is unavailable"));
}
