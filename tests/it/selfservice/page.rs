//! The page: its contract for the browser tests, escaping, the pages keygate
//! answers instead of it, HTTP/2.

use http::{header, Method, StatusCode};
use serde_json::json;

use super::*;

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
        html.contains("<code id=\"new-key\"></code>") && html.contains("<table id=\"keys\""),
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
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
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
async fn a_label_with_markup_is_escaped_on_the_page() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let (mut alice, token) = Browser::signed_in(&gw, &app, "alice").await;
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
    gw.keyring
        .put_settings(&test_actor(), &settings)
        .await
        .unwrap();
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

/// HEAD answers what GET would, without a body, for the page and its
/// assets, over HTTP/1.1 and HTTP/2 (where hyper would send the body);
/// other methods get 405 with the methods that work.
#[tokio::test]
async fn head_on_the_page_and_its_assets_is_get_without_the_body() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    for client in [client::h1(&gw.ca), client::h2(&gw.ca)] {
        let mut alice = Browser::with_client(&gw, client);
        alice.set_cookie(&app.sign_in("alice"));
        for (path, kind) in [
            ("/.keygate/keys", "text/html"),
            ("/.keygate/static/app.js", "text/javascript"),
            ("/.keygate/static/app.css", "text/css"),
            ("/.keygate/static/icon.svg", "image/svg+xml"),
        ] {
            let get = alice.get(path).await;
            let head = alice.call(Method::HEAD, path).await;
            let over = format!("HEAD {path} over {:?}", head.version);
            assert_eq!(head.status, StatusCode::OK, "{over}");
            assert!(head.body.is_empty(), "{over} sent a body");
            let content_type = head.headers[header::CONTENT_TYPE].to_str().unwrap();
            assert!(content_type.starts_with(kind), "{over}: {content_type}");
            assert_eq!(
                head.headers[header::CONTENT_TYPE],
                get.headers[header::CONTENT_TYPE]
            );
            if path.contains("/static/") {
                // The assets are fixed: HEAD names GET's length.
                assert_eq!(
                    head.headers[header::CONTENT_LENGTH],
                    get.body.len().to_string().as_str(),
                    "{over}"
                );
            }
            let put = alice.call(Method::PUT, path).await;
            assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED, "PUT {path}");
            assert_eq!(put.headers[header::ALLOW], "GET, HEAD");
        }
    }
    assert!(up.requests().is_empty(), "nothing reached the backend");
}

/// HTTP/2 carries the host in `:authority`, cookies possibly in several
/// fields: the origin check and the who-am-I call see the same as over HTTP/1.1.
#[tokio::test]
async fn the_page_and_api_work_over_http2() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let mut alice = Browser::with_client(&gw, client::h2(&gw.ca));
    alice.set_cookie(&app.sign_in("alice"));
    let (page, token) = alice.page().await;
    assert_eq!(page.version, http::Version::HTTP_2);
    let created = alice.create(&token, "h2", "1d").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    alice.origin = "https://127.0.0.1:1".into();
    let foreign = alice.create(&token, "h2", "1d").await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
}

/// `/.keygate/` is never forwarded, under no spelling a backend might decode,
/// fold, merge or resolve into it: keygate answers its own 404 instead.
#[tokio::test]
async fn no_spelling_of_the_keygate_prefix_reaches_the_backend() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[("auth", "anonymous = \"passthrough\"")]).await;
    for client in [client::h1(&gw.ca), client::h2(&gw.ca)] {
        for path in [
            "/.keygate/../app",
            "/.keygate",
            "/.KEYGATE/keys",
            "/.Keygate/api/keys",
            "//.keygate/keys",
            "/./.keygate/keys",
            "/app/../.keygate/api/keys",
            "/%2ekeygate/api/keys",
            "/%2Ekeygate/keys",
            "/%252ekeygate/keys",
            "/.keygate%2fapi%2fkeys",
            "/.keygate;jsessionid=1/keys",
            "/%5c.keygate%5ckeys",
        ] {
            let a = client::get(&client, &gw.url(path)).await;
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.text());
            assert!(a.headers.contains_key("content-security-policy"), "{path}");
        }
    }
    assert!(
        up.requests().is_empty(),
        "forwarded: {:?}",
        up.requests()
            .iter()
            .map(|r| r.uri.clone())
            .collect::<Vec<_>>()
    );
    // The backend's own paths that merely mention the name still go through.
    let a = client::get(&client::h1(&gw.ca), &gw.url("/app/.keygate/x")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(up.requests().len(), 1);
}

/// The page's `.netrc` line names the host the browser asked for (its
/// `Host`, or HTTP/2's `:authority`), or `login.public_url`'s when set;
/// a Host that is no plain host name leaves the placeholder.
#[tokio::test]
async fn the_netrc_line_names_the_host_the_browser_used() {
    async fn netrc_line(alice: &mut Browser, host: Option<&str>) -> String {
        let mut req = alice.request(Method::GET, "/.keygate/keys");
        if let Some(host) = host {
            req = req.header(header::HOST, host);
        }
        let page = client::send(&alice.client, req.body(body::empty()).unwrap()).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        between(&page.text(), "<code>machine ", "</code>").to_owned()
    }
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    assert_eq!(
        netrc_line(&mut alice, Some("gw.example.org:8443")).await,
        "gw.example.org login apikey password KEY"
    );
    assert_eq!(
        netrc_line(&mut alice, Some("a<b>")).await,
        "HOST login apikey password KEY"
    );
    let mut h2 = Browser::with_client(&gw, client::h2(&gw.ca));
    h2.set_cookie(&app.sign_in("alice"));
    assert_eq!(
        netrc_line(&mut h2, None).await,
        "127.0.0.1 login apikey password KEY"
    );

    let gw = backend_session(
        &up,
        &app,
        &[("login", "public_url = \"https://keygate.example.org:8443\"")],
    )
    .await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    assert_eq!(
        netrc_line(&mut alice, Some("gw.example.org")).await,
        "keygate.example.org login apikey password KEY"
    );
}

/// The page names its own icon, so a browser showing it does not ask the
/// backend for `/favicon.ico` (a 401 in the log on every visit).
#[tokio::test]
async fn the_page_declares_its_own_icon() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    let (page, _) = alice.page().await;
    let href = between(&page.text(), "<link rel=\"icon\" href=\"", "\"").to_owned();
    assert!(href.starts_with("/.keygate/static/"), "{href}");
    let icon = alice.get(&href).await;
    assert_eq!(icon.status, StatusCode::OK);
    assert_eq!(icon.headers[header::CONTENT_TYPE], "image/svg+xml");
    assert!(icon.text().starts_with("<svg"), "{}", icon.text());
}
