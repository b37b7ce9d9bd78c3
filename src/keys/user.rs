//! What a user name may be: the one rule for every place that takes one (a
//! key's user at creation, `admin.users`, a revocation by user, the SSO
//! user a login method or the SSO proxy names).
//!
//! A user name is what the SSO calls the person, byte for byte: keygate
//! sends it to the application in the identity header as it is, UTF-8
//! included (RFC 9110's obs-text; what mod_auth_mellon or mod_auth_cas with
//! `RequestHeader set`, oauth2-proxy's `X-Forwarded-User` and forward-auth
//! proxies send), and never normalises it (NFC/NFD): the application sees
//! the bytes its SSO front would have shown it. So it is:
//!
//! * 1 to [`MAX_BYTES`] bytes of UTF-8 (bytes, not characters: it bounds the
//!   header);
//! * not starting or ending with white space (a header value cannot: the
//!   application would see another name than listings and revocations);
//! * without control characters (C0, DEL, C1: forged log lines, header
//!   splitting) and without invisible or direction-changing formatting
//!   characters (Unicode general category Cf: zero-width spaces and joiners,
//!   the soft hyphen, bidirectional overrides and isolates, the BOM...) or
//!   line and paragraph separators: a listing must show an admin exactly
//!   whose key it is, and `U+202E` can make one name read as another.

/// Longest user name, in bytes of UTF-8.
pub const MAX_BYTES: usize = 256;

/// What the rule allows, for the end of every refusal.
macro_rules! allowed {
    () => {
        "a user name is 1-256 bytes of UTF-8, without control or invisible formatting \
         characters (zero-width, direction overrides), not starting or ending with white \
         space (it is sent to the application as an HTTP header value)"
    };
}

/// Why a name typed where a key's user goes is refused.
#[derive(Debug, PartialEq)]
pub enum Typed {
    /// A key secret pasted there: each caller says where it goes instead,
    /// and never echoes it.
    Secret,
    /// No user name (`check`'s sentence).
    NoUser(&'static str),
}

/// `check`, after making sure `user` is no pasted key secret (said first:
/// a padded paste breaks the rule too, and would be quoted).
pub fn check_typed(user: &str) -> Result<(), Typed> {
    if super::format::contains_key(user) {
        return Err(Typed::Secret);
    }
    check(user).map_err(Typed::NoUser)
}

/// Why `user` is no user name: a sentence to follow the field's name
/// (`user: …`, `admin.users[0]: …`), saying what is allowed.
pub fn check(user: &str) -> Result<(), &'static str> {
    if user.is_empty() {
        return Err(concat!("must not be empty: ", allowed!()));
    }
    if user.len() > MAX_BYTES {
        return Err(concat!("is longer than 256 bytes: ", allowed!()));
    }
    if user.starts_with(char::is_whitespace) || user.ends_with(char::is_whitespace) {
        return Err(concat!("starts or ends with white space: ", allowed!()));
    }
    if user.chars().any(char::is_control) {
        return Err(concat!("contains a control character: ", allowed!()));
    }
    if user.chars().any(is_invisible) {
        return Err(concat!(
            "contains an invisible or direction-changing formatting character: ",
            allowed!()
        ));
    }
    Ok(())
}

/// Whether `user` is a user name (see [`check`]).
pub fn is_valid(user: &str) -> bool {
    check(user).is_ok()
}

/// The characters that reorder the text around them (the bidirectional
/// controls) or break its line: a label may hold emoji and their joiners,
/// not these, which could turn the sentence a label is shown in around
/// ("Rotated key LABEL of USER").
pub fn reorders_text(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Unicode's format characters (general category Cf, as of Unicode 15.1),
/// its other default-ignorable characters, the blanks that are letters
/// (Hangul fillers, the braille blank), and the line and paragraph
/// separators: invisible, or changing how the text around them reads, in a
/// listing or a log line.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            // Default-ignorable (Unicode's DerivedCoreProperties) or blank
            // though not Cf: the combining grapheme joiner, Hangul fillers,
            // Khmer inherent vowels, Mongolian and other variation
            // selectors, the braille blank.
            | '\u{034F}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{E0000}'..='\u{E0FFF}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_names_as_the_sso_gives_them() {
        for ok in [
            "alice",
            "zoë",
            "Jürgen",
            "josé@例え.jp",
            "DOMAIN\\bob",
            "Ann Smith",
            "a{b}c",
            "نور",
            "\u{1F600}",
            "a\u{00A0}b",
            &"a".repeat(256),
            &"é".repeat(128),
            &format!("{}a", "例".repeat(85)),
        ] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
        // NFC and NFD spellings are two names: nothing is normalised.
        assert!(is_valid("zo\u{00EB}") && is_valid("zoe\u{0308}"));
    }

    #[test]
    fn the_edges_are_refused_each_with_its_reason() {
        let refused = |user: &str, reason: &str| {
            let e = check(user).expect_err(user);
            assert!(e.starts_with(reason), "{user:?}: {e}");
            assert!(e.contains("1-256 bytes of UTF-8"), "{e}");
        };
        refused("", "must not be empty");
        refused(&"a".repeat(257), "is longer than 256 bytes");
        // 129 × 2 bytes: 129 characters, 258 bytes.
        refused(&"é".repeat(129), "is longer than 256 bytes");
        refused(&format!("{}é", "a".repeat(255)), "is longer than 256 bytes");
        for space in [" alice", "alice ", "\talice", "alice\u{3000}", "\u{00A0}x"] {
            refused(space, "starts or ends with white space");
        }
        for c in [
            '\0', '\n', '\r', '\t', '\u{1B}', '\u{7F}', '\u{80}', '\u{85}', '\u{9F}',
        ] {
            refused(&format!("a{c}b"), "contains a control character");
        }
        for c in [
            '\u{00AD}',
            '\u{061C}',
            '\u{180E}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{200F}',
            '\u{2028}',
            '\u{2029}',
            '\u{202A}',
            '\u{202E}',
            '\u{2060}',
            '\u{2064}',
            '\u{2066}',
            '\u{2069}',
            '\u{206F}',
            '\u{FEFF}',
            '\u{E0001}',
            '\u{E007F}',
            '\u{034F}',
            '\u{115F}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{FE0F}',
            '\u{2800}',
            '\u{E0100}',
        ] {
            refused(&format!("a{c}b"), "contains an invisible");
        }
        // Neighbours of the ranges are letters or marks: allowed.
        for c in [
            '\u{00AC}', '\u{00AE}', '\u{200A}', '\u{2030}', '\u{2065}', '\u{FEFE}',
        ] {
            assert!(is_valid(&format!("a{c}b")), "{c:?}");
        }
    }
}
