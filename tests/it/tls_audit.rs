//! TLS as a scanner and a client certificate see it: both listeners offer
//! TLS 1.2 and 1.3 only, forward-secret AEAD suites only, no compression and
//! no renegotiation (sslyze, from PyPI, installed by scripts/test.sh into
//! target/sslyze-venv); `[admin] client_ca` makes the admin listener
//! require a client certificate that CA issued.

use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::gateway::{builder, TestGateway};
use crate::support::tls::{Ca, Leaf};
use crate::support::upstream::Upstream;
use crate::support::within;

const TLS12: &rustls::SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;

/// A gateway whose admin listener requires certificates of `clients`.
async fn with_client_ca(dir: &std::path::Path, clients: &Ca) -> (Upstream, TestGateway) {
    let up = Upstream::start().await;
    let ca_file = dir.join("client-ca.pem");
    std::fs::write(&ca_file, clients.pem()).unwrap();
    let gw = builder(&up.url())
        .set("admin", &format!("client_ca = \"{}\"", ca_file.display()))
        .start()
        .await;
    (up, gw)
}

/// `GET /healthz` on the admin listener over a fresh TLS connection made
/// with `config`: the answer's head, or the error that ended it.
async fn admin_healthz(
    gw: &TestGateway,
    config: Arc<rustls::ClientConfig>,
) -> Result<String, String> {
    let tcp = TcpStream::connect(gw.admin_addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let exchange = async {
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    match within(10, "admin answer", exchange).await {
        Ok(out) => Ok(String::from_utf8_lossy(&out)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn with_client_ca_the_admin_listener_requires_a_certificate_that_ca_issued() {
    let dir = tempfile::tempdir().unwrap();
    let clients = Ca::new("admin clients CA");
    let (_up, gw) = with_client_ca(dir.path(), &clients).await;
    let good: Leaf = clients.client_leaf("ops-laptop");
    let stranger = Ca::new("another CA").client_leaf("ops-laptop");

    for versions in [&[TLS13][..], &[TLS12][..]] {
        let v = format!("{versions:?}");
        let with_cert = admin_healthz(&gw, gw.ca.client_config_with(Some(&good), versions)).await;
        assert_eq!(with_cert.as_deref(), Ok("HTTP/1.1 200 OK"), "{v}");

        let without = admin_healthz(&gw, gw.ca.client_config_with(None, versions)).await;
        let err = without.expect_err("answered without a client certificate");
        assert!(
            err.ends_with("received fatal alert: CertificateRequired"),
            "{v}: {err}"
        );
        // TLS 1.2 fails in the handshake; in TLS 1.3 the client has sent its
        // last handshake message before the server judges its certificate,
        // so the refusal arrives as the first thing it reads.
        assert_eq!(
            err.starts_with("handshake:"),
            versions == [TLS12],
            "{v}: {err}"
        );

        let foreign = admin_healthz(&gw, gw.ca.client_config_with(Some(&stranger), versions)).await;
        let err = foreign.expect_err("answered a certificate of another CA");
        assert!(
            err.ends_with("received fatal alert: UnknownCA"),
            "{v}: {err}"
        );
    }

    // The main listener asks no client certificate.
    let main = crate::support::client::get(&crate::support::client::h1(&gw.ca), &gw.url("/")).await;
    assert_eq!(main.status, http::StatusCode::OK);
}

/// sslyze's scan of one listener, as JSON (`client`: the certificate the
/// admin listener requires).
async fn sslyze(port: u16, client: Option<(&std::path::Path, &std::path::Path)>) -> Value {
    let bin =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sslyze-venv/bin/sslyze");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test.sh",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scan.json");
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args([
        "--sslv2",
        "--sslv3",
        "--tlsv1",
        "--tlsv1_1",
        "--tlsv1_2",
        "--tlsv1_3",
        "--compression",
        "--reneg",
        "--heartbleed",
        "--openssl_ccs",
        "--fallback",
        "--mozilla_config",
        "disable",
        "--quiet",
    ])
    .arg("--json_out")
    .arg(&out);
    if let Some((cert, key)) = client {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    cmd.arg(format!("localhost:{port}{{127.0.0.1}}"))
        .kill_on_drop(true);
    let done = within(120, "sslyze", cmd.output()).await.unwrap();
    assert!(
        done.status.success(),
        "sslyze failed: {}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let server = &report["server_scan_results"][0];
    assert_eq!(server["scan_status"], "COMPLETED", "{server}");
    server["scan_result"].clone()
}

/// What is wrong with one listener's TLS, by sslyze's scan.
fn audit(listener: &str, scan: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let result = |name: &str| {
        let r = &scan[name];
        assert_eq!(
            r["status"], "COMPLETED",
            "{listener}: {name} not scanned: {r}"
        );
        r["result"].clone()
    };
    for (name, wanted) in [
        ("ssl_2_0_cipher_suites", false),
        ("ssl_3_0_cipher_suites", false),
        ("tls_1_0_cipher_suites", false),
        ("tls_1_1_cipher_suites", false),
        ("tls_1_2_cipher_suites", true),
        ("tls_1_3_cipher_suites", true),
    ] {
        let r = result(name);
        if r["is_tls_version_supported"] != wanted {
            wrong.push(format!(
                "{listener}: {name}: supported = {}",
                r["is_tls_version_supported"]
            ));
        }
        for accepted in r["accepted_cipher_suites"].as_array().unwrap() {
            let suite = accepted["cipher_suite"]["name"].as_str().unwrap();
            // CBC (with SHA-1 or not) and static RSA key exchange are out:
            // AEAD suites with an ephemeral key exchange only.
            if suite.contains("_CBC_") || suite.ends_with("_SHA") {
                wrong.push(format!("{listener}: {name}: CBC/SHA-1 suite {suite}"));
            }
            let ephemeral = !accepted["ephemeral_key"].is_null()
                && (name == "tls_1_3_cipher_suites" || suite.starts_with("TLS_ECDHE_"));
            if !ephemeral {
                wrong.push(format!(
                    "{listener}: {name}: suite without forward secrecy {suite}"
                ));
            }
        }
    }
    if result("tls_compression")["supports_compression"] != false {
        wrong.push(format!("{listener}: TLS compression is supported"));
    }
    let reneg = result("session_renegotiation");
    if reneg["is_vulnerable_to_client_renegotiation_dos"] != false
        || reneg["client_renegotiations_success_count"] != 0
        || reneg["supports_secure_renegotiation"] != true
    {
        wrong.push(format!("{listener}: renegotiation: {reneg}"));
    }
    if result("heartbleed")["is_vulnerable_to_heartbleed"] != false {
        wrong.push(format!("{listener}: Heartbleed"));
    }
    if result("openssl_ccs_injection")["is_vulnerable_to_ccs_injection"] != false {
        wrong.push(format!("{listener}: CCS injection"));
    }
    if result("tls_fallback_scsv")["supports_fallback_scsv"] != true {
        wrong.push(format!("{listener}: no TLS_FALLBACK_SCSV"));
    }
    wrong
}

#[tokio::test]
#[ignore = "needs sslyze: run through scripts/test.sh"]
async fn sslyze_finds_only_tls_1_2_and_1_3_with_forward_secret_aead_suites_on_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let clients = Ca::new("admin clients CA");
    let (_up, gw) = with_client_ca(dir.path(), &clients).await;
    let (cert, key) = clients.client_leaf("scanner").write(dir.path());
    let main = sslyze(gw.addr.port(), None).await;
    let admin = sslyze(gw.admin_addr.port(), Some((&cert, &key))).await;
    let mut wrong = audit("main", &main);
    wrong.extend(audit("admin", &admin));
    // The audit can fail: the scan saw suites in both versions.
    for scan in [&main, &admin] {
        for v in ["tls_1_2_cipher_suites", "tls_1_3_cipher_suites"] {
            assert!(
                !scan[v]["result"]["accepted_cipher_suites"]
                    .as_array()
                    .unwrap()
                    .is_empty(),
                "{v}: no suite accepted"
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
