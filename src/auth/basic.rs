//! Strict `Authorization` parsing: Basic (RFC 7617: bounded size, standard
//! base64, UTF-8, split at the first `:`) and Bearer (RFC 6750).

use std::fmt;

use base64::Engine;

use crate::keys::{format, ApiKey};

/// Longest Basic or Bearer token that may be ours; a longer Basic
/// credential for our user is malformed, not decoded. Another scheme or
/// user (an app's Kerberos ticket, a large JWT) is no concern of this.
const MAX_LEN: usize = 4096;

pub enum Parsed<'a> {
    /// `user:pass`, decoded once; split at the first `:`.
    Basic(Credentials),
    /// Basic for another user, told by the base64 characters that name
    /// the user, and not decoded: the app's credential, unless `KeyMarks`
    /// finds one of our keys may be its password.
    OtherUser(&'a [u8]),
    /// `Bearer <token>` (RFC 6750), token trimmed.
    Bearer(&'a str),
    /// Another scheme (Digest, Negotiate, `Token`, ...) and its credential,
    /// trimmed, or a value with no scheme: not ours to judge, unless it
    /// holds one of our keys.
    OtherScheme(&'a [u8]),
    Malformed,
}

/// Whether an `Authorization` value is Basic (any case) with a token that
/// starts with `our_user`'s characters: what the cache may have seen verify
/// (`KeyCache::recall`). An app's own Basic credentials are not hashed.
pub fn may_be_ours(value: &[u8], our_user: &OurUser) -> bool {
    value.len() > 6
        && value[..6].eq_ignore_ascii_case(b"basic ")
        && value[6..].starts_with(&our_user.encoded)
}

/// Parse an `Authorization` value; a Basic credential is decoded whole only
/// when its user may be `our_user` (which holds no `:`).
pub fn parse<'a>(value: &'a [u8], our_user: &OurUser) -> Parsed<'a> {
    let Some(space) = value.iter().position(|b| *b == b' ') else {
        // No scheme at all: a bare token (some SDKs send a key so).
        return Parsed::OtherScheme(value.trim_ascii());
    };
    let (scheme, rest) = value.split_at(space);
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return match std::str::from_utf8(rest.trim_ascii()) {
            Ok(token) if token.len() <= MAX_LEN => Parsed::Bearer(token),
            // Far longer than any key: the app's.
            Ok(_) => Parsed::OtherScheme(b""),
            Err(_) => Parsed::Malformed,
        };
    }
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Parsed::OtherScheme(rest.trim_ascii());
    }
    let token = rest.trim_ascii();
    // A key's credential starts with our user's characters: decoded whole at
    // once. Anything else may show another user in its first groups.
    if !token.starts_with(&our_user.encoded) && names_another_user(token, our_user) {
        return Parsed::OtherUser(token);
    }
    if token.len() > MAX_LEN {
        return Parsed::Malformed;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(token) else {
        return Parsed::Malformed;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Parsed::Malformed;
    };
    // Ours (no `:` in the name) ends where our name and a `:` end: no search.
    let n = our_user.name.len();
    let colon = match text.as_bytes().get(..=n) {
        Some(head) if head[..n] == *our_user.name.as_bytes() && head[n] == b':' => Some(n),
        _ => text.find(':'),
    };
    match colon {
        Some(colon) => Parsed::Basic(Credentials { text, colon }),
        None => Parsed::Malformed,
    }
}

/// The password of another user's Basic `token`, whose `KeyMarks` say it
/// may be a key: decoded whatever its padding and charset (a Latin-1 user
/// name), split at the first `:` (no user name holds one).
pub fn other_password(token: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let mut bytes = LENIENT.decode(token).ok()?;
    let colon = bytes.iter().position(|b| *b == b':')?;
    bytes.drain(..=colon);
    Some(bytes)
}

/// Where a credential may hold one of our keys, found without decoding or
/// scanning it byte by byte: `<prefix>_` in a credential as sent
/// (`Token <key>`, a key with no scheme), and, in another user's Basic
/// token, the base64 characters that `:<prefix>_` alone determines at each
/// of the three offsets it can take in a 3-byte group. A match only means
/// the credential is looked at closely; an app's own credential (LabKey's
/// `email:password`, a JWT) almost never matches.
pub struct KeyMarks {
    prefix: String,
    plain: memchr::memmem::Finder<'static>,
    encoded: [memchr::memmem::Finder<'static>; 3],
}

impl KeyMarks {
    pub fn new(prefix: &str) -> Self {
        let needle = format!(":{prefix}_");
        let bits = needle.len() * 8;
        KeyMarks {
            prefix: prefix.to_owned(),
            plain: memchr::memmem::Finder::new(&needle.as_bytes()[1..]).into_owned(),
            encoded: std::array::from_fn(|offset| {
                let mut bytes = vec![0; offset];
                bytes.extend_from_slice(needle.as_bytes());
                let chars = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes);
                // The characters whose 6 bits all fall inside the needle.
                let first = (offset * 8).div_ceil(6);
                let end = (offset * 8 + bits) / 6;
                memchr::memmem::Finder::new(&chars.as_bytes()[first..end]).into_owned()
            }),
        }
    }

    /// Whether another user's Basic `token` may have a key as its password.
    pub fn may_hold_key(&self, token: &[u8]) -> bool {
        self.encoded.iter().any(|f| f.find(token).is_some())
    }

    /// Whether `credential`, as sent or decoded, holds one of our keys as a
    /// word of its own (quoted, after `token=`, before a newline).
    pub fn holds_key(&self, credential: &[u8]) -> bool {
        self.plain.find(credential).is_some()
            && format::words(&String::from_utf8_lossy(credential))
                .any(|word| format::parse(&self.prefix, word).is_some())
    }
}

/// Whether the base64 `token`, which does not start with `our_user`'s
/// characters, visibly names another user. Those characters carry only the
/// bits of `name:`, so any other start decodes to another user, provided the
/// 4-character groups that cover `name:` are plain base64: an app's own Basic
/// credential (LabKey's `email:password`) is told without decoding anything.
/// When it cannot tell (a short token, those groups not plain base64) it says
/// no and the whole value is decoded, and judged, as before.
fn names_another_user(token: &[u8], our_user: &OurUser) -> bool {
    let chars = (our_user.name.len() + 1).div_ceil(3) * 4;
    token.len() > chars && token[..chars].iter().all(|b| BASE64_CHAR[usize::from(*b)])
}

/// Which bytes are characters of standard base64, padding aside: one lookup
/// per byte (the range checks cost five times more in the profile).
const BASE64_CHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
        b += 1;
    }
    table
};

/// The Basic user name whose password is a key (`auth.username`), with the
/// base64 characters every credential for it starts with.
pub struct OurUser {
    name: String,
    /// The characters of base64(`name:`) that `name:` alone determines.
    encoded: Vec<u8>,
}

impl OurUser {
    pub fn new(name: &str) -> Self {
        let with_colon = format!("{name}:");
        let mut encoded = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(&with_colon)
            .into_bytes();
        // A character's 6 bits must all be the name's (the next ones share
        // bits with the password's first byte).
        encoded.truncate(with_colon.len() * 8 / 6);
        OurUser {
            name: name.to_owned(),
            encoded,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
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

    pub fn pass(&self) -> &str {
        &self.text[self.colon + 1..]
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

    fn apikey() -> OurUser {
        OurUser::new("apikey")
    }

    fn basic(s: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
        .into_bytes()
    }

    #[test]
    fn only_our_users_basic_values_may_be_recalled() {
        assert!(may_be_ours(&basic("apikey:kg_a"), &apikey()));
        let mut lower = basic("apikey:kg_a");
        lower[..5].copy_from_slice(b"basic");
        assert!(may_be_ours(&lower, &apikey()));
        assert!(!may_be_ours(&basic("alice@example.org:pw"), &apikey()));
        assert!(!may_be_ours(b"Bearer kg_a", &apikey()));
        assert!(!may_be_ours(b"Basic ", &apikey()));
    }

    #[test]
    fn splits_at_the_first_colon() {
        match parse(&basic("apikey:kg_a:b"), &apikey()) {
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
        // Encoded, `apikey9:` starts with the same characters as `apikey:`.
        match parse(&basic("apikey9:kg_a"), &apikey()) {
            Parsed::Basic(c) => assert_eq!(c.user(), "apikey9"),
            Parsed::OtherUser(_) => {}
            _ => panic!("expected another user's credential"),
        }
    }

    #[test]
    fn rejects_bad_base64_no_colon_and_a_huge_credential_of_ours() {
        assert!(matches!(parse(b"Basic !!!", &apikey()), Parsed::Malformed));
        assert!(matches!(
            parse(&basic("apikey"), &apikey()),
            Parsed::Malformed
        ));
        let long = "a".repeat(MAX_LEN);
        let huge_ours = basic(&format!("apikey:{long}"));
        assert!(matches!(parse(&huge_ours, &apikey()), Parsed::Malformed));
        // An app's large credential is the app's, whatever its size.
        let huge_app = basic(&format!("alice:{long}"));
        assert!(matches!(parse(&huge_app, &apikey()), Parsed::OtherUser(_)));
        let ticket = format!("Negotiate {long}");
        assert!(matches!(
            parse(ticket.as_bytes(), &apikey()),
            Parsed::OtherScheme(_)
        ));
        let jwt = format!("Bearer {long}x");
        assert!(matches!(
            parse(jwt.as_bytes(), &apikey()),
            Parsed::OtherScheme(_)
        ));
        assert!(matches!(
            parse(b"Bearer abc", &apikey()),
            Parsed::Bearer("abc")
        ));
        assert!(matches!(
            parse(b"Digest x=1", &apikey()),
            Parsed::OtherScheme(b"x=1")
        ));
        assert!(matches!(
            parse(b"Token  kg_x ", &apikey()),
            Parsed::OtherScheme(b"kg_x")
        ));
    }

    #[test]
    fn another_users_credential_is_told_by_its_first_bytes() {
        let app_user = basic("alice@example.org:hunter2");
        assert!(matches!(parse(&app_user, &apikey()), Parsed::OtherUser(_)));
        // Its tail is the app's to judge: not base64 past the user name.
        let mut bad_tail = basic("alice@example.org:x");
        bad_tail.extend_from_slice(b"!!!!");
        assert!(matches!(parse(&bad_tail, &apikey()), Parsed::OtherUser(_)));
        // A user name that only starts like ours, or ours without the colon.
        for other in ["apikeys:kg_x", "apikex:kg_x", "APIKEY:kg_x"] {
            assert!(
                matches!(parse(&basic(other), &apikey()), Parsed::OtherUser(_)),
                "{other}"
            );
        }
        // Ours, with a tail that is not base64: still judged whole.
        let mut ours_bad_tail = basic("apikey:kg_abcdef");
        ours_bad_tail.extend_from_slice(b"!!!!");
        assert!(matches!(
            parse(&ours_bad_tail, &apikey()),
            Parsed::Malformed
        ));
        // Too short to tell, or a prefix that is not base64: decoded whole.
        assert!(matches!(parse(&basic("ab:c"), &apikey()), Parsed::Basic(_)));
        assert!(matches!(
            parse(b"Basic !!!!!!!!!!!!!!!!", &apikey()),
            Parsed::Malformed
        ));
        // A long configured user name is told the same way.
        let long = "u".repeat(80);
        match parse(&basic(&format!("{long}:kg_y")), &OurUser::new(&long)) {
            Parsed::Basic(c) => assert_eq!(c.user(), long),
            _ => panic!("expected Basic"),
        }
        assert!(matches!(
            parse(&basic(&format!("{long}x:kg_y")), &OurUser::new(&long)),
            Parsed::OtherUser(_)
        ));
    }

    #[test]
    fn key_marks_find_a_key_as_any_users_password_and_little_else() {
        let (key, _) = crate::keys::format::generate("kg", "erin");
        let marks = KeyMarks::new("kg");
        // Every offset the password can take in a 3-byte group, and more.
        for user in [
            "",
            "e",
            "er",
            "eri",
            "erin",
            "erin@example.org",
            "a.very.long.login",
        ] {
            let token = basic(&format!("{user}:{}", key.expose()));
            let token = token.strip_prefix(b"Basic ").unwrap();
            assert!(marks.may_hold_key(token), "{user:?}");
            assert_eq!(other_password(token).unwrap(), key.expose().as_bytes());
            assert!(marks.holds_key(&other_password(token).unwrap()));
        }
        for app in ["alice@example.org:hunter2", "bob:kg-not-ours", "carol:xkg_"] {
            let token = basic(app);
            let token = token.strip_prefix(b"Basic ").unwrap();
            assert!(!marks.may_hold_key(token), "{app}");
        }
        // As sent, in the forms scripts use, and never in an app's own.
        for sent in [
            key.expose().to_owned(),
            format!("\"{}\"", key.expose()),
            format!("token={}", key.expose()),
            format!("{}\n", key.expose()),
        ] {
            assert!(marks.holds_key(sent.as_bytes()), "{sent:?}");
        }
        for app in ["eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "kg_", "kg_short_token"] {
            assert!(!marks.holds_key(app.as_bytes()), "{app}");
        }
        // Another deployment's prefix is not ours.
        let token = basic(&format!("erin:{}", key.expose()));
        assert!(!KeyMarks::new("acme").may_hold_key(token.strip_prefix(b"Basic ").unwrap()));
    }
}
