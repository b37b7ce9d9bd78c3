//! `GET /.keygate/login` and `GET /.keygate/logout` for the methods where
//! keygate runs the sign-in itself (`cas`, `oidc`); with another method
//! both are 404.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::refusal::{self, Refusal};
use super::{page, redirect, Answer, SelfService};
use crate::http::body::ResponseBody;
use crate::http::response;
use crate::login::cas::CasError;
use crate::login::oidc::{Oidc, OidcError};
use crate::login::session::Sessions;
use crate::login::Method as LoginMethod;
use crate::telemetry::escaped;

impl SelfService {
    /// CAS: with a ticket, the CAS server's callback; without, off to the
    /// CAS server. OIDC: with `code`, `error` or `state`, the provider's
    /// answer; without, the start of a sign-in.
    pub(super) async fn sign_in(&self, req: &Request<Incoming>) -> Answer {
        let query = req.uri().query().unwrap_or("");
        match self.login.as_ref().map(|l| &l.method) {
            Some(LoginMethod::Cas(cas)) => {
                let ticket = form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| k == "ticket")
                    .map(|(_, v)| v.into_owned());
                let Some(ticket) = ticket else {
                    return Ok(redirect(&cas.login_redirect()));
                };
                match cas.validate(&ticket).await {
                    Ok(user) => {
                        tracing::info!(user = %escaped(&user), "signed in through CAS");
                        Ok(signed_in(cas.session_cookie(&user)))
                    }
                    Err(CasError::Refused { code }) => Err(Refusal::CasRefused(code)),
                    Err(CasError::NotAUser { user, why }) => {
                        Err(Refusal::CasNotAUser { user, why })
                    }
                    Err(e) => Err(Refusal::CasUnavailable(e)),
                }
            }
            Some(LoginMethod::Oidc(oidc)) => {
                Ok(self.oidc_sign_in(oidc, query, req.headers()).await)
            }
            _ => Err(Refusal::NotFound),
        }
    }

    async fn oidc_sign_in(
        &self,
        oidc: &Oidc,
        query: &str,
        headers: &HeaderMap,
    ) -> Response<ResponseBody> {
        let answer = form_urlencoded::parse(query.as_bytes())
            .any(|(k, _)| k == "code" || k == "error" || k == "state");
        if !answer {
            return match oidc.start().await {
                Ok((location, flow_cookie)) => {
                    let mut resp = redirect(&location);
                    resp.headers_mut().append(header::SET_COOKIE, flow_cookie);
                    resp
                }
                Err(e) => refusal::page(Refusal::Oidc(e), self.login.as_ref()),
            };
        }
        match oidc.finish(query, headers).await {
            Ok(person) => {
                tracing::info!(user = %escaped(&person.user), groups = ?person.groups, "signed in through OpenID Connect");
                let mut resp = signed_in(oidc.session_cookie(&person));
                resp.headers_mut()
                    .append(header::SET_COOKIE, Oidc::clear_flow());
                resp
            }
            // Another browser's answer must not end this browser's own sign-in.
            Err(e @ OidcError::Flow(_)) => refusal::page(Refusal::Oidc(e), self.login.as_ref()),
            Err(e) => {
                let mut resp = refusal::page(Refusal::Oidc(e), self.login.as_ref());
                resp.headers_mut()
                    .append(header::SET_COOKIE, Oidc::clear_flow());
                resp
            }
        }
    }

    /// Clear keygate's session, then the sign-in server's: CAS's
    /// `/logout`, the OpenID provider's `end_session_endpoint` when it has
    /// one, else a page saying so.
    pub(super) async fn sign_out(&self) -> Answer {
        let mut resp = match self.login.as_ref().map(|l| &l.method) {
            Some(LoginMethod::Cas(cas)) => redirect(&cas.logout_redirect()),
            Some(LoginMethod::Oidc(oidc)) => match oidc.logout_redirect().await {
                Some(location) => redirect(&location),
                None => response::html(
                    StatusCode::OK,
                    page::message(
                        "Signed out",
                        "You are signed out of keygate. Your sign-in at the identity provider may still be open.",
                        Some(("/.keygate/keys", "Sign in again")),
                    ),
                ),
            },
            _ => return Err(Refusal::NotFound),
        };
        resp.headers_mut()
            .append(header::SET_COOKIE, Sessions::clear());
        Ok(resp)
    }
}

/// 303 to the page, with the new session.
fn signed_in(session: HeaderValue) -> Response<ResponseBody> {
    let mut resp = redirect("/.keygate/keys");
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp.headers_mut().append(header::SET_COOKIE, session);
    resp
}
