//! deploy/kubernetes/ as an operator applies it: every manifest valid against
//! the Kubernetes schemas (kubernetes-validate) and the custom resources
//! against their CRDs' vendored schemas (`schemas`); the ConfigMap's
//! keygate.toml accepted by `keygate check` with the files the Deployment
//! mounts, and ports, probes, grace period and references that agree with
//! it (`config`).
//!
//! YAML is read by tests/kubernetes/manifests.py with the Python of
//! target/k8s-validate-venv (kubernetes-validate and its PyYAML and
//! jsonschema, from PyPI), which scripts/test.sh installs: these tests are
//! `#[ignore]`d for a bare `cargo test` and run there.

mod config;
mod schemas;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A program of the venv scripts/test.sh makes.
fn venv(program: &str) -> PathBuf {
    let path = root().join("target/k8s-validate-venv/bin").join(program);
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh",
        path.display()
    );
    path
}

/// Run a venv program in the repository root; (exit success, stdout).
fn run(program: &str, args: &[String]) -> (bool, String) {
    let out: Output = Command::new(venv(program))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() || !stdout.is_empty(),
        "{program} {args:?} failed without a report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), stdout)
}

/// tests/kubernetes/manifests.py with `args`.
fn manifests_py(args: &[String]) -> (bool, String) {
    let mut all = vec!["tests/kubernetes/manifests.py".to_owned()];
    all.extend_from_slice(args);
    run("python", &all)
}

/// Every manifest, relative to the repository root: deploy/kubernetes/ and
/// its examples/ (kustomization.yaml is kustomize's, not a Kubernetes object).
fn manifest_files() -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["deploy/kubernetes", "deploy/kubernetes/examples"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".yaml") && name != "kustomization.yaml" {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    files.sort();
    files
}

/// One YAML document and the file it came from.
struct Doc {
    file: String,
    doc: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.doc["metadata"]["name"].as_str().unwrap_or("")
    }

    fn api_version(&self) -> &str {
        self.doc["apiVersion"].as_str().unwrap_or("")
    }
}

/// Every document of `files`, parsed by PyYAML.
fn documents(files: &[String]) -> Vec<Doc> {
    let mut args = vec!["json".to_owned()];
    args.extend_from_slice(files);
    let (ok, out) = manifests_py(&args);
    assert!(ok, "{out}");
    let list: Vec<Value> = serde_json::from_str(&out).unwrap();
    list.into_iter()
        .map(|mut item| Doc {
            file: item["file"].as_str().unwrap().to_owned(),
            doc: item["doc"].take(),
        })
        .collect()
}

fn all_documents() -> Vec<Doc> {
    documents(&manifest_files())
}

/// The one document of `kind` named `name`.
fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Doc> = docs
        .iter()
        .filter(|d| d.kind() == kind && d.name() == name)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind}/{name}");
    &found[0].doc
}

/// (apiVersion, kind) of every CRD schema vendored in tests/kubernetes/crds/.
fn vendored_kinds() -> BTreeSet<(String, String)> {
    std::fs::read_dir(root().join("tests/kubernetes/crds"))
        .unwrap()
        .map(|e| {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let v: Value = serde_json::from_str(&text).unwrap();
            (
                v["apiVersion"].as_str().unwrap().to_owned(),
                v["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
