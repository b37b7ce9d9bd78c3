//! Authentication on the main listener: find the API credential (Basic
//! `apikey:<key>`, the `apikey` header, or `Bearer <key>`), typed as an
//! `ApiKey` (redacted in any `Debug`) from the moment it is decoded, and
//! have the keyring verify it (`Keyring::verify`). The credential is removed
//! from the request whatever the outcome.
//!
//! Fail closed: a store error is `AuthError::Key(VerifyError::Store)`,
//! which the gateway answers with 503, never with a pass.

pub mod basic;
pub(crate) mod last_used;
pub(crate) mod scope;

use http::header::{self, HeaderMap, HeaderName};

use self::last_used::LastUsed;
use crate::keyring::{Keyring, VerifyError};
use crate::keys::seen::Sent;
use crate::keys::ApiKey;

pub use crate::config::Accept;
pub use crate::keyring::Principal;

/// LabKey's client libraries send the key in this header.
pub const APIKEY_HEADER: HeaderName = HeaderName::from_static("apikey");

/// Why a request is not authenticated. Clients see one 401 for every
/// `Key` failure but the store's (503), and 400 for `Ambiguous`; the
/// reason goes to the log. An unreadable credential is
/// `Key(VerifyError::Malformed)`: one 401 like a wrong key, so a client
/// cannot tell a decoding failure from any other refusal.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("more than one credential")]
    Ambiguous,
    #[error(transparent)]
    Key(#[from] VerifyError),
}

/// An API credential taken from a request.
enum Taken {
    /// A Basic credential the validation cache recalls as a live key.
    Recalled(Principal),
    /// A key to verify, with the fingerprint of the Basic credential that
    /// carried it, so that the cache recalls it next time.
    Key(ApiKey, Option<Sent>),
}

pub struct Authenticator {
    keyring: Keyring,
    /// Each key's last use, written off the request path.
    last_used: LastUsed,
    username: basic::OurUser,
    /// Where another user's Basic password may be one of our keys.
    key_marks: basic::KeyMarks,
    accept: Accept,
}

// === impl Authenticator ===

impl Authenticator {
    pub fn new(keyring: Keyring, username: &str, accept: Accept) -> Self {
        Authenticator {
            last_used: LastUsed::new(keyring.clone()),
            key_marks: basic::KeyMarks::new(keyring.prefix()),
            keyring,
            username: basic::OurUser::new(username),
            accept,
        }
    }

    /// `Ok(None)`: no API credential (anonymous). The credential headers are
    /// removed from `headers` in every other case.
    pub async fn authenticate(
        &self,
        headers: &mut HeaderMap,
    ) -> Result<Option<Principal>, AuthError> {
        match self.take_credential(headers)? {
            None => Ok(None),
            Some(Taken::Recalled(principal)) => Ok(Some(principal)),
            Some(Taken::Key(key, sent)) => Ok(Some(self.keyring.verify(&key, sent).await?)),
        }
    }

    /// The request `principal` authenticated was let through: note the
    /// key's use (written at most once a minute, off the request path).
    pub fn used(&self, principal: &Principal) {
        self.last_used.record(principal.key_id());
    }

    /// Find at most one API credential and remove it from the request.
    fn take_credential(&self, headers: &mut HeaderMap) -> Result<Option<Taken>, AuthError> {
        let mut authz = headers.get_all(header::AUTHORIZATION).iter();
        let (has_authz, from_authz) = match (authz.next(), authz.next()) {
            (None, _) => (false, None),
            (Some(_), Some(_)) => return Err(AuthError::Ambiguous),
            (Some(v), None) => (true, self.ours(v.as_bytes())?),
        };
        let mut apikey = headers.get_all(&APIKEY_HEADER).iter();
        let from_header = match (self.accept.apikey_header, apikey.next(), apikey.next()) {
            (false, ..) | (true, None, _) => None,
            (true, Some(_), Some(_)) => return Err(AuthError::Ambiguous),
            (true, Some(v), None) => Some(Taken::Key(
                ApiKey::new(
                    v.to_str()
                        .map_err(|_| AuthError::Key(VerifyError::Malformed))?
                        .trim()
                        .to_owned(),
                ),
                None,
            )),
        };
        let key = match (from_authz, from_header) {
            (None, None) => return Ok(None),
            (Some(k), None) => {
                headers.remove(header::AUTHORIZATION);
                k
            }
            (None, Some(k)) if !has_authz => {
                headers.remove(&APIKEY_HEADER);
                k
            }
            // The `apikey` header beside any `Authorization`, the app's own
            // included: which one the backend would believe is a guess.
            (_, Some(_)) => return Err(AuthError::Ambiguous),
        };
        Ok(Some(key))
    }

    /// The key in an `Authorization` value, if the value is an API credential.
    /// Basic auth for another user name and other schemes belong to the app.
    fn ours(&self, value: &[u8]) -> Result<Option<Taken>, AuthError> {
        // A Basic value the cache saw verify is recalled as it is sent. Only
        // our user's Basic credentials are remembered, and `accept` and
        // `auth.username` are fixed for the process, so a recalled value is
        // one this parse would take.
        let sent = match self.accept.basic && basic::may_be_ours(value, &self.username) {
            true => self.keyring.sent(value),
            false => None,
        };
        if let Some(principal) = sent.as_ref().and_then(|s| self.keyring.recall(s)) {
            return Ok(Some(Taken::Recalled(principal)));
        }
        match basic::parse(value, &self.username) {
            basic::Parsed::Basic(c) if self.accept.basic && c.user() == self.username.name() => {
                Ok(Some(Taken::Key(c.into_pass(), sent)))
            }
            basic::Parsed::Basic(c) => self.not_a_key(c.pass().as_bytes()),
            basic::Parsed::Bearer(token) if self.accept.bearer && self.looks_like_key(token) => {
                Ok(Some(Taken::Key(ApiKey::new(token.to_owned()), None)))
            }
            basic::Parsed::Bearer(token) => self.not_a_key(token.as_bytes()),
            basic::Parsed::OtherScheme(credential) => self.not_a_key(credential),
            basic::Parsed::OtherUser(token) if self.key_marks.may_hold_key(token) => {
                match basic::other_password(token) {
                    Some(password) => self.not_a_key(&password),
                    None => Ok(None),
                }
            }
            basic::Parsed::OtherUser(_) => Ok(None),
            basic::Parsed::Malformed => Err(AuthError::Key(VerifyError::Malformed)),
        }
    }

    /// The app's credential, unless it holds one of our keys sent in a form
    /// not taken (`alice:<key>` from a `.netrc` with the wrong login,
    /// `Token <key>`, a key with no scheme, Bearer when it is off): refused
    /// as malformed rather than forwarded, where the app would log a live
    /// secret.
    fn not_a_key(&self, credential: &[u8]) -> Result<Option<Taken>, AuthError> {
        if self.key_marks.holds_key(credential) {
            return Err(AuthError::Key(VerifyError::Malformed));
        }
        Ok(None)
    }

    /// A bearer token is ours only if it carries our prefix (an app's own JWT passes).
    fn looks_like_key(&self, token: &str) -> bool {
        token
            .strip_prefix(self.keyring.prefix())
            .is_some_and(|r| r.starts_with('_'))
    }
}
