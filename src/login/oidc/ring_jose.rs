//! `jsonwebtoken`'s signature checks on ring (the crypto rustls already
//! brings), through its `CryptoProvider` extension point: the crate parses
//! the token and checks the claims, ring checks the signature. Only what an
//! ID token may use here: RS256 (2048 to 8192-bit keys) and ES256 (P-256).
//! keygate never signs a JWT, so there is no signer.

use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use ring::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256,
};

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: |_, _| Err(Error::from(ErrorKind::InvalidAlgorithm)),
    verifier_factory: verifier,
    // JWK thumbprints and keys made from private keys: never used here.
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// Make ring the process's JOSE backend (once; later calls change nothing).
pub fn install() {
    let _ = PROVIDER.install_default();
}

/// A verifier for `alg` with `key`, refused when the key is of another family
/// (an RSA key never checks an ES256 signature, nor the reverse).
fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let family = match alg {
        Algorithm::RS256 => AlgorithmFamily::Rsa,
        Algorithm::ES256 => AlgorithmFamily::Ec,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    if key.family() != family {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier {
        alg: *alg,
        key: key.clone(),
    }))
}

struct RingVerifier {
    alg: Algorithm,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let checked = match (self.alg, self.key.kind()) {
            (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
                RsaPublicKeyComponents { n, e }.verify(&RSA_PKCS1_2048_8192_SHA256, msg, sig)
            }
            // From a JWK's x and y: the uncompressed point 04 || x || y.
            (Algorithm::ES256, DecodingKeyKind::SecretOrDer(point)) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(msg, sig)
            }
            _ => return Err(signature::Error::new()),
        };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    /// A token signed by ring with a fresh P-256 key verifies through
    /// `jsonwebtoken::decode` with that key's JWK, and not with another key
    /// or after a byte of the payload changed.
    #[test]
    fn es256_tokens_verify_with_their_key_only() {
        install();
        let rng = SystemRandom::new();
        let keypair = |rng: &SystemRandom| {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng).unwrap();
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng).unwrap()
        };
        let (signer, other) = (keypair(&rng), keypair(&rng));
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let message = format!(
            "{}.{}",
            b64(br#"{"alg":"ES256","typ":"JWT"}"#),
            b64(br#"{"sub":"alice","exp":99999999999}"#)
        );
        let sig = signer.sign(&rng, message.as_bytes()).unwrap();
        let token = format!("{message}.{}", b64(sig.as_ref()));
        let decoding = |k: &EcdsaKeyPair| {
            let point = k.public_key().as_ref();
            DecodingKey::from_ec_components(&b64(&point[1..33]), &b64(&point[33..])).unwrap()
        };
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.validate_aud = false;
        let ok = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding(&signer), &v);
        assert_eq!(ok.unwrap().claims["sub"], "alice");
        let err = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding(&other), &v);
        assert_eq!(err.unwrap_err().kind(), &ErrorKind::InvalidSignature);
        let tampered = format!(
            "{}.{}.{}",
            b64(br#"{"alg":"ES256","typ":"JWT"}"#),
            b64(br#"{"sub":"admin","exp":99999999999}"#),
            b64(sig.as_ref())
        );
        let err = jsonwebtoken::decode::<serde_json::Value>(&tampered, &decoding(&signer), &v);
        assert!(err.is_err());
        // An RS256 header over an EC key, or HS256 at all: refused before any check.
        assert!(verifier(&Algorithm::RS256, &decoding(&signer)).is_err());
        assert!(verifier(&Algorithm::HS256, &DecodingKey::from_secret(b"k")).is_err());
    }
}
