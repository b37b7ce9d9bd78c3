//! Runtime settings shared by every instance through the store: whether
//! self-service is on, the lifetimes offered to users, the default and the
//! maximum lifetime. `[keys]` in the config gives the values until an admin
//! changes them with `PUT /v1/settings`; they are validated like the config,
//! every problem named by its field.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{self, parse_duration};

/// Most lifetimes a user can be offered.
const MAX_CHOICES: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The self-service page and its API answer (else 403).
    pub self_service: bool,
    /// Lifetimes users may pick on the self-service page ("30d", "never", ...).
    pub ttl_choices: Vec<String>,
    /// Lifetime of a key created without one.
    pub default_ttl: String,
    /// Longest lifetime; "never" allows keys that do not expire.
    pub max_ttl: String,
}

/// The lifetimes in force, parsed.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub default_ttl: Duration,
    /// `None` = "never" is allowed.
    pub max_ttl: Option<Duration>,
}

impl Settings {
    /// The values `[keys]` gives before an admin changes anything.
    pub fn from_config(keys: &config::Keys) -> Settings {
        let fits = |d: Duration| keys.max_ttl.is_none_or(|max| d <= max);
        let mut choices: Vec<String> = [86_400u64, 30 * 86_400, 90 * 86_400, 365 * 86_400]
            .into_iter()
            .map(Duration::from_secs)
            .filter(|d| fits(*d))
            .map(short_duration)
            .collect();
        let default = short_duration(keys.default_ttl);
        if !choices.contains(&default) {
            choices.push(default.clone());
        }
        Settings {
            self_service: true,
            ttl_choices: choices,
            default_ttl: default,
            max_ttl: keys.max_ttl.map_or("never".into(), short_duration),
        }
    }

    /// Whether `ttl` is one of `ttl_choices`: the lifetimes a user may pick
    /// on the page (Generate, Rotate) and a key for its own successor
    /// (self-rotation). The error names `ttl`.
    pub fn offers(&self, ttl: &str) -> Result<(), String> {
        if self.ttl_choices.iter().any(|c| c.trim() == ttl.trim()) {
            return Ok(());
        }
        Err(format!(
            "ttl: {ttl:?} is not one of the offered lifetimes ({})",
            self.ttl_choices.join(", ")
        ))
    }

    /// Check every field; each problem names its field.
    pub fn validate(&self) -> Result<Policy, Vec<String>> {
        let mut problems = Vec::new();
        let max_ttl = if self.max_ttl.trim() == "never" {
            Some(None)
        } else {
            positive(&self.max_ttl)
                .map(Some)
                .map_err(|e| problems.push(format!("max_ttl: {e}")))
                .ok()
        };
        let default_ttl = positive(&self.default_ttl)
            .map_err(|e| problems.push(format!("default_ttl: {e}")))
            .ok();
        if let (Some(d), Some(Some(max))) = (default_ttl, max_ttl) {
            if d > max {
                problems.push(format!(
                    "default_ttl: {} is longer than max_ttl ({})",
                    self.default_ttl, self.max_ttl
                ));
            }
        }
        if self.ttl_choices.is_empty() || self.ttl_choices.len() > MAX_CHOICES {
            problems.push(format!("ttl_choices: give 1 to {MAX_CHOICES} lifetimes"));
        }
        for (i, choice) in self.ttl_choices.iter().enumerate() {
            if choice.trim() == "never" {
                if !matches!(max_ttl, Some(None)) {
                    problems.push(format!(
                        "ttl_choices[{i}]: \"never\" needs max_ttl = \"never\""
                    ));
                }
                continue;
            }
            match (positive(choice), max_ttl) {
                (Err(e), _) => problems.push(format!("ttl_choices[{i}]: {e}")),
                (Ok(d), Some(Some(max))) if d > max => problems.push(format!(
                    "ttl_choices[{i}]: {choice} is longer than max_ttl ({})",
                    self.max_ttl
                )),
                _ => {}
            }
        }
        match (default_ttl, max_ttl) {
            (Some(default_ttl), Some(max_ttl)) if problems.is_empty() => Ok(Policy {
                default_ttl,
                max_ttl,
            }),
            _ => Err(problems),
        }
    }
}

/// "90d", "12h", "30m" or "45s": durations as operators write them.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s >= 3_600 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        _ if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// A key lifetime: positive, whole seconds (a key's expiry is kept to the
/// second, and a key's own `ttl` of "1500ms" is refused).
fn positive(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be greater than zero".into()),
        d if d.subsec_nanos() != 0 => Err(config::WHOLE_SECONDS.into()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(default: &str, max: &str, choices: &[&str]) -> Settings {
        Settings {
            self_service: true,
            ttl_choices: choices.iter().map(|c| c.to_string()).collect(),
            default_ttl: default.into(),
            max_ttl: max.into(),
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = settings("100d", "90d", &["1d", "never", "soon"])
            .validate()
            .unwrap_err();
        assert!(
            err.iter()
                .any(|e| e.starts_with("default_ttl: 100d is longer than max_ttl")),
            "{err:?}"
        );
        assert!(
            err.iter()
                .any(|e| e.starts_with("ttl_choices[1]: \"never\" needs")),
            "{err:?}"
        );
        assert!(
            err.iter()
                .any(|e| e.starts_with("ttl_choices[2]: invalid duration")),
            "{err:?}"
        );
        assert!(settings("0s", "never", &[]).validate().unwrap_err().len() == 2);
        // Expiry is kept to the second, as a key's own `ttl` is.
        let err = settings("1500ms", "never", &["1d", "2500ms"])
            .validate()
            .unwrap_err();
        assert_eq!(
            err,
            [
                "default_ttl: must be a whole number of seconds",
                "ttl_choices[1]: must be a whole number of seconds"
            ],
        );
        let ok = settings("30d", "never", &["30d", "never"])
            .validate()
            .unwrap();
        assert_eq!(ok.max_ttl, None);
    }
}
