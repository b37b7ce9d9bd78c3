//! Strict `Authorization` parsing: Basic (RFC 7617: bounded size, standard
//! base64, UTF-8, split at the first `:`) and Bearer (RFC 6750).

use std::fmt;

use base64::Engine;

use crate::keys::ApiKey;

/// Longest `Authorization` value considered; longer is malformed, not decoded.
const MAX_LEN: usize = 4096;

pub enum Parsed<'a> {
    /// `user:pass`, decoded once; split at `colon`.
    Basic(Credentials),
    /// `Bearer <token>` (RFC 6750), token trimmed.
    Bearer(&'a str),
    /// Another scheme (Digest, Negotiate, ...): not ours to judge.
    OtherScheme,
    Malformed,
}

pub fn parse(value: &[u8]) -> Parsed<'_> {
    if value.len() > MAX_LEN {
        return Parsed::Malformed;
    }
    let Some(space) = value.iter().position(|b| *b == b' ') else {
        return Parsed::OtherScheme;
    };
    let (scheme, rest) = value.split_at(space);
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return match std::str::from_utf8(rest.trim_ascii()) {
            Ok(token) => Parsed::Bearer(token),
            Err(_) => Parsed::Malformed,
        };
    }
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Parsed::OtherScheme;
    }
    let token = rest.trim_ascii();
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token) else {
        return Parsed::Malformed;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Parsed::Malformed;
    };
    match text.find(':') {
        Some(colon) => Parsed::Basic(Credentials { text, colon }),
        None => Parsed::Malformed,
    }
}

/// Decoded Basic credentials: one allocation, split lazily. The password
/// may be a key: `Debug` shows the user only.
pub struct Credentials {
    text: String,
    colon: usize,
}

impl Credentials {
    pub fn user(&self) -> &str {
        &self.text[..self.colon]
    }

    /// The password as a key secret, reusing the decoded buffer.
    pub fn into_pass(mut self) -> ApiKey {
        self.text.drain(..=self.colon);
        ApiKey::new(self.text)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
        .into_bytes()
    }

    #[test]
    fn splits_at_the_first_colon() {
        match parse(&basic("apikey:kg_a:b")) {
            Parsed::Basic(c) => {
                assert_eq!(c.user(), "apikey");
                assert!(
                    !format!("{c:?}").contains("kg_a"),
                    "Debug shows no password"
                );
                assert_eq!(c.into_pass().expose(), "kg_a:b");
            }
            _ => panic!("expected Basic"),
        }
    }

    #[test]
    fn rejects_bad_base64_no_colon_and_huge_values() {
        assert!(matches!(parse(b"Basic !!!"), Parsed::Malformed));
        assert!(matches!(parse(&basic("apikey")), Parsed::Malformed));
        assert!(matches!(parse(&vec![b'a'; MAX_LEN + 1]), Parsed::Malformed));
        assert!(matches!(parse(b"Bearer abc"), Parsed::Bearer("abc")));
        assert!(matches!(parse(b"Digest x=1"), Parsed::OtherScheme));
    }
}
