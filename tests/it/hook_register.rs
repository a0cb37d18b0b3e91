//! `factorwatch okta register` and `okta doctor` against the Okta stand-in, with factorwatch
//! serving: the hook created, verified by a real call back to the running service, left alone
//! the second time, changed only where a rule changed; a wrong secret or URL explained; and the
//! doctor's screens of docs/okta-setup.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{
    ChildServer, SECRET, free_port, read_alert_lines, run_cli, wait_for_alerts_of,
};
use crate::okta_standin::{Actor, HookSeed};
use crate::reconcile::{Org, assert_documented, mfa_reset, serve};

/// How long the tests wait for what should take a few polls.
const SOON: Duration = Duration::from_secs(30);
/// Every scope the okta commands use.
const ALL_SCOPES: &[&str] = &[
    "okta.logs.read",
    "okta.eventHooks.read",
    "okta.eventHooks.manage",
];
/// A rule that needs a hook-eligible type no built-in rule reads.
const LOCKOUT_RULE: &str = r#"title: Account Locked Out
id: 2d6f9d55-2f5b-4d0a-9d0e-6e0f6c1b7a11
status: experimental
logsource:
    product: okta
    service: okta
detection:
    selection:
        eventType: 'user.account.lock'
    condition: selection
level: medium
"#;

/// A deployment: the org, factorwatch serving with its configuration, and the environment the
/// CLI needs to find it.
struct Deployment {
    org: Org,
    data: TempDir,
    config: PathBuf,
    /// The admin API's address, which the CLI reads `GET /secrets` from.
    admin_listen: String,
    server: ChildServer,
}

impl Deployment {
    async fn start(scopes: &[&str], extra: &str) -> Deployment {
        let org = Org::with_scopes(scopes).await;
        let data = TempDir::new().unwrap();
        let config = org.config(data.path(), extra);
        let admin_listen = format!("127.0.0.1:{}", free_port());
        let env = [("FACTORWATCH_ADMIN_LISTEN", admin_listen.as_str())];
        let server = serve(data.path(), &config, &env).await;
        Deployment {
            org,
            data,
            config,
            admin_listen,
            server,
        }
    }

    /// `factorwatch okta ARGS` with this deployment's configuration and `secret`.
    async fn okta(&self, args: &[&str], secret: &str) -> (bool, String, String) {
        let env = [("FACTORWATCH_OKTA_SECRETS", secret)];
        okta_cli(
            &self.config,
            &self.server,
            &self.admin_listen,
            &self.data,
            args,
            &env,
        )
        .await
    }

    async fn register(&self, extra: &[&str]) -> (bool, String, String) {
        let mut args = vec!["register", "--url", &self.server.hook_url];
        args.extend_from_slice(extra);
        self.okta(&args, SECRET).await
    }

    async fn doctor(&self) -> (bool, String, String) {
        self.okta(&["doctor"], SECRET).await
    }

    /// The only hook of the org.
    fn hook(&self) -> Value {
        let hooks = self.org.okta.event_hooks();
        assert_eq!(hooks.len(), 1, "{hooks:#?}");
        hooks[0].clone()
    }

    /// The Event Hooks requests that change something (not `GET`).
    fn hook_changes(&self) -> Vec<String> {
        self.org
            .okta
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/v1/eventHooks") && r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// What the doctor prints, with this run's URL, ids and times as docs/okta-setup.md shows
    /// them.
    fn shown(&self, output: &str) -> String {
        let hook_id = self
            .org
            .okta
            .event_hooks()
            .first()
            .map(|h| h["id"].as_str().unwrap().to_owned());
        let mut text = output
            .replace(
                &self.server.hook_url,
                "https://factorwatch.example.com/okta/events",
            )
            .replace(&self.org.okta.org_url(), "https://acme.okta.com");
        if let Some(id) = hook_id {
            text = text.replace(&id, "who1abcdefghijklmno7");
        }
        text
    }
}

/// `factorwatch okta ARGS` run beside `server` (serving from `data` with its admin API on
/// `admin_listen`), with `config` and `env`: the CLI finds the listener and the admin API.
pub(crate) async fn okta_cli(
    config: &Path,
    server: &ChildServer,
    admin_listen: &str,
    data: &TempDir,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let (listen, ops_listen) = (server.addr.to_string(), server.ops_addr.to_string());
    let data = data.path().display().to_string();
    let mut all = vec!["okta"];
    all.extend_from_slice(args);
    let mut env = env.to_vec();
    env.extend([
        ("FACTORWATCH_LISTEN", listen.as_str()),
        ("FACTORWATCH_OPS_LISTEN", ops_listen.as_str()),
        ("FACTORWATCH_ADMIN_LISTEN", admin_listen),
        ("FACTORWATCH_DATA_DIR", data.as_str()),
    ]);
    run_cli(&all, config, &env).await
}

fn items(hook: &Value) -> Vec<&str> {
    hook["events"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

fn rules_dir(rule: &str) -> TempDir {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("lockout.yml"), rule).unwrap();
    dir
}

fn paths_extra(dir: &Path) -> String {
    format!("builtin = true\npaths = [\"{}\"]\n", dir.display())
}

#[tokio::test]
async fn register_creates_and_verifies_the_hook_then_changes_only_what_the_rules_change() {
    let rules = rules_dir(LOCKOUT_RULE);
    let deployment = Deployment::start(ALL_SCOPES, "").await;

    let (ok, out, err) = deployment.register(&[]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("created hook who"), "{out}");
    assert!(out.contains("verified: Okta called"), "{out}");
    let hook = deployment.hook();
    assert_eq!(hook["name"], "factorwatch");
    assert_eq!(hook["status"], "ACTIVE");
    assert_eq!(hook["verificationStatus"], "VERIFIED");
    assert_eq!(
        hook["channel"]["config"]["uri"],
        deployment.server.hook_url.as_str()
    );
    let id = hook["id"].as_str().unwrap().to_owned();
    assert_eq!(
        deployment.org.okta.event_hook_secret(&id).as_deref(),
        Some(SECRET)
    );
    let subscribed = items(&hook);
    for needed in ["user.mfa.factor.deactivate", "user.mfa.factor.reset_all"] {
        assert!(
            subscribed.contains(&needed),
            "{needed} not in {subscribed:?}"
        );
    }
    // What no hook can deliver is not subscribed but named, with the rule that needs it.
    assert!(
        !subscribed
            .iter()
            .any(|t| t.starts_with("system.mfa") || t.starts_with("event_hook"))
    );
    assert!(out.contains("reconciliation only"), "{out}");
    assert!(out.contains("system.mfa.factor.deactivate"), "{out}");
    let made = deployment.hook_changes();
    let verify = format!("POST /api/v1/eventHooks/{id}/lifecycle/verify");
    assert_eq!(
        made,
        ["POST /api/v1/eventHooks".to_owned(), verify],
        "created active, verified"
    );

    // Again: nothing to change, nothing sent but the list.
    let (ok, out, err) = deployment.register(&[]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("is up to date"), "{out}");
    assert_eq!(
        deployment.hook_changes(),
        made,
        "the second run changed something"
    );

    // A rule that needs a new type: --dry-run shows exactly that, and changes nothing.
    let extra = paths_extra(rules.path());
    let config = deployment.org.config(deployment.data.path(), &extra);
    assert_eq!(config, deployment.config);
    let (ok, out, err) = deployment.register(&["--dry-run"]).await;
    assert!(ok, "{out}\n{err}");
    let plan: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  "))
        .take_while(|l| !l.contains("reconciliation"))
        .collect();
    assert!(out.contains("would change"), "{out}");
    assert!(out.contains("  + user.account.lock"), "{out}");
    assert!(out.contains("dry run: nothing changed in Okta"), "{out}");
    assert_eq!(
        deployment.hook_changes(),
        made,
        "--dry-run changed something"
    );
    assert!(!items(&deployment.hook()).contains(&"user.account.lock"));

    // For real: that one change, one replace, still verified (the channel did not change).
    let (ok, out, err) = deployment.register(&[]).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("  + user.account.lock"), "{out}");
    assert!(
        plan.iter().all(|line| out.contains(line)),
        "{plan:?} vs {out}"
    );
    let now = deployment.hook_changes();
    assert_eq!(now.len(), made.len() + 1, "{now:?}");
    assert!(
        now.last()
            .unwrap()
            .starts_with("PUT /api/v1/eventHooks/who"),
        "{now:?}"
    );
    let hook = deployment.hook();
    assert!(items(&hook).contains(&"user.account.lock"));
    assert_eq!(hook["verificationStatus"], "VERIFIED");
    deployment.org.assert_spec_kept();

    // The poller read factorwatch's own changes from the System Log (an MFA reset logged after
    // them has alerted): none of them raised a tampering alert.
    let reset = mfa_reset(Duration::ZERO);
    deployment.org.okta.publish(vec![reset.clone()]);
    let alerts_file = deployment.data.path().join("alerts.jsonl");
    let uuid = reset["uuid"].as_str().unwrap().to_owned();
    wait_for_alerts_of(std::slice::from_ref(&alerts_file), &[uuid], SOON).await;
    let titles: Vec<String> = read_alert_lines(&alerts_file)
        .iter()
        .map(|alert| alert["rule"]["title"].as_str().unwrap().to_owned())
        .collect();
    let logged: Vec<String> = (deployment.org.okta.log().iter())
        .filter_map(|event| event["eventType"].as_str().map(str::to_owned))
        .collect();
    assert!(
        logged.iter().any(|t| t == "event_hook.created"),
        "{logged:?}"
    );
    assert!(
        titles.iter().all(|title| !title.contains("Event Hook")),
        "factorwatch's own changes alerted: {titles:?}"
    );
}

#[tokio::test]
async fn a_secret_the_service_does_not_accept_fails_verification_and_says_why() {
    let deployment = Deployment::start(ALL_SCOPES, "").await;
    let args = ["register", "--url", &deployment.server.hook_url];
    let (ok, out, err) = deployment
        .okta(&args, "a-secret-nobody-configured-0000")
        .await;
    assert!(!ok, "{out}\n{err}");
    assert!(err.contains("Okta could not verify the hook"), "{err}");
    assert!(
        err.contains("refused the secret in Authorization (401)"),
        "the message says why: {err}"
    );
    assert!(err.contains("reload it (SIGHUP) or restart it"), "{err}");
    assert_eq!(deployment.hook()["verificationStatus"], "UNVERIFIED");
    deployment.org.assert_spec_kept();
}

#[tokio::test]
async fn a_url_off_the_hook_path_is_refused_before_okta_is_called() {
    let deployment = Deployment::start(ALL_SCOPES, "").await;
    let url = format!("http://{}/somewhere/else", deployment.server.addr);
    let (ok, out, err) = deployment.okta(&["register", "--url", &url], SECRET).await;
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains("is not this org's hook path /okta/events"),
        "{err}"
    );
    let hook_calls = deployment.org.okta.requests();
    let hook_calls = hook_calls
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/eventHooks"));
    assert_eq!(hook_calls.count(), 0, "the Event Hooks API was called");
}

#[tokio::test]
async fn doctor_says_whether_the_org_is_covered_and_what_to_do() {
    let deployment = Deployment::start(ALL_SCOPES, "").await;
    let (ok, out, err) = deployment.register(&[]).await;
    assert!(ok, "{out}\n{err}");

    // Healthy.
    let (ok, out, err) = deployment.doctor().await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("covered: yes"), "{out}");
    assert_documented("factorwatch okta doctor", &deployment.shown(&out), &[]);

    // Someone drops a needed event type from the hook.
    let id = deployment.hook()["id"].as_str().unwrap().to_owned();
    let admin = Actor::admin(&factorwatch::okta::samples::users()[2]);
    deployment.org.okta.edit_event_hook(&id, &admin, |hook| {
        let items = hook["events"]["items"].as_array_mut().unwrap();
        items.retain(|t| t != "user.mfa.factor.reset_all");
    });
    let (ok, out, err) = deployment.doctor().await;
    assert!(!ok, "a missing type is a problem: {out}");
    assert!(
        err.contains("problem(s): the org is not fully covered"),
        "{err}"
    );
    assert!(
        out.contains("user.mfa.factor.reset_all                            NOT in the hook"),
        "{out}"
    );
    assert_documented(
        "factorwatch okta doctor # a type missing",
        &deployment.shown(&out),
        &[],
    );

    // Then deactivates it.
    deployment
        .org
        .okta
        .edit_event_hook(&id, &admin, |hook| hook["status"] = json!("INACTIVE"));
    let (ok, out, _) = deployment.doctor().await;
    assert!(!ok);
    assert!(
        out.contains("the hook is INACTIVE: Okta delivers nothing"),
        "{out}"
    );
    assert_documented(
        "factorwatch okta doctor # inactive",
        &deployment.shown(&out),
        &[],
    );

    // JSON for scripts.
    let (ok, out, _) = deployment.okta(&["doctor", "--json"], SECRET).await;
    assert!(!ok);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["hook"]["status"], "INACTIVE");
    assert!(
        report["problems"].as_array().unwrap().len() >= 2,
        "{report:#}"
    );
}

#[tokio::test]
async fn doctor_names_the_scopes_the_app_lacks() {
    let deployment = Deployment::start(&["okta.logs.read"], "").await;
    let seed = HookSeed::new(
        "factorwatch",
        &deployment.server.hook_url,
        &["user.mfa.factor.deactivate"],
        SECRET,
    );
    deployment.org.okta.add_event_hook(&seed);
    let (ok, out, err) = deployment.doctor().await;
    assert!(!ok, "{out}\n{err}");
    assert!(out.contains("okta.eventHooks.read     missing"), "{out}");
    assert!(out.contains("okta.eventHooks.manage   missing"), "{out}");
    assert!(out.contains("okta.logs.read           granted"), "{out}");
    assert_documented(
        "factorwatch okta doctor # scopes missing",
        &deployment.shown(&out),
        &[],
    );
}
