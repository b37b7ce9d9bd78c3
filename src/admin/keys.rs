//! `/v1/keys` and `/v1/revoke`: create, list, delete, rotate, revoke in bulk.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiError, ApiResult};
use crate::audit::Actor;
use crate::http::response::{self, json};
use crate::keyring::RotateRequest;
use crate::keyring::{
    audit_position, AuditFrom, KeyFilter, Keyring, Listing, MintError, PageError, Revocation,
    SettingsError, Sort, Ttl,
};
use crate::keys::{format, user, ApiKey, KeyId, KeyView, Scope};
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

/// A key listing as a query string asks for it: the listing (filters,
/// `sort`, `order`), the cursor and the page size.
pub struct ListQuery {
    pub listing: Listing,
    pub cursor: Option<String>,
    pub limit: usize,
}

/// Read `user`, `label`, `expires_before`, `sort` (`created`, `expires`),
/// `order` (`asc`, `desc`; newest first and soonest first by default),
/// `cursor` and `limit`; every bad one is named.
pub fn list_query(query: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut listing = Listing::default();
    let (mut cursor, mut limit, mut order) = (None, DEFAULT_LIMIT, None);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "user" => {
                // As in a revocation's `filter.user`: a name no key can
                // have (an unset variable, a pasted secret) is named, not
                // answered with an empty listing.
                check_user("user", &v)?;
                listing.filter.user = Some(v.into_owned())
            }
            "cursor" => cursor = Some(v.into_owned()),
            "label" => listing.filter.label = Some(v.into_owned()),
            "expires_before" => {
                listing.filter.expires_before = Some(parse_time_ms("expires_before", &v)? / 1000)
            }
            "limit" => limit = parse_limit(&v)?,
            "sort" => {
                listing.order.sort = match v.as_ref() {
                    "created" => Sort::Created,
                    "expires" => Sort::Expires,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "sort: {other:?} is not one of \"created\", \"expires\""
                        )))
                    }
                }
            }
            "order" => {
                order = Some(match v.as_ref() {
                    "asc" => false,
                    "desc" => true,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "order: {other:?} is not one of \"asc\", \"desc\""
                        )))
                    }
                })
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "{other}: unknown query parameter (user, label, expires_before, sort, order, cursor, limit)"
                )))
            }
        }
    }
    // Newest first; soonest to expire first.
    listing.order.descending = order.unwrap_or(listing.order.sort == Sort::Created);
    Ok(ListQuery {
        listing,
        cursor,
        limit,
    })
}

/// A page of keys: `{"keys": [...], "next_cursor"}`. The cursor is opaque,
/// signed, and good only for the same filters and order.
pub async fn list(ctx: &Ctx<'_>, query: Option<&str>) -> ApiResult {
    let q = list_query(query)?;
    let page = ctx
        .keyring
        .page(&q.listing, q.cursor.as_deref(), q.limit)
        .await
        .map_err(|e| match e {
            PageError::Cursor => ApiError::bad_request(e.to_string()),
            PageError::Store(e) => ApiError::Store(e),
        })?;
    // Serialized straight from the records' views: no JSON tree of the page.
    let body = KeyPage {
        keys: page.keys.iter().map(|r| r.view()).collect(),
        next_cursor: page.next_cursor.as_deref(),
    };
    Ok(json(StatusCode::OK, &body))
}

/// `GET /v1/keys`'s answer.
#[derive(Serialize)]
struct KeyPage<'a> {
    keys: Vec<KeyView<'a>>,
    next_cursor: Option<&'a str>,
}

/// `GET /v1/keys/{id}`: one live key as a listing shows it (whose it is,
/// when it expires, its rotation), for an id from the access log or a
/// webhook; 404 for an id never issued, expired or revoked.
pub async fn get(ctx: &Ctx<'_>, id: &str) -> ApiResult {
    let no_such = || ApiError::NotFound("no such key (never issued, expired or revoked)".into());
    let id = KeyId::parse(id).ok_or_else(no_such)?;
    let record = ctx.keyring.get(&id).await.map_err(ApiError::Store)?;
    let now = crate::keys::unix_now();
    match record {
        Some(r) if r.expires_at.is_none_or(|t| t > now) => Ok(json(StatusCode::OK, &r.view())),
        _ => Err(no_such()),
    }
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
    /// The listing's filters: every key that matches them.
    filter: Option<Filter>,
    /// Answer how many would be revoked, revoking nothing.
    dry_run: Option<bool>,
}

/// `GET /v1/keys`'s filters, as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    user: Option<String>,
    label: Option<String>,
    /// RFC 3339.
    expires_before: Option<String>,
}

impl Revoke {
    /// What to revoke, and whether only to count it.
    pub fn revocation(self) -> Result<(Revocation, bool), ApiError> {
        let what = match (self.ids, self.users, self.keys, self.all, self.filter) {
            (Some(ids), None, None, None, None) => {
                let mut parsed = Vec::with_capacity(ids.len());
                for (i, id) in ids.iter().enumerate() {
                    parsed.push(KeyId::parse(id).ok_or_else(|| not_an_id(i, id))?);
                }
                Revocation::Ids(parsed)
            }
            (None, Some(users), None, None, None) => {
                for (i, user) in users.iter().enumerate() {
                    check_user(&format!("users[{i}]"), user)?;
                }
                Revocation::Users(users)
            }
            (None, None, Some(secrets), None, None) => Revocation::Leaked(
                secrets
                    .into_iter()
                    .map(|s| ApiKey::new(s.trim().to_owned()))
                    .collect(),
            ),
            (None, None, None, Some(true), None) => Revocation::All,
            (None, None, None, Some(false), None) => {
                return Err(ApiError::bad_request(
                    "all: must be true to revoke every key",
                ))
            }
            (None, None, None, None, Some(f)) => {
                if let Some(user) = &f.user {
                    check_user("filter.user", user)?;
                }
                if let Some(label) = &f.label {
                    // An unset variable in a script must not revoke every
                    // key without a label.
                    if label.is_empty() {
                        return Err(ApiError::bad_request(
                            "filter.label: must not be empty (it would match every key without \
                             a label); to revoke those, revoke them by ids",
                        ));
                    }
                    check_name("filter.label", label)?;
                }
                let filter = KeyFilter {
                    user: f.user,
                    label: f.label,
                    expires_before: match f.expires_before {
                        Some(t) => Some(parse_time_ms("filter.expires_before", &t)? / 1000),
                        None => None,
                    },
                };
                if filter.is_empty() {
                    return Err(ApiError::bad_request(
                        "filter: give at least one of user, label, expires_before \
                         (to revoke every key: {\"all\": true})",
                    ));
                }
                Revocation::Matching(filter)
            }
            _ => {
                return Err(ApiError::bad_request(
                    "give exactly one of ids, users, keys, all, filter",
                ))
            }
        };
        Ok((what, self.dry_run.unwrap_or(false)))
    }
}

/// `ids[i]` is no key id: a typo or a paste of something else, said rather
/// than counted as a key already gone. Not quoted: it may be anything, a
/// key secret included.
fn not_an_id(i: usize, id: &str) -> ApiError {
    let hint = match format::contains_key(id) {
        true => "looks like a key secret; revoke it with `keys`",
        false => "not a key id (12 letters and digits, as GET /v1/keys lists it)",
    };
    ApiError::bad_request(format!("ids[{i}]: {hint}"))
}

/// A user to revoke by: no key secret (see `check_name`), and a user name
/// as keys carry it (`keys::user`; no key has another).
fn check_user(field: &str, value: &str) -> Result<(), ApiError> {
    user::check_typed(value).map_err(|e| match e {
        user::Typed::Secret => ApiError::bad_request(format!(
            "{field}: looks like a key secret; revoke it with `keys`"
        )),
        user::Typed::NoUser(why) => ApiError::bad_request(format!("{field}: {why}")),
    })
}

/// A label (or a user holding a secret) to revoke by, as the audit log will name it: no
/// control characters (no forged lines) and no key secret (a secret is
/// revoked with `keys`, and never written to the audit log in clear).
fn check_name(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field}: must not contain control characters"
        )));
    }
    if format::contains_key(value) {
        return Err(ApiError::bad_request(format!(
            "{field}: looks like a key secret; revoke it with `keys`"
        )));
    }
    Ok(())
}

pub async fn revoke(ctx: &Ctx<'_>, body: Revoke) -> ApiResult {
    let (what, dry_run) = body.revocation()?;
    revoke_now(ctx, what, dry_run).await
}

/// Revoke `what` through the fleet's barrier (`{"revoked", "instances"}`),
/// or only count it (`{"revoked": 0, "would_revoke", "dry_run": true}`).
pub async fn revoke_now(ctx: &Ctx<'_>, what: Revocation, dry_run: bool) -> ApiResult {
    if dry_run {
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

/// `GET /v1/audit?since=RFC3339|after=ID&limit=N`: events oldest first,
/// each with its `id`; `after` the last one seen reads on from there
/// exactly (several events may share a millisecond, so `since` cannot).
pub async fn audit_log(ctx: &Ctx<'_>, query: Option<&str>) -> ApiResult {
    let (mut since, mut after) = (None, None);
    let mut limit = DEFAULT_LIMIT;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "since" => since = Some(parse_time_ms("since", &v)?),
            "after" => {
                let (ms, seq) = audit_position(&v).ok_or_else(|| {
                    ApiError::bad_request(
                        "after: not an event id from GET /v1/audit (such as 1764998400000-0)",
                    )
                })?;
                after = Some(AuditFrom::After(ms, seq));
            }
            "limit" => limit = parse_limit(&v)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "{other}: unknown query parameter (since, after, limit)"
                )))
            }
        }
    }
    let from = match (since, after) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "after: give since or after, not both",
            ))
        }
        (Some(ms), None) => AuditFrom::Since(ms),
        (None, Some(after)) => after,
        (None, None) => AuditFrom::Since(0),
    };
    let events = ctx
        .keyring
        .audit_from(from, limit)
        .await
        .map_err(ApiError::Store)?;
    let events: Vec<_> = events
        .iter()
        .map(|(id, event)| AuditEntry { id, event })
        .collect();
    Ok(json(StatusCode::OK, &json!({ "events": events })))
}

/// An event of `GET /v1/audit`, with its place in the stream.
#[derive(Serialize)]
struct AuditEntry<'a> {
    id: &'a str,
    #[serde(flatten)]
    event: &'a crate::audit::Event,
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
        Err(e @ SettingsError::Unconfirmed(_)) => return Err(ApiError::SettingsUnconfirmed(e)),
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

/// An RFC 3339 time as unix milliseconds; `field` names it in the error.
fn parse_time_ms(field: &str, v: &str) -> Result<u64, ApiError> {
    let t = parse_rfc3339(v).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{field}: {v:?} is not an RFC 3339 time such as 2027-01-31T00:00:00Z \
             or 2027-01-31T00:00:00-05:00"
        ))
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64))
}

/// RFC 3339 as written: any numeric offset (converted to UTC), and `t`/`z`
/// in either case (§5.6). humantime reads only `Z`/`+00:00`, in upper case,
/// so the offset is taken off here; no offset at all is read as UTC.
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.to_ascii_uppercase();
    let (local, east) = split_offset(&text)?;
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    if east >= 0 {
        local.checked_sub(Duration::from_secs(east.unsigned_abs()))
    } else {
        local.checked_add(Duration::from_secs(east.unsigned_abs()))
    }
}

/// The time without a trailing `±HH:MM`, and that offset in seconds east
/// of UTC (0 when there is none, or it is `Z`, left to humantime).
fn split_offset(text: &str) -> Option<(&str, i64)> {
    let Some(at) = text.len().checked_sub(6) else {
        return Some((text, 0));
    };
    let (local, offset) = text.split_at_checked(at)?;
    let sign = match offset.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return Some((text, 0)),
    };
    let (hours, minutes) = offset[1..].split_once(':')?;
    let number = |s: &str, max: i64| {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i64>().ok())
            .flatten()
            .filter(|n| *n <= max)
    };
    let (hours, minutes) = (number(hours, 23)?, number(minutes, 59)?);
    Some((local, sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(text: &str) -> Option<u64> {
        parse_rfc3339(text).map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
    }

    #[test]
    fn rfc3339_times_with_any_offset_or_case_are_read_as_utc() {
        let utc = unix("2026-12-05T15:00:00Z");
        assert!(utc.is_some());
        for same in [
            "2026-12-05T10:00:00-05:00",
            "2026-12-05T20:30:00+05:30",
            "2026-12-05t15:00:00z",
            "2026-12-05T15:00:00+00:00",
            "2026-12-05T15:00:00-00:00",
            "2026-12-05T15:00:00",
            "2026-12-05T10:00:00.000-05:00",
        ] {
            assert_eq!(unix(same), utc, "{same}");
        }
        for garbage in [
            "",
            "soon",
            "2026-12-05T10:00:00-5:00",
            "2026-12-05T10:00:00+24:00",
            "2026-12-05T10:00:00+05:60",
            "2026-12-05T10:00:00+0500",
            "2026-13-05T10:00:00Z",
            "+05:00",
        ] {
            assert_eq!(unix(garbage), None, "{garbage:?}");
        }
    }
}
