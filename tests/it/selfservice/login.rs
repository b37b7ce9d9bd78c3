//! Each login method against a real counterpart: the who-am-I app (signed out,
//! down, hanging), a trusted proxy address, django-cas-server.

use std::sync::{Arc, Mutex};

use http::{header, Method, Request, StatusCode};

use super::*;

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

/// The application's anonymous user (`guest_users`, `["guest"]`) is
/// nobody, however the application writes it ("Guest" for a display name):
/// else every browser without a session shared one user's keys.
#[tokio::test]
async fn the_applications_guest_is_signed_out_in_any_case() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    for guest in ["guest", "Guest", "GUEST"] {
        let mut anonymous = Browser::new(&gw);
        anonymous.set_cookie(&app.sign_in(guest));
        let page = anonymous.get("/.keygate/keys").await;
        assert_eq!(
            page.status,
            StatusCode::FORBIDDEN,
            "{guest}: {}",
            page.text()
        );
        assert!(page.text().contains("Sign in first"), "{}", page.text());
    }
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

/// An application that answers its who-am-I with a server error is down,
/// not saying "signed out": a 503 "try again", not "Sign in first" with a
/// link to a login that cannot help.
#[tokio::test]
async fn a_whoami_url_answering_a_server_error_is_a_503_page() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let mut b = builder(&up.url());
    b.set("login", "method = \"backend_session\"").set(
        "login",
        &format!("whoami_url = \"http://{}/broken\"", app.addr),
    );
    let gw = b.start().await;
    let mut alice = Browser::new(&gw);
    alice.set_cookie(&app.sign_in("alice"));
    let page = alice.get("/.keygate/keys").await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.text()
    );
    assert!(page.headers.contains_key(header::RETRY_AFTER));
    let api = alice
        .api(Method::GET, "/.keygate/api/keys", None, None)
        .await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
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

/// The SSO proxy names a person whose name is not ASCII, as mod_auth_mellon
/// sends it (UTF-8): the page is theirs, the key they make on it is theirs,
/// and the backend receives that name's bytes, with the key and without it.
#[tokio::test]
async fn a_utf8_trusted_header_user_makes_a_key_that_reaches_the_backend_as_them() {
    let up = Upstream::start().await;
    let mut b = builder(&up.url());
    b.set("auth", "anonymous = \"reject\"")
        .set("login", "method = \"trusted_header\"")
        .set("login", "header = \"X-Sso-User\"")
        .set("login", "trusted_proxies = [\"127.0.0.2/32\"]");
    let gw = b.start().await;
    let proxy: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut browser = Browser::with_client(&gw, client::h1_from(&gw.ca, proxy));
    browser
        .headers
        .push(("X-Sso-User".into(), "josé@例え.jp".into()));
    let (page, token) = browser.page().await;
    assert!(
        page.text()
            .contains("<strong id=\"user\">josé@例え.jp</strong>"),
        "{}",
        page.text()
    );
    let made = browser.create(&token, "laptop", "30d").await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    let made = json_of(&made);
    assert_eq!(made["user"], "josé@例え.jp");
    let key = made["key"].as_str().unwrap();
    let listed = json_of(
        &browser
            .api(Method::GET, "/.keygate/api/keys", None, None)
            .await,
    );
    assert_eq!(listed["user"], "josé@例え.jp", "{listed}");
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "{listed}");

    // The key, from anywhere, over HTTP/1.1 and HTTP/2: the name's bytes upstream.
    for c in [client::h1(&gw.ca), client::h2(&gw.ca)] {
        let a = client::get_with_key(&c, &gw.url("/app"), key).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_eq!(
            up.last().headers["x-remote-user"].as_bytes(),
            "josé@例え.jp".as_bytes()
        );
    }
    // Without a key, through the SSO proxy: the same bytes.
    let via_proxy = client::h1_from(&gw.ca, proxy);
    let sso = |value: http::HeaderValue| {
        Request::get(gw.url("/app"))
            .header("X-Sso-User", value)
            .body(body::empty())
            .unwrap()
    };
    let a = client::send(
        &via_proxy,
        sso(http::HeaderValue::from_bytes("Jürgen".as_bytes()).unwrap()),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        up.last().headers["x-remote-user"].as_bytes(),
        "Jürgen".as_bytes()
    );
    // Latin-1 bytes are not UTF-8, a direction override is no user name:
    // nobody (401, nothing forwarded), never a mangled name.
    let n = up.requests().len();
    for value in [&b"J\xfcrgen"[..], "a\u{202E}b".as_bytes()] {
        let a = client::send(
            &via_proxy,
            sso(http::HeaderValue::from_bytes(value).unwrap()),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{value:?}");
    }
    assert_eq!(up.requests().len(), n);
}

#[tokio::test]
#[ignore = "needs django-cas-server: run through scripts/test.sh"]
async fn cas_login_makes_a_session_and_refuses_replayed_or_foreign_tickets() {
    let cas = CasServer::start();
    let up = Upstream::start().await;
    let gw = cas::gateway(&cas, &up.url()).await;
    let mut browser = Browser::new(&gw);

    // No session: off to the CAS server, with keygate's service URL and,
    // in it, the flow its cookie binds to this browser.
    let to_cas = browser.get("/.keygate/keys").await;
    assert_eq!(to_cas.status, StatusCode::FOUND);
    let login_url = to_cas.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let flow_cookie = to_cas.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        flow_cookie.starts_with("__Host-keygate-cas="),
        "{flow_cookie}"
    );
    for attr in [
        "Path=/",
        "Max-Age=600",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
    ] {
        assert!(flow_cookie.contains(attr), "{flow_cookie}");
    }
    let flow = browser.cookie("__Host-keygate-cas").unwrap();
    let flow = flow.split('.').next().unwrap();
    let service = gw.url(&format!("/.keygate/login?flow={flow}"));
    assert_eq!(
        login_url,
        format!(
            "{}/login?service={}",
            cas.url(),
            form_urlencoded::byte_serialize(service.as_bytes()).collect::<String>()
        )
    );
    let back = cas::login(&login_url, cas::USER, cas::PASSWORD).await;
    assert!(back.starts_with(&format!("{service}&ticket=ST-")), "{back}");
    let callback = back.strip_prefix(&gw.url("")).unwrap().to_owned();

    let signed_in = browser.get(&callback).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text()
    );
    assert_eq!(signed_in.headers[header::LOCATION], "/.keygate/keys");
    let cookies: Vec<&str> = signed_in
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("__Host-keygate-session="))
        .unwrap_or_else(|| panic!("{cookies:?}"));
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Max-Age=28800"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-keygate-cas=;") && c.contains("Max-Age=0")),
        "the flow cookie is cleared: {cookies:?}"
    );
    let (page, token) = browser.page().await;
    assert!(page.text().contains("<strong id=\"user\">alice</strong>"));
    assert!(page.text().contains("href=\"/.keygate/logout\""));
    let created = browser.create(&token, "cas", "1d").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(json_of(&created)["user"], "alice");

    // The same ticket again, even with a flow of its own: the CAS server
    // refuses it, keygate says so (403, not 500).
    let mut replay = Browser::new(&gw);
    let replay_flow = start_cas_flow(&mut replay).await;
    let ticket = back.split("ticket=").nth(1).unwrap().to_owned();
    let replayed = replay
        .get(&format!(
            "/.keygate/login?flow={replay_flow}&ticket={ticket}"
        ))
        .await;
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
    assert!(replayed
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .all(|c| !c.to_str().unwrap().starts_with("__Host-keygate-session=")));

    // A ticket issued for another service is refused as well: the CAS
    // server's service check, with the service URL of this browser's flow.
    let other_service = format!("https://127.0.0.1:{}/other-app/", gw.addr.port() + 1);
    let other_login = format!(
        "{}/login?service={}",
        cas.url(),
        form_urlencoded::byte_serialize(other_service.as_bytes()).collect::<String>()
    );
    let other = cas::login(&other_login, cas::USER, cas::PASSWORD).await;
    let ticket = other.split("ticket=").nth(1).unwrap();
    let replay_flow = start_cas_flow(&mut replay).await;
    let foreign = replay
        .get(&format!(
            "/.keygate/login?flow={replay_flow}&ticket={ticket}"
        ))
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
    let flow = start_cas_flow(&mut browser).await;
    let page = browser
        .get(&format!("/.keygate/login?flow={flow}&ticket=ST-1-abc"))
        .await;
    assert_eq!(
        page.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.text()
    );
    assert!(page.text().contains("Sign-in is unavailable"));
    // The flow stays: reloading the callback tries the same ticket again,
    // an outage again here, never "no sign-in was started".
    assert!(
        !page.headers.contains_key(header::SET_COOKIE),
        "{:?}",
        page.headers
    );
    let again = browser
        .get(&format!("/.keygate/login?flow={flow}&ticket=ST-1-abc"))
        .await;
    assert_eq!(
        again.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        again.text()
    );
}

/// A CAS server whose `/cas/p3/serviceValidate` signs every ticket in as
/// `user`: the answers django-cas-server gives, without it. It keeps the
/// query string of every request it was sent.
async fn cas_naming(
    user: &'static str,
) -> (
    std::net::SocketAddr,
    Arc<Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    let task = crate::support::serve_http1(listener, move |_, req| {
        let seen = seen.clone();
        async move {
            let query = req.uri().query().unwrap_or("").to_owned();
            seen.lock().unwrap().push(query);
            let xml = format!(
                "<cas:serviceResponse xmlns:cas=\"http://www.yale.edu/tp/cas\">\
                 <cas:authenticationSuccess><cas:user>{user}</cas:user>\
                 </cas:authenticationSuccess></cas:serviceResponse>"
            );
            Ok(http::Response::builder()
                .header(header::CONTENT_TYPE, "text/xml; charset=utf-8")
                .body(body::full(xml))
                .unwrap())
        }
    });
    (addr, asked, task)
}

/// keygate with `method = "cas"` against the CAS server at `cas`.
async fn cas_gateway(up: &Upstream, cas: std::net::SocketAddr) -> TestGateway {
    let mut b = builder(&up.url());
    b.set("login", "method = \"cas\"")
        .set("login", &format!("cas_url = \"http://{cas}/cas\""))
        .set("login", "public_url = \"https://127.0.0.1:1\"");
    b.start().await
}

/// The service URL of keygate's redirect to the CAS server.
fn service_of(to_cas: &Answer) -> String {
    assert_eq!(to_cas.status, StatusCode::FOUND, "{}", to_cas.text());
    let location = to_cas.headers[header::LOCATION].to_str().unwrap();
    let query = location.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "service")
        .unwrap()
        .1
        .into_owned()
}

/// Start a CAS sign-in in `browser` (keygate sets its flow cookie and sends
/// it to the CAS server): the flow, as the service URL carries it.
async fn start_cas_flow(browser: &mut Browser) -> String {
    let service = service_of(&browser.get("/.keygate/login").await);
    let flow = service.split_once("?flow=").unwrap().1.to_owned();
    assert!(
        browser
            .cookie("__Host-keygate-cas")
            .is_some_and(|c| c.starts_with(&format!("{flow}."))),
        "the cookie binds the flow"
    );
    flow
}

/// Login CSRF: the attacker signs in at the CAS server and, instead of
/// following the redirect, sends a victim the link with their ticket. In a
/// browser without the flow cookie, or with a flow of its own, that link is
/// a 403 "Sign-in failed" page offering "Sign in again": no session, and the
/// CAS server is not even asked about the ticket. The victim's own sign-in
/// still finishes, validated with the very service URL it was sent with.
#[tokio::test]
async fn a_cas_ticket_from_another_browsers_sign_in_is_refused_unvalidated() {
    let up = Upstream::start().await;
    let (cas, asked, _task) = cas_naming("mallory").await;
    let gw = cas_gateway(&up, cas).await;

    // The attacker's sign-in, stopped at the CAS server's redirect back:
    // the service URL keygate sent them with, and their ticket.
    let mut attacker = Browser::new(&gw);
    let service = service_of(&attacker.get("/.keygate/login").await);
    let service = service.strip_prefix("https://127.0.0.1:1").unwrap();
    let link = match service.contains('?') {
        true => format!("{service}&ticket=ST-1-mallory"),
        false => format!("{service}?ticket=ST-1-mallory"),
    };

    let refused_unasked = |page: &Answer, victim: &Browser| {
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
        assert!(page.text().contains("Sign-in failed"), "{}", page.text());
        assert!(
            page.text()
                .contains("<a id=\"login\" href=\"/.keygate/login\">Sign in again</a>"),
            "{}",
            page.text()
        );
        assert!(
            !page.headers.contains_key(header::SET_COOKIE),
            "{:?}",
            page.headers
        );
        assert_eq!(victim.cookie("__Host-keygate-session"), None);
        assert!(asked.lock().unwrap().is_empty(), "the CAS server was asked");
    };

    // A fresh browser (no flow cookie): refused.
    let mut victim = Browser::new(&gw);
    let page = victim.get(&link).await;
    refused_unasked(&page, &victim);
    assert!(
        page.text()
            .contains("no sign-in was started in this browser"),
        "{}",
        page.text()
    );
    assert_eq!(victim.get("/.keygate/keys").await.status, StatusCode::FOUND);

    // A browser in the middle of its own sign-in: refused, its flow kept.
    let victims_flow = start_cas_flow(&mut victim).await;
    let page = victim.get(&link).await;
    refused_unasked(&page, &victim);
    assert!(
        page.text()
            .contains("flow is not the one this browser was sent with"),
        "{}",
        page.text()
    );
    // No flow at all, or a made-up one, with the cookie: refused too.
    for query in [
        "ticket=ST-1-mallory",
        "flow=&ticket=ST-1-mallory",
        "flow=AAAA&ticket=ST-1-mallory",
    ] {
        let page = victim.get(&format!("/.keygate/login?{query}")).await;
        refused_unasked(&page, &victim);
    }

    // The victim's own callback signs in, validated with its service URL.
    let own = victim
        .get(&format!(
            "/.keygate/login?flow={victims_flow}&ticket=ST-2-own"
        ))
        .await;
    assert_eq!(own.status, StatusCode::SEE_OTHER, "{}", own.text());
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(asked[0].as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        params["service"],
        format!("https://127.0.0.1:1/.keygate/login?flow={victims_flow}")
    );
    assert_eq!(params["ticket"], "ST-2-own");
    // That flow is over; the one its visit to the page started above
    // (another tab's, as far as keygate can tell) stays.
    let left = victim.cookie("__Host-keygate-cas").unwrap_or_default();
    assert!(!left.contains(&victims_flow), "the flow is over: {left}");
}

/// A `cas:user` that is no user name (a right-to-left override; a
/// trailing ideographic space, never trimmed into another user) is the
/// same answer on every try: a 403 "Sign-in failed" page saying why, no
/// session, no Retry-After; not a 503 "try again in a minute". A name
/// that is not ASCII but a user name signs in.
#[tokio::test]
async fn a_cas_user_that_is_no_user_name_is_a_403_page_not_an_outage() {
    for (user, why) in [
        (
            "zo\u{00EB}\u{202E}nimda",
            "contains an invisible or direction-changing",
        ),
        ("alice\u{3000}", "starts or ends with white space"),
        ("zo\u{00EB}", ""),
    ] {
        let up = Upstream::start().await;
        let (cas, _asked, _task) = cas_naming(user).await;
        let gw = cas_gateway(&up, cas).await;
        let mut browser = Browser::new(&gw);
        let flow = start_cas_flow(&mut browser).await;
        let page = browser
            .get(&format!("/.keygate/login?flow={flow}&ticket=ST-1-abc"))
            .await;
        if why.is_empty() {
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text());
            let (page, _) = browser.page().await;
            assert!(
                page.text()
                    .contains(&format!("<strong id=\"user\">{user}</strong>")),
                "{}",
                page.text()
            );
            continue;
        }
        assert_eq!(
            page.status,
            StatusCode::FORBIDDEN,
            "{user:?}: {}",
            page.text()
        );
        assert!(page.text().contains("Sign-in failed"), "{}", page.text());
        assert!(
            page.text().contains(&format!(
                "the user name the CAS server gives for this account {why}"
            )),
            "{}",
            page.text()
        );
        assert!(!page.text().contains(user), "{}", page.text());
        assert!(!page.headers.contains_key(header::RETRY_AFTER));
        // No session; the flow is over.
        let cookies: Vec<&str> = page
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            cookies,
            ["__Host-keygate-cas=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax"]
        );
        assert_eq!(
            browser.get("/.keygate/keys").await.status,
            StatusCode::FOUND,
            "still signed out"
        );
    }
}

/// The application's who-am-I (and the SSO proxy's header) naming a user
/// no key can carry is told at once, on the page and in the API: a 403
/// that says why, not a page that lets the person fill in the form and
/// fails at "Generate". The name is not shown (it may hold the very
/// characters that make it unsafe to print).
#[tokio::test]
async fn a_signed_in_name_that_is_no_user_name_is_a_403_before_any_form() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[]).await;
    let user = "zo\u{00EB}\u{202E}nimda";
    let mut browser = Browser::new(&gw);
    browser.set_cookie(&app.sign_in(user));
    let page = browser.get("/.keygate/keys").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
    assert!(
        page.text().contains(
            "the user name the application gives for this account contains an invisible or direction-changing"
        ),
        "{}",
        page.text()
    );
    assert!(!page.text().contains(user), "{}", page.text());
    assert!(!page.text().contains("id=\"generate\""), "{}", page.text());
    let api = browser
        .api(Method::GET, "/.keygate/api/keys", None, None)
        .await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert!(
        json_of(&api)["error"]
            .as_str()
            .unwrap()
            .starts_with("the user name the application gives for this account contains"),
        "{}",
        api.text()
    );

    // Behind an SSO proxy the same: a 403 saying why, not "signed out".
    let mut b = builder(&up.url());
    b.set("login", "method = \"trusted_header\"")
        .set("login", "header = \"X-Sso-User\"")
        .set("login", "trusted_proxies = [\"127.0.0.1/32\"]");
    let gw = b.start().await;
    let page = client::send(
        &client::h1(&gw.ca),
        Request::get(gw.url("/.keygate/keys"))
            .header("X-Sso-User", "alice\u{00A0}")
            .body(body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text());
    assert!(
        page.text().contains(
            "the user name the single sign-on proxy gives for this account starts or ends with white space"
        ),
        "{}",
        page.text()
    );
}

/// keygate's cookies (the CAS session, the CSRF id) are credentials for
/// `/.keygate/` only: a backend that saw them could replay them to mint keys
/// in the user's name. They are removed from proxied requests; the app's own
/// cookies go through.
#[tokio::test]
async fn keygates_own_cookies_never_reach_the_backend() {
    let (up, app) = (Upstream::start().await, WhoAmI::start().await);
    let gw = backend_session(&up, &app, &[("auth", "anonymous = \"passthrough\"")]).await;
    for c in [client::h1(&gw.ca), client::h2(&gw.ca)] {
        let mut alice = Browser::with_client(&gw, c);
        let session = app.sign_in("alice");
        alice.set_cookie(&session);
        let (_page, _token) = alice.page().await;
        alice.set_cookie("__Host-keygate-session=YWxpY2U.9999999999.tag");
        alice.set_cookie("theme=dark");
        let a = alice.get("/app").await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        let seen = up.last().headers;
        let cookies: Vec<&str> = seen
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        let joined = cookies.join("; ");
        assert!(!joined.contains("__Host-keygate-"), "{joined}");
        assert!(
            joined.contains("theme=dark") && joined.contains(&session),
            "{joined}"
        );
    }
}

/// An SSO proxy that serves the page on its own origin (here
/// `http://127.0.0.1:8080`, Host rewritten to keygate's) without
/// `login.public_url`: the write is refused (it must be), but the answer the
/// page shows names `login.public_url` instead of "CSRF check failed", the
/// log says which origin was expected and which came, and `keygate check`
/// warns about the file (exit 0). With `public_url` set, the same write works.
#[tokio::test]
async fn a_proxy_on_another_origin_without_public_url_is_named_not_called_csrf() {
    use crate::support::bin::{self, Process};
    use crate::support::tls::Ca;

    const PROXY_ORIGIN: &str = "http://127.0.0.1:8080";
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("origin test CA");
    let login = "[store]\nkind = \"memory\"\n[log]\naccess_log = false\n\
                 [login]\nmethod = \"trusted_header\"\ntrusted_proxies = [\"127.0.0.2/32\"]\n";
    let cfg = bin::write_config(dir.path(), &ca, "localhost", &up.url(), login);

    let check = bin::check(&cfg);
    let warned = String::from_utf8_lossy(&check.stderr).into_owned();
    assert_eq!(check.status.code(), Some(0), "{warned}");
    assert_eq!(
        warned
            .lines()
            .filter(|l| l.starts_with("warning: "))
            .count(),
        1,
        "{warned}"
    );
    assert!(
        warned.contains("warning: login.public_url: not set with method = \"trusted_header\""),
        "{warned}"
    );

    let proxy = client::h1_from(&ca, "127.0.0.2".parse().unwrap());
    let write = |addr: std::net::SocketAddr| {
        let proxy = proxy.clone();
        async move {
            let url = |path: &str| format!("https://localhost:{}{path}", addr.port());
            let page = client::send(
                &proxy,
                Request::get(url("/.keygate/keys"))
                    .header("x-remote-user", "alice")
                    .body(body::empty())
                    .unwrap(),
            )
            .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.text());
            let token = between(&page.text(), "name=\"csrf-token\" content=\"", "\"").to_owned();
            let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
            let cookie = cookie.split(';').next().unwrap().to_owned();
            client::send(
                &proxy,
                Request::post(url("/.keygate/api/keys"))
                    .header("x-remote-user", "alice")
                    .header(header::ORIGIN, PROXY_ORIGIN)
                    .header("sec-fetch-site", "same-origin")
                    .header(header::COOKIE, cookie)
                    .header("x-csrf-token", token)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body::full(r#"{"label":"laptop"}"#))
                    .unwrap(),
            )
            .await
        }
    };

    let kg = Process::serve(&cfg);
    let addr = kg.main_addr().await;
    kg.logged("login.public_url").await;
    let refused = write(addr).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    let error = json_of(&refused)["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("the gateway's public URL is configured differently")
            && error.contains("login.public_url")
            && error.contains(PROXY_ORIGIN)
            && !error.contains("CSRF"),
        "{error}"
    );
    kg.logged("another origin than the gateway's").await;
    let line = kg
        .log_lines()
        .into_iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("another origin than the gateway's"))
        })
        .unwrap();
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["origin"], PROXY_ORIGIN, "{line}");
    assert_eq!(
        line["expected_origin"],
        format!("https://localhost:{}", addr.port()),
        "{line}"
    );
    drop(kg);

    // The advice works: the same write with public_url set to the proxy's address.
    let fixed = format!("{login}public_url = \"{PROXY_ORIGIN}\"\n");
    let cfg = bin::write_config(dir.path(), &ca, "localhost", &up.url(), &fixed);
    let check = bin::check(&cfg);
    assert_eq!(check.status.code(), Some(0));
    assert!(
        !String::from_utf8_lossy(&check.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let kg = Process::serve(&cfg);
    let created = write(kg.main_addr().await).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
}

/// CAS: a signed-out visit to the admin console goes to the CAS server at
/// once and, signed in, comes back to the console; the keys page's
/// sign-in still comes back to the keys page.
#[tokio::test]
async fn a_cas_sign_in_started_at_the_console_returns_to_the_console() {
    let up = Upstream::start().await;
    let (cas, _asked, _task) = cas_naming("alice").await;
    let mut b = builder(&up.url());
    b.set("login", "method = \"cas\"")
        .set("login", &format!("cas_url = \"http://{cas}/cas\""))
        .set("login", "public_url = \"https://127.0.0.1:1\"")
        .set("admin", "users = [\"alice\"]");
    let gw = b.start().await;
    for (start, back_to) in [
        ("/.keygate/admin", "/.keygate/admin"),
        ("/.keygate/keys", "/.keygate/keys"),
    ] {
        let mut browser = Browser::new(&gw);
        let service = service_of(&browser.get(start).await);
        let flow = service.split_once("?flow=").unwrap().1.to_owned();
        let back = browser
            .get(&format!("/.keygate/login?flow={flow}&ticket=ST-1-abc"))
            .await;
        assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.text());
        assert_eq!(back.headers[header::LOCATION], back_to, "from {start}");
        let page = browser.get(back_to).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    }
}

/// Sessions cannot be revoked, so lowering `login.session_ttl` is how an
/// operator cuts them short (after a leaked cookie, say): a session signed
/// under a longer `session_ttl` than the one in force is void, on every
/// instance, not kept until its own later expiry.
#[tokio::test]
async fn lowering_session_ttl_cuts_the_sessions_already_made() {
    let up = Upstream::start().await;
    let (cas, _asked, _task) = cas_naming("alice").await;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let gateway = |ttl: &str| {
        let mut b = builder(&up.url());
        b.redis(&redis, dir.path(), "session-ttl")
            .set("login", "method = \"cas\"")
            .set("login", &format!("cas_url = \"http://{cas}/cas\""))
            .set("login", "public_url = \"https://127.0.0.1:1\"")
            .set("login", &format!("session_ttl = \"{ttl}\""));
        b
    };
    let week = gateway("7d").start().await;
    let mut browser = Browser::new(&week);
    let flow = start_cas_flow(&mut browser).await;
    let signed_in = browser
        .get(&format!("/.keygate/login?flow={flow}&ticket=ST-1-abc"))
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text()
    );
    let session = browser.cookie("__Host-keygate-session").unwrap();

    // The same deployment (store, secret, CAS server), a week's session
    // still held; then one with a one-hour session_ttl.
    for (ttl, status) in [("7d", StatusCode::OK), ("1h", StatusCode::FOUND)] {
        let gw = gateway(ttl).start().await;
        let mut other = Browser::new(&gw);
        other.set_cookie(&format!("__Host-keygate-session={session}"));
        let page = other.get("/.keygate/keys").await;
        assert_eq!(page.status, status, "session_ttl = {ttl}: {}", page.text());
    }
}
