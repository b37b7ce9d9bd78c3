//! `keygate serve -c FILE`: run until SIGTERM/SIGINT; on SIGHUP reopen the
//! log file and reload TLS and tokens.

use super::{CliError, ConfigArg, LogFormatArg};
use crate::app::{self, TlsMode};
use crate::keyring::Keyring;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Log format; overrides [log] format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let config = crate::config::load(&args.config.path)?;
    let format = args.log_format.map(Into::into).unwrap_or(config.log.format);
    let output = crate::telemetry::Output {
        file: config.log.file.as_deref(),
        buffer_lines: config.log.buffer_lines,
    };
    // Dropped at the end of `run`: what is queued is written before exit.
    let logging = crate::telemetry::init(format, &config.log.level, output).map_err(|e| {
        let file = config
            .log
            .file
            .as_deref()
            .unwrap_or(std::path::Path::new(""));
        CliError::Runtime(format!("log.file: cannot open {}: {e}", file.display()))
    })?;
    crate::fd_limit::raise(config.limits.max_connections);
    for w in crate::config::warnings(&config) {
        tracing::warn!("{w}");
    }
    super::runtime(config.runtime.workers)?.block_on(async {
        // First thing, before waiting on the store (up to store.timeout):
        // SIGHUP's default action ends the process, and a logrotate or
        // certbot hook may send one during a start. One that comes before
        // "keygate listening" waits in the stream and reloads after it.
        let mut hups = crate::signal::reloads();
        let keyring = Keyring::open(&config)
            .map_err(|e| CliError::Runtime(format!("{e}; tried {}", config.store.shown())))?;
        // A store that is down at start is an outage like any other: serve
        // (503 for keys, /readyz 503) and keep asking, rather than exit.
        if let Err(e) = keyring.ready().await {
            tracing::warn!(error = %e, tried = %config.store.shown(), "the key store does not answer; requests get 503 until it does");
            tokio::spawn(until_ready(keyring.clone()));
        }
        let running = app::start(&config, TlsMode::FromConfig, &keyring)
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        logging.watch_drops(keyring.metrics().clone());
        let shutdown = crate::signal::shutdown();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = hups.recv() => {
                    logging.reopen();
                    running.reload();
                }
            }
        }
        running.shutdown().await;
        // The last line: once it is in the log, the queue before it is too.
        tracing::info!("keygate stopped");
        Ok(())
    })
}

/// Retry the store's start (the first layout's move) until it answers.
async fn until_ready(keyring: Keyring) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if keyring.ready().await.is_ok() {
            tracing::info!("the key store answers");
            return;
        }
    }
}
