//! A log filter that parses yet lets none of keygate's own lines through.
//!
//! In a tracing filter a bare word that is no level names a log target:
//! `warning`, `inf` or `verbose` parse, and keep only the lines of a
//! target of that name, so keygate ran without one warning or access
//! line. Read by `keygate check` (`log.level`) and at start (`RUST_LOG`).

use super::suggest;

const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];

/// Why `filter` lets no line of keygate's own targets (`keygate::…`)
/// through, or `None` when one directive reaches them: a bare level, a
/// span or field directive for every target, or a target `keygate` starts
/// with (`keygate`, `keygate::access=info`, `hyper,info`).
pub fn silences_keygate(filter: &str) -> Option<String> {
    let mut stray = None;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let target = directive
            .split(['[', '='])
            .next()
            .unwrap_or_default()
            .trim();
        let bare_level = !directive.contains('=')
            && (LEVELS.contains(&target.to_ascii_lowercase().as_str())
                || matches!(target, "0" | "1" | "2" | "3" | "4" | "5"));
        if bare_level || target.is_empty() || reaches_keygate(target) {
            return None;
        }
        if !directive.contains('=') && stray.is_none() {
            stray = Some(target);
        }
    }
    let hint = stray
        .map(|word| suggest::did_you_mean(&word.to_ascii_lowercase(), LEVELS, |l| format!("{l:?}")))
        .unwrap_or_default();
    Some(format!(
        "{filter:?} lets none of keygate's lines through (no warning, no access line): a word that is no level names a log target; the levels are error, warn, info, debug, trace{hint} (e.g. \"warn\", or \"keygate=debug,info\")"
    ))
}

/// A directive's target matches the targets that start with it.
fn reaches_keygate(target: &str) -> bool {
    target == "keygate" || target.starts_with("keygate::") || "keygate".starts_with(target)
}

#[cfg(test)]
mod tests {
    use super::silences_keygate;

    #[test]
    fn levels_and_keygate_targets_pass() {
        for ok in [
            "info",
            "WARN",
            "keygate=debug,info",
            "keygate",
            "keygate::access=info",
            "hyper=trace,warn",
            "hyper,info",
            "[request]=debug",
            "off",
            "3",
        ] {
            assert_eq!(silences_keygate(ok), None, "{ok}");
        }
    }

    #[test]
    fn a_word_that_is_no_level_is_refused_with_the_nearest_level() {
        let said = silences_keygate("warning").unwrap();
        assert!(said.contains("did you mean \"warn\"?"), "{said}");
        for silent in [
            "inf",
            "verbose",
            "hyper",
            "hyper=debug",
            "h2,rustls",
            "keygate_x",
        ] {
            assert!(silences_keygate(silent).is_some(), "{silent}");
        }
    }
}
