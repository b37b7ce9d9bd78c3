//! The body of `POST /.keygate/revoke`: keys someone found, as a JSON array
//! of strings or as text with one key per line. Text is searched for words
//! in the key's shape (letters, digits and `_`), so a pasted `.netrc` line
//! or log excerpt works too; whether a word is a key is the keyring's call.

use crate::keys::ApiKey;

/// Most keys (array entries, or candidate words and lines of text) one request may name.
pub const MAX_KEYS: usize = 1000;
/// Largest body read: 1,000 keys with room for whatever surrounds them.
pub const MAX_BODY: usize = 256 * 1024;

/// Why a body is refused; neither says anything about the keys in it.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// 413: more than `MAX_KEYS` entries, candidates or lines.
    TooMany,
    /// 400: it starts like JSON but is not an array of strings.
    NotJson(String),
}

/// The candidate keys in a body, each once.
pub fn keys_in(body: &[u8]) -> Result<Vec<ApiKey>, BodyError> {
    let text = String::from_utf8_lossy(body);
    let mut words: Vec<String> = if text.trim_start().starts_with('[') {
        let list: Vec<String> = crate::http::json_body::parse(body).map_err(BodyError::NotJson)?;
        if list.len() > MAX_KEYS {
            return Err(BodyError::TooMany);
        }
        list.into_iter().map(|k| k.trim().to_owned()).collect()
    } else {
        if text.lines().filter(|l| !l.trim().is_empty()).count() > MAX_KEYS {
            return Err(BodyError::TooMany);
        }
        // Words in a key's shape count too, each once: many on one line
        // cost as many store lookups as one per line, while a log excerpt's
        // other words (snake_case names) cost nothing.
        let mut keys: Vec<String> = crate::keys::format::words(&text)
            .filter(|w| crate::keys::format::looks_like_key(w))
            .map(str::to_owned)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.len() > MAX_KEYS {
            return Err(BodyError::TooMany);
        }
        keys
    };
    words.sort_unstable();
    words.dedup();
    Ok(words
        .into_iter()
        .filter(|w| !w.is_empty())
        .map(ApiKey::new)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposed(keys: Vec<ApiKey>) -> Vec<String> {
        keys.iter().map(|k| k.expose().to_owned()).collect()
    }

    #[test]
    fn json_arrays_and_text_lines_both_name_keys() {
        assert_eq!(
            exposed(keys_in(br#"["kg_a_b", " kg_c_d ", "kg_a_b"]"#).unwrap()),
            ["kg_a_b", "kg_c_d"]
        );
        let (a, b) = (key(), key());
        let text = format!("{a}\nmachine example.org login apikey password {b}\nsome_name\n\n");
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(exposed(keys_in(text.as_bytes()).unwrap()), both);
    }

    fn key() -> String {
        crate::keys::format::generate("kg", "alice")
            .0
            .expose()
            .to_owned()
    }

    #[test]
    fn too_many_or_broken_json_is_refused_without_looking_at_keys() {
        let many: Vec<String> = (0..=MAX_KEYS).map(|i| format!("kg_{i}")).collect();
        assert_eq!(
            keys_in(serde_json::to_string(&many).unwrap().as_bytes()).err(),
            Some(BodyError::TooMany)
        );
        assert_eq!(
            keys_in(many.join("\n").as_bytes()).err(),
            Some(BodyError::TooMany)
        );
        let keys: Vec<String> = (0..=MAX_KEYS).map(|_| key()).collect();
        assert_eq!(
            keys_in(keys.join(" ").as_bytes()).err(),
            Some(BodyError::TooMany),
            "all on one line"
        );
        // A log excerpt's snake_case words are no keys: they do not count.
        let excerpt = format!("{} {}", many.join(" "), keys[0]);
        assert_eq!(
            exposed(keys_in(excerpt.as_bytes()).unwrap()),
            [keys[0].clone()]
        );
        assert!(matches!(keys_in(b"[1, 2"), Err(BodyError::NotJson(_))));
        assert_eq!(
            exposed(keys_in(b"no keys here").unwrap()),
            Vec::<String>::new()
        );
    }
}
