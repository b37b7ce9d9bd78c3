//! The provider's signing keys (its JWK set at `jwks_uri`), kept an hour.
//!
//! A token signed with a key id keygate does not hold makes it read the set
//! again (the provider rotated its keys), at most once per `REFETCH_EVERY`:
//! tokens with made-up key ids cannot make keygate hammer the provider. So
//! does a token without a key id that no held key verifies (a provider that
//! names no key ids rotated them), under the same limit.
//! Only keys that can check an ID token here are kept: RSA (RS256) and
//! P-256 (ES256) keys meant for signatures; the rest of a set is skipped,
//! so one key of a kind keygate does not know breaks nothing.

use std::time::{Duration, Instant};

use http::header::HeaderMap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::provider::Provider;
use super::OidcError;

const MAX_AGE: Duration = Duration::from_secs(3600);
/// Shortest time between two reads caused by unknown key ids.
pub const REFETCH_EVERY: Duration = Duration::from_secs(30);
/// A set larger than this is cut: each key may be tried on a token without `kid`.
const MAX_KEYS: usize = 32;

#[derive(Clone)]
pub struct Key {
    kid: Option<String>,
    alg: Algorithm,
    pub key: DecodingKey,
}

#[derive(Default)]
struct Held {
    keys: Vec<Key>,
    fetched: Option<Instant>,
    /// The last read caused by an unknown key id.
    refetched: Option<Instant>,
}

#[derive(Default)]
pub struct Jwks {
    held: tokio::sync::Mutex<Held>,
}

#[derive(Deserialize)]
struct Set {
    keys: Vec<serde_json::Value>,
}

// === impl Jwks ===

impl Jwks {
    /// The keys that may have signed a token with header `alg` and `kid`.
    pub async fn candidates(
        &self,
        provider: &Provider,
        jwks_uri: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Vec<Key>, OidcError> {
        let mut held = self.held.lock().await;
        if held.fetched.is_none_or(|at| at.elapsed() >= MAX_AGE) {
            held.keys = read(provider, jwks_uri).await?;
            held.fetched = Some(Instant::now());
        }
        let mut found = held.matching(alg, kid);
        if found.is_empty() && held.may_reread() {
            held.reread(provider, jwks_uri).await?;
            found = held.matching(alg, kid);
        }
        if found.is_empty() {
            return Err(OidcError::IdToken(format!(
                "it is signed with a key the provider does not publish ({alg:?}, kid {:?})",
                kid.unwrap_or("none")
            )));
        }
        Ok(found)
    }

    /// The provider's `alg` keys read again, for a token without a key id
    /// that none of the held keys verifies (the provider rotated them and
    /// names none). Within `REFETCH_EVERY` of the last such read, the keys
    /// it got, unread: a sign-in racing the one that read them verifies
    /// with the new keys too.
    pub async fn reread(
        &self,
        provider: &Provider,
        jwks_uri: &str,
        alg: Algorithm,
    ) -> Result<Vec<Key>, OidcError> {
        let mut held = self.held.lock().await;
        if held.may_reread() {
            held.reread(provider, jwks_uri).await?;
        }
        Ok(held.matching(alg, None))
    }
}

// === impl Held ===

impl Held {
    fn matching(&self, alg: Algorithm, kid: Option<&str>) -> Vec<Key> {
        self.keys
            .iter()
            .filter(|k| k.alg == alg && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .cloned()
            .collect()
    }

    /// No read for an unknown key within `REFETCH_EVERY`.
    fn may_reread(&self) -> bool {
        self.refetched
            .is_none_or(|at| at.elapsed() >= REFETCH_EVERY)
    }

    async fn reread(&mut self, provider: &Provider, jwks_uri: &str) -> Result<(), OidcError> {
        self.refetched = Some(Instant::now());
        self.keys = read(provider, jwks_uri).await?;
        self.fetched = Some(Instant::now());
        Ok(())
    }
}

async fn read(provider: &Provider, jwks_uri: &str) -> Result<Vec<Key>, OidcError> {
    let url = provider.endpoint("jwks_uri", jwks_uri)?;
    let (status, body) = provider.fetch().get(&url, HeaderMap::new()).await?;
    if !status.is_success() {
        return Err(OidcError::Unreadable(format!(
            "{jwks_uri} answered HTTP {status}"
        )));
    }
    let set: Set = serde_json::from_slice(&body)
        .map_err(|e| OidcError::Unreadable(format!("{jwks_uri} is not a JWK set: {e}")))?;
    let keys: Vec<Key> = set
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter_map(|jwk| usable(&jwk))
        .take(MAX_KEYS)
        .collect();
    tracing::debug!(keys = keys.len(), "read the OpenID provider's signing keys");
    Ok(keys)
}

/// A key keygate can check ID tokens with, and the one algorithm it is for.
fn usable(jwk: &Jwk) -> Option<Key> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    let (alg, key) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => (
            Algorithm::RS256,
            DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()?,
        ),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => (
            Algorithm::ES256,
            DecodingKey::from_ec_components(&ec.x, &ec.y).ok()?,
        ),
        _ => return None,
    };
    let declared = jwk.common.key_algorithm;
    let fits = match alg {
        Algorithm::RS256 => declared.is_none_or(|a| a == KeyAlgorithm::RS256),
        _ => declared.is_none_or(|a| a == KeyAlgorithm::ES256),
    };
    fits.then(|| Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signing_keys_for_rs256_and_es256_are_kept() {
        let set = serde_json::json!([
            {"kty": "RSA", "kid": "r", "use": "sig", "alg": "RS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "e", "crv": "P-256", "x": "AQAB", "y": "AQAB"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AQAB", "y": "AQAB"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AQAB"},
            {"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AQAB", "y": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "AQAB"},
            "not even an object"
        ]);
        let kept: Vec<(Option<String>, Algorithm)> = set
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v.clone()).ok())
            .filter_map(|jwk| usable(&jwk))
            .map(|k| (k.kid, k.alg))
            .collect();
        assert_eq!(
            kept,
            vec![
                (Some("r".into()), Algorithm::RS256),
                (Some("e".into()), Algorithm::ES256)
            ]
        );
    }
}
