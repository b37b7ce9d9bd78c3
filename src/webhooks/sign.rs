//! Standard Webhooks signing (<https://www.standardwebhooks.com>): each
//! delivery carries `webhook-id` (the event's id, the same on every retry:
//! receivers deduplicate by it), `webhook-timestamp` (this attempt, Unix
//! seconds: receivers refuse old ones, so a retry is signed anew) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
//!
//! The secret is what the spec hands to receivers: `whsec_` then base64 of
//! 24 to 64 random bytes; the HMAC key is the decoded bytes. The receiver's
//! libraries (svix, standardwebhooks) take the same string.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, USER_AGENT};
use sha2::Sha256;

const PREFIX: &str = "whsec_";
const MIN_BYTES: usize = 24;
const MAX_BYTES: usize = 64;

/// A webhook signing secret. Its `Debug` is redacted and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

// === impl Secret ===

impl Secret {
    /// `whsec_<base64>` (the prefix may be left out), as in `secret_file`.
    pub fn parse(text: &str) -> Result<Secret, String> {
        let text = text.trim();
        let b64 = text.strip_prefix(PREFIX).unwrap_or(text);
        let bytes = STANDARD.decode(b64).map_err(|_| {
            format!("must be {PREFIX} followed by base64 (e.g. `echo {PREFIX}$(openssl rand -base64 32)`)")
        })?;
        if !(MIN_BYTES..=MAX_BYTES).contains(&bytes.len()) {
            return Err(format!(
                "must decode to {MIN_BYTES} to {MAX_BYTES} bytes, not {} (e.g. `echo {PREFIX}$(openssl rand -base64 32)`)",
                bytes.len()
            ));
        }
        Ok(Secret(bytes))
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The headers of one delivery attempt.
    pub fn headers(&self, id: &str, timestamp: u64, body: &[u8]) -> HeaderMap {
        let value =
            |s: &str| HeaderValue::from_str(s).expect("ids, numbers and base64 are header-safe");
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("keygate/", env!("CARGO_PKG_VERSION"))),
        );
        h.insert("webhook-id", value(id));
        h.insert("webhook-timestamp", value(&timestamp.to_string()));
        h.insert("webhook-signature", value(&self.sign(id, timestamp, body)));
        h
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_reference_does() {
        // The example of the Standard Webhooks reference libraries' tests.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_must_be_base64_of_24_to_64_bytes() {
        assert!(Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").is_ok());
        assert!(Secret::parse("whsec_c2hvcnQ=").is_err());
        assert!(Secret::parse("whsec_not base64!").is_err());
        assert_eq!(
            format!(
                "{:?}",
                Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
            ),
            "Secret(<redacted>)"
        );
    }
}
