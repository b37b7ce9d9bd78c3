//! A secret scanner's report and keygate's answer, in the format of
//! GitHub's secret-scanning partner program (GitLab's partner notifications
//! use the same): the body is a JSON array of
//! `{"token","type","url","source"}`, the answer a JSON array of
//! `{"token_hash","token_type","label"}`, one per reported token, in order.

use serde::{Deserialize, Serialize};

/// One match the scanner found.
#[derive(Debug, Deserialize)]
pub struct Reported {
    pub token: String,
    /// The scanner's name for the pattern (GitHub: the one agreed with the partner).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Where it was found (a commit, an issue, a package).
    #[serde(default)]
    pub url: Option<String>,
    /// What kind of place that is (`content`, `commit`, `npm`, …).
    #[serde(default)]
    pub source: Option<String>,
}

/// Keygate's verdict on one reported token (GitHub's optional feedback).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Feedback {
    /// Hex SHA-256 of the token: the scanner matches it to its finding.
    pub token_hash: String,
    pub token_type: String,
    pub label: Label,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// A live key of this deployment (revoked now, unless `action = "notify"`).
    TruePositive,
    /// Anything else: another format, a bad checksum, unknown, expired, revoked before.
    FalsePositive,
}

/// The report's matches, or why the body is not a report (a 400 naming it).
pub fn parse(body: &[u8]) -> Result<Vec<Reported>, String> {
    crate::http::json_body::parse::<Vec<Reported>>(body)
}

/// Hex SHA-256 of a token, as the feedback names it.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The feedback for each match: `true_positive` where `live` says so.
pub fn feedback(reported: &[Reported], live: impl Fn(usize) -> bool) -> Vec<Feedback> {
    reported
        .iter()
        .enumerate()
        .map(|(i, r)| Feedback {
            token_hash: token_hash(&r.token),
            token_type: r.kind.clone(),
            label: if live(i) {
                Label::TruePositive
            } else {
                Label::FalsePositive
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_githubs_example_and_answers_in_its_feedback_format() {
        let body = br#"[{"token":"NMIfyYncKcRALEXAMPLE","type":"mycompany_api_token","url":"https://github.com/octocat/Hello-World/blob/1234/foo/bar.txt","source":"content"}]"#;
        let reported = parse(body).unwrap();
        assert_eq!(reported[0].token, "NMIfyYncKcRALEXAMPLE");
        assert_eq!(reported[0].source.as_deref(), Some("content"));
        let answer = serde_json::to_value(feedback(&reported, |_| false)).unwrap();
        assert_eq!(
            answer,
            serde_json::json!([{
                "token_hash": token_hash("NMIfyYncKcRALEXAMPLE"),
                "token_type": "mycompany_api_token",
                "label": "false_positive"
            }])
        );
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bodies_that_are_not_reports_are_named() {
        assert!(parse(b"not json").unwrap_err().contains("invalid JSON"));
        assert!(parse(br#"{"token":"x"}"#).is_err());
        assert!(parse(br#"[{"type":"x"}]"#).unwrap_err().contains("token"));
        assert!(parse(b"[]").unwrap().is_empty());
    }
}
