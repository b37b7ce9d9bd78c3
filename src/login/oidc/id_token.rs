//! Checking an ID token (OpenID Connect Core §3.1.3.7): signed by one of
//! the provider's keys with RS256 or ES256 (never `none`, never HS256),
//! issued by `login.issuer` to this client (`aud`, and `azp` when present),
//! unexpired (`exp`, `nbf`, 60 s leeway for clocks), and carrying the nonce
//! this browser's sign-in was sent with.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::jwks::Key;
use super::OidcError;

/// Clock difference tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;

pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
}

/// The algorithm and key id in the token's header, when keygate accepts the algorithm.
pub fn header(token: &str) -> Result<(Algorithm, Option<String>), OidcError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| OidcError::IdToken(format!("it cannot be read ({e})")))?;
    match header.alg {
        Algorithm::RS256 | Algorithm::ES256 => Ok((header.alg, header.kid)),
        other => Err(OidcError::IdToken(format!(
            "it is signed with {other:?}; keygate accepts RS256 and ES256"
        ))),
    }
}

/// The token's claims, once checked against `keys` (tried in turn, for a
/// token without a key id) and `expected`.
pub fn verify(
    token: &str,
    alg: Algorithm,
    keys: &[Key],
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, OidcError> {
    let mut v = Validation::new(alg);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_issuer(&[expected.issuer]);
    v.set_audience(&[expected.client_id]);
    v.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
    let mut last = ErrorKind::InvalidSignature;
    for key in keys {
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v) {
            Ok(data) => return claims(data.claims, expected),
            Err(e) if *e.kind() == ErrorKind::InvalidSignature => last = e.into_kind(),
            Err(e) => return Err(OidcError::IdToken(reason(e.kind()))),
        }
    }
    Err(OidcError::IdToken(reason(&last)))
}

/// The checks `jsonwebtoken` leaves to the caller.
fn claims(c: Map<String, Value>, expected: &Expected<'_>) -> Result<Map<String, Value>, OidcError> {
    if c.get("nonce").and_then(Value::as_str) != Some(expected.nonce) {
        return Err(OidcError::IdToken(
            "its nonce is not the one this sign-in was sent with (a token replayed or meant for another browser)".into(),
        ));
    }
    // With several audiences, `azp` must name this client; when present, always.
    let audiences = c.get("aud").and_then(Value::as_array).map_or(1, Vec::len);
    match c.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != expected.client_id => {
            return Err(OidcError::IdToken(format!(
                "it was issued to another client (azp {:?})",
                super::provider::printable(azp)
            )))
        }
        None if audiences > 1 => {
            return Err(OidcError::IdToken(
                "it names several audiences and no azp".into(),
            ))
        }
        _ => {}
    }
    match c.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => Ok(c),
        _ => Err(OidcError::IdToken(
            "its sub is not a non-empty string".into(),
        )),
    }
}

/// Whether `e` says only that no key verified the signature (so newer keys might).
pub fn unverified(e: &OidcError) -> bool {
    matches!(e, OidcError::IdToken(why) if *why == reason(&ErrorKind::InvalidSignature))
}

/// Why a token was refused, for the log and the page.
fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "its signature does not match the provider's key".into(),
        ErrorKind::ExpiredSignature => "it has expired (exp)".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "it was issued to another client (aud)".into(),
        ErrorKind::InvalidIssuer => "it was issued by another issuer (iss)".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("it has no {c} claim"),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {
            "its algorithm does not match the provider's key".into()
        }
        other => format!("it cannot be read ({other:?})"),
    }
}
