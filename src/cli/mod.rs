//! The `keygate` command line: one module per command, one error type whose
//! variants decide the exit code (0 ok, 1 runtime failure, 2 usage/config).

mod check;
mod dev;
mod init;
mod keys;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{ConfigErrors, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "keygate",
    version,
    about = "TLS-terminating reverse proxy that gives a web application API keys"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One-command trial: self-signed TLS, in-memory store, built-in echo upstream. Never for production.
    Dev(dev::Args),
    /// Run the gateway from a configuration file.
    Serve(serve::Args),
    /// Validate a configuration file: exit 0, or print every problem with its TOML key and exit 2.
    Check(check::Args),
    /// Write a production configuration, secret, admin token and (optionally) a self-signed certificate into a folder.
    Init(init::Args),
    /// Create, list, rotate and revoke API keys in the configured store.
    Keys(keys::Args),
}

/// `--log-format` on commands that run servers; overrides `[log] format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(f: LogFormatArg) -> Self {
        match f {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The configuration file (TOML).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    path: PathBuf,
}

/// Why a command failed; decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Runtime(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }
}

/// Parse the arguments (clap exits 2 on usage errors), run, map to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev(args) => dev::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => check::run(args),
        Command::Init(args) => init::run(args),
        Command::Keys(args) => keys::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keygate: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The tokio runtime: `workers = 1` is a single-threaded runtime (no
/// cross-thread handoff on the hot path); 0 lets tokio pick (one per core,
/// or `TOKIO_WORKER_THREADS`).
fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, CliError> {
    if workers == 0 {
        worker_threads_env()?;
    }
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if workers > 1 {
            b.worker_threads(workers);
        }
        b
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))
}

/// tokio reads `TOKIO_WORKER_THREADS` itself and panics (a backtrace, exit
/// 101) on a value that is not a whole number from 1: said here instead.
fn worker_threads_env() -> Result<(), CliError> {
    const NAME: &str = "TOKIO_WORKER_THREADS";
    let Some(value) = std::env::var_os(NAME) else {
        return Ok(());
    };
    match value.to_str().map(str::parse::<usize>) {
        Some(Ok(n)) if n > 0 => Ok(()),
        _ => Err(CliError::Usage(format!(
            "{NAME}: {value:?} is not a whole number from 1 (the worker threads while \
             [runtime] workers = 0); set a number or unset it"
        ))),
    }
}
