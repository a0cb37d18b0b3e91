//! `factorwatch okta doctor`: one screen that says whether the org is covered (the hook, each
//! rule's event types, the API credentials, the poller) and what to do where it is not. Exit
//! status 1 when something needs doing; `--json` for scripts.

use serde::Serialize;
use serde_json::Value;

use super::{Target, types_by_route};
use crate::admin::Selection;
use crate::admin::secrets::SecretsView;
use crate::cli::admin_client::AdminClient;
use crate::cli::healthcheck::{Listener, local_request};
use crate::hook_lifecycle::coverage::{Route, RuleCoverage, rule_coverage};
use crate::hook_lifecycle::{duplicates, find_hook};
use crate::okta_api::{EventHook, OktaApiError, OktaClient, scopes};

/// Everything `doctor` found.
#[derive(Debug, Serialize)]
struct Report {
    org: String,
    org_url: String,
    hook_name: String,
    /// The hook as Okta holds it; `None` when there is none of that name (or it could not be
    /// read: see `problems`).
    hook: Option<HookView>,
    rules: Vec<RuleCoverage>,
    credentials: Vec<ScopeCheck>,
    /// The poller's state, as the running service's `/readyz` shows it.
    poller: Value,
    /// The secrets the running service accepts and their last use (`GET /secrets` of its admin
    /// API); `None` when it could not be asked.
    secrets: Option<SecretsView>,
    /// What needs doing, each with the way to do it; empty when the org is covered.
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
struct HookView {
    id: String,
    status: String,
    verification_status: String,
    url: String,
    auth_header: Option<String>,
    event_types: usize,
}

/// Whether the API app is granted a scope.
#[derive(Debug, Serialize)]
struct ScopeCheck {
    scope: &'static str,
    /// `granted`, `missing`, or `not checked` (an API token: its admin's role decides).
    state: &'static str,
    detail: Option<String>,
}

/// Checks `target`'s org and prints the report; fails when a problem was found.
pub async fn run(target: &Target, json: bool) -> anyhow::Result<()> {
    let report = examine(target).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    anyhow::ensure!(
        report.problems.is_empty(),
        "{} problem(s): the org is not fully covered",
        report.problems.len()
    );
    Ok(())
}

async fn examine(target: &Target) -> anyhow::Result<Report> {
    let pipeline = &target.pipeline;
    let mut problems = Vec::new();
    let credentials = check_scopes(target, &mut problems).await?;
    let client = target.client(&[scopes::EVENT_HOOKS_READ])?;
    let hooks = match client.list_event_hooks().await {
        Ok(hooks) => Some(hooks),
        Err(err) => {
            // A missing scope is already among the problems.
            if !problems.contains(&err.to_string()) {
                problems.push(format!("the event hooks could not be read: {err}"));
            }
            None
        }
    };
    let hook = hooks
        .as_deref()
        .and_then(|hooks| find_hook(hooks, &pipeline.hook_name));
    if let Some(hooks) = &hooks {
        check_hook(target, hook, hooks, &mut problems);
    }
    let rules = rule_coverage(&target.rules, hook, target.reconciling());
    check_coverage(&rules, hooks.is_some(), &mut problems);
    let poller = poller_state(target, &mut problems).await;
    let secrets = secrets_state(target, &mut problems).await;
    Ok(Report {
        org: target.org_name().to_owned(),
        org_url: target.api()?.org_url.clone(),
        hook_name: pipeline.hook_name.clone(),
        hook: hook.map(view),
        rules,
        credentials,
        poller,
        secrets,
        problems,
    })
}

fn view(hook: &EventHook) -> HookView {
    HookView {
        id: hook.id.clone(),
        status: hook.status.clone(),
        verification_status: hook.verification_status.clone(),
        url: hook.channel.config.uri.clone(),
        auth_header: hook.auth_header().map(str::to_owned),
        event_types: hook.events.items.len(),
    }
}

/// The scopes the enabled features need, each asked for on its own (OAuth); for an API token,
/// nothing to ask.
async fn check_scopes(
    target: &Target,
    problems: &mut Vec<String>,
) -> anyhow::Result<Vec<ScopeCheck>> {
    let mut needed = vec![scopes::EVENT_HOOKS_READ, scopes::EVENT_HOOKS_MANAGE];
    if target.reconciling() {
        needed.insert(0, scopes::LOGS_READ);
    }
    if target.pipeline.context.enabled {
        needed.extend([scopes::USERS_READ, scopes::ROLES_READ]);
    }
    let mut checks = Vec::new();
    for scope in needed {
        let client = target.client(&[scope])?;
        let (state, detail) = scope_state(&client).await;
        if let Some(detail) = detail.as_ref().filter(|_| state != "granted") {
            problems.push(detail.clone());
        }
        checks.push(ScopeCheck {
            scope,
            state,
            detail,
        });
    }
    Ok(checks)
}

async fn scope_state(client: &OktaClient) -> (&'static str, Option<String>) {
    if !client.uses_oauth() {
        let why = "an API token: its admin's role decides what it may do";
        return ("not checked", Some(why.to_owned()));
    }
    match client.check_credentials().await {
        Ok(()) => ("granted", None),
        Err(err @ OktaApiError::MissingScope { .. }) => ("missing", Some(err.to_string())),
        Err(err) => ("error", Some(err.to_string())),
    }
}

fn check_hook(
    target: &Target,
    hook: Option<&EventHook>,
    hooks: &[EventHook],
    problems: &mut Vec<String>,
) {
    let pipeline = &target.pipeline;
    let register =
        "run `factorwatch okta register --url https://HOST".to_owned() + &pipeline.hook_path + "`";
    let Some(hook) = hook else {
        problems.push(format!(
            "no event hook named {:?}: {register}",
            pipeline.hook_name
        ));
        return;
    };
    if hook.status != "ACTIVE" {
        problems.push(format!(
            "the hook is {}: Okta delivers nothing (someone deactivated it?); {register} to \
             activate it",
            hook.status
        ));
    }
    if hook.verification_status != "VERIFIED" {
        problems.push(format!(
            "the hook is {}: Okta delivers nothing until it is verified; {register}",
            hook.verification_status
        ));
    }
    let path = reqwest::Url::parse(&hook.channel.config.uri)
        .map(|url| url.path().to_owned())
        .unwrap_or_default();
    if path.trim_end_matches('/') != pipeline.hook_path.trim_end_matches('/') {
        problems.push(format!(
            "the hook calls {} but this org's hook path is {}: {register}",
            hook.channel.config.uri, pipeline.hook_path
        ));
    }
    if !hook
        .auth_header()
        .is_some_and(|h| h.eq_ignore_ascii_case(&pipeline.auth_header))
    {
        problems.push(format!(
            "the hook sends its secret in {} but factorwatch reads {}: {register}",
            hook.auth_header().unwrap_or("no header"),
            pipeline.auth_header
        ));
    }
    for extra in duplicates(hooks, &pipeline.hook_name) {
        problems.push(format!(
            "another hook is also named {:?} ({}): delete it in the Admin Console",
            extra.name, extra.id
        ));
    }
}

/// The types that arrive late or not at all; the hook's gaps only when the hook was read.
fn check_coverage(rules: &[RuleCoverage], hook_read: bool, problems: &mut Vec<String>) {
    let missing = types_by_route(rules, Route::HookMissing);
    if hook_read && !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|(t, _)| t.as_str()).collect();
        problems.push(format!(
            "the hook does not deliver {} event type(s) the rules need ({}): they arrive only \
             when the poller reads them; run `factorwatch okta register` to subscribe them",
            names.len(),
            names.join(", ")
        ));
    }
    let lost = types_by_route(rules, Route::NotCovered);
    if !lost.is_empty() {
        let names: Vec<&str> = lost.iter().map(|(t, _)| t.as_str()).collect();
        problems.push(format!(
            "nothing brings {} ({} event type(s) the rules need): enable [okta.reconcile] \
             (docs/okta-setup.md#10-reconcile-with-the-system-log)",
            names.join(", "),
            names.len()
        ));
    }
}

/// The poller's view in the running service's detailed `/readyz` (on `server.ops_listen`).
async fn poller_state(target: &Target, problems: &mut Vec<String>) -> Value {
    if !target.reconciling() {
        return Value::String("off ([okta.reconcile] enabled = false)".into());
    }
    let answer = match local_request(&target.config, Listener::Ops, "/readyz").await {
        Ok((_, response)) => response.json::<Value>().await.ok(),
        Err(err) => {
            problems.push(format!(
                "factorwatch is not running here ({err:#}): start it"
            ));
            return Value::Null;
        }
    };
    let readiness = answer.unwrap_or_default();
    let view = match &target.pipeline.org {
        None => readiness["reconcile"].clone(),
        Some(name) => readiness["orgs"][name]["reconcile"].clone(),
    };
    if let Some(error) = view["last_error"].as_str() {
        problems.push(format!("the System Log poller fails: {error}"));
    }
    let hook = match &target.pipeline.org {
        None => &readiness["hook"],
        Some(name) => &readiness["orgs"][name]["hook"],
    };
    if hook["silent"] == true {
        problems.push(format!(
            "the hook is silent: {} event(s) it should have delivered since {} did not come \
             (last delivery {}); check its status here and Okta's delivery errors \
             (docs/okta-setup.md#when-the-hook-goes-silent)",
            hook["missed_events"], hook["first_missed"], hook["last_delivery"]
        ));
    }
    view
}

/// The running service's accepted secrets; a problem when Okta's last delivery used one it no
/// longer accepts.
async fn secrets_state(target: &Target, problems: &mut Vec<String>) -> Option<SecretsView> {
    let selection = Selection {
        org: target.pipeline.org.clone(),
        ..Selection::default()
    };
    let admin = AdminClient::new(&target.config).ok()?;
    let view: SecretsView = (admin.call(reqwest::Method::GET, "/secrets", Some(&selection)))
        .await
        .ok()?;
    if view
        .last_delivery
        .as_ref()
        .is_some_and(|last| !last.accepted)
    {
        problems.push(
            "Okta's last delivery used a secret this service no longer accepts: it refuses \
             Okta now; add the secret back, or send Okta an accepted one with `factorwatch okta \
             rotate-secret`"
                .to_owned(),
        );
    }
    Some(view)
}

fn print_secrets(secrets: Option<&SecretsView>) {
    let Some(view) = secrets else {
        println!("secrets: unknown (the admin API did not answer)");
        return;
    };
    println!("secrets accepted (fingerprint, source, last delivery on this replica):");
    for secret in &view.secrets {
        let last = secret.last_delivery.as_deref().unwrap_or("-");
        println!(
            "  {}  {:<40} {last}",
            secret.fingerprint,
            secret.source.to_string()
        );
    }
    match &view.last_delivery {
        Some(last) if view.secrets.len() > 1 => println!(
            "  Okta sends {}: a rotation is under way; `factorwatch okta rotate-secret --finish` \
             drops the others",
            last.fingerprint
        ),
        Some(last) => println!("  Okta sends {}", last.fingerprint),
        None => println!("  no delivery seen since the service started"),
    }
}

fn print_report(report: &Report) {
    println!("org {} ({})", report.org, report.org_url);
    match &report.hook {
        Some(hook) => {
            println!(
                "hook {:?} {}: {}, {}, {} event types",
                report.hook_name, hook.id, hook.status, hook.verification_status, hook.event_types
            );
            println!("  url          {}", hook.url);
            println!(
                "  auth header  {}",
                hook.auth_header.as_deref().unwrap_or("(none)")
            );
        }
        None => println!("hook {:?}: none found", report.hook_name),
    }
    println!("rules (event type: how it arrives):");
    for rule in &report.rules {
        let mark = if rule.has_gap() { "!" } else { " " };
        println!("{mark} {}", rule.title);
        if rule.any_type {
            println!("      any event type: whatever the hook and the poller bring");
        }
        for needed in &rule.types {
            println!(
                "      {:<52} {}",
                needed.event_type,
                route_text(needed.route)
            );
        }
    }
    println!("API credentials:");
    for check in &report.credentials {
        let detail = check.detail.as_deref().unwrap_or_default();
        let line = format!("  {:<24} {:<12} {detail}", check.scope, check.state);
        println!("{}", line.trim_end());
    }
    println!("poller: {}", poller_text(&report.poller));
    print_secrets(report.secrets.as_ref());
    if report.problems.is_empty() {
        println!("covered: yes");
    } else {
        println!("covered: no, {} problem(s):", report.problems.len());
        for problem in &report.problems {
            println!("  - {problem}");
        }
    }
}

fn route_text(route: Route) -> &'static str {
    match route {
        Route::Hook => "hook",
        Route::ReconciliationOnly => "reconciliation only",
        Route::MadeByPoller => "made by the poller",
        Route::HookMissing => "NOT in the hook (reconciliation, late)",
        Route::NotCovered => "NOT COVERED",
    }
}

fn poller_text(poller: &Value) -> String {
    match poller {
        Value::String(text) => text.clone(),
        Value::Object(view) => {
            let field = |name: &str| match view.get(name) {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Null) | None => "-".to_owned(),
                Some(other) => other.to_string(),
            };
            format!(
                "{}, last success {}, lag {} s, {} events read",
                view.get("state").and_then(Value::as_str).unwrap_or("?"),
                field("last_success"),
                field("lag_seconds"),
                field("events_read")
            )
        }
        _ => "unknown (the running service did not say)".into(),
    }
}
