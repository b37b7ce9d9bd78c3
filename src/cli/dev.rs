//! `keygate dev`: everything a first look needs, made at start, nothing on disk.

use std::net::SocketAddr;

use super::{CliError, LogFormatArg};
use crate::app::{self, TlsMode};
use crate::config::LogFormat;
use crate::keyring::{Keyring, Ttl};
use crate::keys::Scope;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the HTTPS listener.
    #[arg(long, default_value = "127.0.0.1:8443")]
    addr: SocketAddr,
    /// Log format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
}

pub fn run(args: Args) -> Result<(), CliError> {
    crate::telemetry::init(args.log_format.map_or(LogFormat::Human, Into::into), "info");
    super::runtime(0)?.block_on(async {
        let runtime_err =
            |what: &str, e: &dyn std::fmt::Display| CliError::Runtime(format!("{what}: {e}"));
        let tls =
            self_signed().map_err(|e| runtime_err("cannot make a self-signed certificate", &e))?;
        let echo = crate::echo::spawn(([127, 0, 0, 1], 0).into())
            .await
            .map_err(|e| runtime_err("cannot start the echo upstream", &e))?;
        let config = crate::config::parse(&format!(
            r#"
            [listen]
            addr = "{addr}"
            plaintext = true   # TLS comes from the self-signed certificate below
            [upstream]
            url = "http://{echo}"
            [store]
            kind = "memory"
            "#,
            addr = args.addr,
        ))?;
        let keyring = Keyring::from_config(&config)
            .await
            .map_err(|e| runtime_err("cannot open the memory store", &e))?;
        let demo = keyring
            .create("demo", Ttl::Default, "keygate dev demo key", Scope::Full)
            .await
            .map_err(|e| runtime_err("cannot mint the demo key", &e))?;
        let running = app::start(&config, TlsMode::Fixed(tls), &keyring)
            .await
            .map_err(|e| runtime_err("cannot start", &e))?;
        print_banner(running.main_addr, demo.key.expose());
        crate::signal::shutdown().await;
        running.shutdown().await;
        Ok(())
    })
}

fn self_signed() -> Result<std::sync::Arc<rustls::ServerConfig>, String> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| e.to_string())?;
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    crate::tls::from_der(vec![cert.cert.der().clone()], key).map_err(|e| e.to_string())
}

fn print_banner(addr: SocketAddr, key: &str) {
    let url = format!("https://{addr}");
    let host = addr.ip();
    println!(
        r#"
==================================================================
  keygate dev: FOR TRYING KEYGATE OUT ONLY, NEVER FOR PRODUCTION
  (self-signed certificate, in-memory store, built-in echo upstream)
==================================================================

  gateway:  {url}   (TLS, self-signed: curl needs -k)
  upstream: a built-in echo server that shows the headers it received

  demo key (user "demo", valid 30 days, gone when keygate dev stops):
    {key}

  Try:
    curl -k -u 'apikey:{key}' {url}/hello
      (200: the echo shows x-remote-user: demo, and no Authorization header)
    curl -k {url}/hello
      (401: no key)

  Or keep the key in ~/.netrc, where every Basic-auth client finds it:
    machine {host} login apikey password {key}
  then:
    curl -k --netrc {url}/hello

  Stop with Ctrl-C.
"#
    );
}
