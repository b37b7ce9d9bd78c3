//! "Did you mean …?" for an unknown key or section: the known names a typo
//! or a half-remembered name most likely meant (`adress` -> `addr`,
//! `timeout` -> `connect_timeout` or `response_timeout`).
//!
//! A candidate is a known name that is close as a string (Jaro-Winkler,
//! the measure clap uses for its own suggestions, >= 0.8) or that holds the
//! unknown name as one of its `_`-separated words; candidates are ranked by
//! edit distance (Damerau-Levenshtein) and at most two are named.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Jaro-Winkler similarity from which a known name counts as a likely typo.
const SIMILAR: f64 = 0.8;
/// More suggestions than this read as a list to choose from, not a hint.
const MOST: usize = 2;

/// `"; did you mean a or b?"`, or nothing when no known name is close.
pub fn did_you_mean(unknown: &str, known: &[&str], show: impl Fn(&str) -> String) -> String {
    let names: Vec<String> = nearest(unknown, known).into_iter().map(show).collect();
    if names.is_empty() {
        return String::new();
    }
    format!("; did you mean {}?", names.join(" or "))
}

/// The known names closest to `unknown`, best first, at most two.
pub fn nearest<'a>(unknown: &str, known: &[&'a str]) -> Vec<&'a str> {
    let mut close: Vec<(usize, &str)> = known
        .iter()
        .filter(|k| **k != unknown)
        .filter(|k| {
            strsim::jaro_winkler(unknown, k) >= SIMILAR || k.split('_').any(|word| word == unknown)
        })
        .map(|k| (strsim::damerau_levenshtein(unknown, k), *k))
        .collect();
    close.sort();
    close.into_iter().take(MOST).map(|(_, k)| k).collect()
}

/// The field names of a `#[derive(Deserialize)]` struct, as serde knows
/// them: so every key a section accepts, including ones added later, is a
/// candidate without a list kept by hand.
pub fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    // The derived impl hands its field list to `deserialize_struct`, which
    // keeps it and stops there: the error is expected.
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only structs have field names"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field names taken"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPSTREAM: &[&str] = &[
        "url",
        "ca_file",
        "connect_timeout",
        "response_timeout",
        "pool_idle_timeout",
        "pool_max_idle",
    ];

    #[test]
    fn a_word_of_a_longer_key_names_the_closest_two() {
        assert_eq!(
            nearest("timeout", UPSTREAM),
            ["connect_timeout", "response_timeout"]
        );
    }

    #[test]
    fn typos_find_their_key_and_strangers_find_nothing() {
        let listen = [
            "addr",
            "tls_cert",
            "tls_key",
            "plaintext",
            "trusted_proxies",
        ];
        assert_eq!(nearest("adress", &listen), ["addr"]);
        assert_eq!(nearest("tls_certificate", &listen), ["tls_cert"]);
        assert_eq!(nearest("urls", UPSTREAM), ["url"]);
        assert!(nearest("colour", UPSTREAM).is_empty());
        assert_eq!(did_you_mean("colour", UPSTREAM, str::to_owned), "");
        assert_eq!(
            did_you_mean("upstrem", &["listen", "upstream"], |s| format!("[{s}]")),
            "; did you mean [upstream]?"
        );
    }

    #[test]
    fn field_names_come_from_the_derived_impl() {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        #[allow(dead_code)]
        struct Section {
            addr: String,
            tls_cert: Option<String>,
        }
        assert_eq!(fields::<Section>(), ["addr", "tls_cert"]);
    }
}
