//! `keygate dev`: everything a first look needs, made at start, nothing on disk.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{CliError, LogFormatArg};
use crate::app::{self, TlsMode};
use crate::audit::Actor;
use crate::config::LogFormat;
use crate::keyring::{Claim, Keyring, Ttl};
use crate::keys::Scope;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the HTTPS listener.
    #[arg(long, default_value = "127.0.0.1:8443")]
    addr: SocketAddr,
    /// Address of the admin API (HTTPS, same certificate).
    #[arg(long, default_value = "127.0.0.1:9443")]
    admin_addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
}

/// The problems of the configuration `dev` writes come from its flags:
/// named as the operator typed them, not as TOML keys they never wrote.
fn in_flags(mut errors: crate::config::ConfigErrors) -> crate::config::ConfigErrors {
    let flags = |text: &str| {
        text.replace("listen.addr", "--addr")
            .replace("admin.addr", "--admin-addr")
    };
    for problem in &mut errors.0 {
        problem.key = flags(&problem.key);
        problem.message = flags(&problem.message);
    }
    errors
}

pub fn run(args: Args) -> Result<(), CliError> {
    let format = args.log_format.map_or(LogFormat::Human, Into::into);
    let _logging = crate::telemetry::init(format, "info", crate::telemetry::Output::STDERR)
        .map_err(|e| CliError::Runtime(format!("logging: {e}")))?;
    super::runtime(0)?.block_on(async {
        let runtime_err =
            |what: &str, e: &dyn std::fmt::Display| CliError::Runtime(format!("{what}: {e}"));
        let tls =
            self_signed().map_err(|e| runtime_err("cannot make a self-signed certificate", &e))?;
        let echo = crate::echo::spawn(([127, 0, 0, 1], 0).into())
            .await
            .map_err(|e| runtime_err("cannot start the echo upstream", &e))?;
        let admin_token = crate::random::hex::<32>();
        let token_file = TokenFile::write(&admin_token)
            .map_err(|e| runtime_err("cannot write the admin token", &e))?;
        let mut config = crate::config::parse(&format!(
            r#"
            [listen]
            addr = "{addr}"
            plaintext = true   # TLS comes from the self-signed certificate below
            [upstream]
            url = "http://{echo}"
            [store]
            kind = "memory"
            [admin]
            addr = "{admin_addr}"
            token_file = "{token_file}"
            "#,
            addr = args.addr,
            admin_addr = args.admin_addr,
            token_file = token_file.0.display(),
        ))
        .map_err(in_flags)?;
        // The self-service page works at once: everyone is the demo user. This
        // login has no TOML spelling, so no configuration file can turn it on.
        config.login = Some(crate::config::Login {
            method: crate::config::LoginMethod::Dev {
                user: "demo".into(),
            },
            public_url: None,
            timeout: std::time::Duration::from_secs(5),
            session_ttl: std::time::Duration::from_secs(8 * 3600),
        });
        // And the demo user is an admin: the console works at once too.
        config.admin.users = vec!["demo".into()];
        let keyring = Keyring::from_config(&config, Claim::IfProven)
            .await
            .map_err(|e| runtime_err("cannot open the memory store", &e))?;
        let demo = keyring
            .mint(
                &Actor::cli(),
                "demo",
                Ttl::Default,
                "keygate dev demo key",
                Scope::Full,
            )
            .await
            .map_err(|e| runtime_err("cannot mint the demo key", &e))?;
        let running = app::start(&config, TlsMode::Fixed(tls), &keyring)
            .await
            .map_err(|e| match e {
                // dev's addresses come from its flags, not from a file.
                app::StartError::Bind { key, .. } => {
                    CliError::Runtime(e.to_string().replacen(key, flag_of(key), 1))
                }
                e => runtime_err("cannot start", &e),
            })?;
        print_banner(
            running.main_addr,
            running.admin_addr,
            demo.key.expose(),
            &admin_token,
        );
        crate::signal::shutdown().await;
        running.shutdown().await;
        Ok(())
    })
}

/// The admin token file of this dev run: owner-only, removed when dev stops.
struct TokenFile(std::path::PathBuf);

impl TokenFile {
    fn write(token: &str) -> std::io::Result<TokenFile> {
        TokenFile::write_in(&std::env::temp_dir(), token)
    }

    fn write_in(dir: &std::path::Path, token: &str) -> std::io::Result<TokenFile> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // A name nobody can guess, and a file that must be new: the folder is
        // everyone's, and a planted file or link at a guessable name (the
        // pid) would get the token or choose it (it is read again on SIGHUP).
        let path = dir.join(format!(
            "keygate-dev-admin-token-{}-{}",
            std::process::id(),
            crate::random::hex::<8>()
        ));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        writeln!(f, "dev:{token}")?;
        Ok(TokenFile(path))
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The flag of `keygate dev` that sets what `key` sets in a file.
fn flag_of(key: &str) -> &'static str {
    match key {
        "admin.addr" => "--admin-addr",
        _ => "--addr",
    }
}

fn self_signed() -> Result<std::sync::Arc<rustls::ServerConfig>, String> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| e.to_string())?;
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    crate::tls::from_der(vec![cert.cert.der().clone()], key).map_err(|e| e.to_string())
}

/// The address a client on this host dials for a listener on `addr`: a
/// wildcard (`0.0.0.0`, `[::]`) is no address to connect to (browsers
/// refuse it), so the loopback of its family stands in.
fn dialable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn print_banner(addr: SocketAddr, admin: SocketAddr, key: &str, admin_token: &str) {
    let (bound, addr, admin) = (addr, dialable(addr), dialable(admin));
    let url = format!("https://{addr}");
    let admin_url = format!("https://{admin}");
    let host = addr.ip();
    let every = if bound.ip().is_unspecified() {
        format!("\n            (listening on {bound}: every interface, this host's name or address from elsewhere)")
    } else {
        String::new()
    };
    println!(
        r#"
==================================================================
  keygate dev: FOR TRYING KEYGATE OUT ONLY, NEVER FOR PRODUCTION
  (self-signed certificate, in-memory store, built-in echo upstream)
==================================================================

  gateway:  {url}   (TLS, self-signed: curl needs -k){every}
  upstream: a built-in echo server that shows the headers it received

  demo key (user "demo", valid 30 days, gone when keygate dev stops):
    {key}

  Try:
    curl -k -u 'apikey:{key}' {url}/hello
      (200: the echo shows x-remote-user: demo, and no Authorization header)
    curl -k {url}/hello
      (401: no key)

  Self-service page (you are signed in as "demo"; generate, copy, revoke keys):
    {url}/.keygate/keys
  Admin console ("demo" is an admin: settings, every key, the audit log):
    {url}/.keygate/admin

  Or keep the key in ~/.netrc, where every Basic-auth client finds it:
    machine {host} login apikey password {key}
  then:
    curl -k --netrc {url}/hello

  Admin API ({admin_url}), token:
    {admin_token}
  e.g. mint a key for alice, list keys, revoke all of alice's:
    curl -k -H 'Authorization: Bearer {admin_token}' -H 'Content-Type: application/json' \
      -d '{{"user":"alice","ttl":"1d"}}' {admin_url}/v1/keys
    curl -k -H 'Authorization: Bearer {admin_token}' {admin_url}/v1/keys
    curl -k -H 'Authorization: Bearer {admin_token}' -H 'Content-Type: application/json' \
      -d '{{"users":["alice"]}}' {admin_url}/v1/revoke

  Stop with Ctrl-C.
"#
    );
}

#[cfg(test)]
mod tests {
    use super::TokenFile;

    /// The temporary folder is everyone's: a file or link planted where the
    /// token file goes must neither receive the admin token (its owner
    /// would read it) nor choose the tokens keygate accepts.
    #[test]
    fn the_admin_token_file_is_new_private_and_never_a_planted_one() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "someone's file\n").unwrap();
        let planted = tmp
            .path()
            .join(format!("keygate-dev-admin-token-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let a = TokenFile::write_in(tmp.path(), "first-token-0123456789").unwrap();
        let b = TokenFile::write_in(tmp.path(), "second-token-0123456789").unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "someone's file\n",
            "the token went through a planted link"
        );
        assert_ne!(a.0, b.0, "two instances share one token file");
        for (file, token) in [
            (&a, "first-token-0123456789"),
            (&b, "second-token-0123456789"),
        ] {
            let meta = std::fs::symlink_metadata(&file.0).unwrap();
            assert!(meta.file_type().is_file(), "{:?}", file.0);
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            assert_eq!(
                std::fs::read_to_string(&file.0).unwrap(),
                format!("dev:{token}\n")
            );
        }
    }
}
