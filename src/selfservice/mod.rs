//! keygate's own pages under `/.keygate/` (never forwarded upstream):
//!
//! | route | what |
//! |---|---|
//! | `GET /.keygate/keys` | the "External Tool Access" page (`page.rs`) |
//! | `GET /.keygate/api/keys` | the user's keys and the lifetimes offered (JSON) |
//! | `POST /.keygate/api/keys` | `{"label","ttl"}` -> 201 with the key, shown once |
//! | `DELETE /.keygate/api/keys/{id}` | 204; another user's id is 404 like an unknown one |
//! | `GET /.keygate/static/app.js`, `app.css` | the page's script and style |
//! | `GET /.keygate/login`, `/.keygate/logout` | CAS sign-in (ticket callback) and sign-out |
//!
//! Every request first passes the same gate: `[login]` configured (else a
//! "not configured" 404), self-service on in the runtime settings (else
//! 403), someone signed in (else a page linking to the login URL, or for CAS
//! a redirect to it). Writes also pass `csrf`. Refusals are one enum mapped
//! to a page or to JSON in one place each.

mod api;
mod csrf;
mod page;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use ipnet::IpNet;

use crate::config::{self, Config};
use crate::http::body::ResponseBody;
use crate::keyring::Keyring;
use crate::listener::ConnCtx;
use crate::login::cas::CasError;
use crate::login::signed::Signer;
use crate::login::{Login, Method as LoginMethod, Outcome};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::store::StoreError;
use csrf::{Csrf, CsrfError};

const APP_JS: &str = include_str!("static/app.js");
const APP_CSS: &str = include_str!("static/app.css");

/// Only keygate's own script, style and API: no inline code, no other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub struct SelfService {
    /// `None`: no `[login]` section, every route says "not configured".
    login: Option<Login>,
    keyring: Keyring,
    csrf: Csrf,
    limits: config::SelfService,
    /// Key creations per user on this instance (`self_service.creates_per_hour`).
    creates: DefaultKeyedRateLimiter<String>,
    metrics: Arc<Metrics>,
    /// `listen.trusted_proxies`: the audit log names the real client.
    trusted_proxies: Vec<IpNet>,
}

/// Why a self-service request is not answered as asked.
#[derive(Debug)]
enum Refusal {
    NotConfigured,
    Disabled,
    SignedOut,
    LoginUnavailable(String),
    Store(StoreError),
    Csrf(CsrfError),
    BadRequest(String),
    NotFound,
    RateLimited(Duration),
    TooManyKeys(usize),
    UnsupportedMedia,
    TooLarge,
    Method(&'static str),
    CasRefused(String),
    CasUnavailable(CasError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

type Answer = Result<Response<ResponseBody>, Refusal>;

/// A signed-in request that passed the gate.
struct Session {
    user: String,
    settings: Settings,
    client: IpAddr,
}

// === impl SelfService ===

impl SelfService {
    pub fn new(
        config: &Config,
        keyring: Keyring,
        metrics: Arc<Metrics>,
    ) -> Result<SelfService, String> {
        let digest = &keyring.digest;
        let login = config
            .login
            .as_ref()
            .map(|l| {
                let signer = Arc::new(Signer::new(digest.derive("login-session")));
                Login::new(l, signer, config.upstream.ca_file.as_deref())
            })
            .transpose()?;
        let public_url = config.login.as_ref().and_then(|l| l.public_url.clone());
        let per_hour = std::num::NonZeroU32::new(config.self_service.creates_per_hour)
            .ok_or("self_service.creates_per_hour must be at least 1")?;
        Ok(SelfService {
            login,
            csrf: Csrf::new(Signer::new(digest.derive("csrf")), public_url),
            keyring,
            limits: config.self_service.clone(),
            creates: RateLimiter::keyed(Quota::per_hour(per_hour)),
            metrics,
            trusted_proxies: config.listen.trusted_proxies.clone(),
        })
    }

    pub fn login(&self) -> Option<&Login> {
        self.login.as_ref()
    }

    pub async fn handle(&self, req: Request<Incoming>, conn: &ConnCtx) -> Response<ResponseBody> {
        let path = req.uri().path().to_owned();
        let api = path.starts_with("/.keygate/api/");
        let method = req.method().clone();
        let answer = match (path.as_str(), &method) {
            ("/.keygate/static/app.js", &Method::GET) => {
                Ok(asset(APP_JS, "text/javascript; charset=utf-8"))
            }
            ("/.keygate/static/app.css", &Method::GET) => {
                Ok(asset(APP_CSS, "text/css; charset=utf-8"))
            }
            ("/.keygate/keys", &Method::GET) => self.page(&req, conn).await,
            ("/.keygate/api/keys", &Method::GET) => self.list(&req, conn).await,
            ("/.keygate/api/keys", &Method::POST) => self.create(req, conn).await,
            ("/.keygate/api/keys", _) => Err(Refusal::Method("GET, POST")),
            (p, &Method::DELETE) if p.starts_with("/.keygate/api/keys/") => {
                self.revoke(&req, conn, &p["/.keygate/api/keys/".len()..])
                    .await
            }
            (p, _) if p.starts_with("/.keygate/api/keys/") => Err(Refusal::Method("DELETE")),
            ("/.keygate/login", &Method::GET) => self.cas_login(&req).await,
            ("/.keygate/logout", &Method::GET) => self.logout(),
            ("/.keygate/keys" | "/.keygate/login" | "/.keygate/logout", _)
            | ("/.keygate/static/app.js" | "/.keygate/static/app.css", _) => {
                Err(Refusal::Method("GET"))
            }
            _ => Err(Refusal::NotFound),
        };
        let mut resp = match answer {
            Ok(resp) => resp,
            Err(refusal) if api => api::refusal(refusal),
            Err(refusal) => self.refusal_page(refusal),
        };
        let h = resp.headers_mut();
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        // The CAS ticket is in the callback URL: never hand it on.
        h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        resp
    }

    /// The gate every page and API request passes.
    async fn signed_in(&self, headers: &HeaderMap, conn: &ConnCtx) -> Result<Session, Refusal> {
        let login = self.login.as_ref().ok_or(Refusal::NotConfigured)?;
        let settings = self.keyring.settings().await?;
        if !settings.self_service {
            return Err(Refusal::Disabled);
        }
        match login.who(headers, conn.peer.ip()).await {
            Outcome::SignedIn(user) => Ok(Session {
                user,
                settings,
                client: crate::http::headers::client_ip(
                    conn.peer.ip(),
                    headers,
                    &self.trusted_proxies,
                ),
            }),
            Outcome::SignedOut => Err(Refusal::SignedOut),
            Outcome::Unavailable(what) => Err(Refusal::LoginUnavailable(what)),
        }
    }

    async fn page(&self, req: &Request<Incoming>, conn: &ConnCtx) -> Answer {
        let s = self.signed_in(req.headers(), conn).await?;
        let keys = self.keyring.store.list(Some(&s.user)).await?;
        let issued = self.csrf.issue(req.headers(), &s.user);
        let logout = matches!(
            self.login.as_ref().map(|l| &l.method),
            Some(LoginMethod::Cas(_))
        )
        .then_some("/.keygate/logout");
        let html = page::keys_page(&page::KeysPage {
            user: &s.user,
            csrf_token: &issued.token,
            keys: &keys,
            ttl_choices: &s.settings.ttl_choices,
            default_ttl: &s.settings.default_ttl,
            logout,
        });
        let mut resp = html_response(StatusCode::OK, html);
        if let Some(cookie) = issued.set_cookie {
            resp.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Ok(resp)
    }

    /// `GET /.keygate/login`: with a ticket, the CAS server's callback; without, off to the CAS server.
    async fn cas_login(&self, req: &Request<Incoming>) -> Answer {
        let Some(LoginMethod::Cas(cas)) = self.login.as_ref().map(|l| &l.method) else {
            return Err(Refusal::NotFound);
        };
        let ticket = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "ticket")
            .map(|(_, v)| v.into_owned());
        let Some(ticket) = ticket else {
            return Ok(redirect(&cas.login_redirect()));
        };
        match cas.validate(&ticket).await {
            Ok(user) => {
                tracing::info!(user = %user, "signed in through CAS");
                let mut resp = redirect("/.keygate/keys");
                *resp.status_mut() = StatusCode::SEE_OTHER;
                resp.headers_mut()
                    .append(header::SET_COOKIE, cas.session_cookie(&user));
                Ok(resp)
            }
            Err(CasError::Refused { code }) => Err(Refusal::CasRefused(code)),
            Err(e) => Err(Refusal::CasUnavailable(e)),
        }
    }

    fn logout(&self) -> Answer {
        let Some(LoginMethod::Cas(cas)) = self.login.as_ref().map(|l| &l.method) else {
            return Err(Refusal::NotFound);
        };
        let mut resp = redirect(&cas.logout_redirect());
        resp.headers_mut()
            .append(header::SET_COOKIE, crate::login::cas::Cas::clear_cookie());
        Ok(resp)
    }

    /// Every refusal as a page: one exhaustive match, the status decided here.
    fn refusal_page(&self, refusal: Refusal) -> Response<ResponseBody> {
        use StatusCode as S;
        let (status, title, text, link): (StatusCode, &str, String, Option<(&str, &str)>) = match refusal {
            Refusal::NotConfigured => (
                S::NOT_FOUND,
                "Self-service is not configured",
                "This gateway has no [login] section in its configuration, so it cannot tell who you are. Ask your administrator for an API key.".into(),
                None,
            ),
            Refusal::Disabled => (
                S::FORBIDDEN,
                "Self-service is turned off",
                "An administrator has switched self-service API keys off. Ask your administrator for a key.".into(),
                None,
            ),
            Refusal::SignedOut => {
                let login = self.login.as_ref();
                if let Some(LoginMethod::Cas(cas)) = login.map(|l| &l.method) {
                    return redirect(&cas.login_redirect());
                }
                (
                    S::FORBIDDEN,
                    "Sign in first",
                    "You are not signed in. Sign in to the application, then come back to this page.".into(),
                    login.and_then(|l| l.login_url()).map(|u| (u, "Sign in")),
                )
            }
            Refusal::LoginUnavailable(what) => {
                let mut resp = html_response(
                    S::SERVICE_UNAVAILABLE,
                    page::message(
                        "Sign-in is unavailable",
                        &format!("keygate cannot reach {what} to find out who you are. Try again in a minute."),
                        None,
                    ),
                );
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return resp;
            }
            Refusal::Store(e) => {
                tracing::error!(error = %e, "self-service: key store unavailable (503)");
                let mut resp = html_response(
                    S::SERVICE_UNAVAILABLE,
                    page::message("Keys are unavailable", "The key store cannot be reached right now. Try again in a minute.", None),
                );
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return resp;
            }
            Refusal::CasRefused(code) => {
                tracing::info!(code = %code, "CAS refused a ticket");
                (
                    S::FORBIDDEN,
                    "Sign-in failed",
                    format!("The CAS server did not accept this sign-in ({code}). Sign-in links work once and only for this site; sign in again."),
                    Some(("/.keygate/login", "Sign in again")),
                )
            }
            Refusal::CasUnavailable(e) => {
                tracing::warn!(error = %e, "CAS ticket validation failed (503)");
                let mut resp = html_response(
                    S::SERVICE_UNAVAILABLE,
                    page::message("Sign-in is unavailable", "keygate cannot check your sign-in with the CAS server right now. Try again in a minute.", Some(("/.keygate/login", "Sign in again"))),
                );
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return resp;
            }
            Refusal::NotFound => (S::NOT_FOUND, "Not found", "keygate has no page here.".into(), Some(("/.keygate/keys", "External Tool Access"))),
            Refusal::Method(allow) => {
                let mut resp = html_response(
                    S::METHOD_NOT_ALLOWED,
                    page::message("Method not allowed", &format!("This page answers {allow} only."), None),
                );
                resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
                return resp;
            }
            // API-only refusals, should a page ever meet one.
            other @ (Refusal::Csrf(_)
            | Refusal::BadRequest(_)
            | Refusal::RateLimited(_)
            | Refusal::TooManyKeys(_)
            | Refusal::UnsupportedMedia
            | Refusal::TooLarge) => return api::refusal(other),
        };
        html_response(status, page::message(title, &text, link))
    }

    /// Count one creation by `user`; over the limit, how long to wait.
    fn count_create(&self, user: &str) -> Result<(), Duration> {
        let result = self.creates.check_key(&user.to_owned());
        self.creates.retain_recent();
        result.map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

fn html_response(status: StatusCode, html: String) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(html));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
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
    let mut resp = html_response(
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
