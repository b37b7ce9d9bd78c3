//! The JSON behind the page: the signed-in user's keys only. Keys are made
//! and revoked through the keyring (TTL rules, revocation across instances)
//! and each change is audited with `source: "self-service"`.

use std::time::Duration;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::refusal::Refusal;
use super::{Answer, Seen, SelfService, Session};
use crate::audit::Actor;
use crate::http::json_body::{self, BodyError};
use crate::http::response;
use crate::keyring::{self, MintError, Revocation, RotateRequest, Ttl};
use crate::keys::{KeyId, Scope, Source};
use crate::settings::Settings;

/// Largest create request (a label is at most 200 characters).
pub(super) const MAX_BODY: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    label: Option<String>,
    /// One of the runtime settings' `ttl_choices`; their `default_ttl` if absent.
    ttl: Option<String>,
}

// === impl Session ===

impl Session {
    /// The signed-in user as the actor of a change.
    fn actor(&self) -> Actor {
        Actor::new(self.user.clone(), Source::SelfService, Some(self.client))
    }
}

// === impl SelfService (API) ===

impl SelfService {
    pub(super) async fn list(&self, req: &Request<Incoming>, rq: &Seen<'_>) -> Answer {
        let s = self.signed_in(req.headers(), rq).await?;
        let keys = self.keyring.list(Some(&s.user)).await?;
        let views: Vec<_> = keys.iter().map(|r| r.view()).collect();
        Ok(response::json(
            StatusCode::OK,
            &json!({
                "user": s.user,
                "keys": views,
                "ttl_choices": s.settings.ttl_choices,
                "default_ttl": s.settings.default_ttl,
            }),
        ))
    }

    pub(super) async fn create(&self, req: Request<Incoming>, rq: &Seen<'_>) -> Answer {
        let s = self.signed_in(req.headers(), rq).await?;
        self.csrf
            .check(req.headers(), req.uri(), &s.user)
            .map_err(Refusal::Csrf)?;
        let body: CreateKey = self.json_body(req).await?;
        let ttl_text = body.ttl.unwrap_or_else(|| s.settings.default_ttl.clone());
        offered(&s.settings, &ttl_text)?;
        let ttl = Ttl::parse(&ttl_text).map_err(|e| Refusal::BadRequest(format!("ttl: {e}")))?;
        let label = body.label.unwrap_or_default();
        // Before the creation is counted: a refused one costs no quota (a
        // `backend_session` may sign in a name no key can carry).
        keyring::check_new(&s.user, label.trim())
            .map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let _one_at_a_time = self.mint_lock.lock().await;
        let live = self.keyring.list(Some(&s.user)).await?.len();
        if live >= self.limits.max_live_keys {
            return Err(Refusal::TooManyKeys(self.limits.max_live_keys));
        }
        let counted = self
            .count_create(&s.user)
            .await?
            .map_err(Refusal::RateLimited)?;
        let new = match self
            .keyring
            .mint(&s.actor(), &s.user, ttl, label.trim(), Scope::Full)
            .await
        {
            Ok(new) => new,
            Err(e) => {
                self.give_back(&s.user, counted).await;
                return Err(match e {
                    MintError::Store(e) => Refusal::Store(e),
                    other => Refusal::BadRequest(other.to_string()),
                });
            }
        };
        Ok(response::json(StatusCode::CREATED, &new.view()))
    }

    pub(super) async fn revoke(&self, req: &Request<Incoming>, rq: &Seen<'_>, id: &str) -> Answer {
        let (s, id) = self.own_key(req, rq, id).await?;
        let revoked = self
            .keyring
            .revoke(&s.actor(), Revocation::Ids(vec![id]))
            .await?;
        if revoked.count == 0 {
            return Err(Refusal::NotFound);
        }
        Ok(response::no_content())
    }

    /// The Rotate button: a successor for one of the user's keys, shown
    /// once, the old key working for the grace period. Counted against
    /// `creates_per_hour` like a creation (not `max_live_keys`: the old key
    /// is on its way out); one that makes no key (409, 404, 503) is given back.
    pub(super) async fn rotate(&self, req: Request<Incoming>, rq: &Seen<'_>, id: &str) -> Answer {
        let (s, id) = self.own_key(&req, rq, id).await?;
        let body: RotateRequest = self.json_body(req).await?;
        // A lifetime the page does not offer is no more the user's to
        // choose here than at Generate (the console's Rotate may).
        if let Some(ttl) = body.ttl() {
            offered(&s.settings, ttl)?;
        }
        let (grace, ttl) = body.parse().map_err(Refusal::BadRequest)?;
        let counted = self
            .count_create(&s.user)
            .await?
            .map_err(Refusal::RateLimited)?;
        let rotated = self.rotate_as(&s.actor(), id, grace, ttl).await;
        if rotated.is_err() {
            self.give_back(&s.user, counted).await;
        }
        rotated
    }

    /// Rotate `id` as `actor`: 201 with the successor, shown once. The
    /// user's Rotate button and the console's share it, refusals and all.
    pub(super) async fn rotate_as(
        &self,
        actor: &Actor,
        id: KeyId,
        grace: Option<Duration>,
        ttl: Ttl,
    ) -> Answer {
        let rotated = self.keyring.rotate(actor, id, grace, ttl).await?;
        Ok(response::json(StatusCode::CREATED, &rotated.view()))
    }
}

/// `ttl` must be one of the runtime settings' `ttl_choices`: what the
/// page's Generate and Rotate let a user pick.
fn offered(settings: &Settings, ttl: &str) -> Result<(), Refusal> {
    settings.offers(ttl).map_err(Refusal::BadRequest)
}

// === impl SelfService (a change to one key) ===

impl SelfService {
    /// The gate of a write to one key: signed in, the CSRF check, and the
    /// key the signed-in user's. Another user's key is answered exactly
    /// like a key that does not exist.
    async fn own_key(
        &self,
        req: &Request<Incoming>,
        rq: &Seen<'_>,
        id: &str,
    ) -> Result<(Session, KeyId), Refusal> {
        let s = self.signed_in(req.headers(), rq).await?;
        self.csrf
            .check(req.headers(), req.uri(), &s.user)
            .map_err(Refusal::Csrf)?;
        let id = KeyId::parse(id).ok_or(Refusal::NotFound)?;
        match self.keyring.get(&id).await? {
            Some(record) if record.user == s.user => Ok((s, id)),
            _ => Err(Refusal::NotFound),
        }
    }
}

// === impl SelfService (JSON bodies) ===

impl SelfService {
    /// Read and parse a JSON body (`http::json_body`), as a self-service refusal.
    pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
        &self,
        req: Request<Incoming>,
    ) -> Result<T, Refusal> {
        json_body::read(req, MAX_BODY, self.body_within)
            .await
            .map_err(|e| match e {
                BodyError::NotJson => Refusal::UnsupportedMedia,
                BodyError::TooLarge => Refusal::TooLarge,
                BodyError::Slow => Refusal::SlowBody,
                BodyError::Invalid(message) => Refusal::BadRequest(message),
            })
    }

    /// A rotation's body, `{"grace"?, "ttl"?}` as `POST /v1/keys/{id}/rotate`
    /// reads it; a bad field is a 400 naming it.
    pub(super) async fn rotate_body(
        &self,
        req: Request<Incoming>,
    ) -> Result<(Option<Duration>, Ttl), Refusal> {
        let body: RotateRequest = self.json_body(req).await?;
        body.parse().map_err(Refusal::BadRequest)
    }
}
