//! The pieces of deploy/kubernetes/ agree with each other and with keygate:
//! the ConfigMap's keygate.toml passes `keygate check` with exactly the files
//! the Deployment mounts; ports, probes, selectors and the grace period match
//! the config; the examples reach the auth listener where the Service is.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::support::bin;
use crate::support::tls::{Ca, Leaf};
use crate::support::ADMIN_TOKEN;

fn deployment(docs: &[Doc]) -> &Value {
    find(docs, "Deployment", "keygate")
}

fn container(docs: &[Doc]) -> &Value {
    let containers = deployment(docs)["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    containers.iter().find(|c| c["name"] == "keygate").unwrap()
}

fn config_text(docs: &[Doc]) -> String {
    find(docs, "ConfigMap", "keygate-config")["data"]["keygate.toml"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn config_table(text: &str) -> toml::Table {
    text.parse().unwrap_or_else(|e| panic!("keygate.toml: {e}"))
}

fn str_at<'a>(table: &'a toml::Table, section: &str, key: &str) -> Option<&'a str> {
    table.get(section)?.get(key)?.as_str()
}

/// The containerPort of the keygate container's port `name`.
fn container_port(docs: &[Doc], name: &str) -> u64 {
    container(docs)["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
        .as_u64()
        .unwrap()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// The value each Secret key gets in the test (a real certificate, a long
/// enough HMAC secret, an admin token).
fn secret_value(leaf: &Leaf, name: &str, key: &str) -> String {
    match (name, key) {
        ("keygate-tls", "tls.crt") => leaf.cert_pem.clone(),
        ("keygate-tls", "tls.key") => leaf.key_pem.clone(),
        ("keygate-secrets", "secret") => "0123456789abcdef".repeat(4),
        ("keygate-secrets", "admin-token") => format!("ops:{ADMIN_TOKEN}\n"),
        other => panic!("the Deployment mounts {other:?}: give it a test value here"),
    }
}

/// Every file the keygate container sees under its volume mounts, by path
/// in the pod: ConfigMaps from the manifests, Secrets from `secret_value`.
fn mounted_files(docs: &[Doc], leaf: &Leaf) -> BTreeMap<String, String> {
    let pod = &deployment(docs)["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_array().unwrap();
    let mut files = BTreeMap::new();
    for mount in container(docs)["volumeMounts"].as_array().unwrap() {
        let volume = volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap_or_else(|| panic!("no volume for mount {mount}"));
        let sources: Vec<Value> = match volume["projected"]["sources"].as_array() {
            Some(sources) => sources.clone(),
            None => vec![volume.clone()],
        };
        let dir = mount["mountPath"].as_str().unwrap();
        for source in sources {
            for (path, content) in source_files(docs, leaf, &source) {
                files.insert(format!("{dir}/{path}"), content);
            }
        }
    }
    files
}

/// (path in the volume, content) of one volume or projected source.
fn source_files(docs: &[Doc], leaf: &Leaf, source: &Value) -> Vec<(String, String)> {
    if let Some(cm) = source.get("configMap") {
        let data = &find(docs, "ConfigMap", cm["name"].as_str().unwrap())["data"];
        let items: Vec<(String, String)> = match cm["items"].as_array() {
            Some(items) => items
                .iter()
                .map(|i| {
                    (
                        i["key"].as_str().unwrap().into(),
                        i["path"].as_str().unwrap().into(),
                    )
                })
                .collect(),
            None => data
                .as_object()
                .unwrap()
                .keys()
                .map(|k| (k.clone(), k.clone()))
                .collect(),
        };
        return items
            .into_iter()
            .map(|(key, path)| (path, data[&key].as_str().unwrap().to_owned()))
            .collect();
    }
    let secret = source
        .get("secret")
        .unwrap_or_else(|| panic!("a volume source the test does not know: {source}"));
    let name = secret["name"]
        .as_str()
        .or(secret["secretName"].as_str())
        .unwrap();
    secret["items"]
        .as_array()
        .unwrap_or_else(|| panic!("Secret {name}: list its items"))
        .iter()
        .map(|i| {
            let key = i["key"].as_str().unwrap();
            (
                i["path"].as_str().unwrap().to_owned(),
                secret_value(leaf, name, key),
            )
        })
        .collect()
}

/// The pod's files under `dir`, and `config` (the ConfigMap's keygate.toml,
/// maybe edited) with every mount path moved there; returns its path.
fn materialize(docs: &[Doc], dir: &Path, config: &str) -> PathBuf {
    let leaf = Ca::new("kubernetes test CA").leaf("keygate");
    for (path, content) in mounted_files(docs, &leaf) {
        let local = dir.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, content).unwrap();
    }
    let mut text = config.to_owned();
    for mount in container(docs)["volumeMounts"].as_array().unwrap() {
        let m = mount["mountPath"].as_str().unwrap();
        text = text.replace(&format!("{m}/"), &format!("{}{m}/", dir.display()));
    }
    let args: Vec<&str> = container(docs)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let pos = args.iter().position(|a| *a == "-c").expect("serve -c FILE");
    let path = dir.join(args[pos + 1].trim_start_matches('/'));
    assert!(path.exists(), "-c {} is not a mounted file", args[pos + 1]);
    std::fs::write(&path, text).unwrap();
    path
}

fn check_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
#[ignore = "needs kubernetes-validate: run through scripts/test.sh"]
fn the_configmap_config_passes_keygate_check_with_the_files_the_deployment_mounts() {
    let docs = all_documents();
    let dir = tempfile::tempdir().unwrap();
    let path = materialize(&docs, dir.path(), &config_text(&docs));
    let out = bin::check(&path);
    assert_eq!(out.status.code(), Some(0), "{}", check_output(&out));
    let table = config_table(&config_text(&docs));
    assert_eq!(str_at(&table, "store", "kind"), Some("redis"));
    let url = str_at(&table, "store", "url").unwrap();
    assert!(url.starts_with("redis://redis:"), "{url}");
}

/// The auth listener is on (the examples ask it) where the Deployment and
/// the Service keygate-authz expect it, with TLS, asked only by the proxies
/// named; `keygate check` accepts it with the rest of the file (above).
#[test]
#[ignore = "needs kubernetes-validate: run through scripts/test.sh"]
fn the_auth_listener_is_on_with_tls_on_the_authz_port() {
    let docs = all_documents();
    let table = config_table(&config_text(&docs));
    let authz = addr(str_at(&table, "authz", "addr").expect("authz.addr"));
    assert!(
        authz.ip().is_unspecified(),
        "proxies reach the pod's address"
    );
    assert_eq!(u64::from(authz.port()), container_port(&docs, "authz"));
    let section = table["authz"].as_table().unwrap();
    assert!(
        section.get("plaintext").is_none(),
        "API keys cross this connection: keep TLS"
    );
    let proxies = section["trusted_proxies"].as_array().unwrap();
    assert!(!proxies.is_empty());

    // And keygate says so: the check names no problem of [authz].
    let dir = tempfile::tempdir().unwrap();
    let path = materialize(&docs, dir.path(), &config_text(&docs));
    let out = bin::check(&path);
    let report = check_output(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(!report.contains("authz"), "{report}");
}

#[test]
#[ignore = "needs kubernetes-validate: run through scripts/test.sh"]
fn the_deployment_serves_the_configured_ports_probes_and_drain() {
    let docs = all_documents();
    let table = config_table(&config_text(&docs));
    let c = container(&docs);
    let listen = addr(str_at(&table, "listen", "addr").unwrap());
    let admin = addr(str_at(&table, "admin", "addr").unwrap());
    // The kubelet, Services and Prometheus reach the pod's address.
    assert!(listen.ip().is_unspecified() && admin.ip().is_unspecified());
    assert_eq!(u64::from(listen.port()), container_port(&docs, "https"));
    assert_eq!(u64::from(admin.port()), container_port(&docs, "admin"));

    let plaintext = |s: &str| {
        table
            .get(s)
            .and_then(|t| t.get("plaintext"))
            .and_then(|v| v.as_bool())
            == Some(true)
    };
    let admin_scheme = if plaintext("listen") || plaintext("admin") {
        "HTTP"
    } else {
        "HTTPS"
    };
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["port"], "admin", "{probe}");
        assert_eq!(get["scheme"], admin_scheme, "{probe}");
    }

    // The pause before SIGTERM plus keygate's drain fit in the grace period.
    let pod = &deployment(&docs)["spec"]["template"]["spec"];
    let command = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .unwrap();
    assert_eq!(command[0], "sleep");
    let pause = Duration::from_secs(command[1].as_str().unwrap().parse().unwrap());
    let grace = keygate::config::parse_duration(
        str_at(&table, "runtime", "shutdown_grace").unwrap_or("30s"),
    )
    .unwrap();
    let period = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    assert!(
        period > pause + grace,
        "terminationGracePeriodSeconds {period:?} <= preStop {pause:?} + shutdown_grace {grace:?}"
    );
}

#[test]
#[ignore = "needs kubernetes-validate: run through scripts/test.sh"]
fn the_pod_runs_as_the_images_user_without_privileges() {
    let docs = all_documents();
    let pod = &deployment(&docs)["spec"]["template"]["spec"];
    let c = container(&docs);
    // The Dockerfile's user: `useradd --system --uid N`, `groupadd --gid N`.
    let dockerfile = read(&root().join("Dockerfile"));
    let id = |flag: &str| -> u64 {
        let at = dockerfile
            .find(flag)
            .unwrap_or_else(|| panic!("{flag} in Dockerfile"));
        dockerfile[at + flag.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let ctx = &pod["securityContext"];
    assert_eq!(ctx["runAsNonRoot"], true);
    assert_eq!(ctx["runAsUser"].as_u64(), Some(id("--uid ")));
    assert_eq!(ctx["runAsGroup"].as_u64(), Some(id("--gid ")));
    assert_eq!(ctx["fsGroup"].as_u64(), Some(id("--gid ")));
    assert_eq!(ctx["seccompProfile"]["type"], "RuntimeDefault");
    let own = &c["securityContext"];
    assert_eq!(own["allowPrivilegeEscalation"], false);
    assert_eq!(own["readOnlyRootFilesystem"], true);
    assert_eq!(own["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for (kind, what) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
    ] {
        assert!(
            c["resources"][kind][what].is_string(),
            "resources.{kind}.{what}"
        );
    }
    // The namespace enforces what these settings promise.
    let ns = find(&docs, "Namespace", "keygate");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

/// Selectors select keygate's pods and named ports exist where they point.
#[test]
#[ignore = "needs kubernetes-validate: run through scripts/test.sh"]
fn services_policies_and_the_service_monitor_point_at_keygates_ports() {
    let docs = all_documents();
    let pod_labels = &deployment(&docs)["spec"]["template"]["metadata"]["labels"];
    let selects_pods = |selector: &Value| {
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &pod_labels[k] == v)
    };
    let mut exposed = BTreeSet::new();
    for name in ["keygate", "keygate-admin", "keygate-authz"] {
        let svc = find(&docs, "Service", name);
        assert!(selects_pods(&svc["spec"]["selector"]), "Service {name}");
        for port in svc["spec"]["ports"].as_array().unwrap() {
            let target = port["targetPort"].as_str().unwrap();
            container_port(&docs, target);
            exposed.insert(target.to_owned());
        }
    }
    assert_eq!(
        exposed,
        BTreeSet::from(["https", "admin", "authz"].map(String::from))
    );

    let policy = find(&docs, "NetworkPolicy", "keygate");
    assert!(selects_pods(&policy["spec"]["podSelector"]["matchLabels"]));
    let mut ruled = BTreeSet::new();
    for rule in policy["spec"]["ingress"].as_array().unwrap() {
        for port in rule["ports"].as_array().unwrap() {
            let name = port["port"].as_str().unwrap();
            container_port(&docs, name);
            ruled.insert(name.to_owned());
        }
    }
    assert_eq!(ruled, exposed, "every listener has its NetworkPolicy rule");

    let pdb = find(&docs, "PodDisruptionBudget", "keygate");
    assert!(selects_pods(&pdb["spec"]["selector"]["matchLabels"]));
    let replicas = deployment(&docs)["spec"]["replicas"].as_u64().unwrap();
    assert!(pdb["spec"]["minAvailable"].as_u64().unwrap() < replicas);

    let monitor = find(&docs, "ServiceMonitor", "keygate");
    let admin = find(&docs, "Service", "keygate-admin");
    let labels = &admin["metadata"]["labels"];
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&labels[k], v, "ServiceMonitor selects keygate-admin");
    }
    let others =
        ["keygate", "keygate-authz"].map(|n| &find(&docs, "Service", n)["metadata"]["labels"]);
    for other in others {
        let all = monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &other[k] == v);
        assert!(!all, "the ServiceMonitor would scrape another Service too");
    }
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], admin["spec"]["ports"][0]["name"]);
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["scheme"], "https");
}

#[test]
#[ignore = "needs kubernetes-validate: run through scripts/test.sh"]
fn kustomization_applies_every_base_manifest_in_keygates_namespace() {
    let docs = documents(&["deploy/kubernetes/kustomization.yaml".to_owned()]);
    let k = &docs[0].doc;
    let listed: BTreeSet<String> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("deploy/kubernetes/{}", r.as_str().unwrap()))
        .collect();
    // Everything at the top of the folder but the optional ServiceMonitor
    // (it needs the Prometheus Operator's CRDs); examples/ are examples.
    let base: BTreeSet<String> = manifest_files()
        .into_iter()
        .filter(|f| !f.contains("/examples/") && !f.ends_with("/servicemonitor.yaml"))
        .collect();
    assert_eq!(listed, base);
    let all = all_documents();
    let ns = k["namespace"].as_str().unwrap();
    find(&all, "Namespace", ns);
    assert_eq!(
        find(&all, "ServiceMonitor", "keygate")["metadata"]["namespace"],
        ns
    );
    let image = container(&all)["image"].as_str().unwrap();
    assert!(
        k["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == image),
        "kustomization.yaml sets the image {image}"
    );
}

/// Each example asks the auth listener where the Service keygate-authz is,
/// on its contract's route, and copies the identity and key-id headers.
#[test]
#[ignore = "needs kubernetes-validate: run through scripts/test.sh"]
fn the_examples_ask_the_auth_listener_on_their_routes() {
    let docs = all_documents();
    let k = documents(&["deploy/kubernetes/kustomization.yaml".to_owned()]);
    let ns = k[0].doc["namespace"].as_str().unwrap().to_owned();
    let svc = find(&docs, "Service", "keygate-authz");
    let port = svc["spec"]["ports"][0]["port"].as_u64().unwrap();
    let host = format!("keygate-authz.{ns}.svc");
    let identity = str_at(
        &config_table(&config_text(&docs)),
        "auth",
        "identity_header",
    )
    .unwrap_or("X-Remote-User")
    .to_lowercase();
    let lower = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_lowercase())
            .collect()
    };
    let copies_both = |headers: Vec<String>| {
        headers.contains(&identity) && headers.contains(&"x-keygate-key-id".to_owned())
    };

    let traefik = &find(&docs, "Middleware", "keygate")["spec"]["forwardAuth"];
    assert_eq!(
        traefik["address"],
        format!("https://{host}:{port}/authz/forward-auth")
    );
    // A regex taking every spelling of both names (`-`, `_` or `.` between
    // the words, any case): Traefik passes X-Remote_User on, which CGI and
    // PHP read as X-Remote-User.
    let regex = traefik["authResponseHeadersRegex"]
        .as_str()
        .unwrap()
        .to_lowercase();
    let every_spelling = |name: &str| format!("^{}$", name.replace('-', "[-_.]"));
    assert!(
        regex.starts_with("(?i)")
            && regex.contains(&every_spelling(&identity))
            && regex.contains(&every_spelling("x-keygate-key-id")),
        "{regex}"
    );
    let clear =
        &find(&docs, "Middleware", "keygate-clear")["spec"]["headers"]["customRequestHeaders"];
    let clear = clear.as_object().unwrap();
    assert!(
        clear
            .iter()
            .any(|(k, v)| k.to_lowercase() == identity && v == ""),
        "{clear:?}"
    );

    let envoy = &find(&docs, "SecurityPolicy", "keygate")["spec"]["extAuth"];
    let backend = &envoy["http"]["backendRefs"][0];
    assert_eq!(backend["name"], "keygate-authz");
    assert_eq!(backend["namespace"], ns.as_str());
    assert_eq!(backend["port"].as_u64(), Some(port));
    assert_eq!(envoy["http"]["path"], "/authz/ext-authz");
    assert!(copies_both(lower(&envoy["http"]["headersToBackend"])));
    // Envoy sends keygate only Host, Method, Path, Content-Length and
    // Authorization unless told: the apikey credential and the client.
    let to_keygate = lower(&envoy["headersToExtAuth"]);
    for needed in ["apikey", "x-forwarded-for"] {
        assert!(
            to_keygate.contains(&needed.to_owned()),
            "headersToExtAuth: {needed}"
        );
    }
    assert_eq!(envoy["failOpen"], false);
    let tls = find(&docs, "BackendTLSPolicy", "keygate-authz");
    assert_eq!(tls["metadata"]["namespace"], ns.as_str());
    assert_eq!(tls["spec"]["validation"]["hostname"], host.as_str());

    let nginx = docs
        .iter()
        .find(|d| d.file.ends_with("ingress-nginx.yaml") && d.doc["kind"] == "Ingress")
        .unwrap();
    let notes = &nginx.doc["metadata"]["annotations"];
    // keygate never sees a client's copy of the identity header (the SSO
    // user with [login] method = "trusted_header" trusting the ingress).
    let set_for_auth = notes["nginx.ingress.kubernetes.io/auth-proxy-set-headers"]
        .as_str()
        .unwrap();
    let (cm_ns, cm_name) = set_for_auth.split_once('/').unwrap();
    let cleared = find(&docs, "ConfigMap", cm_name);
    assert_eq!(cleared["metadata"]["namespace"], cm_ns);
    let data = cleared["data"].as_object().unwrap();
    assert!(
        data.iter()
            .any(|(k, v)| k.to_lowercase() == identity && v == ""),
        "{data:?}"
    );
    assert_eq!(
        notes["nginx.ingress.kubernetes.io/auth-url"],
        format!("https://{host}.cluster.local:{port}/authz/auth-request")
    );
    let copied: Vec<String> = notes["nginx.ingress.kubernetes.io/auth-response-headers"]
        .as_str()
        .unwrap()
        .split(',')
        .map(|h| h.trim().to_lowercase())
        .collect();
    assert!(copies_both(copied));
    // An auth cache would keep a revoked key working for minutes.
    assert!(notes
        .get("nginx.ingress.kubernetes.io/auth-cache-key")
        .is_none());
}
