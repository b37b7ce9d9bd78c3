//! Values keygate hands to browsers and must get back unchanged (the CAS
//! session cookie, CSRF tokens): HMAC-SHA256 tags under a key derived from
//! the deployment secret, so every instance of a deployment accepts what
//! another issued. With the memory store (`keygate dev`) the secret is the
//! process's own random one, so nothing survives a restart.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub struct Signer {
    key: [u8; 32],
}

// === impl Signer ===

impl Signer {
    pub fn new(key: [u8; 32]) -> Signer {
        Signer { key }
    }

    /// Each part is length-prefixed, so ("ab", "c") and ("a", "bc") differ.
    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The tag of `parts`, base64url.
    pub fn sign(&self, parts: &[&[u8]]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(parts).finalize().into_bytes())
    }

    /// Constant-time check of a tag made by `sign`.
    pub fn verify(&self, parts: &[&[u8]], tag: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        self.mac(parts).verify_slice(&tag).is_ok()
    }
}

/// 128 random bits, base64url: session and CSRF ids.
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(crate::random::bytes::<16>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_verifies_only_for_its_parts_and_key() {
        let a = Signer::new([1; 32]);
        let tag = a.sign(&[b"ab", b"c"]);
        assert!(a.verify(&[b"ab", b"c"], &tag));
        assert!(!a.verify(&[b"a", b"bc"], &tag));
        assert!(!Signer::new([2; 32]).verify(&[b"ab", b"c"], &tag));
        assert!(!a.verify(&[b"ab", b"c"], "not base64!"));
    }
}
