//! `factorwatch okta register-ssf`: registers factorwatch with the org's Shared Signals receiver
//! as a Security Events Provider (its issuer and the public address of its JWKS), so that the
//! `ssf_*` actions' tokens are accepted. Prints the plan; changes Okta only with `--apply`.

use anyhow::Context;

use super::Target;
use crate::okta_api::{SecurityEventsProvider, scopes};
use crate::respond::SsfConfig;

/// What `register-ssf` was asked.
pub struct Options {
    /// The provider's name in Okta.
    pub name: String,
    /// Register (otherwise only print the plan).
    pub apply: bool,
}

/// Registers the provider `[ssf]` describes with `target`'s org, unless one with the same issuer
/// is there already.
pub async fn run(target: &Target, options: Options) -> anyhow::Result<()> {
    let ssf = target.config.ssf.as_ref().context(
        "no [ssf] is configured: set issuer and signing_key_file first (docs/responses.md)",
    )?;
    let scopes: &[&str] = if options.apply {
        &[
            scopes::SECURITY_EVENTS_PROVIDERS_READ,
            scopes::SECURITY_EVENTS_PROVIDERS_MANAGE,
        ]
    } else {
        &[scopes::SECURITY_EVENTS_PROVIDERS_READ]
    };
    let client = target.client(scopes)?;
    println!(
        "org {} ({}): provider {:?}, issuer {}, keys at {}",
        target.org_name(),
        target.api()?.org_url,
        options.name,
        ssf.issuer,
        ssf.jwks_url()
    );
    let providers = client.list_security_events_providers().await?;
    if let Some(existing) = same_issuer(&providers, ssf) {
        print_existing(existing, ssf);
        return Ok(());
    }
    if !options.apply {
        println!(
            "would register it (POST /api/v1/security-events-providers); run again with --apply \
             to do so"
        );
        return Ok(());
    }
    let created = client
        .create_security_events_provider(&options.name, &ssf.issuer, &ssf.jwks_url())
        .await?;
    println!(
        "registered: provider {} ({}), status {}",
        created.id, created.name, created.status
    );
    println!(
        "Okta fetches the keys from {} to verify each token: it must be reachable from the \
         internet over HTTPS",
        ssf.jwks_url()
    );
    Ok(())
}

/// The provider already registered with `ssf`'s issuer, if any.
fn same_issuer<'a>(
    providers: &'a [SecurityEventsProvider],
    ssf: &SsfConfig,
) -> Option<&'a SecurityEventsProvider> {
    providers
        .iter()
        .find(|p| p.settings.issuer.as_deref() == Some(ssf.issuer.as_str()))
}

fn print_existing(existing: &SecurityEventsProvider, ssf: &SsfConfig) {
    println!(
        "already registered: provider {} ({}), status {}",
        existing.id, existing.name, existing.status
    );
    let jwks_url = ssf.jwks_url();
    if existing.settings.jwks_url.as_deref() != Some(jwks_url.as_str()) {
        println!(
            "warning: it reads keys from {:?}, not {jwks_url}: change it in the Admin Console \
             (Security ▸ Device integrations ▸ Receive shared signals) or delete it and run this \
             again",
            existing
                .settings
                .jwks_url
                .as_deref()
                .unwrap_or("(a well-known URL)")
        );
    }
    if existing.status != "ACTIVE" {
        println!(
            "warning: it is {}: activate it in the Admin Console",
            existing.status
        );
    }
}
