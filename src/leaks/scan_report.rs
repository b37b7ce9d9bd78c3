//! What `keygate keys revoke --leaked FILE` reads: the secrets in a secret
//! scanner's report, or a plain list.
//!
//! * gitleaks' JSON report (`gitleaks detect --report-format json`): an
//!   array of findings whose `Secret` is the secret itself, unless gitleaks
//!   ran with `--redact` (`REDACTED`, or with `--redact=N` the secret's start
//!   and `...`: then there is nothing to revoke by, an error);
//! * a detect-secrets baseline (`detect-secrets scan`), which holds no
//!   secret, only its SHA-1 with the file and line it was found on: each is
//!   read back from that line of that file, relative to `root` (the folder
//!   the scan ran in), keeping only the word whose SHA-1 matches. (detect-
//!   secrets' own `audit --report`, which does this, fails for custom plugins
//!   such as keygate's: Yelp/detect-secrets#611.) A secret whose line
//!   changed since the scan is not found, and said so;
//! * detect-secrets' report (`detect-secrets audit --report BASELINE`):
//!   `{"results":[{"secrets": …}]}` with the secrets themselves;
//! * anything else: one secret per line.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

/// The secrets in `text`, or why a report holds none that can be used.
/// `root` is where a baseline's file names are found.
pub fn secrets_in(text: &str, root: &Path) -> Result<Vec<String>, String> {
    // A byte order mark (Notepad, PowerShell's `-Encoding utf8`) is no
    // white space: left on, it made the first secret, or a whole JSON
    // report read as lines, match no key, and "revoked 0 keys" said nothing.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return Ok(lines(text));
    }
    let json: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON report: {e}"))?;
    match &json {
        Value::Array(findings) => gitleaks(findings),
        Value::Object(o) => match o.get("results") {
            Some(Value::Array(results)) => detect_secrets_report(results),
            Some(Value::Object(files)) => baseline(files, root),
            _ => Err("a JSON object without \"results\": not a detect-secrets report".into()),
        },
        _ => Err("not a gitleaks or detect-secrets report".into()),
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

fn gitleaks(findings: &[Value]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(findings.len());
    let mut cut = None;
    for (i, f) in findings.iter().enumerate() {
        match f.get("Secret").and_then(Value::as_str) {
            Some("REDACTED") => {
                return Err(format!(
                    "finding {i}: the secret is REDACTED (gitleaks --redact); run gitleaks without --redact"
                ))
            }
            // `--redact=N` below 100 keeps every secret's start and puts
            // "..." for the rest: no key ends so. One such finding among
            // whole ones is another rule's secret that ends so (skipped).
            Some(secret) if secret.trim_end().ends_with("...") => {
                cut.get_or_insert(i);
            }
            Some(secret) => out.push(secret.trim().to_owned()),
            None => return Err(format!("finding {i} has no \"Secret\": not a gitleaks report")),
        }
    }
    match (out.is_empty(), cut) {
        (true, Some(i)) => Err(format!(
            "finding {i}: the secret is cut short with \"...\" (gitleaks --redact=N); run gitleaks without --redact"
        )),
        _ => Ok(out),
    }
}

fn detect_secrets_report(results: &[Value]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(results.len());
    for (i, r) in results.iter().enumerate() {
        match r.get("secrets") {
            Some(Value::String(s)) => out.push(s.trim().to_owned()),
            Some(Value::Array(list)) => out.extend(
                list.iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.trim().to_owned()),
            ),
            _ => {
                return Err(format!(
                    "result {i} has no \"secrets\": not a detect-secrets report"
                ))
            }
        }
    }
    Ok(out)
}

/// A baseline's secrets, read back from the scanned files.
fn baseline(files: &serde_json::Map<String, Value>, root: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut missing = 0;
    for (name, findings) in files {
        let path = root.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (a baseline names files relative to the folder detect-secrets scanned: run from there)",
                path.display()
            )
        })?;
        let lines: Vec<&str> = text.lines().collect();
        let mut by_hash: HashMap<String, String> = HashMap::new();
        for f in findings.as_array().into_iter().flatten() {
            let (Some(hash), Some(line)) = (
                f.get("hashed_secret").and_then(Value::as_str),
                f.get("line_number").and_then(Value::as_u64),
            ) else {
                return Err(format!("{name}: a finding without hashed_secret or line_number: not a detect-secrets baseline"));
            };
            let words = lines
                .get((line as usize).wrapping_sub(1))
                .copied()
                .unwrap_or("");
            for word in words.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                by_hash
                    .entry(sha1_hex(word))
                    .or_insert_with(|| word.to_owned());
            }
            match by_hash.get(hash) {
                Some(secret) => out.push(secret.clone()),
                None => missing += 1,
            }
        }
    }
    if missing > 0 {
        tracing::warn!(
            missing,
            "some secrets of the baseline are no longer on their lines (files changed since the scan?); they are not revoked"
        );
        if out.is_empty() {
            return Err(format!(
                "none of the baseline's {missing} secrets is on its line any more: scan again"
            ));
        }
    }
    Ok(out)
}

/// detect-secrets' `hashed_secret`: hex SHA-1 of the secret.
fn sha1_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets_in(text: &str) -> Result<Vec<String>, String> {
        super::secrets_in(text, Path::new("/nonexistent"))
    }

    #[test]
    fn plain_lists_gitleaks_and_detect_secrets_reports() {
        assert_eq!(secrets_in("a\n\n b \n").unwrap(), ["a", "b"]);
        let gitleaks =
            r#"[{"RuleID":"keygate-api-key","Secret":"kg_x","File":"a.env","StartLine":3}]"#;
        assert_eq!(secrets_in(gitleaks).unwrap(), ["kg_x"]);
        let report = r#"{"results":[{"category":"UNVERIFIED","filename":"a.env","lines":{"3":"KEY=kg_y"},"secrets":"kg_y","types":["Keygate API Key"]}]}"#;
        assert_eq!(secrets_in(report).unwrap(), ["kg_y"]);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_secret() {
        assert_eq!(
            secrets_in("\u{feff}kg_a\r\nkg_b\r\n").unwrap(),
            ["kg_a", "kg_b"]
        );
        let gitleaks = "\u{feff}[{\"Secret\":\"kg_x\"}]";
        assert_eq!(secrets_in(gitleaks).unwrap(), ["kg_x"]);
    }

    #[test]
    fn baselines_are_read_back_from_the_scanned_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.env"), "x=1\nKEY=kg_abc_def # here\n").unwrap();
        let baseline = |hash: &str, line: u32| {
            format!(
                r#"{{"version":"1.5.0","results":{{"a.env":[{{"type":"Keygate API Key","hashed_secret":"{hash}","line_number":{line}}}]}}}}"#
            )
        };
        let found = super::secrets_in(&baseline(&sha1_hex("kg_abc_def"), 2), dir.path());
        assert_eq!(found.unwrap(), ["kg_abc_def"]);
        // The line changed since the scan: nothing is guessed.
        let moved = super::secrets_in(&baseline(&sha1_hex("kg_abc_def"), 1), dir.path());
        assert!(moved.unwrap_err().contains("scan again"));
        let elsewhere = super::secrets_in(&baseline("00", 2), Path::new("/nonexistent"));
        assert!(elsewhere.unwrap_err().contains("run from there"));
        assert_eq!(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn reports_without_secrets_say_what_to_do() {
        let redacted = r#"[{"Secret":"REDACTED"}]"#;
        assert!(secrets_in(redacted).unwrap_err().contains("--redact"));
        let partly = r#"[{"Secret":"kg_abc..."},{"Secret":"AKIA..."}]"#;
        assert!(secrets_in(partly).unwrap_err().contains("--redact"));
        // Whole secrets beside one that ends in "...": not a redacted report.
        let mixed = r#"[{"Secret":"kg_abc"},{"Secret":"password..."}]"#;
        assert_eq!(secrets_in(mixed).unwrap(), ["kg_abc"]);
        assert!(secrets_in("{broken").is_err());
    }
}
