//! The only form in which a key reaches the store: HMAC-SHA256 of the whole
//! key under the deployment's secret. A copy of Redis neither reveals nor
//! verifies keys, and a key works only on the deployment that issued it.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The deployment's HMAC secret (`store.secret_file` / `KEYGATE_SECRET`),
/// held as the HMAC state keyed with it: each digest clones the state
/// instead of hashing the secret into a new one (two SHA-256 blocks per
/// request saved).
#[derive(Clone)]
pub struct DigestKey(Box<HmacSha256>);

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DigestKey(<redacted>)")
    }
}

/// A key's digest as stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub [u8; 32]);

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(..)")
    }
}

impl Digest {
    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Digest> {
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Digest(out))
    }
}

impl DigestKey {
    pub fn new(secret: &[u8]) -> Self {
        DigestKey(Box::new(
            HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length"),
        ))
    }

    /// A throwaway secret for a single-process memory store.
    pub fn random() -> Self {
        DigestKey::new(&crate::random::bytes::<32>())
    }

    fn mac(&self) -> HmacSha256 {
        (*self.0).clone()
    }

    pub fn digest(&self, key: &str) -> Digest {
        let mut mac = self.mac();
        mac.update(key.as_bytes());
        Digest(mac.finalize().into_bytes().into())
    }

    /// A key for another use of the same secret (session cookies, CSRF
    /// tokens), so every instance of a deployment derives the same one. The
    /// NUL keeps the input apart from every key digest (keys are one word).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(b"keygate-derive\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check of `key` against a stored digest.
    pub fn verify(&self, key: &str, stored: &Digest) -> bool {
        let mut mac = self.mac();
        mac.update(key.as_bytes());
        mac.verify_slice(&stored.0).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_verifies_only_under_the_same_secret() {
        let a = DigestKey::new(b"0123456789abcdef0123456789abcdef");
        let b = DigestKey::new(b"fedcba9876543210fedcba9876543210");
        let d = a.digest("kg_key");
        assert!(a.verify("kg_key", &d));
        assert!(!a.verify("kg_kez", &d));
        assert!(!b.verify("kg_key", &d));
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
    }
}
