//! A real proxy in front of a backend, asking keygate's auth listener about
//! each request: nginx (`auth_request`), Caddy (`forward_auth`), Traefik
//! (ForwardAuth) or Envoy (HTTP `ext_authz`), each on a free loopback port
//! with the example configuration shipped in deploy/ (filled in the way
//! each proxy fills in its own: envsubst for nginx, environment
//! placeholders for Caddy, Go templates for Traefik; Envoy's static
//! bootstrap has none, so its example addresses are replaced), plus what
//! the test itself needs (ports, a private folder, no outside calls).
//! Killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::gateway::TestGateway;
use super::redis::free_port;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
    Traefik,
    Envoy,
}

pub struct Front {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    /// Its configuration, logs and state.
    _dir: tempfile::TempDir,
}

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

// === impl Kind ===

impl Kind {
    /// Whether keygate's auth listener should speak TLS to this proxy (the
    /// shipped examples: nginx, Traefik and Envoy verify keygate's
    /// certificate, Caddy asks over plain HTTP on loopback).
    pub fn tls(self) -> bool {
        self != Kind::Caddy
    }
}

// === impl Front ===

impl Front {
    /// `kind` on a free port, asking `gw`'s auth listener, forwarding to `app`.
    pub fn start(kind: Kind, gw: &TestGateway, app: &str) -> Front {
        (0..5)
            .find_map(|_| Front::spawn(kind, gw, app, free_port()))
            .unwrap_or_else(|| panic!("{kind:?} did not start"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    fn spawn(kind: Kind, gw: &TestGateway, app: &str, port: u16) -> Option<Front> {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("keygate-ca.pem");
        std::fs::write(&ca, gw.ca.pem()).unwrap();
        let authz = gw.authz_url("");
        assert_eq!(
            authz.starts_with("https://"),
            kind.tls(),
            "the auth listener's TLS does not fit {kind:?}'s example"
        );
        let listen = format!("127.0.0.1:{port}");
        let cmd = match kind {
            Kind::Nginx => nginx(dir.path(), &listen, app, &authz, &ca),
            Kind::Caddy => caddy(dir.path(), &listen, app, &authz),
            Kind::Traefik => traefik(dir.path(), &listen, app, &authz, &ca),
            Kind::Envoy => envoy(dir.path(), port, app, &authz, &ca),
        };
        let child = spawn_logged(cmd, &dir.path().join("proxy.log"));
        let addr: SocketAddr = listen.parse().unwrap();
        let child = await_listening(child, addr, &dir.path().join("proxy.log"))?;
        Some(Front {
            kind,
            addr,
            child,
            _dir: dir,
        })
    }

    /// Wait until the proxy routes requests (Traefik listens before its
    /// file provider's routes are in): a request gets keygate's 401 or the
    /// app's 200, not the proxy's own 404 or 502.
    pub async fn ready(&self) {
        let url = self.url("/front-ready");
        super::eventually(
            &format!("{:?} routes requests", self.kind),
            250,
            Duration::from_millis(40),
            || async {
                let status = super::curl(&[&url]).await.status;
                matches!(status, 200 | 401).then_some(())
            },
        )
        .await;
    }

    /// What the proxy logged, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("proxy.log")).unwrap_or_default()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// deploy/nginx/keygate.conf with its `${...}` filled in, inside an
/// nginx.conf of the test's own (foreground, its folder, no system paths).
fn nginx(dir: &Path, listen: &str, app: &str, authz: &str, ca: &Path) -> Command {
    let template = std::fs::read_to_string(deploy("nginx/keygate.conf")).unwrap();
    let site = [
        ("LISTEN", listen),
        ("APP", app),
        ("KEYGATE_AUTHZ", authz),
        // The test certificate's name (an IP would not be checked by name).
        ("KEYGATE_AUTHZ_NAME", "localhost"),
        ("KEYGATE_CA", &ca.display().to_string()),
    ]
    .iter()
    .fold(template, |t, (k, v)| t.replace(&format!("${{{k}}}"), v));
    let unfilled = site
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && l.contains("${"));
    assert!(unfilled.is_none(), "left unfilled: {unfilled:?}");
    std::fs::write(dir.join("keygate.conf"), site).unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        "daemon off;\n\
         # One process: the kill on drop leaves no orphaned worker behind.\n\
         master_process off;\npid nginx.pid;\nerror_log stderr warn;\n\
         events { worker_connections 512; }\n\
         http {\n  access_log off;\n  client_body_temp_path tmp/body;\n  proxy_temp_path tmp/proxy;\n\
         \x20 fastcgi_temp_path tmp/fastcgi;\n  uwsgi_temp_path tmp/uwsgi;\n  scgi_temp_path tmp/scgi;\n\
         \x20 include keygate.conf;\n}\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let mut cmd = Command::new(program("nginx", &["/usr/sbin/nginx"]));
    cmd.arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .args(["-e", "stderr"]);
    cmd
}

/// deploy/caddy/Caddyfile, imported after the test's global options.
fn caddy(dir: &Path, listen: &str, app: &str, authz: &str) -> Command {
    let conf = dir.join("Caddyfile");
    std::fs::write(
        &conf,
        format!(
            "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {}\n}}\n\
             import {}\n",
            dir.join("data").display(),
            deploy("caddy/Caddyfile").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(program("caddy", &["/usr/bin/caddy"]));
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&conf)
        .env("KEYGATE_SITE", format!("http://{listen}"))
        .env("KEYGATE_AUTHZ", authz)
        .env("APP", app.trim_start_matches("http://"))
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("XDG_DATA_HOME", dir);
    cmd
}

/// deploy/traefik/keygate.yml as the file provider's, one entry point.
fn traefik(dir: &Path, listen: &str, app: &str, authz: &str, ca: &Path) -> Command {
    let mut cmd = Command::new(venv_program("traefik-venv", "traefik"));
    cmd.arg(format!("--entryPoints.web.address={listen}"))
        .arg(format!(
            "--providers.file.filename={}",
            deploy("traefik/keygate.yml").display()
        ))
        .args([
            "--providers.file.watch=false",
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
            "--log.level=WARN",
        ])
        .env("KEYGATE_AUTHZ", authz.trim_end_matches('/'))
        .env("KEYGATE_CA", ca)
        .env("APP", app)
        .current_dir(dir);
    cmd
}

/// deploy/envoy/envoy.yaml with its example addresses replaced: each must
/// be found exactly once, so an edit of the example cannot slip past.
fn envoy(dir: &Path, port: u16, app: &str, authz: &str, ca: &Path) -> Command {
    let bin = venv_program("envoy-venv", "envoy");
    let app = app.trim_start_matches("http://");
    let (app_host, app_port) = app.rsplit_once(':').expect("the app's URL has a port");
    let authz = authz.trim_end_matches('/');
    let authz_port = authz.rsplit_once(':').expect("a port").1;
    let example = std::fs::read_to_string(deploy("envoy/envoy.yaml")).unwrap();
    let config = [
        (
            "address: 0.0.0.0, port_value: 8080",
            format!("address: 127.0.0.1, port_value: {port}"),
        ),
        (
            "address: 127.0.0.1, port_value: 8081",
            format!("address: {app_host}, port_value: {app_port}"),
        ),
        (
            "address: keygate.example.org, port_value: 9444",
            format!("address: 127.0.0.1, port_value: {authz_port}"),
        ),
        (
            "uri: https://keygate.example.org:9444",
            format!("uri: {authz}"),
        ),
        ("/etc/envoy/keygate-ca.pem", ca.display().to_string()),
        // The test certificate's name, for SNI and the name check.
        ("sni: keygate.example.org", "sni: localhost".to_owned()),
        ("exact: keygate.example.org", "exact: localhost".to_owned()),
    ]
    .iter()
    .fold(example, |text, (from, to)| {
        assert_eq!(text.matches(from).count(), 1, "{from:?} in envoy.yaml");
        text.replace(from, to)
    });
    let conf = dir.join("envoy.yaml");
    std::fs::write(&conf, config).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(&conf)
        // Several Envoys run at once: no shared memory for hot restarts.
        .args([
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "-l",
            "warning",
        ])
        .current_dir(dir);
    cmd
}

/// `program` installed by scripts/test.sh into the venv `venv` under target/.
fn venv_program(venv: &str, program: &str) -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(venv)
        .join("bin")
        .join(program);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test.sh",
        bin.display()
    );
    bin
}

/// `name` on the PATH, else the first of `fallbacks` that exists.
fn program(name: &str, fallbacks: &[&str]) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.exists())
        })
        .unwrap_or_default();
    on_path
        .or_else(|| fallbacks.iter().map(PathBuf::from).find(|p| p.exists()))
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/test.sh"))
}

fn spawn_logged(mut cmd: Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// The child once `addr` accepts connections (15 s at most); `None` (and
/// the child reaped) if it exited first, e.g. because the port was taken.
fn await_listening(mut child: Child, addr: SocketAddr, log: &Path) -> Option<Child> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            eprintln!("proxy exited ({status}) before listening:\n{text}");
            return None;
        }
        // Listening, and still ours (not another process on a taken port).
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
            && matches!(child.try_wait(), Ok(None))
        {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "the proxy did not listen on {addr} within 15 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}
