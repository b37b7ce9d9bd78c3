//! The admin console, "External Tool Settings", on the main listener:
//!
//! | route | what |
//! |---|---|
//! | `GET /.keygate/admin` | the page (`page.rs`); its script is `/.keygate/static/console.js` |
//! | `GET /.keygate/api/admin/keys` | a page of every user's keys: `GET /v1/keys`' query (`user`, `label`, `expires_before`, `sort`, `order`, `cursor`), `limit` 50-500 |
//! | `POST /.keygate/api/admin/keys/{id}/rotate` | `{"grace"?, "ttl"?}` as the page's Rotate -> 201 with any user's key's successor, shown once |
//! | `POST /.keygate/api/admin/revoke` | `POST /v1/revoke`'s body (`ids`, `filter`, `all`, `dry_run`, ...): through the keyring's barrier |
//! | `GET`, `PUT /.keygate/api/admin/settings` | the runtime settings, validated as `PUT /v1/settings` |
//! | `GET /.keygate/api/admin/audit` | the latest audit events, `before` and `limit` |
//!
//! Built like the self-service page and behind the same sign-in, cookies
//! and CSRF check; the gate asks for an admin (`config::Admin::is_admin`:
//! `[admin] users`, or an OIDC group among `[admin] groups`), never for
//! self-service being on. Anyone else gets 403, on the page and on every
//! JSON call, before anything is read. Changes are audited with the admin
//! as actor and `source: "admin-console"`.

mod api;
mod page;

use http::header::{self, HeaderMap};
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use super::refusal::Refusal;
use super::{key_rotate_id, Answer, Seen, SelfService, Session};
use crate::audit::Actor;
use crate::http::response;
use crate::keys::Source;
use crate::telemetry::escaped;

pub(super) const PAGE: &str = "/.keygate/admin";
const API: &str = "/.keygate/api/admin/";

/// Whether `path` is the console's.
pub(super) fn owns(path: &str) -> bool {
    path == PAGE || path.starts_with(API)
}

// === impl Session (console) ===

impl Session {
    /// The signed-in admin as the actor of a change made on the console.
    fn console_actor(&self) -> Actor {
        Actor::new(self.user.clone(), Source::AdminConsole, Some(self.client))
    }
}

// === impl SelfService (console) ===

impl SelfService {
    /// Answer one of the console's routes (`owns`).
    pub(super) async fn console(
        &self,
        req: Request<Incoming>,
        rq: &Seen<'_>,
        path: &str,
        read: bool,
    ) -> Answer {
        let route = path.strip_prefix(API).unwrap_or(path);
        match (route, req.method()) {
            (PAGE, _) if read => self.console_page(&req, rq).await,
            (PAGE, _) => self.unrouted(&req, rq, Refusal::Method("GET, HEAD")).await,
            ("keys", _) if read => self.admin_keys(&req, rq).await,
            ("audit", _) if read => self.admin_audit(&req, rq).await,
            ("keys" | "audit", _) => self.unrouted(&req, rq, Refusal::Method("GET, HEAD")).await,
            (r, &Method::POST) if key_rotate_id(r, "keys/").is_some() => {
                let id = key_rotate_id(r, "keys/").unwrap_or_default().to_owned();
                self.admin_rotate(req, rq, &id).await
            }
            (r, _) if key_rotate_id(r, "keys/").is_some() => {
                self.unrouted(&req, rq, Refusal::Method("POST")).await
            }
            ("revoke", &Method::POST) => self.admin_revoke(req, rq).await,
            ("revoke", _) => self.unrouted(&req, rq, Refusal::Method("POST")).await,
            ("settings", _) if read => self.admin_settings(&req, rq).await,
            ("settings", &Method::PUT) => self.admin_put_settings(req, rq).await,
            ("settings", _) => {
                self.unrouted(&req, rq, Refusal::Method("GET, HEAD, PUT"))
                    .await
            }
            _ => self.unrouted(&req, rq, Refusal::NoRoute).await,
        }
    }

    /// A route or method the console does not answer (404, 405): only an
    /// admin learns which; anyone else gets the gate's 403, as on every
    /// console route (SPEC).
    async fn unrouted(&self, req: &Request<Incoming>, rq: &Seen<'_>, refusal: Refusal) -> Answer {
        self.admin(req.headers(), rq).await?;
        Err(refusal)
    }

    /// The console's gate: signed in, and an admin.
    async fn admin(&self, headers: &HeaderMap, rq: &Seen<'_>) -> Result<Session, Refusal> {
        let login = self.login.as_ref().ok_or(Refusal::NotConfigured)?;
        let settings = self.keyring.settings().await?;
        let s = self.session(login, headers, rq, settings).await?;
        if !self.admins.is_admin(&s.user, &s.groups) {
            tracing::info!(user = %escaped(&s.user), "admin console refused: not an admin (403)");
            return Err(Refusal::NotAdmin);
        }
        Ok(s)
    }

    /// An admin's write: the gate, then the CSRF check.
    async fn admin_write(
        &self,
        req: &Request<Incoming>,
        rq: &Seen<'_>,
    ) -> Result<Session, Refusal> {
        let s = self.admin(req.headers(), rq).await?;
        self.csrf
            .check(req.headers(), req.uri(), &s.user)
            .map_err(Refusal::Csrf)?;
        Ok(s)
    }

    async fn console_page(&self, req: &Request<Incoming>, rq: &Seen<'_>) -> Answer {
        let s = self.admin(req.headers(), rq).await?;
        let issued = self.csrf.issue(req.headers(), &s.user);
        let html = page::console_page(&page::ConsolePage {
            user: &s.user,
            csrf_token: &issued.token,
            settings: &s.settings,
            logout: self.logout_link(),
        });
        let mut resp = response::html(StatusCode::OK, html);
        if let Some(cookie) = issued.set_cookie {
            resp.headers_mut().append(header::SET_COOKIE, cookie);
        }
        Ok(resp)
    }
}
