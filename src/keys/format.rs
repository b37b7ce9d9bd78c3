//! The key format: `<prefix>_<id>_<secret><check>`.
//!
//! * `id`: 12 base62 characters, the public id: a 4-character tag of the
//!   user ([`user_tag`]) then 8 random characters (~47 bits, unique within
//!   the tag); the tag puts a user's records and index in one Redis Cluster
//!   slot, and a lookup by id finds that slot without asking anything else;
//! * `secret`: 43 base62 characters from the OS CSPRNG (256 bits);
//! * `check`: CRC32 of everything before it, 6 base62 characters.
//!
//! Only ASCII letters, digits and `_`: one "word" for a double-click, no
//! quoting in `.netrc`, shells, URLs or JSON. The visible prefix lets secret
//! scanners find leaked keys; the checksum lets keygate refuse a mistyped or
//! random key without a store round trip.

use std::borrow::Cow;

use super::{ApiKey, KeyId};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const ID_LEN: usize = 12;
/// Leading id characters that tag the id's user (`user_tag`).
pub const TAG_LEN: usize = 4;
pub const SECRET_LEN: usize = 43;
const CHECK_LEN: usize = 6;

/// A new random key and its id, the id tagged with `user`'s tag.
pub fn generate(prefix: &str, user: &str) -> (ApiKey, KeyId) {
    let mut id = user_tag(user);
    id.push_str(&random_base62(ID_LEN - TAG_LEN));
    let secret = random_base62(SECRET_LEN);
    let mut key = String::with_capacity(prefix.len() + 2 + ID_LEN + SECRET_LEN + CHECK_LEN);
    key.push_str(prefix);
    key.push('_');
    key.push_str(&id);
    key.push('_');
    key.push_str(&secret);
    let sum = check(&key);
    key.push_str(std::str::from_utf8(&sum).expect("the alphabet is ASCII"));
    (
        ApiKey::new(key),
        KeyId::parse(&id).expect("a generated id has the id format"),
    )
}

/// The id of `text` if it is a well-formed key with this prefix and a valid
/// checksum. No I/O: random or mistyped keys stop here.
pub fn parse(prefix: &str, text: &str) -> Option<KeyId> {
    let rest = text.strip_prefix(prefix)?.strip_prefix('_')?;
    if rest.len() != ID_LEN + 1 + SECRET_LEN + CHECK_LEN || rest.as_bytes()[ID_LEN] != b'_' {
        return None;
    }
    let (id, tail) = (&rest[..ID_LEN], &rest[ID_LEN + 1..]);
    if !is_base62(id) || !is_base62(tail) {
        return None;
    }
    let (body, sum) = text.split_at(text.len() - CHECK_LEN);
    (check(body) == sum.as_bytes())
        .then(|| KeyId(id.as_bytes().try_into().expect("ID_LEN base62 bytes")))
}

/// The 4 base62 characters that start the ids of `user`'s keys: a hash of
/// the user name, so the store can place a user's index beside the user's
/// records (one cluster slot) and find a record's slot from its id alone.
///
/// Not keyed with the deployment secret, on purpose: the store (which never
/// holds the secret) computes it for `list`/`revoke` by user, and it reveals
/// nothing the access log does not already pair (user and key id). 62^4
/// values spread users over Redis Cluster's 16,384 slots.
pub fn user_tag(user: &str) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::new()
        .chain_update(b"keygate user tag\0")
        .chain_update(user.as_bytes())
        .finalize();
    let mut n = u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"));
    let mut out = String::with_capacity(TAG_LEN);
    for _ in 0..TAG_LEN {
        out.push(ALPHABET[(n % 62) as usize] as char);
        n /= 62;
    }
    out
}

/// Whether `text` looks like a key id (for admin input).
pub fn is_id(text: &str) -> bool {
    text.len() == ID_LEN && is_base62(text)
}

/// Fewest secret characters after the id that make a word look like a key:
/// fewer than a secret, so a truncated paste still counts as one.
const MIN_SECRET_SHOWN: usize = 20;

/// Replaces a word that looks like a key in an error message.
pub const REDACTED: &str = "[redacted key]";

/// Whether `word` has a key's shape whatever its prefix and checksum
/// (`<letters or digits>_<id>_<20 or more base62>`): a mistyped or
/// truncated key is still a secret, to be refused or redacted where it
/// does not belong.
pub fn looks_like_key(word: &str) -> bool {
    // Three parts in a row, without collecting them: every request's
    // access-log path is looked at.
    let mut parts = word.split('_');
    let (Some(mut prefix), Some(mut id)) = (parts.next(), parts.next()) else {
        return false;
    };
    for secret in parts {
        if !prefix.is_empty()
            && is_base62(prefix)
            && is_id(id)
            && secret.len() >= MIN_SECRET_SHOWN
            && is_base62(secret)
        {
            return true;
        }
        (prefix, id) = (id, secret);
    }
    false
}

/// The words of `text` that could be keys: runs of ASCII letters, digits
/// and `_`, so a key is found inside quotes, a `.netrc` line or a log excerpt.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
}

/// Whether any word of `text` looks like a key.
pub fn contains_key(text: &str) -> bool {
    words(text).any(looks_like_key)
}

/// `text` with every word that looks like a key replaced by [`REDACTED`]:
/// error messages may quote what a client sent, and a secret never
/// appears in one.
pub fn redact_keys(text: &str) -> Cow<'_, str> {
    redact_keys_as(text, REDACTED)
}

/// Replaces a key in a logged path: no space, so the human log format's
/// bare `path=` field stays one field.
pub const REDACTED_IN_PATH: &str = "[redacted-key]";

/// `text` with every word that looks like a key replaced by `marker`.
pub fn redact_keys_as<'a>(text: &'a str, marker: &str) -> Cow<'a, str> {
    if !contains_key(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_word_char) {
        out.push_str(&rest[..start]);
        let len = rest[start..]
            .find(|c: char| !is_word_char(c))
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + len];
        out.push_str(if looks_like_key(word) { marker } else { word });
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn is_base62(s: &str) -> bool {
    // A table lookup per byte: `parse` checks 61 bytes on every request.
    static BASE62: [bool; 256] = {
        let mut table = [false; 256];
        let mut i = 0;
        while i < ALPHABET.len() {
            table[ALPHABET[i] as usize] = true;
            i += 1;
        }
        table
    };
    s.bytes().all(|b| BASE62[usize::from(b)])
}

/// The checksum characters of `body` (no allocation: `parse` runs per request).
fn check(body: &str) -> [u8; CHECK_LEN] {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// Uniform base62 characters by rejection sampling of OS random bytes.
fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in crate::random::bytes::<64>() {
            // 248 = 4 * 62: values above would bias the distribution.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_shaped_like_keys_are_found_and_redacted_whatever_the_prefix() {
        let (key, _) = generate("kg", "alice");
        let key = key.expose();
        assert!(looks_like_key(key));
        assert!(looks_like_key(&key[..key.len() - 10]), "a truncated key");
        assert!(
            looks_like_key(&key.replacen("kg", "acme", 1)),
            "another prefix"
        );
        assert!(!looks_like_key("kg_short_secret"));
        assert!(!looks_like_key("alice"));
        let message = format!("keys: invalid type: string \"{key}\", expected a sequence");
        assert_eq!(
            redact_keys(&message),
            "keys: invalid type: string \"[redacted key]\", expected a sequence"
        );
        assert_eq!(
            redact_keys(&format!("{key}: unknown query parameter")),
            "[redacted key]: unknown query parameter"
        );
        assert!(matches!(
            redact_keys("ttl: invalid duration \"3x\""),
            Cow::Borrowed(_)
        ));
        assert!(contains_key(&format!("  {key} ")) && !contains_key("bob"));
    }

    #[test]
    fn generated_keys_parse_back_to_their_id() {
        let (key, id) = generate("kg", "alice");
        assert_eq!(parse("kg", key.expose()), Some(id));
        assert!(id.as_str().starts_with(&user_tag("alice")));
        assert!(key.expose().starts_with("kg_"));
        assert!(key
            .expose()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_eq!(key.expose().len(), 3 + ID_LEN + 1 + SECRET_LEN + CHECK_LEN);
    }

    #[test]
    fn a_single_typo_or_the_wrong_prefix_is_refused_offline() {
        let (key, _) = generate("kg", "alice");
        let text = key.expose();
        for i in 3..text.len() {
            if text.as_bytes()[i] == b'_' {
                continue;
            }
            let mut typo = text.as_bytes().to_vec();
            typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
            assert_eq!(
                parse("kg", std::str::from_utf8(&typo).unwrap()),
                None,
                "typo at {i}"
            );
        }
        assert_eq!(parse("xx", text), None);
        assert_eq!(parse("kg", &text[..text.len() - 1]), None);
        assert_eq!(parse("kg", "kg_"), None);
        assert_eq!(parse("kg", ""), None);
    }

    #[test]
    fn base62_is_exactly_the_ascii_letters_and_digits() {
        for b in 0u8..128 {
            let one = char::from(b).to_string();
            assert_eq!(is_base62(&one), b.is_ascii_alphanumeric(), "byte {b}");
        }
        assert!(!is_base62("é"), "UTF-8 bytes are not base62");
        assert!(is_base62(std::str::from_utf8(ALPHABET).unwrap()));
    }

    #[test]
    fn user_tags_are_stable_and_spread() {
        assert_eq!(user_tag("alice"), user_tag("alice"));
        assert_eq!(user_tag("alice").len(), TAG_LEN);
        assert!(is_base62(&user_tag("alice@example.org")));
        let tags: std::collections::HashSet<String> =
            (0..1000).map(|i| user_tag(&format!("user{i}"))).collect();
        assert!(tags.len() > 990, "{} distinct tags of 1000", tags.len());
    }

    #[test]
    fn keys_are_distinct() {
        let a = generate("kg", "alice").0;
        let b = generate("kg", "alice").0;
        assert_ne!(a, b);
    }
}
