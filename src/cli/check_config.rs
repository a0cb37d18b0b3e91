//! `factorwatch check-config`: validates the configuration (the secret, every org's rules) and
//! prints it with secrets redacted.

use std::path::Path;

use crate::config::Config;
use crate::detect::RuleSet;

/// Loads and validates the configuration at `path` (or the defaults and environment), prints it
/// as TOML on stdout and the verdict on stderr.
pub fn run(path: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    config.require_secret()?;
    for pipeline in config.pipelines() {
        RuleSet::load(&pipeline.rules).map_err(|err| pipeline.scoped(err))?;
    }
    print!("{}", config.to_redacted_toml()?);
    eprintln!("configuration is valid");
    Ok(())
}
