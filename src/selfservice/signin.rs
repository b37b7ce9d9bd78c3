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
use crate::login::cas::{Cas, CasError};
use crate::login::flow::Return;
use crate::login::oidc::{logout as oidc_logout, Oidc, OidcError};
use crate::login::session::Sessions;
use crate::login::Method as LoginMethod;
use crate::telemetry::escaped;

impl SelfService {
    /// CAS: with a ticket, the CAS server's callback; without, off to the
    /// CAS server. OIDC: with `code`, `error` or `state`, the provider's
    /// answer; without, the start of a sign-in. A start with `to=admin`
    /// returns to the console once signed in (`Return`), any other to the keys page.
    pub(super) async fn sign_in(&self, req: &Request<Incoming>) -> Answer {
        let query = req.uri().query().unwrap_or("");
        match self.login.as_ref().map(|l| &l.method) {
            Some(LoginMethod::Cas(cas)) => Ok(self.cas_sign_in(cas, query, req.headers()).await),
            Some(LoginMethod::Oidc(oidc)) => {
                Ok(self.oidc_sign_in(oidc, query, req.headers()).await)
            }
            _ => Err(Refusal::NotFound),
        }
    }

    /// Without a ticket, a new flow and off to the CAS server; with one,
    /// the callback, taken only with this browser's flow.
    async fn cas_sign_in(
        &self,
        cas: &Cas,
        query: &str,
        headers: &HeaderMap,
    ) -> Response<ResponseBody> {
        let callback = form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "ticket");
        if !callback {
            let (location, flow_cookie) = cas.start(headers, Return::of_query(query));
            let mut resp = redirect(&location);
            resp.headers_mut().append(header::SET_COOKIE, flow_cookie);
            return resp;
        }
        let refusal = match cas.finish(query, headers).await {
            Ok((user, flow_done, to)) => {
                tracing::info!(user = %escaped(&user), "signed in through CAS");
                let mut resp = signed_in(cas.session_cookie(&user), to);
                resp.headers_mut().append(header::SET_COOKIE, flow_done);
                return resp;
            }
            // A callback seen again (Back, a reload) by a browser it signed in.
            Err(CasError::Flow(_)) if cas.who(headers).is_some() => return to_the_page(),
            // Another browser's ticket must not end this browser's own sign-in.
            Err(CasError::Flow(why)) => {
                return refusal::page(Refusal::CasFlow(why), self.login.as_ref(), headers)
            }
            // An outage (503, "try again"): the flow stays, so reloading
            // the callback retries the same ticket.
            Err(e @ (CasError::Unavailable(_) | CasError::Unreadable(_))) => {
                return refusal::page(Refusal::CasUnavailable(e), self.login.as_ref(), headers)
            }
            Err(CasError::Refused { code }) => Refusal::CasRefused(code),
            Err(CasError::NotAUser { user, why }) => Refusal::NotAUser {
                user,
                why,
                by: "the CAS server",
            },
        };
        let mut resp = refusal::page(refusal, self.login.as_ref(), headers);
        resp.headers_mut()
            .append(header::SET_COOKIE, cas.end_flow(query, headers));
        resp
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
            return match oidc.start(headers, Return::of_query(query)).await {
                Ok((location, flow_cookie)) => {
                    let mut resp = redirect(&location);
                    resp.headers_mut().append(header::SET_COOKIE, flow_cookie);
                    resp
                }
                Err(e) => refusal::page(Refusal::Oidc(e), self.login.as_ref(), headers),
            };
        }
        match oidc.finish(query, headers).await {
            Ok(done) => {
                let person = &done.person;
                tracing::info!(user = %escaped(&person.user), groups = ?person.groups, "signed in through OpenID Connect");
                let [session, hint] = oidc.session_cookies(&done);
                let mut resp = signed_in(session, done.to);
                for cookie in [hint, done.flow_done] {
                    resp.headers_mut().append(header::SET_COOKIE, cookie);
                }
                resp
            }
            // An answer seen again (Back, a reload) by a browser it signed in.
            Err(OidcError::Flow(_)) if oidc.who(headers).is_some() => to_the_page(),
            // Another browser's answer must not end this browser's own sign-in.
            Err(e @ OidcError::Flow(_)) => {
                refusal::page(Refusal::Oidc(e), self.login.as_ref(), headers)
            }
            Err(e) => {
                let mut resp = refusal::page(Refusal::Oidc(e), self.login.as_ref(), headers);
                resp.headers_mut()
                    .append(header::SET_COOKIE, oidc.end_flow(query, headers));
                resp
            }
        }
    }

    /// Clear keygate's session, then the sign-in server's: CAS's
    /// `/logout`, the OpenID provider's `end_session_endpoint` when it has
    /// one (with the ID token kept in `headers`' cookie), else a page saying so.
    pub(super) async fn sign_out(&self, headers: &HeaderMap) -> Answer {
        let mut resp = match self.login.as_ref().map(|l| &l.method) {
            Some(LoginMethod::Cas(cas)) => redirect(&cas.logout_redirect()),
            Some(LoginMethod::Oidc(oidc)) => {
                let mut resp = match oidc.logout_redirect(headers).await {
                    Some(location) => redirect(&location),
                    None => signed_out_of_keygate_only(),
                };
                resp.headers_mut()
                    .append(header::SET_COOKIE, oidc_logout::clear());
                resp
            }
            _ => return Err(Refusal::NotFound),
        };
        resp.headers_mut()
            .append(header::SET_COOKIE, Sessions::clear());
        Ok(resp)
    }
}

/// 200 "Signed out" where the provider has no sign-out page (or its metadata
/// cannot be read now).
fn signed_out_of_keygate_only() -> Response<ResponseBody> {
    response::html(
        StatusCode::OK,
        page::message(
            "Signed out",
            "You are signed out of keygate. Your sign-in at the identity provider may still be open.",
            Some(("/.keygate/keys", "Sign in again")),
        ),
    )
}

/// 303 to the page the sign-in was started for, with the new session.
fn signed_in(session: HeaderValue, to: Return) -> Response<ResponseBody> {
    let mut resp = see_other(to);
    resp.headers_mut().append(header::SET_COOKIE, session);
    resp
}

/// 303 to the keys page.
fn to_the_page() -> Response<ResponseBody> {
    see_other(Return::Keys)
}

fn see_other(to: Return) -> Response<ResponseBody> {
    let mut resp = redirect(to.path());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    resp
}
