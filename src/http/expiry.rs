//! `KeyGate-Key-Expires`: an answer to a key that expires within
//! `keys.warn_before`'s longest offset says when, on the main listener (to
//! the client) and on the auth listener (to the proxy, which may pass it
//! on). The access log records it as `key_expires`.

use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};

use super::access::Completion;
use super::headers::KEY_EXPIRES;
use crate::auth::Principal;
use crate::keys::{rfc3339, unix_now};

/// The warning window: `keys.warn_before`'s longest offset; `None` warns of nothing.
#[derive(Clone, Copy)]
pub struct ExpiryWarning {
    window: Option<Duration>,
}

impl ExpiryWarning {
    pub fn new(window: Option<Duration>) -> Self {
        ExpiryWarning { window }
    }

    /// Set the header on `h` (and the log's `key_expires`) when the key
    /// expires within the window.
    pub fn apply(&self, principal: &Principal, h: &mut HeaderMap, done: &mut Completion) {
        let (Some(window), Some(expires)) = (self.window, principal.record().expires_at) else {
            return;
        };
        if expires > unix_now().saturating_add(window.as_secs()) {
            return;
        }
        let at = rfc3339(expires);
        if let Ok(value) = HeaderValue::from_str(&at) {
            h.insert(KEY_EXPIRES, value);
        }
        done.set_key_expires(&at);
    }
}
