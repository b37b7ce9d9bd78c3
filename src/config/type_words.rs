//! serde's words for a value of the wrong type, said as an operator would:
//! `expected usize` is `expected a whole number`, and a value that is
//! only quoted wrongly is shown as it should be written (`"256"` -> `256`,
//! `"10.0.0.0/8"` -> `["10.0.0.0/8"]`).

/// `message` (serde's `invalid type: string "256", expected usize`) in
/// plain words, with how to write the value when that is plain.
pub fn in_words(message: &str) -> String {
    let Some((found, expected)) = message.rsplit_once(", expected ") else {
        return message.to_owned();
    };
    let quoted = found
        .split_once("string \"")
        .and_then(|(_, rest)| rest.strip_suffix('"'));
    let (expected, hint) = match expected {
        "usize" | "u8" | "u16" | "u32" | "u64" => {
            let hint = quoted
                .filter(|q| q.parse::<u64>().is_ok())
                .map(|q| format!("; write it without quotes: {q}"));
            let words = match expected {
                "u8" => "a whole number from 0 to 255",
                "u16" => "a whole number from 0 to 65535",
                "u32" => "a whole number from 0 to 4294967295",
                _ => "a whole number, 0 or more",
            };
            (words, hint)
        }
        "a sequence" => (
            "a list",
            Some(match quoted {
                Some(q) => format!("; write it in brackets: [\"{q}\"]"),
                None => "; write it in brackets: [\"…\"]".to_owned(),
            }),
        ),
        "a boolean" => (
            "a boolean",
            Some("; write true or false, without quotes".to_owned()),
        ),
        "a string" if found.contains("integer") || found.contains("float") => {
            // serde shows the number in backquotes: `30`.
            let n = found.split('`').nth(1).unwrap_or("…");
            let hint =
                format!("; write it in quotes: \"{n}\" (a duration with its unit: \"{n}s\")");
            ("a string", Some(hint))
        }
        other => (other, None),
    };
    format!("{found}, expected {expected}{}", hint.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::in_words;

    #[test]
    fn types_are_named_in_words_with_how_to_write_the_value() {
        assert_eq!(
            in_words("invalid type: string \"256\", expected usize"),
            "invalid type: string \"256\", expected a whole number, 0 or more; write it without quotes: 256"
        );
        assert_eq!(
            in_words("invalid value: integer `-1`, expected u32"),
            "invalid value: integer `-1`, expected a whole number from 0 to 4294967295"
        );
        assert_eq!(
            in_words("invalid value: integer `5000000000`, expected u32"),
            "invalid value: integer `5000000000`, expected a whole number from 0 to 4294967295"
        );
        assert_eq!(
            in_words("invalid type: string \"10.0.0.0/8\", expected a sequence"),
            "invalid type: string \"10.0.0.0/8\", expected a list; write it in brackets: [\"10.0.0.0/8\"]"
        );
        assert_eq!(
            in_words("invalid type: integer `30`, expected a string"),
            "invalid type: integer `30`, expected a string; write it in quotes: \"30\" (a duration with its unit: \"30s\")"
        );
        assert_eq!(
            in_words("invalid type: string \"no\", expected a boolean"),
            "invalid type: string \"no\", expected a boolean; write true or false, without quotes"
        );
        assert_eq!(in_words("missing field `url`"), "missing field `url`");
    }
}
