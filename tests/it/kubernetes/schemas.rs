//! Every manifest against the schemas of the API server that would take it:
//! kubernetes-validate --strict (unknown fields are errors) for the core
//! kinds on each Kubernetes version below, the vendored CRD schemas for the
//! custom resources. Neither may pass a document silently: each one must be
//! reported valid by exactly the validator that knows its kind.

use std::collections::BTreeSet;

use super::*;

/// The oldest and every newer version the manifests support. PDB
/// unhealthyPodEvictionPolicy (GA in 1.31, on by default since 1.27) sets
/// the floor; 1.30 still accepts it.
const VERSIONS: [&str; 8] = [
    "1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36", "1.37",
];

/// kubernetes-validate's report: (file, "kind/name", version) per pass, and
/// the (apiVersion, kind) it had no schema for.
struct CoreReport {
    ok: bool,
    passed: BTreeSet<(String, String, String)>,
    unknown: BTreeSet<(String, String)>,
    errors: Vec<String>,
    text: String,
}

fn kubernetes_validate(files: &[String]) -> CoreReport {
    let mut args = vec!["--strict".to_owned()];
    for v in VERSIONS {
        args.push("-k".into());
        args.push(format!("{v}.0"));
    }
    args.extend_from_slice(files);
    let (ok, text) = run("kubernetes-validate", &args);
    let mut report = CoreReport {
        ok,
        passed: BTreeSet::new(),
        unknown: BTreeSet::new(),
        errors: Vec::new(),
        text: text.clone(),
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("INFO ") {
            // "<file> passed for resource <kind>/<name> against version <v>"
            let (file, rest) = rest.split_once(" passed for resource ").unwrap();
            let (resource, version) = rest.split_once(" against version ").unwrap();
            report
                .passed
                .insert((file.into(), resource.into(), version.into()));
        } else if let Some(rest) = line.strip_prefix("WARN ") {
            // "<file> Couldn't find schema for kind <K> with api version <A> for kubernetes version <v>"
            let (_, rest) = rest
                .split_once(" Couldn't find schema for kind ")
                .unwrap_or_else(|| panic!("unexpected warning: {line}"));
            let (kind, rest) = rest.split_once(" with api version ").unwrap();
            let (api, _) = rest.split_once(" for kubernetes version ").unwrap();
            report.unknown.insert((api.into(), kind.into()));
        } else if !line.trim().is_empty() {
            report.errors.push(line.to_owned());
        }
    }
    report
}

/// manifests.py custom: the (file, "Kind/name") it validated, and its errors.
fn custom_validate(files: &[String]) -> (bool, BTreeSet<(String, String)>, String) {
    let mut args = vec!["custom".to_owned()];
    args.extend_from_slice(files);
    let (ok, text) = manifests_py(&args);
    let passed = text
        .lines()
        .filter_map(|l| l.strip_prefix("OK "))
        .map(|rest| {
            let mut words = rest.split(' ');
            (
                words.next().unwrap().to_owned(),
                words.next().unwrap().to_owned(),
            )
        })
        .collect();
    (ok, passed, text)
}

#[test]
#[ignore = "needs kubernetes-validate: run through scripts/test.sh"]
fn every_manifest_is_valid_against_the_kubernetes_or_its_crd_schema() {
    let files = manifest_files();
    let docs = documents(&files);
    for (kind, name) in [
        ("Namespace", "keygate"),
        ("Deployment", "keygate"),
        ("ConfigMap", "keygate-config"),
        ("Service", "keygate"),
        ("Service", "keygate-admin"),
        ("Service", "keygate-authz"),
        ("PodDisruptionBudget", "keygate"),
        ("NetworkPolicy", "keygate"),
        ("ServiceMonitor", "keygate"),
        ("Middleware", "keygate"),
        ("SecurityPolicy", "keygate"),
    ] {
        find(&docs, kind, name);
    }

    let core = kubernetes_validate(&files);
    assert!(core.ok && core.errors.is_empty(), "{}", core.text);
    let vendored = vendored_kinds();
    for unknown in &core.unknown {
        assert!(
            vendored.contains(unknown),
            "kubernetes-validate has no schema for {unknown:?} and none is vendored:\n{}",
            core.text
        );
    }
    let (custom_ok, custom_passed, custom_text) = custom_validate(&files);
    assert!(custom_ok, "{custom_text}");

    for d in &docs {
        let key = (d.api_version().to_owned(), d.kind().to_owned());
        if vendored.contains(&key) {
            let resource = format!("{}/{}", d.kind(), d.name());
            assert!(
                custom_passed.contains(&(d.file.clone(), resource.clone())),
                "{} {resource} not validated against its CRD:\n{custom_text}",
                d.file
            );
        } else {
            let resource = format!("{}/{}", d.kind().to_lowercase(), d.name());
            for v in VERSIONS {
                assert!(
                    core.passed
                        .contains(&(d.file.clone(), resource.clone(), v.to_owned())),
                    "{} {resource} not validated against Kubernetes {v}:\n{}",
                    d.file,
                    core.text
                );
            }
        }
    }
}

/// The validators are strict: one unknown field in any manifest fails it.
#[test]
#[ignore = "needs kubernetes-validate: run through scripts/test.sh"]
fn a_misspelled_field_fails_every_manifest() {
    let docs = all_documents();
    let dir = tempfile::tempdir().unwrap();
    let vendored = vendored_kinds();
    let mut files = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let mut doc = d.doc.clone();
        // Inside spec where there is one (a typo one level down), else on top.
        let target = match doc.get_mut("spec") {
            Some(spec) if spec.is_object() => spec,
            _ => &mut doc,
        };
        target["replicaz"] = Value::from(2);
        let path = dir.path().join(format!("{i}.yaml"));
        // JSON is YAML.
        std::fs::write(&path, doc.to_string()).unwrap();
        files.push(path.display().to_string());
    }
    let core = kubernetes_validate(&files);
    let (custom_ok, _, custom_text) = custom_validate(&files);
    assert!(!core.ok && !custom_ok);
    for (d, file) in docs.iter().zip(&files) {
        let key = (d.api_version().to_owned(), d.kind().to_owned());
        let text = if vendored.contains(&key) {
            &custom_text
        } else {
            &core.text
        };
        let refused = text
            .lines()
            .any(|l| l.starts_with(&format!("ERROR {file} ")) && l.contains("replicaz"));
        assert!(
            refused,
            "{} {}/{} with an unknown field passed:\n{text}",
            d.file,
            d.kind(),
            d.name()
        );
    }
}

/// The CRDs' CEL rules are evaluated too (after the schema's defaults are
/// filled in, as the API server does): a resource that breaks one is refused.
#[test]
#[ignore = "needs kubernetes-validate: run through scripts/test.sh"]
fn a_custom_resource_that_breaks_a_cel_rule_is_refused() {
    let docs = all_documents();
    let dir = tempfile::tempdir().unwrap();
    let mut tls = find(&docs, "BackendTLSPolicy", "keygate-authz").clone();
    tls["spec"]["validation"]
        .as_object_mut()
        .unwrap()
        .remove("caCertificateRefs");
    let mut policy = find(&docs, "SecurityPolicy", "keygate").clone();
    policy["spec"]["extAuth"]["http"]["backendRefs"][0]["kind"] = "Pod".into();
    let mut files = Vec::new();
    for (name, doc) in [("tls.yaml", tls), ("policy.yaml", policy)] {
        let path = dir.path().join(name);
        std::fs::write(&path, doc.to_string()).unwrap();
        files.push(path.display().to_string());
    }
    let (ok, _, text) = custom_validate(&files);
    assert!(!ok, "{text}");
    for (file, message) in [
        (
            &files[0],
            "spec.validation: CEL rule fails: must specify either CACertificateRefs or WellKnownCACertificates",
        ),
        (
            &files[1],
            "spec.extAuth.http: CEL rule fails: BackendRefs only supports Service, ServiceImport, and Backend kind.",
        ),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("ERROR {file} ")) && l.ends_with(message)),
            "{file}: no {message:?} in:\n{text}"
        );
    }
}
