//! The self-service page and its JSON API over real TLS, with real login
//! backends: a who-am-I web app (`backend_session`), a trusted proxy address
//! (`trusted_header`), django-cas-server (`cas`) and oidc-provider (`oidc`)
//! (both `#[ignore]`d for a bare `cargo test`: scripts/test.sh installs them
//! and runs them), and a hand-made OpenID provider for bad answers.

mod api;
mod console;
mod login;
mod oidc;
mod page;

use http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

pub use crate::support::body;
pub use crate::support::cas::{self, CasServer};
pub use crate::support::client::{self, Answer, HttpsClient};
pub use crate::support::gateway::{builder, test_actor, TestGateway};
pub use crate::support::redis::RedisServer;
pub use crate::support::upstream::Upstream;
pub use crate::support::whoami::WhoAmI;
use crate::support::ADMIN_TOKEN;

/// A browser as far as keygate can tell: a cookie jar, and the `Origin` its
/// scripts send.
pub struct Browser {
    pub client: HttpsClient,
    base: String,
    cookies: Vec<(String, String)>,
    pub origin: String,
    /// Sent with every request (an SSO proxy's user header).
    pub headers: Vec<(String, String)>,
}

impl Browser {
    pub fn new(gw: &TestGateway) -> Browser {
        Browser::with_client(gw, client::h1(&gw.ca))
    }

    pub fn with_client(gw: &TestGateway, client: HttpsClient) -> Browser {
        Browser::with_client_at(client, &gw.url(""))
    }

    /// A browser on the gateway at `base` (`https://host:port`), such as the real binary.
    pub fn with_client_at(client: HttpsClient, base: &str) -> Browser {
        let base = base.to_owned();
        Browser {
            client,
            origin: base.clone(),
            base,
            cookies: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// The value of cookie `name` in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    pub fn set_cookie(&mut self, pair: &str) {
        let (k, v) = pair.split_once('=').unwrap();
        self.cookies.retain(|(name, _)| name != k);
        self.cookies.push((k.to_owned(), v.to_owned()));
    }

    pub fn keep(&mut self, a: &Answer) {
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

    pub fn request(&self, method: Method, path: &str) -> http::request::Builder {
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
        for (k, v) in &self.headers {
            r = r.header(k, v);
        }
        r
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.call(Method::GET, path).await
    }

    /// A request without a body, cookies kept.
    pub async fn call(&mut self, method: Method, path: &str) -> Answer {
        let a = client::send(
            &self.client,
            self.request(method, path).body(body::empty()).unwrap(),
        )
        .await;
        self.keep(&a);
        a
    }

    /// A browser signed in to the who-am-I app as `user`, and the CSRF
    /// token of the page it loaded.
    pub async fn signed_in(gw: &TestGateway, app: &WhoAmI, user: &str) -> (Browser, String) {
        let mut browser = Browser::new(gw);
        browser.set_cookie(&app.sign_in(user));
        let (_, token) = browser.page().await;
        (browser, token)
    }

    /// The page, and the CSRF token in it.
    pub async fn page(&mut self) -> (Answer, String) {
        let page = self.get("/.keygate/keys").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let token = between(&page.text(), "name=\"csrf-token\" content=\"", "\"").to_owned();
        (page, token)
    }

    /// A script's call: `Origin`, the token in `X-CSRF-Token`, JSON.
    pub async fn api(
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

    pub async fn create(&mut self, token: &str, label: &str, ttl: &str) -> Answer {
        self.api(
            Method::POST,
            "/.keygate/api/keys",
            Some(token),
            Some(json!({ "label": label, "ttl": ttl })),
        )
        .await
    }
}

pub fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let s = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in:\n{text}"))
        + start.len();
    let e = s + text[s..].find(end).unwrap();
    &text[s..e]
}

pub fn json_of(a: &Answer) -> Value {
    serde_json::from_slice(&a.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", a.text()))
}

/// keygate in front of `up` with `[login] method = "backend_session"` against `app`.
pub async fn backend_session(
    up: &Upstream,
    app: &WhoAmI,
    extra: &[(&'static str, &str)],
) -> TestGateway {
    let mut b = builder(&up.url());
    app.configure(&mut b);
    for (section, line) in extra {
        b.set(section, line);
    }
    b.start().await
}

pub async fn admin_get(gw: &TestGateway, path: &str) -> Value {
    let c = client::h1(&gw.ca);
    let req = Request::get(gw.admin_url(path))
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
        .body(body::empty())
        .unwrap();
    let a = client::send(&c, req).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    json_of(&a)
}

pub async fn basic_get(gw: &TestGateway, key: &str, path: &str) -> Answer {
    use base64::Engine;
    let c = client::h1(&gw.ca);
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("apikey:{key}"));
    let req = Request::get(gw.url(path))
        .header(header::AUTHORIZATION, format!("Basic {cred}"))
        .body(body::empty())
        .unwrap();
    client::send(&c, req).await
}
