//! `docs/reference.md` covers what keygate implements, taken from the
//! sources of truth themselves: every command and flag (clap's tree), every
//! key of `config/keygate.example.toml` (set or commented out), every route
//! of the admin API's OpenAPI document, every metric and label value (the
//! exposition). A command, key, route or metric added later fails here until
//! it is documented. And the repository explains itself: its documentation
//! points at nothing outside it.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn reference() -> String {
    read("docs/reference.md")
}

/// Every `section.key` of the example, whether set or commented out
/// (`# ca_file = …` documents a key without a default value).
fn example_keys() -> Vec<String> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in read("config/keygate.example.toml").lines() {
        let line = line.trim();
        // `[section]`, or `[[array]]` (commented out or not).
        let header = line.trim_start_matches('#').trim();
        if let Some(name) = header.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim_matches(['[', ']']).to_owned();
            continue;
        }
        let setting = line.strip_prefix('#').unwrap_or(line).trim_start();
        let Some((key, _)) = setting.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let is_key = !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if is_key && !section.is_empty() {
            keys.push(format!("{section}.{key}"));
        }
    }
    keys
}

#[test]
fn every_key_of_the_example_config_is_in_the_reference() {
    let doc = reference();
    let keys = example_keys();
    assert!(
        keys.len() > 50,
        "the example's keys were not found: {keys:?}"
    );
    for must in [
        "listen.plaintext",
        "upstream.url",
        "login.cas_url",
        "self_service.creates_per_hour",
    ] {
        assert!(
            keys.iter().any(|k| k == must),
            "{must} not read from the example"
        );
    }
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(missing.is_empty(), "docs/reference.md lacks {missing:?}");
}

#[test]
fn every_route_of_the_openapi_document_is_in_the_reference() {
    let doc = reference();
    let api: serde_json::Value = serde_json::from_str(&read("src/admin/openapi.json")).unwrap();
    let paths = api["paths"].as_object().expect("OpenAPI paths");
    let mut missing = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                let route = format!("`{} {path}", method.to_uppercase());
                if !doc.contains(&route) {
                    missing.push(route);
                }
            }
        }
    }
    assert!(paths.len() >= 9, "{paths:?}");
    assert!(missing.is_empty(), "docs/reference.md lacks {missing:?}");
}

#[test]
fn every_metric_and_label_value_is_in_the_reference() {
    let doc = reference();
    let text = keygate::metrics::Metrics::new().encode();
    let mut names = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            // Counters are exposed, and documented, with their _total suffix.
            names.push(match kind {
                "counter" => format!("{name}_total"),
                _ => name.to_owned(),
            });
        } else if let Some((_, labels)) = line.split_once('{') {
            for pair in labels.split('}').next().unwrap().split(',') {
                let (label, value) = pair.split_once('=').unwrap();
                if label != "le" {
                    names.push(value.trim_matches('"').to_owned());
                }
            }
        }
    }
    assert!(names.iter().any(|n| n == "keygate_auth_total"), "{text}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    assert!(missing.is_empty(), "docs/reference.md lacks {missing:?}");
}

/// Every command is a row of the command table that names each of its
/// flags (`--long`, or `-s` for a flag with a short name).
#[test]
fn every_command_and_flag_is_in_the_reference() {
    let doc = reference();
    let mut missing = Vec::new();
    let mut commands = 0;
    fn walk(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        let subs: Vec<_> = cmd
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push((path.clone(), cmd.clone()));
        }
        for sub in subs {
            walk(sub, format!("{path} {}", sub.get_name()), out);
        }
    }
    let mut leaves = Vec::new();
    walk(&keygate::cli::Cli::command(), "keygate".into(), &mut leaves);
    for (path, cmd) in &leaves {
        let Some(row) = doc.lines().find(|l| l.starts_with(&format!("| `{path}"))) else {
            missing.push(path.clone());
            continue;
        };
        commands += 1;
        for arg in cmd.get_arguments() {
            let named = arg
                .get_long()
                .is_some_and(|l| row.contains(&format!("--{l}")))
                || arg
                    .get_short()
                    .is_some_and(|s| row.contains(&format!("-{s} ")));
            let positional = arg.get_long().is_none() && arg.get_short().is_none();
            let id = arg.get_id().as_str();
            if !(named || positional && row.contains(&id.to_uppercase()) || id == "help") {
                missing.push(format!("{path} {id}"));
            }
        }
    }
    assert!(commands >= 7, "{leaves:?}");
    assert!(
        missing.is_empty(),
        "docs/reference.md's command table lacks {missing:?}"
    );
}

/// The text files a reader of the repository reads.
fn documentation() -> Vec<PathBuf> {
    let mut files = vec![
        root().join("README.md"),
        root().join("Dockerfile"),
        root().join("BENCHMARKS.md"),
    ];
    // bench/ too: its scripts rerun BENCHMARKS.md's figures from a clone.
    let mut dirs = vec![
        root().join("docs"),
        root().join("config"),
        root().join("deploy"),
        root().join("bench"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if std::fs::read_to_string(&path).is_ok() {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn the_documentation_points_at_nothing_outside_the_repository() {
    let files = documentation();
    assert!(files.iter().any(|f| f.ends_with("docs/reference.md")));
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for outside in ["../shared", "SPEC.md"] {
            assert!(!text.contains(outside), "{} names {outside}", shown(file));
        }
    }
    // Local links in the README and docs lead to files that exist.
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for link in text.split("](").skip(1).filter_map(|s| s.split(')').next()) {
            let target = link.split('#').next().unwrap();
            if target.is_empty() || target.contains("://") {
                continue;
            }
            let path = file.parent().unwrap().join(target);
            assert!(
                path.exists(),
                "{} links {link}, which does not exist",
                shown(file)
            );
        }
    }
}

/// docs/external-auth.md shows the proxy configurations the tests run:
/// each block it marks as a file's is that file, verbatim.
#[test]
fn the_external_auth_guide_shows_the_tested_configurations_verbatim() {
    let guide = read("docs/external-auth.md");
    let marker = "<!-- the file ";
    let mut shown = Vec::new();
    for (at, _) in guide.match_indices(marker) {
        let rest = &guide[at + marker.len()..];
        let path = rest.split(',').next().unwrap();
        let fence = rest
            .find("\n```")
            .unwrap_or_else(|| panic!("no block after {path}"));
        let block = &rest[fence + 4..];
        let body = &block[block.find('\n').unwrap() + 1..];
        let end = body
            .find("```\n")
            .unwrap_or_else(|| panic!("{path}: unclosed block"));
        assert_eq!(
            &body[..end],
            read(path),
            "docs/external-auth.md shows {path} other than it is"
        );
        shown.push(path.to_owned());
    }
    for file in [
        "deploy/nginx/keygate.conf",
        "deploy/caddy/Caddyfile",
        "deploy/traefik/keygate.yml",
        "deploy/envoy/envoy.yaml",
    ] {
        assert!(shown.iter().any(|s| s == file), "{file} is not shown");
    }
}

/// The README's status says what works, not which issue or benchmark run
/// built it: those numbers mean nothing to a reader of a clone.
#[test]
fn the_readme_speaks_of_what_works_not_of_issues_or_runs() {
    let readme = read("README.md");
    for word in ["issue ", "run "] {
        let numbered = readme
            .match_indices(word)
            .any(|(i, _)| readme[i + word.len()..].starts_with(|c: char| c.is_ascii_digit()));
        assert!(!numbered, "README.md names an {word}by number");
    }
}

fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The message of each `tracing::warn!`/`error!` of `source` (its last
/// string literal), outside the tests.
fn warnings_and_errors(source: &str) -> Vec<String> {
    let code = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    let mut messages = Vec::new();
    for (at, call) in code
        .match_indices("tracing::warn!(")
        .chain(code.match_indices("tracing::error!("))
    {
        // To the call's closing parenthesis, string literals read whole.
        let mut literals = Vec::new();
        let mut depth = 1;
        let mut chars = code[at + call.len()..].chars();
        while depth > 0 {
            match chars.next() {
                None => break,
                Some('(') => depth += 1,
                Some(')') => depth -= 1,
                Some('"') => {
                    let mut text = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => text.extend(chars.next()),
                            '"' => break,
                            c => text.push(c),
                        }
                    }
                    literals.push(text);
                }
                Some(_) => {}
            }
        }
        messages.extend(literals.pop());
    }
    messages
}

/// Every warning and error keygate logs is in the reference's Logs table
/// (or its prose), found by the start of its message: what an operator is
/// to act on is explained where they look it up.
#[test]
fn every_warning_and_error_logged_is_in_the_reference() {
    let reference = reference();
    let mut missing = Vec::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            for message in warnings_and_errors(&std::fs::read_to_string(&path).unwrap()) {
                // Up to what is filled in (`{n}`) or qualified (`: …`, `(…)`).
                let start: String = message
                    .split(['{', ':', ';', '('])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .chars()
                    .take(40)
                    .collect();
                if !start.is_empty() && !reference.contains(&start) {
                    missing.push(format!("{}: {message}", path.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "warnings and errors missing from docs/reference.md's Logs table:\n{}",
        missing.join("\n")
    );
}
