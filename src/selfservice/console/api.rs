//! The JSON behind the console. Listings and revocations read their query
//! and body exactly as the admin API does (`admin::list_query`,
//! `admin::Revoke`), so a filter, a cursor or a bad field means the same on
//! both; a rotation reads the page's body; every change goes through the keyring (validation, the fleet's
//! revocation barrier, the audit log).

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::super::refusal::Refusal;
use super::super::{Answer, Seen, SelfService};
use crate::admin::{list_query, Revoke};
use crate::http::response;
use crate::keyring::{distinct_secrets, filter_text, PageError, Revocation, SettingsError};
use crate::keys::KeyId;
use crate::settings::Settings;

/// The grid's page sizes.
const PAGE_SIZES: std::ops::RangeInclusive<usize> = 50..=500;
/// Audit events a page shows by default, and at most.
const AUDIT_PAGE: usize = 25;
const MAX_AUDIT_PAGE: usize = 200;

// === impl SelfService (console API) ===

impl SelfService {
    /// `{"keys", "next_cursor"}`: one page of every user's keys.
    pub(in crate::selfservice) async fn admin_keys(
        &self,
        req: &Request<Incoming>,
        rq: &Seen<'_>,
    ) -> Answer {
        self.admin(req.headers(), rq).await?;
        let q = list_query(req.uri().query())?;
        if !PAGE_SIZES.contains(&q.limit) {
            return Err(Refusal::BadRequest(format!(
                "limit: the console shows {} to {} keys a page",
                PAGE_SIZES.start(),
                PAGE_SIZES.end()
            )));
        }
        let page = self
            .keyring
            .page(&q.listing, q.cursor.as_deref(), q.limit)
            .await
            .map_err(|e| match e {
                PageError::Cursor => Refusal::BadRequest(e.to_string()),
                PageError::Store(e) => Refusal::Store(e),
            })?;
        let views: Vec<_> = page.keys.iter().map(|r| r.view()).collect();
        Ok(response::json(
            StatusCode::OK,
            &json!({ "keys": views, "next_cursor": page.next_cursor }),
        ))
    }

    /// Revoke what the body names (`ids`, `filter`, `all`, ...), or with
    /// `dry_run` only count it: `{"would_revoke", "filter"}`. Ids already
    /// gone are no error: `revoked` says how many were still live.
    pub(in crate::selfservice) async fn admin_revoke(
        &self,
        req: Request<Incoming>,
        rq: &Seen<'_>,
    ) -> Answer {
        let s = self.admin_write(&req, rq).await?;
        let body: Revoke = self.json_body(req).await?;
        let (what, dry_run) = body.revocation()?;
        // Each id, user and secret once, as the revocation counts them.
        let what = what.distinct();
        let described = match &what {
            Revocation::Matching(f) => filter_text(f),
            Revocation::All => "every key".into(),
            Revocation::Ids(ids) => match ids.len() {
                1 => "1 selected key".to_owned(),
                n => format!("{n} selected keys"),
            },
            Revocation::Users(users) => {
                let names: Vec<_> = users.iter().map(|u| crate::audit::name(u)).collect();
                format!("the keys of {}", names.join(", "))
            }
            Revocation::Leaked(keys) => match distinct_secrets(keys) {
                1 => "1 leaked key".to_owned(),
                n => format!("{n} leaked keys"),
            },
        };
        if dry_run {
            let n = self.keyring.would_revoke(&what).await?;
            return Ok(response::json(
                StatusCode::OK,
                &json!({ "dry_run": true, "revoked": 0, "would_revoke": n, "filter": described }),
            ));
        }
        let done = self.keyring.revoke(&s.console_actor(), what).await?;
        Ok(response::json(
            StatusCode::OK,
            &json!({ "revoked": done.count, "instances": done.fleet, "filter": described }),
        ))
    }

    /// The grid's Rotate: a successor for any user's key, shown once, the
    /// old key working for the grace period. Exactly the page's rotation
    /// (body, refusals), with the admin as actor; no hourly quota, as on
    /// `POST /v1/keys/{id}/rotate`.
    pub(in crate::selfservice) async fn admin_rotate(
        &self,
        req: Request<Incoming>,
        rq: &Seen<'_>,
        id: &str,
    ) -> Answer {
        let s = self.admin_write(&req, rq).await?;
        let id = KeyId::parse(id).ok_or(Refusal::NotFound)?;
        let (grace, ttl) = self.rotate_body(req).await?;
        self.rotate_as(&s.console_actor(), id, grace, ttl).await
    }

    pub(in crate::selfservice) async fn admin_settings(
        &self,
        req: &Request<Incoming>,
        rq: &Seen<'_>,
    ) -> Answer {
        let s = self.admin(req.headers(), rq).await?;
        Ok(response::json(StatusCode::OK, &s.settings))
    }

    /// Replace the settings of every instance, validated as `PUT
    /// /v1/settings`; on any problem nothing is saved and each is named.
    pub(in crate::selfservice) async fn admin_put_settings(
        &self,
        req: Request<Incoming>,
        rq: &Seen<'_>,
    ) -> Answer {
        let s = self.admin_write(&req, rq).await?;
        let settings: Settings = self.json_body(req).await?;
        match self
            .keyring
            .put_settings(&s.console_actor(), &settings)
            .await
        {
            Ok(()) => Ok(response::json(StatusCode::OK, &settings)),
            Err(SettingsError::Invalid(problems)) => Err(Refusal::Invalid(problems)),
            Err(SettingsError::Store(e)) => Err(Refusal::Store(e)),
            Err(e @ SettingsError::Unconfirmed(_)) => Err(Refusal::SettingsUnconfirmed(e)),
        }
    }

    /// `{"events", "before"}`: the latest events, newest first; `before`
    /// (from the previous page) for older ones.
    pub(in crate::selfservice) async fn admin_audit(
        &self,
        req: &Request<Incoming>,
        rq: &Seen<'_>,
    ) -> Answer {
        self.admin(req.headers(), rq).await?;
        let (mut before, mut limit) = (None, AUDIT_PAGE);
        for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "before" => before = Some(v.into_owned()),
                "limit" => {
                    limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_AUDIT_PAGE).contains(n))
                        .ok_or_else(|| {
                            Refusal::BadRequest(format!(
                                "limit: must be a number from 1 to {MAX_AUDIT_PAGE}"
                            ))
                        })?
                }
                other => {
                    return Err(Refusal::BadRequest(format!(
                        "{other}: unknown query parameter (before, limit)"
                    )))
                }
            }
        }
        let page = self
            .keyring
            .audit_page(before.as_deref(), limit)
            .await?
            .ok_or_else(|| {
                Refusal::BadRequest("before: not a position from a previous page".into())
            })?;
        Ok(response::json(
            StatusCode::OK,
            &json!({ "events": page.events, "before": page.before }),
        ))
    }
}
