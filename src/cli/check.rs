//! `keygate check -c FILE`.

use super::{CliError, ConfigArg};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
}

/// Problems are errors (exit 2); warnings are printed and the exit is 0.
pub fn run(args: Args) -> Result<(), CliError> {
    let config = crate::config::load(&args.config.path)?;
    for w in crate::config::warnings(&config) {
        eprintln!("warning: {w}");
    }
    println!("{}: configuration is valid", args.config.path.display());
    Ok(())
}
