//! Envoy's HTTP ext_authz filter, played from deploy/envoy/envoy.yaml: no
//! Envoy binary comes from the registries the tests install from, so this
//! does what Envoy's documentation and its ext_authz HTTP client
//! (`ext_authz_http_impl.cc`) say it does with that configuration:
//!
//! * the connection manager drops client headers with `_` in their names
//!   (`headers_with_underscores_action: DROP_HEADER`) and appends the
//!   client's address to `X-Forwarded-For` (`use_remote_address`);
//! * the check request keeps the original method, its path is
//!   `path_prefix` + the original path and query, `Content-Length: 0`, no
//!   body, and only Host, Authorization and the `allowed_headers` patterns;
//! * a 200 sets the answer's `allowed_upstream_headers` on the request to
//!   the app (replacing the client's) and removes what
//!   `x-envoy-auth-headers-to-remove` names; any 5xx or no answer is an
//!   error: `status_on_error` with nothing of keygate's answer (or the
//!   request let through, were `failure_mode_allow` true); any other status
//!   goes to the client with the answer's headers (but Host) and body.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use http::{Method, Request, StatusCode};
use serde_json::Value;

use super::body;
use super::client::{send, Answer, HttpsClient};

/// An exact header-name pattern (`exact`, `ignore_case`) of a ListStringMatcher.
#[derive(Debug)]
struct Pattern {
    exact: String,
    ignore_case: bool,
}

/// What the configuration tells Envoy to do.
#[derive(Debug)]
pub struct ExtAuthz {
    pub path_prefix: String,
    /// The uri of `http_service.server_uri` (where the operator puts keygate).
    pub server_uri: String,
    allowed_headers: Vec<Pattern>,
    allowed_upstream_headers: Vec<Pattern>,
    pub failure_mode_allow: bool,
    pub status_on_error: StatusCode,
    drop_underscores: bool,
    use_remote_address: bool,
}

/// What Envoy does with a client's request.
#[derive(Debug)]
pub enum Outcome {
    /// Forwarded to the app with these headers.
    Forward(HeaderMap),
    /// Answered to the client.
    Answer(StatusCode, HeaderMap, String),
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A YAML file as JSON, read by the PyYAML of target/k8s-validate-venv
/// (scripts/test.sh installs it for the Kubernetes tests).
fn yaml(path: &str) -> Value {
    let python = root().join("target/k8s-validate-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh",
        python.display()
    );
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(root().join(path))
        .output()
        .unwrap();
    assert!(out.status.success(), "{path}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn patterns(list: &Value) -> Vec<Pattern> {
    list["patterns"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| Pattern {
                    exact: p["exact"]
                        .as_str()
                        .unwrap_or_else(|| panic!("only exact patterns are played: {p}"))
                        .to_owned(),
                    ignore_case: p["ignore_case"].as_bool().unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn matches(patterns: &[Pattern], name: &str) -> bool {
    patterns.iter().any(|p| {
        if p.ignore_case {
            p.exact.eq_ignore_ascii_case(name)
        } else {
            p.exact == name
        }
    })
}

/// Envoy's HttpStatus code names that a config may use here.
fn status_named(name: &str) -> StatusCode {
    match name {
        "ServiceUnavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "Forbidden" => StatusCode::FORBIDDEN,
        "InternalServerError" => StatusCode::INTERNAL_SERVER_ERROR,
        other => panic!("status_on_error {other}: add it here"),
    }
}

// === impl ExtAuthz ===

impl ExtAuthz {
    /// The ext_authz filter and its connection manager in `path` (YAML).
    pub fn from_file(path: &str) -> ExtAuthz {
        let config = yaml(path);
        let hcm = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"];
        let filter = hcm["http_filters"]
            .as_array()
            .expect("http_filters")
            .iter()
            .find(|f| f["name"] == "envoy.filters.http.ext_authz")
            .expect("an ext_authz filter");
        let c = &filter["typed_config"];
        let http = &c["http_service"];
        assert!(
            http["authorization_request"]["allowed_headers"].is_null(),
            "the top-level allowed_headers is the one played"
        );
        ExtAuthz {
            path_prefix: http["path_prefix"].as_str().unwrap_or("").to_owned(),
            server_uri: http["server_uri"]["uri"].as_str().unwrap().to_owned(),
            allowed_headers: patterns(&c["allowed_headers"]),
            allowed_upstream_headers: patterns(
                &http["authorization_response"]["allowed_upstream_headers"],
            ),
            failure_mode_allow: c["failure_mode_allow"].as_bool().unwrap_or(false),
            status_on_error: c["status_on_error"]["code"]
                .as_str()
                .map_or(StatusCode::FORBIDDEN, status_named),
            drop_underscores: hcm["common_http_protocol_options"]
                ["headers_with_underscores_action"]
                == "DROP_HEADER",
            use_remote_address: hcm["use_remote_address"] == true,
        }
    }

    /// A client at `client_addr` sends `method path` with `headers`: the
    /// check Envoy sends to `authz` (keygate's auth listener, `https://…`),
    /// and what Envoy then does.
    pub async fn pass(
        &self,
        c: &HttpsClient,
        authz: &str,
        client_addr: IpAddr,
        method: &Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Outcome {
        // The connection manager, before any filter.
        let mut request = HeaderMap::new();
        for (k, v) in headers {
            if self.drop_underscores && k.contains('_') {
                continue;
            }
            request.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        if self.use_remote_address {
            let xff = match request.get("x-forwarded-for") {
                Some(v) => format!("{}, {client_addr}", v.to_str().unwrap()),
                None => client_addr.to_string(),
            };
            request.insert("x-forwarded-for", xff.parse().unwrap());
        }

        // The check request.
        let mut check = Request::builder()
            .method(method.clone())
            .uri(format!(
                "{}{}{path}",
                authz.trim_end_matches('/'),
                self.path_prefix
            ))
            .header(CONTENT_LENGTH, "0");
        for (k, v) in &request {
            let always = *k == HOST || *k == http::header::AUTHORIZATION;
            if always || matches(&self.allowed_headers, k.as_str()) {
                check = check.header(k, v);
            }
        }
        let answer: Answer = send(c, check.body(body::empty()).unwrap()).await;

        // The answer.
        if answer.status.is_server_error() {
            return if self.failure_mode_allow {
                Outcome::Forward(request)
            } else {
                Outcome::Answer(self.status_on_error, HeaderMap::new(), String::new())
            };
        }
        if answer.status != StatusCode::OK {
            let mut to_client = answer.headers.clone();
            to_client.remove(HOST);
            to_client.remove("x-envoy-auth-headers-to-remove");
            return Outcome::Answer(answer.status, to_client, answer.text());
        }
        for (k, v) in &answer.headers {
            if matches(&self.allowed_upstream_headers, k.as_str()) {
                request.insert(k, v.clone());
            }
        }
        if let Some(names) = answer.headers.get("x-envoy-auth-headers-to-remove") {
            for name in names.to_str().unwrap().split(',') {
                request.remove(name.trim());
            }
        }
        Outcome::Forward(request)
    }
}
