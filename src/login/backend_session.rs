//! `method = "backend_session"`: the application already knows who the
//! browser is. keygate forwards the browser's `Cookie` header to the app's
//! who-am-I URL (LabKey: `/login-whoami.api`) and reads the user from the
//! JSON answer at `user_pointer`.
//!
//! A non-2xx answer other than a server error, a 2xx whose pointer is
//! missing, empty or not a string, or one naming a `guest_users` entry
//! (LabKey answers 200 with "guest" for an anonymous browser) means "not
//! signed in" (the page links to `login_url`); an app that cannot be
//! reached, does not answer in time or answers 5xx is an outage (503),
//! never a guess in either direction.

use http::header::{self, HeaderMap, HeaderValue};
use http::Uri;

use super::fetch::{Fetch, FetchError};

pub struct BackendSession {
    whoami_url: Uri,
    user_pointer: String,
    pub login_url: String,
    guest_users: Vec<String>,
    fetch: Fetch,
}

#[derive(Debug)]
pub enum Who {
    User(String),
    SignedOut,
}

// === impl BackendSession ===

impl BackendSession {
    pub fn new(
        whoami_url: Uri,
        user_pointer: String,
        login_url: String,
        guest_users: Vec<String>,
        fetch: Fetch,
    ) -> Self {
        BackendSession {
            whoami_url,
            user_pointer,
            login_url,
            guest_users,
            fetch,
        }
    }

    pub async fn who(&self, headers: &HeaderMap) -> Result<Who, FetchError> {
        // HTTP/2 may split cookies over several fields; one header for HTTP/1.1 (RFC 9113 §8.2.3).
        let cookies: Vec<&[u8]> = headers
            .get_all(header::COOKIE)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let mut out = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&cookies.join(&b"; "[..])) {
            out.insert(header::COOKIE, v);
        }
        // The app gets its own cookies, never keygate's.
        crate::header_names::strip_own_cookies(&mut out);
        if !out.contains_key(header::COOKIE) {
            return Ok(Who::SignedOut);
        }
        out.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let (status, body) = self.fetch.get(&self.whoami_url, out).await?;
        // A server error says nothing about the browser: an outage.
        if status.is_server_error() {
            return Err(FetchError::Status(
                super::fetch::origin(&self.whoami_url),
                status,
            ));
        }
        if !status.is_success() {
            return Ok(Who::SignedOut);
        }
        Ok(match user_at(&body, &self.user_pointer) {
            Some(user) if !self.is_guest(&user) => Who::User(user),
            _ => Who::SignedOut,
        })
    }

    /// One of `guest_users`, in any case: an application may write its
    /// anonymous user "Guest" (a display name); taken for a person, every
    /// browser without a session would share that one user's keys.
    fn is_guest(&self, user: &str) -> bool {
        let user = user.to_lowercase();
        self.guest_users.iter().any(|g| g.to_lowercase() == user)
    }
}

/// The non-empty string at `pointer` in a JSON document.
fn user_at(body: &[u8], pointer: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| tracing::warn!(error = %e, "the who-am-I answer is not JSON; treating the browser as signed out"))
        .ok()?;
    match doc.pointer(pointer)? {
        // ASCII white space only: a trimmed U+3000 would make "alice\u{3000}" alice.
        serde_json::Value::String(s) if !s.trim_ascii().is_empty() => {
            Some(s.trim_ascii().to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_is_a_non_empty_string_at_the_pointer() {
        let doc = br#"{"email":"alice@example.org","id":7,"blank":" ","nested":{"u":"bob"}}"#;
        assert_eq!(user_at(doc, "/email").as_deref(), Some("alice@example.org"));
        assert_eq!(user_at(doc, "/nested/u").as_deref(), Some("bob"));
        assert_eq!(user_at(doc, "/id"), None);
        assert_eq!(user_at(doc, "/blank"), None);
        assert_eq!(user_at(doc, "/missing"), None);
        assert_eq!(user_at(b"<html>", "/email"), None);
    }
}
