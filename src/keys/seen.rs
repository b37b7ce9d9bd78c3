//! What the validation cache remembers of a key that verified: a 128-bit
//! SipHash-2-4 of the whole key under a secret drawn at start, never the key.
//! A cache hit compares the presented key's fingerprint with it in constant
//! time instead of computing the HMAC again (three SHA-256 blocks): the
//! cache's entries came from the store, and only a key whose HMAC matched
//! the stored digest leaves its fingerprint there.
//!
//! The secret never leaves the process and fingerprints are never shown, so
//! a wrong key passes only by guessing a 128-bit keyed hash blindly.
//!
//! The same hash of a credential exactly as a client sent it (`Sent`) lets
//! the cache recall a repeated `Authorization` value without decoding it.

use std::fmt;

use siphasher::sip128::SipHasher;
use subtle::ConstantTimeEq as _;

/// The per-process secret fingerprints are keyed with.
#[derive(Clone)]
pub struct SeenKey(SipHasher);

/// A verified key's fingerprint.
#[derive(Clone, Copy)]
pub struct Seen(u128);

/// The fingerprint of a credential as sent (an `Authorization` value): a
/// map key, found by hashing like any other. Its timing tells a client
/// nothing it can use: the fingerprints are keyed with the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sent(u128);

// === impl SeenKey ===

impl SeenKey {
    pub fn random() -> Self {
        SeenKey(SipHasher::new_with_key(&crate::random::bytes::<16>()))
    }

    pub fn of(&self, key: &str) -> Seen {
        Seen(self.0.hash(key.as_bytes()).as_u128())
    }

    pub fn sent(&self, credential: &[u8]) -> Sent {
        Sent(self.0.hash(credential).as_u128())
    }
}

impl fmt::Debug for SeenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeenKey(<redacted>)")
    }
}

// === impl Seen ===

impl Seen {
    /// Constant-time equality (one 128-bit comparison: subtle's byte
    /// slices compare byte by byte, twenty times the instructions).
    pub fn matches(&self, other: &Seen) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seen(..)")
    }
}

impl fmt::Debug for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sent(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_only_the_same_key_under_the_same_secret() {
        let (a, b) = (SeenKey::random(), SeenKey::random());
        assert!(a.of("kg_key").matches(&a.of("kg_key")));
        assert!(!a.of("kg_key").matches(&a.of("kg_kez")));
        assert!(!a.of("kg_key").matches(&b.of("kg_key")));
    }
}
