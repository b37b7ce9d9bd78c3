//! `/v1/keys` and `/v1/revoke`: create, list, delete, revoke in bulk.

use std::net::IpAddr;

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{json, ApiError, ApiResult};
use crate::audit;
use crate::http::body::ResponseBody;
use crate::keyring::{Keyring, MintError, Revocation, SettingsError, Ttl};
use crate::keys::{KeyId, Scope, Source};
use crate::metrics::Metrics;
use crate::settings::Settings;

/// Who is asking, for the audit log.
pub struct Ctx<'a> {
    pub keyring: &'a Keyring,
    pub actor: &'a str,
    pub client: IpAddr,
    pub metrics: &'a Metrics,
}

impl Ctx<'_> {
    /// Count and audit one change.
    async fn changed(&self, action: &str, target: &str, count: u64) {
        match action {
            "create" => self.metrics.keys_created.inc_by(count),
            _ => self.metrics.keys_revoked.inc_by(count),
        };
        let event = audit::Event::new(self.actor, action, target, count, Some(self.client))
            .with_source(Source::Admin);
        audit::record(&self.keyring.store, event).await;
    }
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
    let new = ctx
        .keyring
        .create(&body.user, ttl, body.label.as_deref().unwrap_or(""), scope)
        .await
        .map_err(|e| match e {
            MintError::Store(e) => ApiError::store(e),
            other => ApiError::bad_request(other.to_string()),
        })?;
    ctx.changed(
        "create",
        &format!("key {} of user {}", new.record.id, new.record.user),
        1,
    )
    .await;
    Ok(json(StatusCode::CREATED, &new.view()))
}

/// Page size when `limit` is not given, and the largest accepted.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Keys in id order; `cursor` is the last id of the previous page, so a
/// page boundary stays put while keys are created and revoked.
pub async fn list(ctx: &Ctx<'_>, query: Option<&str>) -> ApiResult {
    let mut user = None;
    let mut cursor = None;
    let mut label = None;
    let mut expires_before = None;
    let mut limit = DEFAULT_LIMIT;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "user" => user = Some(v.into_owned()),
            "cursor" => cursor = Some(v.into_owned()),
            "label" => label = Some(v.into_owned()),
            "expires_before" => expires_before = Some(parse_time_ms("expires_before", &v)? / 1000),
            "limit" => limit = parse_limit(&v)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "{other}: unknown query parameter (user, label, expires_before, cursor, limit)"
                )))
            }
        }
    }
    let mut keys = ctx
        .keyring
        .store
        .list(user.as_deref())
        .await
        .map_err(ApiError::store)?;
    keys.retain(|r| {
        label.as_ref().is_none_or(|l| &r.label == l)
            && expires_before.is_none_or(|t| r.expires_at.is_some_and(|e| e < t))
    });
    keys.sort_by_key(|r| r.id);
    let start = match &cursor {
        Some(c) => keys.partition_point(|r| r.id.as_str() <= c.as_str()),
        None => 0,
    };
    let page = &keys[start.min(keys.len())..];
    let more = page.len() > limit;
    let page = &page[..page.len().min(limit)];
    let next = if more {
        page.last().map(|r| r.id.as_str())
    } else {
        None
    };
    let views: Vec<_> = page.iter().map(|r| r.view()).collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "keys": views, "next_cursor": next }),
    ))
}

pub async fn delete(ctx: &Ctx<'_>, id: &str) -> ApiResult {
    let Some(id) = KeyId::parse(id) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such key"));
    };
    let target = format!("key {id}");
    let done = ctx
        .keyring
        .revoke(Revocation::Ids(vec![id]))
        .await
        .map_err(ApiError::revoke)?;
    ctx.changed("revoke", &target, done.count).await;
    if done.count == 0 {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such key"));
    }
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
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
    let (target, what) = match (body.ids, body.users, body.keys, body.all) {
        (Some(ids), None, None, None) => (
            format!("{} key ids", ids.len()),
            Revocation::Ids(ids.iter().filter_map(|i| KeyId::parse(i)).collect()),
        ),
        (None, Some(users), None, None) => (
            format!("users {}", users.join(", ")),
            Revocation::Users(users),
        ),
        (None, None, Some(secrets), None) => (
            format!("{} leaked keys", secrets.len()),
            Revocation::Leaked(secrets),
        ),
        (None, None, None, Some(true)) => ("all keys".to_owned(), Revocation::All),
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
        let n = would_revoke(ctx, &what).await?;
        return Ok(json(
            StatusCode::OK,
            &json!({ "revoked": 0, "would_revoke": n, "dry_run": true }),
        ));
    }
    let done = ctx.keyring.revoke(what).await.map_err(ApiError::revoke)?;
    ctx.changed("revoke", &target, done.count).await;
    Ok(json(
        StatusCode::OK,
        &json!({ "revoked": done.count, "instances": done.fleet }),
    ))
}

/// What a revocation would count, revoking nothing.
async fn would_revoke(ctx: &Ctx<'_>, what: &Revocation) -> Result<u64, ApiError> {
    let store = &ctx.keyring.store;
    Ok(match what {
        Revocation::Ids(ids) => count_live(ctx, ids).await?,
        Revocation::Users(users) => {
            let mut n = 0;
            for u in users {
                n += store.list(Some(u)).await.map_err(ApiError::store)?.len() as u64;
            }
            n
        }
        Revocation::Leaked(secrets) => ctx
            .keyring
            .live_ids_of(secrets)
            .await
            .map_err(ApiError::store)?
            .len() as u64,
        Revocation::All => store.list(None).await.map_err(ApiError::store)?.len() as u64,
    })
}

async fn count_live(ctx: &Ctx<'_>, ids: &[KeyId]) -> Result<u64, ApiError> {
    let mut n = 0;
    for id in ids {
        if ctx
            .keyring
            .store
            .get(id.as_str())
            .await
            .map_err(ApiError::store)?
            .is_some()
        {
            n += 1;
        }
    }
    Ok(n)
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
        .store
        .audit_since(since_ms, limit)
        .await
        .map_err(ApiError::store)?;
    Ok(json(StatusCode::OK, &json!({ "events": events })))
}

pub async fn get_settings(ctx: &Ctx<'_>) -> ApiResult {
    let settings = ctx.keyring.settings().await.map_err(ApiError::store)?;
    Ok(json(StatusCode::OK, &settings))
}

/// Replace the settings of every instance; every bad field is named.
pub async fn put_settings(ctx: &Ctx<'_>, settings: Settings) -> ApiResult {
    match ctx.keyring.put_settings(&settings).await {
        Ok(()) => {}
        Err(SettingsError::Invalid(problems)) => {
            return Err(ApiError::bad_request(problems.join("; ")))
        }
        Err(SettingsError::Store(e)) => return Err(ApiError::store(e)),
    }
    let target = serde_json::to_string(&settings).expect("settings serialize");
    let event = audit::Event::new(ctx.actor, "settings", &target, 1, Some(ctx.client));
    audit::record(&ctx.keyring.store, event).await;
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
