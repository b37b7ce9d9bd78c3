//! The secret scanners' signature: ECDSA P-256 with SHA-256 over the raw
//! request body, the signature base64 of its ASN.1 DER form, checked with
//! ring (already in the tree through rustls): no curve arithmetic here.
//!
//! The scanners publish their keys as PEM `SubjectPublicKeyInfo`; ring wants
//! the bare point. For P-256 with an uncompressed point DER is canonical, so
//! every such SPKI is the same 26 bytes (algorithm `id-ecPublicKey`, curve
//! `prime256v1`, a 66-byte BIT STRING header) followed by the 65-byte point:
//! anything else (another curve or algorithm, a compressed point) is refused.

use std::collections::HashMap;

use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::SubjectPublicKeyInfoDer;

/// `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes, 0 unused bits) }`.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// `0x04 || X || Y`.
const POINT_LEN: usize = 65;

/// Longest signature header read: a DER P-256 signature is at most 72 bytes.
const MAX_SIGNATURE_B64: usize = 200;

/// A scanner's verifying key.
#[derive(Clone)]
pub struct PublicKey {
    point: Vec<u8>,
}

/// Why a public key is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a PEM public key (-----BEGIN PUBLIC KEY-----)")]
    Pem,
    #[error("not an ECDSA P-256 public key with an uncompressed point")]
    NotP256,
}

/// Why a signature does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the signature is not base64")]
    Encoding,
    #[error("the signature does not match the body")]
    Mismatch,
}

// === impl PublicKey ===

impl PublicKey {
    /// A key as GitHub publishes it (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        let der =
            SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).map_err(|_| KeyError::Pem)?;
        PublicKey::from_spki(&der)
    }

    /// A DER `SubjectPublicKeyInfo`.
    pub fn from_spki(der: &[u8]) -> Result<PublicKey, KeyError> {
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) if point.len() == POINT_LEN && point[0] == 0x04 => Ok(PublicKey {
                point: point.to_vec(),
            }),
            _ => Err(KeyError::NotP256),
        }
    }

    /// Check `signature_b64` (base64 of the DER signature) over `body`.
    pub fn verify(&self, body: &[u8], signature_b64: &str) -> Result<(), SignatureError> {
        let signature = decode(signature_b64)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(body, &signature)
            .map_err(|_| SignatureError::Mismatch)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicKey(P-256)")
    }
}

/// Standard base64, padded or not; anything else (URL-safe alphabet, hex,
/// stray characters) is an encoding error, told apart from a mismatch.
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, SignatureError> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_SIGNATURE_B64 {
        return Err(SignatureError::Encoding);
    }
    let engine = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(text).map_err(|_| SignatureError::Encoding)
}

#[derive(serde::Deserialize)]
struct KeyList {
    public_keys: Vec<Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    key_identifier: String,
    key: String,
}

/// The keys of a scanner's list (`{"public_keys":[{"key_identifier",
/// "key","is_current"}]}`), by identifier. Keys keygate cannot use (another
/// algorithm) are skipped with a warning; a list with none usable is an error.
pub fn key_list(json: &[u8]) -> Result<HashMap<String, PublicKey>, String> {
    let list: KeyList =
        serde_json::from_slice(json).map_err(|e| format!("not a public key list: {e}"))?;
    let mut keys = HashMap::new();
    for entry in list.public_keys {
        match PublicKey::from_pem(&entry.key) {
            Ok(key) => {
                keys.insert(entry.key_identifier, key);
            }
            Err(e) => {
                tracing::warn!(key_identifier = %entry.key_identifier, error = %e, "skipping a secret scanner key")
            }
        }
    }
    if keys.is_empty() {
        return Err("the list holds no ECDSA P-256 public key".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    fn key_pair() -> (EcdsaKeyPair, PublicKey) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        (pair, PublicKey::from_spki(&spki).unwrap())
    }

    fn sign(pair: &EcdsaKeyPair, body: &[u8]) -> String {
        let sig = pair.sign(&SystemRandom::new(), body).unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }

    #[test]
    fn a_signature_holds_for_its_body_only() {
        let (pair, key) = key_pair();
        let sig = sign(&pair, b"[{\"token\":\"x\"}]");
        assert_eq!(key.verify(b"[{\"token\":\"x\"}]", &sig), Ok(()));
        assert_eq!(
            key.verify(b"[{\"token\":\"y\"}]", &sig),
            Err(SignatureError::Mismatch)
        );
        let (_, other) = key_pair();
        assert_eq!(
            other.verify(b"[{\"token\":\"x\"}]", &sig),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn encodings_other_than_base64_are_told_apart() {
        let (pair, key) = key_pair();
        let sig = sign(&pair, b"body");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&sig)
            .unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert!(key.verify(b"body", &hex).is_err(), "hex is no signature");
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode(&raw);
        if url_safe.contains(['-', '_']) {
            assert_eq!(
                key.verify(b"body", &url_safe),
                Err(SignatureError::Encoding)
            );
        }
        assert_eq!(
            key.verify(b"body", "not base64!"),
            Err(SignatureError::Encoding)
        );
        assert_eq!(key.verify(b"body", ""), Err(SignatureError::Encoding));
        assert_eq!(key.verify(b"body", sig.trim_end_matches('=')), Ok(()));
    }

    #[test]
    fn only_p256_spki_pem_is_a_key() {
        let rsa_like =
            "-----BEGIN PUBLIC KEY-----\nMA0GCSqGSIb3DQEBAQUAAwIAAA==\n-----END PUBLIC KEY-----\n";
        assert_eq!(PublicKey::from_pem(rsa_like).err(), Some(KeyError::NotP256));
        assert_eq!(PublicKey::from_pem("hello").err(), Some(KeyError::Pem));
        // As GitHub publishes them: PEM SubjectPublicKeyInfo, here made by rcgen.
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        assert!(PublicKey::from_pem(&pair.public_key_pem()).is_ok());
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert_eq!(
            PublicKey::from_pem(&p384.public_key_pem()).err(),
            Some(KeyError::NotP256)
        );
    }
}
