//! `factorwatch check-config`: runs the checks `serve` runs before it listens, reads one event of
//! each reconciling org's System Log, and prints the configuration with secrets redacted.

use std::path::Path;

use anyhow::bail;

use crate::app;
use crate::config::Config;

/// Loads the configuration at `path` (or the defaults and environment), runs [`app::preflight`]
/// on it (the secret, every org's rules and sinks, the TLS files, the Okta API keys) and
/// [`app::probe_okta`] (each org that reconciles reads its System Log once) and
/// [`app::probe_scopes`] (live context and each response get a token with their scopes), prints it
/// as TOML on stdout and the verdict on stderr.
pub async fn run(path: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    app::preflight(&config)?;
    let probes = app::probe_okta(&config).await?;
    print!("{}", config.to_redacted_toml()?);
    let mut failed = 0;
    for probe in &probes {
        match &probe.outcome {
            Ok(()) => eprintln!(
                "{}: the System Log of {} is readable; the poller asks for {}",
                probe.org,
                probe.org_url,
                probe.filter.as_deref().unwrap_or("every event")
            ),
            Err(err) => {
                failed += 1;
                eprintln!(
                    "{}: cannot read the System Log of {}: {err}",
                    probe.org, probe.org_url
                );
            }
        }
    }
    for probe in app::probe_scopes(&config).await {
        let scopes = probe.scopes.join(" ");
        match &probe.outcome {
            Some(Ok(())) => eprintln!(
                "{}: the app is granted {scopes} in {} for {}",
                probe.org, probe.org_url, probe.purpose
            ),
            None => eprintln!(
                "{}: {} through an API token: its admin's role decides what it may do (not \
                 checked; it needs the rights of {scopes})",
                probe.org, probe.purpose
            ),
            Some(Err(err)) => {
                failed += 1;
                eprintln!(
                    "{}: cannot get a token for {} in {}: {err}",
                    probe.org, probe.purpose, probe.org_url
                );
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} check(s) of the Okta API failed: the System Log, live context or a \
             response (see above)"
        );
    }
    eprintln!("configuration is valid");
    Ok(())
}
