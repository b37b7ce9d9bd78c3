//! `keygate serve -c FILE`: run until SIGTERM/SIGINT, reload TLS on SIGHUP.

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
    crate::telemetry::init(format, &config.log.level);
    super::runtime(config.runtime.workers)?.block_on(async {
        let keyring = Keyring::from_config(&config)
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        let running = app::start(&config, TlsMode::FromConfig, &keyring)
            .await
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        let mut hups = crate::signal::reloads();
        let shutdown = crate::signal::shutdown();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = hups.recv() => running.reload(),
            }
        }
        running.shutdown().await;
        Ok(())
    })
}
