//! `factorwatch okta register`: the event hook created or brought up to date, activated, and
//! verified by Okta against the running service; `--dry-run` prints the plan only.

use anyhow::Context;

use super::{Target, types_by_route};
use crate::hook_lifecycle::challenge;
use crate::hook_lifecycle::coverage::{MAX_HOOK_EVENT_TYPES, Route, rule_coverage, wanted_types};
use crate::hook_lifecycle::diff::{HookChange, hook_changes};
use crate::hook_lifecycle::{duplicates, find_hook};
use crate::okta_api::{EventHook, HookDefinition, OktaClient, scopes};

/// What `register` was asked.
pub struct Options {
    /// The public URL of the hook path.
    pub url: String,
    /// The hook's name, when not the org's `hook_name`.
    pub name: Option<String>,
    /// Change nothing.
    pub dry_run: bool,
}

/// Registers the hook of `target`'s org as `options` say, printing each step.
pub async fn run(target: &Target, options: Options) -> anyhow::Result<()> {
    let wanted = definition(target, &options)?;
    let scopes: &[&str] = if options.dry_run {
        &[scopes::EVENT_HOOKS_READ]
    } else {
        &[scopes::EVENT_HOOKS_READ, scopes::EVENT_HOOKS_MANAGE]
    };
    let client = target.client(scopes)?;
    println!(
        "org {} ({}): hook {:?} at {}",
        target.org_name(),
        target.api()?.org_url,
        wanted.name,
        wanted.uri
    );
    let hooks = client.list_event_hooks().await?;
    for extra in duplicates(&hooks, &wanted.name) {
        println!(
            "warning: another hook is also named {:?} ({}): delete it in the Admin Console, or \
             it delivers every event twice",
            extra.name, extra.id
        );
    }
    let current = find_hook(&hooks, &wanted.name);
    let changes = hook_changes(current, &wanted);
    print_plan(current, &wanted, &changes, options.dry_run);
    if !options.dry_run {
        let hook = apply(&client, current, &wanted, &changes).await?;
        verify(&client, &hook, &wanted).await?;
    }
    print_reconciliation_only(target);
    Ok(())
}

/// The hook this deployment wants: the rules' event types, the org's header and first secret.
fn definition(target: &Target, options: &Options) -> anyhow::Result<HookDefinition> {
    let pipeline = &target.pipeline;
    check_url(&options.url, &pipeline.hook_path)?;
    let event_types: Vec<String> = wanted_types(&target.rules).into_iter().collect();
    anyhow::ensure!(
        !event_types.is_empty(),
        "no loaded rule matches an event type a hook can deliver: nothing to subscribe"
    );
    anyhow::ensure!(
        event_types.len() <= MAX_HOOK_EVENT_TYPES,
        "the rules need {} hook-eligible event types, more than Okta's {MAX_HOOK_EVENT_TYPES} \
         per hook: narrow the rules' eventType selections",
        event_types.len()
    );
    let secret = pipeline
        .secrets
        .read()
        .with_context(|| format!("{}'s secrets", pipeline.label()))?
        .swap_remove(0)
        .secret;
    Ok(HookDefinition {
        name: options
            .name
            .clone()
            .unwrap_or_else(|| pipeline.hook_name.clone()),
        uri: options.url.clone(),
        event_types,
        auth_header: pipeline.auth_header.clone(),
        secret,
    })
}

/// `url` must be an absolute http(s) URL ending in the org's hook path.
fn check_url(url: &str, hook_path: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url)
        .with_context(|| format!("--url {url:?} is not a URL: give https://HOST{hook_path}"))?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "https" | "http"),
        "--url {url}: Okta calls hooks over HTTPS; give https://HOST{hook_path}"
    );
    anyhow::ensure!(
        parsed.path().trim_end_matches('/') == hook_path.trim_end_matches('/'),
        "--url {url}: its path {} is not this org's hook path {hook_path}: Okta would deliver \
         where factorwatch does not listen",
        parsed.path()
    );
    Ok(())
}

fn print_plan(
    current: Option<&EventHook>,
    wanted: &HookDefinition,
    changes: &[HookChange],
    dry_run: bool,
) {
    let verb = if dry_run { "would change" } else { "changes" };
    match current {
        None => println!(
            "no hook named {:?}: {} create it with {} event types:",
            wanted.name,
            if dry_run { "would" } else { "will" },
            wanted.event_types.len()
        ),
        Some(hook) if changes.is_empty() => println!(
            "hook {} is up to date ({}, {}): nothing to change",
            hook.id, hook.status, hook.verification_status
        ),
        Some(hook) => println!("hook {} ({}): {verb}:", hook.id, hook.status),
    }
    if current.is_none() {
        for event_type in &wanted.event_types {
            println!("  + {event_type}");
        }
    } else {
        for change in changes {
            println!("  {change}");
        }
    }
    if dry_run {
        println!("dry run: nothing changed in Okta");
    }
}

/// Makes `changes` in Okta; returns the hook as Okta then holds it.
async fn apply(
    client: &OktaClient,
    current: Option<&EventHook>,
    wanted: &HookDefinition,
    changes: &[HookChange],
) -> anyhow::Result<EventHook> {
    let mut hook = match current {
        None => {
            let created = client.create_event_hook(wanted).await?;
            println!("created hook {}", created.id);
            created
        }
        Some(current) if changes.iter().any(HookChange::needs_replace) => {
            let replaced = client.replace_event_hook(&current.id, wanted).await?;
            println!("updated hook {}", replaced.id);
            replaced
        }
        // Okta never shows the secret an unverified hook holds: send ours, so that the
        // verification below tests this configuration.
        Some(current) if current.verification_status != "VERIFIED" => {
            let replaced = client.replace_event_hook(&current.id, wanted).await?;
            println!(
                "updated hook {} with this configuration's secret (it was {})",
                replaced.id, current.verification_status
            );
            replaced
        }
        Some(current) => current.clone(),
    };
    if hook.status != "ACTIVE" {
        hook = client.activate_event_hook(&hook.id).await?;
        println!("activated hook {}", hook.id);
    }
    Ok(hook)
}

/// Has Okta verify `hook` unless it is verified already; on a failure, says why by playing the
/// challenge itself.
async fn verify(
    client: &OktaClient,
    hook: &EventHook,
    wanted: &HookDefinition,
) -> anyhow::Result<()> {
    if hook.verification_status == "VERIFIED" {
        println!("verified: yes (already)");
        return Ok(());
    }
    let ours = challenge::play(&wanted.uri, &wanted.auth_header, &wanted.secret).await;
    match (client.verify_event_hook(&hook.id).await, ours) {
        (Ok(verified), _) => {
            println!(
                "verified: Okta called {} and factorwatch answered its challenge ({})",
                wanted.uri, verified.verification_status
            );
            Ok(())
        }
        (Err(okta), Err(why)) => {
            anyhow::bail!("Okta could not verify the hook ({okta}).\nwhy: {why}")
        }
        (Err(okta), Ok(())) => anyhow::bail!(
            "Okta could not verify the hook ({okta}).\nwhy: factorwatch answers the challenge at \
             {} from here, so Okta cannot reach that URL: it must be public, over HTTPS with a \
             certificate Okta trusts, and not blocked by an allow-list (server.allowed_sources \
             must admit Okta's egress ranges)",
            wanted.uri
        ),
    }
}

/// The types no hook can deliver, and whether the poller reads them.
fn print_reconciliation_only(target: &Target) {
    let coverage = rule_coverage(&target.rules, None, true);
    let only = types_by_route(&coverage, Route::ReconciliationOnly);
    if only.is_empty() {
        return;
    }
    let reading = if target.reconciling() {
        "the System Log poller reads them"
    } else {
        "enable [okta.reconcile] so the poller reads them, or these rules never fire"
    };
    println!("reconciliation only (no event hook can deliver them; {reading}):");
    for (event_type, titles) in only {
        println!("  {event_type:<40} {}", titles.join("; "));
    }
}
