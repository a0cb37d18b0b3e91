//! `factorwatch check-config`: runs the checks `serve` runs before it listens and prints the
//! configuration with secrets redacted.

use std::path::Path;

use crate::app;
use crate::config::Config;

/// Loads the configuration at `path` (or the defaults and environment), runs [`app::preflight`]
/// on it (the secret, every org's rules and sinks, the TLS files), prints it as TOML on stdout
/// and the verdict on stderr.
pub fn run(path: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    app::preflight(&config)?;
    print!("{}", config.to_redacted_toml()?);
    eprintln!("configuration is valid");
    Ok(())
}
