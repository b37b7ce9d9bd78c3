//! Finding the API credential in a request. Key verification arrives with
//! the key store; until then a request that presents an API key is refused,
//! since keygate cannot know the key is valid (fail closed).

pub mod basic;

use http::header::{self, HeaderMap, HeaderName};

/// LabKey's client libraries send the key in this header.
pub const APIKEY_HEADER: HeaderName = HeaderName::from_static("apikey");

/// What a request presents as an API credential.
#[derive(PartialEq, Eq)]
pub enum Credential {
    /// No API credential: anonymous (browser) traffic, or Basic auth for another user name.
    None,
    /// One API key (the secret; never logged).
    ApiKey(String),
    /// More than one credential, or an `Authorization` header that cannot be read: never a guess.
    Ambiguous,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::None => f.write_str("None"),
            Credential::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Credential::Ambiguous => f.write_str("Ambiguous"),
        }
    }
}

/// Look at `Authorization` and `apikey` headers; `username` marks an API key in Basic auth.
pub fn credential(headers: &HeaderMap, username: &str) -> Credential {
    let mut authz = headers.get_all(header::AUTHORIZATION).iter();
    let from_authz = match (authz.next(), authz.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => return Credential::Ambiguous,
        (Some(v), None) => match basic::parse(v.as_bytes()) {
            basic::Parsed::Basic { user, pass } if user == username => Some(pass),
            basic::Parsed::Basic { .. } | basic::Parsed::OtherScheme => None,
            basic::Parsed::Malformed => return Credential::Ambiguous,
        },
    };
    let mut apikey = headers.get_all(&APIKEY_HEADER).iter();
    let from_header = match (apikey.next(), apikey.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => return Credential::Ambiguous,
        (Some(v), None) => match v.to_str() {
            Ok(s) => Some(s.trim().to_owned()),
            Err(_) => return Credential::Ambiguous,
        },
    };
    match (from_authz, from_header) {
        (None, None) => Credential::None,
        (Some(k), None) | (None, Some(k)) => Credential::ApiKey(k),
        (Some(_), Some(_)) => Credential::Ambiguous,
    }
}
