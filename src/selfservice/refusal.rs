//! Why a self-service request is not answered as asked, and how each reason
//! is shown: as a page (`page`) or as JSON `{"error": ...}` (`json`), each an
//! exhaustive match, so a new reason forces a decision in both. Details go
//! to the log; the person gets a plain sentence.

use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use super::api::MAX_BODY;
use super::csrf::CsrfError;
use super::{page as html, redirect};
use crate::http::body::ResponseBody;
use crate::http::request_body;
use crate::http::response::{self, RETRY_SOON};
use crate::keys::format::redact_keys;
use crate::keys::user::MAX_BYTES;
use crate::login::cas::CasError;
use crate::login::flow::Return;
use crate::login::oidc::OidcError;
use crate::login::{Login, Method as LoginMethod};
use crate::store::StoreError;
use crate::telemetry::escaped;

/// Why a self-service request is not answered as asked.
#[derive(Debug)]
pub(super) enum Refusal {
    NotConfigured,
    /// Self-service is off; `admin`: the person may switch it back on.
    Disabled {
        admin: bool,
    },
    SignedOut,
    /// Signed in, but not in `[admin] users` nor `groups`: the console is not theirs.
    NotAdmin,
    /// Settings that fail validation: every problem, `"<field>: <why>"`.
    Invalid(Vec<String>),
    LoginUnavailable(String),
    Store(StoreError),
    /// Settings saved and in force, not confirmed by a replica: save again.
    SettingsUnconfirmed(crate::keyring::SettingsError),
    /// Keys revoked in the store that not every instance could be told
    /// about (`RevokeError::NotPropagated`): 503 saying so, with the count.
    NotPropagated(crate::keyring::RevokeError),
    Csrf(CsrfError),
    BadRequest(String),
    /// 404: no such key (or not this user's).
    NotFound,
    /// 404: no such route under `/.keygate/`.
    NoRoute,
    RateLimited(Duration),
    TooManyKeys(usize),
    /// 409: the key was rotated before; its successor's id.
    Rotated(crate::keys::KeyId),
    UnsupportedMedia,
    TooLarge,
    /// 408: the body was not all there within its deadline.
    SlowBody,
    Method(&'static str),
    /// A CAS callback that is not for a sign-in this browser started
    /// (login CSRF), or too late: why.
    CasFlow(&'static str),
    CasRefused(String),
    /// The user a login method names is no user name (`keys::user`):
    /// `why`; `by` says who named it ("the CAS server"). The name itself
    /// goes to the log only (escaped).
    NotAUser {
        user: String,
        why: &'static str,
        by: &'static str,
    },
    CasUnavailable(CasError),
    Oidc(OidcError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// The admin API's reading of a listing or a revocation, for the console.
impl From<crate::admin::ApiError> for Refusal {
    fn from(e: crate::admin::ApiError) -> Self {
        use crate::admin::ApiError as E;
        match e {
            E::BadRequest(m) | E::NotFound(m) => Refusal::BadRequest(m),
            E::Store(e) => Refusal::Store(e),
            E::NotPropagated(e) => e.into(),
            E::SettingsUnconfirmed(e) => Refusal::SettingsUnconfirmed(e),
            E::Unauthorized => Refusal::SignedOut,
            E::Method(allow) => Refusal::Method(allow),
            E::UnsupportedMedia => Refusal::UnsupportedMedia,
            E::TooLarge => Refusal::TooLarge,
            E::SlowBody => Refusal::SlowBody,
            E::Rotated { to, .. } => Refusal::Rotated(to),
        }
    }
}

/// A revocation the fleet could not confirm is a 503 (try again) that says
/// the keys are revoked in the store: "the key store is unavailable" would
/// read as nothing revoked.
impl From<crate::keyring::RevokeError> for Refusal {
    fn from(e: crate::keyring::RevokeError) -> Self {
        match e {
            crate::keyring::RevokeError::Store(e) => Refusal::Store(e),
            e @ crate::keyring::RevokeError::NotPropagated { .. } => Refusal::NotPropagated(e),
        }
    }
}

/// A rotation refused: 400 naming the field, 404, 409 naming the successor.
impl From<crate::keyring::RotateError> for Refusal {
    fn from(e: crate::keyring::RotateError) -> Self {
        use crate::keyring::RotateError as E;
        match e {
            e @ (E::Grace(_) | E::Ttl(_) | E::ChainEnded { .. }) => {
                Refusal::BadRequest(e.to_string())
            }
            E::NotFound => Refusal::NotFound,
            E::Rotated { to, .. } => Refusal::Rotated(to),
            E::Store(e) => Refusal::Store(e),
        }
    }
}

/// Every refusal as a page: one exhaustive match, the status decided here.
/// `headers`: the request's (its cookies), for a CAS sign-in started here.
pub(super) fn page(
    refusal: Refusal,
    login: Option<&Login>,
    headers: &HeaderMap,
) -> Response<ResponseBody> {
    page_for(refusal, login, headers, Return::Keys)
}

/// `page`, for a request whose sign-in (when signed out) returns to `to`.
pub(super) fn page_for(
    refusal: Refusal,
    login: Option<&Login>,
    headers: &HeaderMap,
    to: Return,
) -> Response<ResponseBody> {
    use StatusCode as S;
    let (status, title, text, link): (StatusCode, &str, String, Option<(&str, &str)>) = match refusal {
        Refusal::NotConfigured => (
            S::NOT_FOUND,
            "Self-service is not configured",
            "This gateway has no [login] section in its configuration, so it cannot tell who you are. Ask your administrator for an API key.".into(),
            None,
        ),
        Refusal::Disabled { admin: false } => (
            S::FORBIDDEN,
            "Self-service is turned off",
            "An administrator has switched self-service API keys off. Ask your administrator for a key.".into(),
            None,
        ),
        Refusal::Disabled { admin: true } => (
            S::FORBIDDEN,
            "Self-service is turned off",
            "Self-service API keys are switched off. As an administrator you can switch them back on in External Tool Settings.".into(),
            Some((super::console::PAGE, "External Tool Settings")),
        ),
        Refusal::SignedOut => {
            match login.map(|l| &l.method) {
                Some(LoginMethod::Cas(cas)) => {
                    let (location, flow_cookie) = cas.start(headers, to);
                    let mut resp = redirect(&location);
                    resp.headers_mut().append(header::SET_COOKIE, flow_cookie);
                    return resp;
                }
                Some(LoginMethod::Oidc(_)) => return redirect(to.login_path()),
                _ => {}
            }
            (
                S::FORBIDDEN,
                "Sign in first",
                "You are not signed in. Sign in to the application, then come back to this page.".into(),
                login.and_then(|l| l.login_url()).map(|u| (u, "Sign in")),
            )
        }
        Refusal::NotAdmin => (
            S::FORBIDDEN,
            "Administrators only",
            "External Tool Settings are for the gateway's administrators. Your own API keys are on External Tool Access.".into(),
            Some(("/.keygate/keys", "External Tool Access")),
        ),
        Refusal::LoginUnavailable(what) => {
            let resp = response::html(
                S::SERVICE_UNAVAILABLE,
                html::message(
                    "Sign-in is unavailable",
                    &format!("keygate cannot reach {what} to find out who you are. Try again in a minute."),
                    None,
                ),
            );
            return response::retry_after(resp, RETRY_SOON);
        }
        Refusal::Store(e) => {
            tracing::error!(error = %e, "self-service: key store unavailable (503)");
            let resp = response::html(
                S::SERVICE_UNAVAILABLE,
                html::message("Keys are unavailable", "The key store cannot be reached right now. Try again in a minute.", None),
            );
            return response::retry_after(resp, RETRY_SOON);
        }
        Refusal::CasFlow(why) => {
            tracing::info!(reason = why, "CAS callback refused: not this browser's sign-in (403)");
            (
                S::FORBIDDEN,
                "Sign-in failed",
                format!("This sign-in cannot be finished: {why}. Start again from this site."),
                Some(("/.keygate/login", "Sign in again")),
            )
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
        Refusal::NotAUser { user, why, by } => (
            S::FORBIDDEN,
            "Sign-in failed",
            format!("keygate cannot tell who you are: {}.", not_a_user(&user, why, by)),
            // Another account may do, where keygate runs the sign-in.
            matches!(
                login.map(|l| &l.method),
                Some(LoginMethod::Cas(_) | LoginMethod::Oidc(_))
            )
                .then_some(("/.keygate/login", "Sign in again")),
        ),
        Refusal::CasUnavailable(e) => {
            tracing::warn!(error = %e, "CAS ticket validation failed (503)");
            let resp = response::html(
                S::SERVICE_UNAVAILABLE,
                html::message("Sign-in is unavailable", "keygate cannot check your sign-in with the CAS server right now. Try again in a minute.", Some(("/.keygate/login", "Sign in again"))),
            );
            return response::retry_after(resp, RETRY_SOON);
        }
        Refusal::Oidc(e) => return oidc_page(e),
        Refusal::NotFound | Refusal::NoRoute => (S::NOT_FOUND, "Not found", "keygate has no page here.".into(), Some(("/.keygate/keys", "External Tool Access"))),
        Refusal::Method(allow) => {
            let mut resp = response::html(
                S::METHOD_NOT_ALLOWED,
                html::message("Method not allowed", &format!("This page answers {allow} only."), None),
            );
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
            return resp;
        }
        // API-only refusals, should a page ever meet one.
        other @ (Refusal::Csrf(_)
        | Refusal::Invalid(_)
        | Refusal::BadRequest(_)
        | Refusal::RateLimited(_)
        | Refusal::TooManyKeys(_)
        | Refusal::Rotated(_)
        | Refusal::SettingsUnconfirmed(_)
        | Refusal::NotPropagated(_)
        | Refusal::UnsupportedMedia
        | Refusal::TooLarge
        | Refusal::SlowBody) => return json(other),
    };
    response::html(status, html::message(title, &text, link))
}

/// Every refusal as JSON `{"error": ...}`: one exhaustive match.
pub(super) fn json(refusal: Refusal) -> Response<ResponseBody> {
    use StatusCode as S;
    let (mut retry, mut allow) = (None, None);
    let (status, message) = match refusal {
        Refusal::NotConfigured => (
            S::NOT_FOUND,
            "self-service is not configured on this gateway (no [login] section)".to_owned(),
        ),
        Refusal::Disabled { .. } => (
            S::FORBIDDEN,
            "self-service is turned off by an administrator".into(),
        ),
        Refusal::SignedOut => (S::FORBIDDEN, "not signed in".into()),
        Refusal::NotAdmin => (
            S::FORBIDDEN,
            "the admin console is for administrators only ([admin] users, groups)".into(),
        ),
        Refusal::Invalid(problems) => return invalid(&problems),
        Refusal::LoginUnavailable(what) => {
            retry = Some(RETRY_SOON);
            (S::SERVICE_UNAVAILABLE, format!("{what} cannot be reached"))
        }
        Refusal::Store(e) => {
            tracing::error!(error = %e, "self-service: key store unavailable (503)");
            retry = Some(RETRY_SOON);
            (
                S::SERVICE_UNAVAILABLE,
                "the key store is unavailable".into(),
            )
        }
        Refusal::SettingsUnconfirmed(e) => {
            tracing::error!(error = %e, cause = ?std::error::Error::source(&e), "admin console: settings saved, not confirmed by a replica (503)");
            retry = Some(RETRY_SOON);
            (S::SERVICE_UNAVAILABLE, e.to_string())
        }
        Refusal::NotPropagated(e) => {
            tracing::error!(error = %e, "self-service: revocation not confirmed by the fleet (503)");
            let count = match &e {
                crate::keyring::RevokeError::NotPropagated { count, .. } => *count,
                crate::keyring::RevokeError::Store(_) => 0,
            };
            // `revoked`: the keys are gone from the store, whatever the fleet
            // heard. The store's error itself goes to the log only.
            let body = serde_json::json!({
                "error": format!(
                    "revoked {} in the store, but could not tell every keygate \
                     instance: one that has a key cached may accept it until it hears \
                     (keygate keeps telling them); retry the same revocation",
                    crate::keys::counted(count)
                ),
                "revoked": count,
            });
            let resp = response::json(S::SERVICE_UNAVAILABLE, &body);
            return response::retry_after(resp, RETRY_SOON);
        }
        Refusal::Csrf(CsrfError::OriginMismatch { expected, came }) => {
            let expected = expected.as_deref().unwrap_or("unknown (no Host)");
            // Both may come from the request (`Origin`, `Host`).
            tracing::warn!(
                expected_origin = %escaped(expected),
                origin = %escaped(&came),
                "self-service: the page's write came from another origin than the gateway's; \
                 set login.public_url to the address browsers use (403)"
            );
            (
                S::FORBIDDEN,
                format!(
                    "the gateway's public URL is configured differently: this page is at {came} \
                     but keygate expects {expected}; an administrator must set login.public_url \
                     to the address browsers use"
                ),
            )
        }
        Refusal::Csrf(e) => {
            // BadOrigin's reason names both origins.
            tracing::warn!(reason = %e, "self-service: CSRF check failed (403)");
            (
                S::FORBIDDEN,
                "CSRF check failed: reload the page and try again".into(),
            )
        }
        // It may quote client input; `json_error` redacts key secrets.
        Refusal::BadRequest(m) => (S::BAD_REQUEST, m),
        Refusal::NotFound => (S::NOT_FOUND, "no such key".into()),
        Refusal::NoRoute => (S::NOT_FOUND, "no such route".into()),
        Refusal::RateLimited(wait) => {
            retry = Some(wait);
            (
                S::TOO_MANY_REQUESTS,
                "too many keys created recently; try again later".into(),
            )
        }
        Refusal::TooManyKeys(max) => (
            S::CONFLICT,
            format!("you already have {max} live keys, the most allowed; revoke one first"),
        ),
        Refusal::Rotated(to) => {
            return response::json(
                S::CONFLICT,
                &serde_json::json!({
                    "error": format!("this key was rotated already: its successor is {to}"),
                    "rotated_to": to,
                }),
            )
        }
        Refusal::UnsupportedMedia => (
            S::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json".into(),
        ),
        Refusal::TooLarge => (
            S::PAYLOAD_TOO_LARGE,
            format!("body larger than {MAX_BODY} bytes or unreadable"),
        ),
        Refusal::SlowBody => (S::REQUEST_TIMEOUT, request_body::SLOW_BODY.into()),
        Refusal::Method(methods) => {
            allow = Some(methods);
            (
                S::METHOD_NOT_ALLOWED,
                format!("method not allowed; allowed: {methods}"),
            )
        }
        Refusal::CasFlow(why) => (
            S::FORBIDDEN,
            format!("this sign-in cannot be finished: {why}"),
        ),
        Refusal::CasRefused(code) => (
            S::FORBIDDEN,
            format!("the CAS server refused the sign-in ({code})"),
        ),
        Refusal::NotAUser { user, why, by } => (S::FORBIDDEN, not_a_user(&user, why, by)),
        Refusal::CasUnavailable(e) => {
            tracing::warn!(error = %e, "CAS ticket validation failed (503)");
            (
                S::SERVICE_UNAVAILABLE,
                "the CAS server cannot be reached".into(),
            )
        }
        // Sign-in is a page; should its refusal ever be asked for as JSON, the page's words.
        Refusal::Oidc(e) => {
            let (status, _, text) = oidc_refusal(e);
            if status == S::SERVICE_UNAVAILABLE {
                retry = Some(RETRY_SOON);
            }
            (status, text)
        }
    };
    let mut resp = response::json_error(status, &message);
    if let Some(methods) = allow {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(methods));
    }
    match retry {
        Some(after) => response::retry_after(resp, after),
        None => resp,
    }
}

/// 400 `{"error", "problems": [{"field", "message"}]}`: each problem by
/// the field it names (`ttl_choices[2]`), so a form shows it beside that field.
fn invalid(problems: &[String]) -> Response<ResponseBody> {
    // Each may quote a value the client sent: never a secret.
    let problems: Vec<String> = problems
        .iter()
        .map(|p| redact_keys(p).into_owned())
        .collect();
    let each: Vec<_> = problems
        .iter()
        .map(|p| {
            let (field, message) = p.split_once(": ").unwrap_or(("", p));
            serde_json::json!({ "field": field, "message": message })
        })
        .collect();
    response::json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": problems.join("; "), "problems": each }),
    )
}

/// Logs a signed-in user that is no user name and says why, without it.
/// Always quoted in the log: the name may end in a space (U+00A0) that an
/// admin reading `user=alice` would not see.
fn not_a_user(user: &str, why: &str, by: &str) -> String {
    tracing::warn!(user = ?logged_name(user), reason = why, by, "sign-in without a usable user (403)");
    format!("the user name {by} gives for this account {why}")
}

/// A refused name as the log shows it: a who-am-I answer may name 256 KiB,
/// on every request; the log keeps what a user name may hold, and says it cut.
fn logged_name(user: &str) -> std::borrow::Cow<'_, str> {
    if user.len() <= MAX_BYTES {
        return user.into();
    }
    let end = (0..=MAX_BYTES).rev().find(|&i| user.is_char_boundary(i));
    format!("{}…", &user[..end.unwrap_or(0)]).into()
}

/// An OpenID Connect sign-in that did not end with a session, as a page.
fn oidc_page(e: OidcError) -> Response<ResponseBody> {
    let (status, title, text) = oidc_refusal(e);
    let again = Some(("/.keygate/login", "Sign in again"));
    let resp = response::html(status, html::message(title, &text, again));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return response::retry_after(resp, RETRY_SOON);
    }
    resp
}

/// Status, title and sentence for each way an OIDC sign-in fails; the
/// detail goes to the log. One exhaustive match.
fn oidc_refusal(e: OidcError) -> (StatusCode, &'static str, String) {
    use StatusCode as S;
    let failed = "Sign-in failed";
    match e {
        OidcError::Flow(why) => {
            tracing::info!(reason = why, "OIDC sign-in answer refused (403)");
            (S::FORBIDDEN, failed, format!("This sign-in cannot be finished: {why}. Start again from this site."))
        }
        OidcError::Provider { error, description } => {
            tracing::info!(error = %escaped(&error), description = %escaped(&description), "the OpenID provider refused the sign-in (403)");
            (S::FORBIDDEN, failed, format!("The identity provider did not sign you in ({error})."))
        }
        OidcError::Refused(code) => (
            S::FORBIDDEN,
            failed,
            format!("The identity provider did not accept this sign-in ({code}). Sign-in links work once; sign in again."),
        ),
        e @ OidcError::IdToken(_) => {
            tracing::warn!(error = %e, "OIDC ID token refused (403)");
            (S::FORBIDDEN, failed, format!("keygate cannot trust the identity provider's answer: {e}."))
        }
        OidcError::Claims(why) => {
            tracing::warn!(reason = %escaped(&why), "OIDC sign-in without a usable user (403)");
            (S::FORBIDDEN, failed, format!("keygate cannot tell who you are: {why}."))
        }
        OidcError::NotAllowed { user } => {
            tracing::info!(user = %escaped(&user), "OIDC sign-in outside login.allowed_groups (403)");
            (
                S::FORBIDDEN,
                "Not allowed",
                format!("You signed in as {user}, but you are not in a group allowed to use this gateway. Ask your administrator."),
            )
        }
        e @ (OidcError::Unavailable(_) | OidcError::Unreadable(_)) => {
            tracing::warn!(error = %e, "OpenID provider unavailable (503)");
            (
                S::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable",
                "keygate cannot reach the identity provider right now. Try again in a minute.".into(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_from_the_request_cannot_forge_a_field_of_the_log_line() {
        let out = crate::telemetry::captured::Buffer::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            json(Refusal::Csrf(CsrfError::OriginMismatch {
                expected: Some("https://gw.example\tuser=admin".into()),
                came: "https://evil.example origin=https://gw.example".into(),
            }))
        });
        let text = out.text();
        assert!(
            text.contains(r#" origin="https://evil.example origin=https://gw.example""#)
                && text.contains(r#"expected_origin="https://gw.example\tuser=admin""#),
            "{text}"
        );
    }

    #[test]
    fn a_refused_name_is_logged_whole_up_to_a_names_length_then_cut() {
        assert_eq!(logged_name("alice\u{a0}"), "alice\u{a0}");
        let long = "é".repeat(100_000);
        let shown = logged_name(&long);
        assert!(shown.len() <= MAX_BYTES + "…".len(), "{}", shown.len());
        assert!(shown.starts_with("éé") && shown.ends_with('…'));
    }
}
