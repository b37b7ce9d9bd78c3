//! The key format: `<prefix>_<id>_<secret><check>`.
//!
//! * `id`: 12 base62 characters (~71 bits), the public id;
//! * `secret`: 43 base62 characters from the OS CSPRNG (256 bits);
//! * `check`: CRC32 of everything before it, 6 base62 characters.
//!
//! Only ASCII letters, digits and `_`: one "word" for a double-click, no
//! quoting in `.netrc`, shells, URLs or JSON. The visible prefix lets secret
//! scanners find leaked keys; the checksum lets keygate refuse a mistyped or
//! random key without a store round trip.

use super::{ApiKey, KeyId};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const ID_LEN: usize = 12;
pub const SECRET_LEN: usize = 43;
const CHECK_LEN: usize = 6;

/// A new random key and its id.
pub fn generate(prefix: &str) -> (ApiKey, KeyId) {
    let id = random_base62(ID_LEN);
    let secret = random_base62(SECRET_LEN);
    let mut key = String::with_capacity(prefix.len() + 2 + ID_LEN + SECRET_LEN + CHECK_LEN);
    key.push_str(prefix);
    key.push('_');
    key.push_str(&id);
    key.push('_');
    key.push_str(&secret);
    key.push_str(&check(&key));
    (ApiKey::new(key), KeyId::from_trusted(id))
}

/// The id of `text` if it is a well-formed key with this prefix and a valid
/// checksum. No I/O: random or mistyped keys stop here.
pub fn parse<'a>(prefix: &str, text: &'a str) -> Option<&'a str> {
    let rest = text.strip_prefix(prefix)?.strip_prefix('_')?;
    if rest.len() != ID_LEN + 1 + SECRET_LEN + CHECK_LEN || rest.as_bytes()[ID_LEN] != b'_' {
        return None;
    }
    let (id, tail) = (&rest[..ID_LEN], &rest[ID_LEN + 1..]);
    if !is_base62(id) || !is_base62(tail) {
        return None;
    }
    let (body, sum) = text.split_at(text.len() - CHECK_LEN);
    (check(body) == sum).then_some(id)
}

/// Whether `text` looks like a key id (for admin input).
pub fn is_id(text: &str) -> bool {
    text.len() == ID_LEN && is_base62(text)
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn check(body: &str) -> String {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("alphabet is ASCII")
}

/// Uniform base62 characters by rejection sampling of OS random bytes.
fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).expect("the OS random number generator is available");
        for b in buf {
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
    fn generated_keys_parse_back_to_their_id() {
        let (key, id) = generate("kg");
        assert_eq!(parse("kg", key.expose()), Some(id.as_str()));
        assert!(key.expose().starts_with("kg_"));
        assert!(key
            .expose()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_eq!(key.expose().len(), 3 + ID_LEN + 1 + SECRET_LEN + CHECK_LEN);
    }

    #[test]
    fn a_single_typo_or_the_wrong_prefix_is_refused_offline() {
        let (key, _) = generate("kg");
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
    fn keys_are_distinct() {
        let a = generate("kg").0;
        let b = generate("kg").0;
        assert_ne!(a, b);
    }
}
