//! What `keygate keys revoke --leaked FILE` reads: the secrets in a secret
//! scanner's report, or a plain list.
//!
//! * gitleaks' JSON report (`gitleaks detect --report-format json`): an
//!   array of findings whose `Secret` is the secret itself, unless gitleaks
//!   ran with `--redact` (then there is nothing to revoke by: an error);
//! * detect-secrets' report (`detect-secrets audit --report BASELINE`):
//!   `{"results":[{"secrets": …}]}` with the secrets themselves. A baseline
//!   (`detect-secrets scan`) holds only SHA-1 hashes of the secrets, from
//!   which no key can be revoked: an error that says how to make the report;
//! * anything else: one secret per line.

use serde_json::Value;

/// The secrets in `text`, or why a report holds none that can be used.
pub fn secrets_in(text: &str) -> Result<Vec<String>, String> {
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return Ok(lines(text));
    }
    let json: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON report: {e}"))?;
    match &json {
        Value::Array(findings) => gitleaks(findings),
        Value::Object(o) => match o.get("results") {
            Some(Value::Array(results)) => detect_secrets_report(results),
            Some(Value::Object(_)) => Err(
                "this is a detect-secrets baseline: it holds only hashes of the secrets. \
                 Revoke from its report instead: `detect-secrets audit --report BASELINE > report.json` \
                 (run where the scanned files are), then --leaked report.json"
                    .into(),
            ),
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
    for (i, f) in findings.iter().enumerate() {
        match f.get("Secret").and_then(Value::as_str) {
            Some("REDACTED") => {
                return Err(format!(
                    "finding {i}: the secret is REDACTED (gitleaks --redact); run gitleaks without --redact"
                ))
            }
            Some(secret) => out.push(secret.trim().to_owned()),
            None => return Err(format!("finding {i} has no \"Secret\": not a gitleaks report")),
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn reports_without_secrets_say_what_to_do() {
        let baseline = r#"{"version":"1.5.0","results":{"a.env":[{"type":"Keygate API Key","hashed_secret":"abc"}]}}"#;
        assert!(secrets_in(baseline).unwrap_err().contains("audit --report"));
        let redacted = r#"[{"Secret":"REDACTED"}]"#;
        assert!(secrets_in(redacted).unwrap_err().contains("--redact"));
        assert!(secrets_in("{broken").is_err());
    }
}
