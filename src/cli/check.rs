//! `keygate check -c FILE`.

use super::{CliError, ConfigArg};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
}

pub fn run(args: Args) -> Result<(), CliError> {
    crate::config::load(&args.config.path)?;
    println!("{}: configuration is valid", args.config.path.display());
    Ok(())
}
