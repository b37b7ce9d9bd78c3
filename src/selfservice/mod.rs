//! keygate's own pages under `/.keygate/` (never forwarded upstream):
//!
//! | route | what |
//! |---|---|
//! | `GET /.keygate/keys` | the "External Tool Access" page (`page.rs`) |
//! | `GET /.keygate/api/keys` | the user's keys and the lifetimes offered (JSON) |
//! | `POST /.keygate/api/keys` | `{"label","ttl"}` -> 201 with the key, shown once |
//! | `DELETE /.keygate/api/keys/{id}` | 204; another user's id is 404 like an unknown one |
//! | `POST /.keygate/api/keys/{id}/rotate` | `{"grace"?}` -> 201 with the successor, shown once (the Rotate button) |
//! | `GET /.keygate/static/app.js`, `app.css`, `icon.svg` | the page's script, style and icon |
//! | `GET /.keygate/login`, `/.keygate/logout` | CAS or OIDC sign-in (and its callback) and sign-out (`signin.rs`) |
//! | `/.keygate/leaks/*`, `/.keygate/revoke` | leaked keys, no sign-in: handed to `crate::leaks` |
//! | `/.keygate/admin`, `/.keygate/api/admin/*` | the admin console, "External Tool Settings" (`console/`) |
//!
//! Every request first passes the same gate: `[login]` configured (else a
//! "not configured" 404), self-service on in the runtime settings (else
//! 403), someone signed in (else a page linking to the login URL, or for CAS
//! and OIDC a redirect to it). The console's gate differs in one way: it
//! asks for an admin (`config::Admin::is_admin`) instead of self-service
//! being on, so an admin can switch it back on. Writes also pass `csrf`.
//! Refusals are one enum mapped to a page or to JSON in one place each.

mod api;
mod console;
mod csrf;
mod page;
mod refusal;
mod signin;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use ipnet::IpNet;

use crate::config::{self, Config};
use crate::conn::ConnCtx;
use crate::http::access::Completion;
use crate::http::body::ResponseBody;
use crate::http::gateway::OwnPages;
use crate::http::html::with_own_headers;
use crate::http::response;
use crate::keyring::Keyring;
use crate::leaks::Leaks;
use crate::login::flow::Return;
use crate::login::signed::Signer;
use crate::login::{Login, Method as LoginMethod, Outcome};
use crate::settings::Settings;
use csrf::Csrf;
use refusal::Refusal;

const APP_JS: &str = include_str!("static/app.js");
const APP_CSS: &str = include_str!("static/app.css");
const CONSOLE_JS: &str = include_str!("static/console.js");
/// The page's icon: declared by the page, so browsers do not ask the
/// backend for `/favicon.ico` (a 401 in the log for every visit).
const ICON_SVG: &str = include_str!("static/icon.svg");

pub struct SelfService {
    /// `None`: no `[login]` section, every route says "not configured".
    login: Option<Login>,
    keyring: Keyring,
    csrf: Csrf,
    limits: config::SelfService,
    /// Held from counting a user's live keys to storing the new one, so two
    /// concurrent requests on this instance cannot both pass `max_live_keys`
    /// (creations are rare: one lock for all users is enough).
    mint_lock: tokio::sync::Mutex<()>,
    /// `listen.trusted_proxies`: the audit log names the real client.
    trusted_proxies: Vec<IpNet>,
    /// Secret-scanning reports and revocation by possession (no sign-in).
    leaks: Leaks,
    /// `[admin] users` and `groups`: who gets the console.
    admins: config::Admin,
    /// A JSON body not all there within this is answered 408 (`leaks.body_within`).
    body_within: Duration,
}

type Answer = Result<Response<ResponseBody>, Refusal>;

/// One request's connection, and who it turned out to be (for the access log).
struct Seen<'a> {
    conn: &'a ConnCtx,
    /// Set by the gate when someone is signed in. A Mutex rather than a Cell
    /// only so that the request's future stays `Send`; never contended.
    user: std::sync::Mutex<Option<String>>,
}

/// A signed-in request that passed the gate.
struct Session {
    user: String,
    /// Among `[admin] groups` (OIDC): with `[admin] users`, what makes this
    /// person a console admin (`config::Admin::is_admin`).
    groups: Vec<String>,
    settings: Settings,
    client: IpAddr,
}

// === impl SelfService ===

impl OwnPages for SelfService {
    fn handle<'a>(
        &'a self,
        req: Request<Incoming>,
        conn: &'a ConnCtx,
        done: &'a mut Completion,
    ) -> impl Future<Output = Response<ResponseBody>> + Send + 'a {
        self.answer(req, conn, done)
    }
}

impl SelfService {
    pub fn new(config: &Config, keyring: Keyring, leaks: Leaks) -> Result<SelfService, String> {
        let login = config
            .login
            .as_ref()
            .map(|l| {
                let signer = Arc::new(Signer::new(keyring.derive_secret("login-session")));
                Login::new(
                    l,
                    signer,
                    config.upstream.ca_file.as_deref(),
                    &config.admin.groups,
                )
            })
            .transpose()?;
        let public_url = config.login.as_ref().and_then(|l| l.public_url.clone());
        Ok(SelfService {
            leaks,
            login,
            csrf: Csrf::new(Signer::new(keyring.derive_secret("csrf")), public_url),
            keyring,
            limits: config.self_service.clone(),
            mint_lock: tokio::sync::Mutex::new(()),
            trusted_proxies: config.listen.trusted_proxies.clone(),
            admins: config.admin.clone(),
            body_within: config.leaks.body_within(),
        })
    }

    /// Answer a `/.keygate/*` request; the signed-in user, if any, goes to
    /// the access log through `done`.
    pub async fn answer(
        &self,
        req: Request<Incoming>,
        conn: &ConnCtx,
        done: &mut Completion,
    ) -> Response<ResponseBody> {
        let rq = Seen {
            conn,
            user: std::sync::Mutex::new(None),
        };
        let path = req.uri().path().to_owned();
        // A refusal may start a CAS sign-in beside the browser's others (its flow cookie).
        let cookies: HeaderMap = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .map(|v| (header::COOKIE, v.clone()))
            .collect();
        if Leaks::owns(&path) {
            let client = crate::http::headers::client_ip(
                conn.peer.ip(),
                req.headers(),
                &self.trusted_proxies,
            );
            return with_own_headers(self.leaks.handle(req, client).await);
        }
        let api = path.starts_with("/.keygate/api/");
        let method = req.method().clone();
        // HEAD is GET without the body (the listener drops it) for the pages,
        // their assets and JSON, which change nothing; not for login and logout.
        let read = method == Method::GET || method == Method::HEAD;
        let answer = match (path.as_str(), &method) {
            ("/.keygate/static/console.js", _) if read => {
                Ok(asset(CONSOLE_JS, "text/javascript; charset=utf-8"))
            }
            (p, _) if console::owns(p) => self.console(req, &rq, &path, read).await,
            ("/.keygate/static/app.js", _) if read => {
                Ok(asset(APP_JS, "text/javascript; charset=utf-8"))
            }
            ("/.keygate/static/app.css", _) if read => {
                Ok(asset(APP_CSS, "text/css; charset=utf-8"))
            }
            ("/.keygate/static/icon.svg", _) if read => Ok(asset(ICON_SVG, "image/svg+xml")),
            ("/.keygate/keys", _) if read => self.page(&req, &rq).await,
            ("/.keygate/api/keys", _) if read => self.list(&req, &rq).await,
            ("/.keygate/api/keys", &Method::POST) => self.create(req, &rq).await,
            ("/.keygate/api/keys", _) => Err(Refusal::Method("GET, HEAD, POST")),
            (p, &Method::POST) if rotate_route(p).is_some() => {
                let id = rotate_route(p).unwrap_or_default().to_owned();
                self.rotate(req, &rq, &id).await
            }
            (p, _) if rotate_route(p).is_some() => Err(Refusal::Method("POST")),
            (p, &Method::DELETE) if p.starts_with("/.keygate/api/keys/") => {
                self.revoke(&req, &rq, &p["/.keygate/api/keys/".len()..])
                    .await
            }
            (p, _) if p.starts_with("/.keygate/api/keys/") => Err(Refusal::Method("DELETE")),
            ("/.keygate/login", &Method::GET) => self.sign_in(&req).await,
            ("/.keygate/logout", &Method::GET) => self.sign_out(req.headers()).await,
            (
                "/.keygate/keys"
                | "/.keygate/static/console.js"
                | "/.keygate/static/app.js"
                | "/.keygate/static/app.css"
                | "/.keygate/static/icon.svg",
                _,
            ) => Err(Refusal::Method("GET, HEAD")),
            ("/.keygate/login" | "/.keygate/logout", _) => Err(Refusal::Method("GET")),
            _ => Err(Refusal::NoRoute),
        };
        if let Some(user) = rq.user.lock().expect("not poisoned").as_deref() {
            done.set_identity(user, "-");
        }
        let resp = match answer {
            Ok(resp) => resp,
            Err(refusal) if api => refusal::json(refusal),
            Err(refusal) => refusal::page_for(
                refusal,
                self.login.as_ref(),
                &cookies,
                Return::of_path(&path),
            ),
        };
        with_own_headers(resp)
    }

    /// The gate every page and API request passes.
    async fn signed_in(&self, headers: &HeaderMap, rq: &Seen<'_>) -> Result<Session, Refusal> {
        let login = self.login.as_ref().ok_or(Refusal::NotConfigured)?;
        let settings = self.keyring.settings().await?;
        if !settings.self_service {
            // An admin is shown the way to switch it back on.
            let admin = match self.session(login, headers, rq, settings).await {
                Ok(s) => self.admins.is_admin(&s.user, &s.groups),
                Err(_) => false,
            };
            return Err(Refusal::Disabled { admin });
        }
        self.session(login, headers, rq, settings).await
    }

    /// Who is signed in, with the runtime settings read for the request.
    async fn session(
        &self,
        login: &Login,
        headers: &HeaderMap,
        rq: &Seen<'_>,
        settings: Settings,
    ) -> Result<Session, Refusal> {
        let conn = rq.conn;
        match login.who(headers, conn.peer.ip()).await {
            Outcome::SignedIn(person) => {
                let user = person.user;
                *rq.user.lock().expect("not poisoned") = Some(user.clone());
                Ok(Session {
                    groups: person.groups,
                    client: crate::http::headers::client_ip(
                        conn.peer.ip(),
                        headers,
                        &self.trusted_proxies,
                    ),
                    user,
                    settings,
                })
            }
            Outcome::SignedOut => Err(Refusal::SignedOut),
            Outcome::Unavailable(what) => Err(Refusal::LoginUnavailable(what)),
            Outcome::NotAUser { user, why, by } => Err(Refusal::NotAUser { user, why, by }),
        }
    }

    async fn page(&self, req: &Request<Incoming>, rq: &Seen<'_>) -> Answer {
        let s = self.signed_in(req.headers(), rq).await?;
        let keys = self.keyring.list(Some(&s.user)).await?;
        let issued = self.csrf.issue(req.headers(), &s.user);
        let logout = self.logout_link();
        let public_url = self.login.as_ref().and_then(|l| l.public_url.as_deref());
        let host = netrc_host(public_url, req);
        let html = page::keys_page(&page::KeysPage {
            user: &s.user,
            host: &host,
            csrf_token: &issued.token,
            keys: &keys,
            ttl_choices: &s.settings.ttl_choices,
            default_ttl: &s.settings.default_ttl,
            logout,
            warn_window: self.keyring.warn_window().map(|w| w.as_secs()),
            console: self.admins.is_admin(&s.user, &s.groups),
        });
        let mut resp = response::html(StatusCode::OK, html);
        if let Some(cookie) = issued.set_cookie {
            resp.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Ok(resp)
    }

    /// "Sign out", where keygate keeps the session itself (CAS, OIDC).
    fn logout_link(&self) -> Option<&'static str> {
        matches!(
            self.login.as_ref().map(|l| &l.method),
            Some(LoginMethod::Cas(_) | LoginMethod::Oidc(_))
        )
        .then_some("/.keygate/logout")
    }

    /// Count one creation by `user` against `creates_per_hour`
    /// (`Keyring::count_creation`).
    async fn count_create(
        &self,
        user: &str,
    ) -> Result<Result<crate::keyring::Counted, Duration>, crate::store::StoreError> {
        self.keyring
            .count_creation(user, self.limits.creates_per_hour)
            .await
    }

    /// A creation `count_create` counted made no key.
    async fn give_back(&self, user: &str, counted: crate::keyring::Counted) {
        self.keyring.give_back_creation(user, counted).await;
    }
}

/// The id in `/.keygate/api/keys/{id}/rotate`.
fn rotate_route(path: &str) -> Option<&str> {
    key_rotate_id(path, "/.keygate/api/keys/")
}

/// The id in `{keys}{id}/rotate`: the page's and the console's Rotate.
fn key_rotate_id<'a>(path: &'a str, keys: &str) -> Option<&'a str> {
    path.strip_prefix(keys)?
        .strip_suffix("/rotate")
        .filter(|id| !id.contains('/'))
}

/// The host name for the page's `.netrc` line (`machine HOST`): the
/// gateway's as `login.public_url` names it, else as the browser asked for
/// it (`:authority` or `Host`), without the port, which `.netrc` has no
/// place for. Anything but a plain host name stays the placeholder `HOST`.
fn netrc_host(public_url: Option<&str>, req: &Request<Incoming>) -> String {
    let authority = match public_url {
        Some(url) => url
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.authority().cloned()),
        None => req.uri().authority().cloned().or_else(|| {
            let host = req.headers().get(header::HOST)?.to_str().ok()?;
            host.parse::<http::uri::Authority>().ok()
        }),
    };
    authority
        .map(|a| {
            a.host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        })
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b))
        })
        .unwrap_or_else(|| "HOST".into())
}

fn asset(body: &'static str, content_type: &'static str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated on every load: a new binary's script is never mixed with an old page.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// 302 to `location`, with a link for clients that do not follow it.
fn redirect(location: &str) -> Response<ResponseBody> {
    let mut resp = response::html(
        StatusCode::FOUND,
        page::message(
            "Redirecting",
            "Continue to sign in.",
            Some((location, "Continue")),
        ),
    );
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::try_from(location).unwrap_or(HeaderValue::from_static("/.keygate/keys")),
    );
    resp
}
