//! `keygate serve -c FILE`: run until SIGTERM/SIGINT; on SIGHUP reopen the
//! log file and reload TLS and tokens.

use super::{CliError, ConfigArg, LogFormatArg};
use crate::app::{self, TlsMode};
use crate::keyring::{Claim, Keyring};
use crate::store::StoreError;

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
        // One whose keys were made with another secret is no outage: stop.
        let (wrong_secret, mut found_wrong_secret) = tokio::sync::mpsc::channel(1);
        match keyring.ready(Claim::IfProven).await {
            Ok(()) => {}
            Err(e @ StoreError::OtherSecret(_)) => return Err(CliError::Runtime(e.to_string())),
            Err(e) => {
                if keyring.ping().await.is_ok() {
                    tracing::warn!(error = %e, tried = %config.store.shown(), "the key store answers but its start (moving earlier key layouts, checking its secret) failed; /readyz is 503 until a retry succeeds");
                } else {
                    tracing::warn!(error = %e, tried = %config.store.shown(), "the key store does not answer; requests get 503 until it does");
                }
                tokio::spawn(until_ready(keyring.clone(), wrong_secret));
            }
        }
        let running = app::start(&config, TlsMode::FromConfig, &keyring)
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        logging.watch(keyring.metrics().clone());
        let shutdown = crate::signal::shutdown();
        tokio::pin!(shutdown);
        let mut stopped_for = None;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(e) = found_wrong_secret.recv() => {
                    tracing::error!(error = %e, "stopping: the key store's keys were made with another secret");
                    stopped_for = Some(e);
                    break;
                }
                _ = hups.recv() => {
                    logging.reopen();
                    running.reload();
                }
            }
        }
        running.shutdown().await;
        // The last line: once it is in the log, the queue before it is too.
        tracing::info!("keygate stopped");
        match stopped_for {
            Some(e) => Err(CliError::Runtime(e.to_string())),
            None => Ok(()),
        }
    })
}

/// Retry the store's start (the earlier layouts' move, the secret's
/// check) until it is done; /readyz is 503 until then, and a store of
/// another secret is sent to `wrong_secret`. A failed try is logged once a
/// minute, with the count since: the store may answer and the move still
/// fail (a grant missing from the Redis ACL), which nothing else would say.
async fn until_ready(keyring: Keyring, wrong_secret: tokio::sync::mpsc::Sender<StoreError>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut failures = crate::telemetry::throttle::Throttled::each_minute();
    // The first try's failure was just logged by `run`.
    failures.due(std::time::Instant::now());
    loop {
        tick.tick().await;
        match keyring.ready(Claim::IfProven).await {
            Ok(()) => {
                tracing::info!("the key store answers");
                return;
            }
            Err(e @ StoreError::OtherSecret(_)) => {
                let _ = wrong_secret.send(e).await;
                return;
            }
            Err(e) => {
                if let Some(unlogged) = failures.due(std::time::Instant::now()) {
                    tracing::warn!(error = %e, unlogged, "the key store's start (moving earlier key layouts, checking its secret) failed again; /readyz is 503 until it is done, retried every second");
                }
            }
        }
    }
}
