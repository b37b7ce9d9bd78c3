//! `/v1/keys` and `/v1/revoke`: create, list, delete, rotate, revoke in bulk.

use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiResult};
use crate::audit::Actor;
use crate::http::response::{self, json};
use crate::keyring::RotateRequest;
use crate::keyring::{KeyFilter, Keyring, MintError, Revocation, SettingsError, Ttl};
use crate::keys::{ApiKey, KeyId, Scope};
use crate::settings::Settings;

/// The keyring, and who is asking (the token's name, source `admin`, the client).
pub struct Ctx<'a> {
    pub keyring: &'a Keyring,
    pub actor: Actor,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    user: String,
    ttl: Option<String>,
    label: Option<String>,
    scope: Option<String>,
}

pub async fn create(ctx: &Ctx<'_>, body: CreateKey) -> ApiResult {
    let ttl = match body.ttl.as_deref() {
        None => Ttl::Default,
        Some(t) => Ttl::parse(t).map_err(|e| ApiError::bad_request(format!("ttl: {e}")))?,
    };
    let scope = match body.scope.as_deref() {
        None => Scope::Full,
        Some(s) => Scope::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("scope: {s:?} is not one of \"full\", \"read\""))
        })?,
    };
    let label = body.label.as_deref().unwrap_or("");
    let new = ctx
        .keyring
        .mint(&ctx.actor, &body.user, ttl, label, scope)
        .await
        .map_err(|e| match e {
            MintError::Store(e) => ApiError::Store(e),
            other => ApiError::bad_request(other.to_string()),
        })?;
    Ok(json(StatusCode::CREATED, &new.view()))
}

/// Page size when `limit` is not given, and the largest accepted.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Keys in id order; `cursor` is the last id of the previous page, so a
/// page boundary stays put while keys are created and revoked.
pub async fn list(ctx: &Ctx<'_>, query: Option<&str>) -> ApiResult {
    let mut filter = KeyFilter::default();
    let mut cursor = None;
    let mut limit = DEFAULT_LIMIT;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "user" => filter.user = Some(v.into_owned()),
            "cursor" => cursor = Some(v.into_owned()),
            "label" => filter.label = Some(v.into_owned()),
            "expires_before" => {
                filter.expires_before = Some(parse_time_ms("expires_before", &v)? / 1000)
            }
            "limit" => limit = parse_limit(&v)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "{other}: unknown query parameter (user, label, expires_before, cursor, limit)"
                )))
            }
        }
    }
    let page = ctx
        .keyring
        .page(&filter, cursor.as_deref(), limit)
        .await
        .map_err(ApiError::Store)?;
    let views: Vec<_> = page.keys.iter().map(|r| r.view()).collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "keys": views, "next_cursor": page.next_cursor }),
    ))
}

pub async fn delete(ctx: &Ctx<'_>, id: &str) -> ApiResult {
    let Some(id) = KeyId::parse(id) else {
        return Err(ApiError::NotFound("no such key".into()));
    };
    let done = ctx
        .keyring
        .revoke(&ctx.actor, Revocation::Ids(vec![id]))
        .await
        .map_err(ApiError::from)?;
    if done.count == 0 {
        return Err(ApiError::NotFound("no such key".into()));
    }
    Ok(response::no_content())
}

/// `POST /v1/keys/{id}/rotate` `{"grace"?, "ttl"?}`: the successor, shown once.
pub async fn rotate(ctx: &Ctx<'_>, id: &str, body: RotateRequest) -> ApiResult {
    let Some(id) = KeyId::parse(id) else {
        return Err(ApiError::NotFound("no such key".into()));
    };
    let (grace, ttl) = body.parse().map_err(ApiError::BadRequest)?;
    let rotated = ctx.keyring.rotate(&ctx.actor, id, grace, ttl).await?;
    Ok(json(StatusCode::CREATED, &rotated.view()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    ids: Option<Vec<String>>,
    users: Option<Vec<String>>,
    keys: Option<Vec<String>>,
    all: Option<bool>,
    /// Answer how many would be revoked, revoking nothing.
    dry_run: Option<bool>,
}

pub async fn revoke(ctx: &Ctx<'_>, body: Revoke) -> ApiResult {
    let what = match (body.ids, body.users, body.keys, body.all) {
        (Some(ids), None, None, None) => {
            Revocation::Ids(ids.iter().filter_map(|i| KeyId::parse(i)).collect())
        }
        (None, Some(users), None, None) => Revocation::Users(users),
        (None, None, Some(secrets), None) => Revocation::Leaked(
            secrets
                .into_iter()
                .map(|s| ApiKey::new(s.trim().to_owned()))
                .collect(),
        ),
        (None, None, None, Some(true)) => Revocation::All,
        (None, None, None, Some(false)) => {
            return Err(ApiError::bad_request(
                "all: must be true to revoke every key",
            ))
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of ids, users, keys, all",
            ))
        }
    };
    if body.dry_run.unwrap_or(false) {
        let n = ctx
            .keyring
            .would_revoke(&what)
            .await
            .map_err(ApiError::Store)?;
        return Ok(json(
            StatusCode::OK,
            &json!({ "revoked": 0, "would_revoke": n, "dry_run": true }),
        ));
    }
    let done = ctx
        .keyring
        .revoke(&ctx.actor, what)
        .await
        .map_err(ApiError::from)?;
    Ok(json(
        StatusCode::OK,
        &json!({ "revoked": done.count, "instances": done.fleet }),
    ))
}

/// `GET /v1/audit?since=RFC3339&limit=N`: events oldest first.
pub async fn audit_log(ctx: &Ctx<'_>, query: Option<&str>) -> ApiResult {
    let mut since_ms = 0;
    let mut limit = DEFAULT_LIMIT;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "since" => since_ms = parse_time_ms("since", &v)?,
            "limit" => limit = parse_limit(&v)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "{other}: unknown query parameter (since, limit)"
                )))
            }
        }
    }
    let events = ctx
        .keyring
        .audit_since(since_ms, limit)
        .await
        .map_err(ApiError::Store)?;
    Ok(json(StatusCode::OK, &json!({ "events": events })))
}

pub async fn get_settings(ctx: &Ctx<'_>) -> ApiResult {
    let settings = ctx.keyring.settings().await.map_err(ApiError::Store)?;
    Ok(json(StatusCode::OK, &settings))
}

/// Replace the settings of every instance; every bad field is named.
pub async fn put_settings(ctx: &Ctx<'_>, settings: Settings) -> ApiResult {
    match ctx.keyring.put_settings(&ctx.actor, &settings).await {
        Ok(()) => {}
        Err(SettingsError::Invalid(problems)) => {
            return Err(ApiError::bad_request(problems.join("; ")))
        }
        Err(SettingsError::Store(e)) => return Err(ApiError::Store(e)),
    }
    Ok(json(StatusCode::OK, &settings))
}

/// `limit`: a page size from 1 to MAX_LIMIT.
fn parse_limit(v: &str) -> Result<usize, ApiError> {
    v.parse()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(format!("limit: must be a number from 1 to {MAX_LIMIT}"))
        })
}

/// An RFC 3339 UTC time as unix milliseconds; `field` names it in the error.
fn parse_time_ms(field: &str, v: &str) -> Result<u64, ApiError> {
    let t = humantime::parse_rfc3339_weak(v).map_err(|_| {
        ApiError::bad_request(format!(
            "{field}: {v:?} is not an RFC 3339 time such as 2027-01-31T00:00:00Z"
        ))
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64))
}
