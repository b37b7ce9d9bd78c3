//! deploy/grafana/keygate.json queries what keygate exports: every metric it
//! names (queries, variables, descriptions) is a series on a running
//! keygate's /metrics, every label value it selects exists there, and every
//! metric family keygate exports is on the dashboard.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::client::{self, get};
use crate::support::gateway::builder;
use crate::support::upstream::Upstream;

/// Series name -> label name -> values seen, and the families (# TYPE).
struct Scrape {
    series: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    families: BTreeSet<String>,
}

fn parse_scrape(text: &str) -> Scrape {
    let mut scrape = Scrape {
        series: BTreeMap::new(),
        families: BTreeSet::new(),
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            scrape
                .families
                .insert(rest.split(' ').next().unwrap().to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap();
        let labels = scrape.series.entry(line[..end].to_owned()).or_default();
        if line[end..].starts_with('{') {
            let close = line.find('}').unwrap();
            for pair in line[end + 1..close].split(',') {
                let (k, v) = pair.split_once('=').unwrap();
                labels
                    .entry(k.to_owned())
                    .or_default()
                    .insert(v.trim_matches('"').to_owned());
            }
        }
    }
    scrape
}

/// A metric name in a query and the label matchers right after it.
struct Reference {
    name: String,
    /// (label, operator, value)
    matchers: Vec<(String, String, String)>,
}

fn references(text: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while let Some(found) = text[i..].find("keygate_") {
        let start = i + found;
        let mut end = start;
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        i = end;
        if start > 0 && ident(bytes[start - 1]) {
            continue;
        }
        let mut matchers = Vec::new();
        if text[end..].starts_with('{') {
            let close = end + text[end..].find('}').unwrap();
            for m in text[end + 1..close].split(',').map(str::trim) {
                let op_at = m.find(['=', '!']).unwrap();
                let op_len = if m[op_at..].starts_with('=') && !m[op_at..].starts_with("=~") {
                    1
                } else {
                    2
                };
                matchers.push((
                    m[..op_at].trim().to_owned(),
                    m[op_at..op_at + op_len].to_owned(),
                    m[op_at + op_len..].trim().trim_matches('"').to_owned(),
                ));
            }
            i = close;
        }
        out.push(Reference {
            name: text[start..end].to_owned(),
            matchers,
        });
    }
    out
}

/// Every string in the dashboard, and whether it is PromQL (a panel's or a
/// variable's query) rather than prose (titles, descriptions).
fn strings(v: &Value, key: &str, out: &mut Vec<(bool, String)>) {
    match v {
        Value::String(s) => out.push((["expr", "query", "definition"].contains(&key), s.clone())),
        Value::Array(a) => a.iter().for_each(|v| strings(v, key, out)),
        Value::Object(o) => o.iter().for_each(|(k, v)| strings(v, k, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_grafana_dashboard_queries_only_what_keygate_exports_and_all_of_it() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/keygate.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut texts = Vec::new();
    strings(&dashboard, "", &mut texts);
    let refs: Vec<Reference> = texts
        .iter()
        .filter(|(query, _)| *query)
        .flat_map(|(_, t)| references(t))
        .collect();
    let prose: Vec<Reference> = texts
        .iter()
        .filter(|(query, _)| !*query)
        .flat_map(|(_, t)| references(t))
        .collect();

    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let c = client::h1(&gw.ca);
    let scrape = parse_scrape(&get(&c, &gw.admin_url("/metrics")).await.text());
    assert!(!scrape.families.is_empty());

    for r in &refs {
        let labels = scrape.series.get(&r.name).unwrap_or_else(|| {
            panic!(
                "the dashboard names {}, which keygate does not export: {:?}",
                r.name,
                scrape.series.keys()
            )
        });
        for (label, op, value) in &r.matchers {
            // Grafana variables ($job, $instance) select what Prometheus adds.
            if value.contains('$') {
                continue;
            }
            let seen = labels
                .get(label)
                .unwrap_or_else(|| panic!("{} has no label {label}", r.name));
            let wanted: Vec<&str> = match op.as_str() {
                "=~" | "!~" => value.split('|').collect(),
                _ => vec![value],
            };
            for w in wanted {
                assert!(
                    seen.contains(w),
                    "{}{{{label}{op}\"{value}\"}}: keygate has no {label}=\"{w}\" (it has {seen:?})",
                    r.name
                );
            }
        }
    }

    // Prose may name a family (keygate_upstream_response_seconds) or a series.
    for r in &prose {
        assert!(
            scrape.series.contains_key(&r.name) || scrape.families.contains(&r.name),
            "a description names {}, which keygate does not export",
            r.name
        );
    }

    let queried: BTreeSet<&str> = refs.iter().map(|r| r.name.as_str()).collect();
    for family in &scrape.families {
        let shown = ["", "_total", "_bucket", "_count", "_sum"]
            .iter()
            .any(|suffix| queried.contains(format!("{family}{suffix}").as_str()));
        assert!(shown, "{family} is exported but not on the dashboard");
    }

    // Panels Grafana can place: unique ids, each query with a refId.
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        for t in p["targets"].as_array().unwrap() {
            assert!(t["refId"].is_string() && t["expr"].is_string(), "{p}");
        }
    }
}
