//! A real SAML 2.0 pair on loopback, from Debian's packages: SimpleSAMLphp
//! as the IdP (Apache prefork + mod_php, static user `alice`) and Apache
//! mod_auth_mellon as the SP, reverse-proxying to keygate the way a site puts
//! SAML in front of an application.
//!
//! Each is its own Apache instance (`apache2 -f CONF -k start`): own
//! ServerRoot, config, PidFile, logs and port under one temp dir; never the
//! system service. Apache's children run as `www-data`, so that dir is made
//! traversable and its files readable by everyone (nothing in it is a secret
//! beyond the test). Both are stopped on drop.
//!
//! The SP:
//! - protects `/.keygate/` (`MellonEnable auth`: sign in at the IdP first)
//!   and only looks at the session elsewhere (`MellonEnable info`);
//! - drops any client `X-Remote-User` and sets it to the SAML NameID when
//!   there is a session (the `(null)` trap: `env=MELLON_NAME_ID`);
//! - connects to keygate from 127.0.0.2 (`ProxySourceAddress`), so keygate
//!   can trust that address and not the 127.0.0.1 every direct client has;
//! - sets `MELLON_DISABLE_SAMESITE` (its cookie-test cookie is
//!   `SameSite=None` without `Secure`, which Chromium drops over http).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The IdP's one user.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "wonderland";

/// The address Apache's proxy connects to keygate from: trust only this one.
pub const PROXY_SOURCE: &str = "127.0.0.2";

const APACHE: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";
const SIMPLESAMLPHP: &str = "/usr/share/simplesamlphp";

pub struct SamlRig {
    pub idp: Apache,
    pub sp: Apache,
    /// Holds both instances' files; removed after they stop (fields drop in order).
    _dir: tempfile::TempDir,
}

/// One running Apache instance.
pub struct Apache {
    pub port: u16,
    conf: PathBuf,
    error_log: PathBuf,
}

impl SamlRig {
    /// Start the IdP, then the SP on `sp_port` (see [`free_port`]) in front of
    /// `keygate_port` (HTTPS, whose certificate `ca_pem` signed). Blocking:
    /// call from `spawn_blocking`.
    pub fn start(sp_port: u16, keygate_port: u16, ca_pem: &str) -> SamlRig {
        for path in [APACHE, SIMPLESAMLPHP, "/usr/sbin/mellon_create_metadata"] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the SAML test needs apache2, simplesamlphp, \
                 libapache2-mod-php and libapache2-mod-auth-mellon (scripts/test.sh installs them)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        world_readable(dir.path());
        let idp = start_idp(dir.path());
        let sp = start_sp(dir.path(), &idp, sp_port, keygate_port, ca_pem);
        SamlRig { idp, sp, _dir: dir }
    }

    /// A URL on the SP (what the browser opens).
    pub fn sp_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.sp.port)
    }

    /// Both instances' error logs, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- IdP error.log:\n{}\n--- SP error.log:\n{}",
            self.idp.log(),
            self.sp.log()
        )
    }

    /// The IdP's base URL (its login page lives under it).
    pub fn idp_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.idp.port)
    }
}

// === impl Apache ===

impl Apache {
    /// Write `conf_text(port)` and start it on `port`, or on a free port,
    /// retrying a few if another process takes the one picked between probe
    /// and bind.
    fn start(
        dir: &Path,
        name: &str,
        port: Option<u16>,
        ready_path: &str,
        conf_text: impl Fn(u16, &Path) -> String,
    ) -> Apache {
        let root = dir.join(name);
        std::fs::create_dir_all(root.join("run")).unwrap();
        world_readable(&root);
        let mut last_log = String::new();
        let tries = if port.is_some() { 1 } else { 5 };
        for _ in 0..tries {
            let port = port.unwrap_or_else(free_port);
            let conf = root.join("apache2.conf");
            let error_log = root.join("error.log");
            std::fs::write(&conf, conf_text(port, &root)).unwrap();
            world_readable(&conf);
            let out = Command::new(APACHE)
                .arg("-d")
                .arg(&root)
                .arg("-f")
                .arg(&conf)
                .args(["-k", "start"])
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .expect("run apache2");
            let apache = Apache {
                port,
                conf,
                error_log,
            };
            if out.status.success() && apache.wait_ready(ready_path) {
                return apache;
            }
            last_log = format!(
                "apache2 -k start: {}{}\nerror.log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                apache.log()
            );
            // `apache` drops here: stopped if it had started at all.
        }
        panic!("{name} Apache did not start:\n{last_log}");
    }

    /// Bounded readiness check: any HTTP answer on `path` within 20 s.
    fn wait_ready(&self, path: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if http_get(self.port, path).is_some() {
                return true;
            }
            if self.pid().is_some() && !self.pid_alive() {
                return false; // started, then died: the log says why
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// The instance's error log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    fn pid(&self) -> Option<u32> {
        let pidfile = self.conf.parent()?.join("run/apache2.pid");
        std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
    }

    fn pid_alive(&self) -> bool {
        self.pid().is_some_and(alive)
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        let Some(pid) = self.pid() else { return };
        // `apache2 -k stop` signals only the parent, which then reaps its
        // children in a loop of growing sleeps (seconds per instance). Apache
        // detaches into its own session, so its pid is its process group: TERM
        // to the group stops parent and children at once; KILL if that fails.
        let group = format!("-{pid}");
        let signal = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        signal("-KILL");
    }
}

/// A live process (not gone, not a zombie waiting to be reaped).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// The lines every instance shares: its modules, own root, pid file, logs, user.
fn common_conf(root: &Path, port: u16, modules: &[&str]) -> String {
    let mut s = String::new();
    for m in modules {
        let file = if *m == "php" {
            php_module()
        } else {
            format!("{MODULES}/mod_{m}.so")
        };
        s.push_str(&format!("LoadModule {m}_module {file}\n"));
    }
    s.push_str(&format!(
        r#"ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{root}/run/apache2.pid"
DefaultRuntimeDir "{root}/run"
Mutex file:{root}/run default
ErrorLog "{root}/error.log"
LogLevel warn
User www-data
Group www-data
"#,
        root = root.display()
    ));
    if modules.contains(&"mime") {
        s.push_str("TypesConfig /etc/mime.types\n");
    }
    if modules.contains(&"mpm_prefork") {
        // Few children: the machine is small and a test signs in once.
        s.push_str("StartServers 2\nMinSpareServers 1\nMaxSpareServers 4\n");
    }
    s
}

/// `libphp8.2.so` or whichever PHP version Debian ships.
fn php_module() -> String {
    std::fs::read_dir(MODULES)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libphp") && n.ends_with(".so"))
        .map(|n| format!("{MODULES}/{n}"))
        .expect("libapache2-mod-php is installed (its libphp*.so)")
}

// === the IdP ===

fn start_idp(dir: &Path) -> Apache {
    let cfg = dir.join("idp-config");
    let meta = cfg.join("metadata");
    let certs = cfg.join("cert");
    let var = dir.join("idp-var");
    for d in [&cfg, &meta, &certs] {
        std::fs::create_dir_all(d).unwrap();
    }
    for d in ["tmp", "data", "sessions", "cache"] {
        let p = var.join(d);
        std::fs::create_dir_all(&p).unwrap();
        // Written by www-data: sticky and world-writable, like /tmp.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    world_readable(&var);
    // The IdP's signing key: RSA, as SimpleSAMLphp's default rsa-sha256 needs.
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=keygate test IdP"])
        .arg("-keyout")
        .arg(certs.join("idp.key"))
        .arg("-out")
        .arg(certs.join("idp.crt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(ok.success(), "openssl made the IdP key");
    // The SP's metadata is only known once the SP's port is; SimpleSAMLphp
    // reads this file on each request, so it is filled in before the SP starts
    // (and holds no entity until then).
    std::fs::write(
        dir.join("sp-metadata.xml"),
        r#"<?xml version="1.0"?><md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"/>"#,
    )
    .unwrap();

    let sp_xml = dir.join("sp-metadata.xml");
    let idp = Apache::start(
        dir,
        "idp",
        None,
        "/simplesaml/saml2/idp/metadata.php",
        |port, root| {
            std::fs::write(
                cfg.join("config.php"),
                idp_config_php(port, &certs, &meta, &var, &sp_xml),
            )
            .unwrap();
            std::fs::write(cfg.join("authsources.php"), AUTHSOURCES_PHP).unwrap();
            std::fs::write(meta.join("saml20-idp-hosted.php"), IDP_HOSTED_PHP).unwrap();
            world_readable(&cfg);
            let mut s = common_conf(
                root,
                port,
                &[
                    "mpm_prefork",
                    "authz_core",
                    "alias",
                    "dir",
                    "env",
                    "mime",
                    "php",
                ],
            );
            s.push_str(&format!(
                r#"
DocumentRoot "{www}"
Alias /simplesaml "{www}"
DirectoryIndex index.php
<Directory "{www}">
    Require all granted
    SetEnv SIMPLESAMLPHP_CONFIG_DIR "{cfg}"
</Directory>
<FilesMatch "\.php$">
    SetHandler application/x-httpd-php
</FilesMatch>
"#,
                www = format!("{SIMPLESAMLPHP}/www"),
                cfg = cfg.display()
            ));
            s
        },
    );
    idp
}

fn idp_config_php(port: u16, certs: &Path, meta: &Path, var: &Path, sp_xml: &Path) -> String {
    format!(
        r#"<?php
// Debian's defaults, then what this test IdP needs.
require '/etc/simplesamlphp/config.php';
$config = array_merge($config, [
    'baseurlpath' => 'http://127.0.0.1:{port}/simplesaml/',
    'certdir' => '{certs}/',
    'metadatadir' => '{meta}/',
    'tempdir' => '{var}/tmp',
    'datadir' => '{var}/data/',
    'cachedir' => '{var}/cache',
    'loggingdir' => '{var}/tmp/',
    'logging.handler' => 'errorlog',
    'logging.level' => SimpleSAML\Logger::WARNING,
    'secretsalt' => 'keygate-test-idp-salt-0123456789',
    'auth.adminpassword' => 'keygate-test-admin',
    'technicalcontact_email' => 'test@example.org',
    'timezone' => 'UTC',
    'enable.saml20-idp' => true,
    'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true],
    'session.phpsession.savepath' => '{var}/sessions',
    // Debian's default is SameSite=None, which Chromium drops without Secure (over http).
    'session.cookie.secure' => false,
    'session.cookie.samesite' => 'Lax',
    'language.cookie.samesite' => 'Lax',
    'metadata.sources' => [
        ['type' => 'flatfile'],
        ['type' => 'xml', 'file' => '{sp_xml}'],
    ],
]);
"#,
        certs = certs.display(),
        meta = meta.display(),
        var = var.display(),
        sp_xml = sp_xml.display(),
    )
}

const AUTHSOURCES_PHP: &str = r#"<?php
$config = [
    'admin' => ['core:AdminPassword'],
    'example-userpass' => [
        'exampleauth:UserPass',
        'alice:wonderland' => ['uid' => ['alice'], 'mail' => ['alice@example.org']],
    ],
];
"#;

/// NameID `alice` (format unspecified, from `uid`) instead of the transient
/// one mellon would otherwise get; signed logout so mellon accepts it.
const IDP_HOSTED_PHP: &str = r#"<?php
$metadata['__DYNAMIC:1__'] = [
    'host' => '__DEFAULT__',
    'privatekey' => 'idp.key',
    'certificate' => 'idp.crt',
    'auth' => 'example-userpass',
    'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
    'simplesaml.nameidattribute' => 'uid',
    'sign.logout' => true,
];
"#;

// === the SP ===

fn start_sp(dir: &Path, idp: &Apache, sp_port: u16, keygate_port: u16, ca_pem: &str) -> Apache {
    let sp_dir = dir.join("sp-keys");
    std::fs::create_dir_all(&sp_dir).unwrap();
    let idp_xml = sp_dir.join("idp.xml");
    let (status, xml) = http_get(idp.port, "/simplesaml/saml2/idp/metadata.php")
        .expect("the IdP answers its metadata URL");
    assert!(
        status == 200 && xml.contains("IDPSSODescriptor"),
        "IdP metadata ({status}):\n{xml}\n{}",
        idp.log()
    );
    std::fs::write(&idp_xml, xml).unwrap();
    let ca = sp_dir.join("keygate-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    world_readable(&sp_dir);

    let sp_xml_for_idp = dir.join("sp-metadata.xml");
    Apache::start(
        dir,
        "sp",
        Some(sp_port),
        "/mellon/metadata",
        |port, root| {
            // Keys and metadata for this port's entity ID.
            let base = format!("http://127.0.0.1:{port}/mellon");
            let out = Command::new("/usr/sbin/mellon_create_metadata")
                .arg(format!("{base}/metadata"))
                .arg(&base)
                .current_dir(&sp_dir)
                .output()
                .expect("run mellon_create_metadata");
            assert!(
                out.status.success(),
                "mellon_create_metadata: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stem = format!("http_127.0.0.1_{port}_mellon_metadata");
            let file = |ext: &str| sp_dir.join(format!("{stem}.{ext}"));
            std::fs::copy(file("xml"), &sp_xml_for_idp).unwrap();
            world_readable(&sp_dir);
            world_readable(&sp_xml_for_idp);
            let mut s = common_conf(
                root,
                port,
                &[
                    "mpm_event",
                    "authz_core",
                    "authn_core",
                    "authz_user",
                    "auth_mellon",
                    "env",
                    "setenvif",
                    "headers",
                    "proxy",
                    "proxy_http",
                    "ssl",
                    "socache_shmcb",
                ],
            );
            s.push_str(&format!(
                r#"
SetEnvIf Request_URI "^" MELLON_DISABLE_SAMESITE=1
<Location />
    Require all granted
    AuthType Mellon
    MellonEnable info
    MellonEndpointPath /mellon
    MellonSPPrivateKeyFile "{key}"
    MellonSPCertFile "{cert}"
    MellonSPMetadataFile "{xml}"
    MellonIdPMetadataFile "{idp_xml}"
    MellonSecureCookie Off
    MellonUser NAME_ID
</Location>
<Location /.keygate/>
    AuthType Mellon
    MellonEnable auth
    Require valid-user
</Location>

RequestHeader unset X-Remote-User
RequestHeader set X-Remote-User "%{{MELLON_NAME_ID}}e" env=MELLON_NAME_ID

SSLProxyEngine on
SSLProxyVerify require
SSLProxyCACertificateFile "{ca}"
SSLProxyCheckPeerName off
ProxySourceAddress {PROXY_SOURCE}
ProxyPass /mellon !
ProxyPass / https://127.0.0.1:{keygate_port}/
ProxyPassReverse / https://127.0.0.1:{keygate_port}/
"#,
                key = file("key").display(),
                cert = file("cert").display(),
                xml = file("xml").display(),
                idp_xml = idp_xml.display(),
                ca = ca.display(),
            ));
            s
        },
    )
}

// === helpers ===

/// A port that was free a moment ago (Apache needs a number, not port 0;
/// and keygate's `login.public_url` names the SP's port before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on 127.0.0.1:port with a 2 s cap: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Make `path` readable (and traversable, for folders) by Apache's `www-data`
/// children, and every folder of it under the temp root too.
fn world_readable(path: &Path) {
    let meta = std::fs::metadata(path).unwrap();
    let mode = meta.permissions().mode();
    let want = if meta.is_dir() {
        mode | 0o755
    } else {
        mode | 0o644
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(want)).unwrap();
    if meta.is_dir() {
        for e in std::fs::read_dir(path).unwrap().flatten() {
            world_readable(&e.path());
        }
    }
}
