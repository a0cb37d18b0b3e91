//! The command line as users script it.

use std::process::{Command, Output};

use tempfile::TempDir;

use factorwatch::config::SinkConfig;

use crate::helpers::{
    SECRET, batch_with_mfa, read_alert_lines, spawn_app, spawn_app_with, test_config,
    wait_for_alert_lines,
};

pub(crate) fn factorwatch(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_factorwatch"));
    command.args(args);
    for name in [
        "FACTORWATCH_CONFIG",
        "FACTORWATCH_OKTA_SECRETS",
        "FACTORWATCH_OKTA_SECRETS_FILE",
        "FACTORWATCH_LISTEN",
        "FACTORWATCH_DATA_DIR",
        "FACTORWATCH_CLUSTER_URL",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("factorwatch runs")
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_config_names_an_unknown_key() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("factorwatch.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:8080\"\nhook_paht = \"/x\"\n",
    )
    .unwrap();
    let output = factorwatch(&["check-config", "--config", path.to_str().unwrap()], &[]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("hook_paht"), "{message}");
    assert!(message.contains("factorwatch.toml"), "{message}");
}

#[test]
fn check_config_prints_the_effective_config_without_secrets() {
    let dir = TempDir::new().unwrap();
    let secrets_file = dir.path().join("secrets");
    std::fs::write(&secrets_file, "# rotated 2026-11\nfile-secret-value\n\n").unwrap();
    let output = factorwatch(
        &["check-config"],
        &[
            ("FACTORWATCH_OKTA_SECRETS", "env-secret-a, env-secret-b"),
            (
                "FACTORWATCH_OKTA_SECRETS_FILE",
                secrets_file.to_str().unwrap(),
            ),
            ("FACTORWATCH_LISTEN", "0.0.0.0:9999"),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("0.0.0.0:9999"), "{printed}");
    // The two from the environment; the file's are read at start and on reload, named by path.
    assert_eq!(printed.matches("<redacted>").count(), 2, "{printed}");
    assert!(
        printed.contains(secrets_file.to_str().unwrap()),
        "{printed}"
    );
    for secret in ["env-secret-a", "env-secret-b", "file-secret-value"] {
        assert!(!printed.contains(secret) && !stderr(&output).contains(secret));
    }
}

/// `localhost` is 127.0.0.1, in the file and in the environment; another host name is refused
/// with the IP form to give.
#[test]
fn listen_addresses_take_localhost_and_refuse_other_host_names_with_the_ip_form() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("factorwatch.toml");
    std::fs::write(&path, "[server]\nlisten = \"localhost:8080\"\n").unwrap();
    let path = path.to_str().unwrap();
    let secret = ("FACTORWATCH_OKTA_SECRETS", "s");
    let output = factorwatch(&["check-config", "--config", path], &[secret]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("listen = \"127.0.0.1:8080\""), "{printed}");

    let env = [secret, ("FACTORWATCH_ADMIN_LISTEN", "localhost:9091")];
    let output = factorwatch(&["check-config"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("admin_listen = \"127.0.0.1:9091\""),
        "{printed}"
    );

    let env = [secret, ("FACTORWATCH_LISTEN", "hooks.example.com:8080")];
    let output = factorwatch(&["check-config"], &env);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("FACTORWATCH_LISTEN") && message.contains("0.0.0.0:8080"),
        "{message}"
    );
}

/// Its `[cluster]` runs in `redis` mode.
#[test]
#[cfg(feature = "redis")]
fn the_kubernetes_configuration_passes_check_config() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/factorwatch.toml"
    );
    let output = factorwatch(
        &["check-config", "--config", path],
        &[("FACTORWATCH_OKTA_SECRETS", "k8s-secret")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("mode = \"redis\""), "{printed}");
    assert!(!printed.contains("k8s-secret"));
}

#[test]
fn serve_refuses_to_start_without_a_secret_and_says_how_to_set_one() {
    let dir = TempDir::new().unwrap();
    let output = factorwatch(
        &["serve"],
        &[
            ("FACTORWATCH_DATA_DIR", dir.path().to_str().unwrap()),
            ("FACTORWATCH_LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("FACTORWATCH_OKTA_SECRETS"), "{message}");
    assert!(message.contains("[okta] secrets"), "{message}");
}

/// Runs `factorwatch simulate` on a blocking thread, so the app under test keeps serving.
async fn simulate(url: &str, secret: &str, extra: &[&str]) -> Output {
    let mut args: Vec<String> = ["simulate", "--url", url, "--secret", secret]
        .map(String::from)
        .to_vec();
    args.extend(extra.iter().map(|arg| arg.to_string()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        factorwatch(&args, &[])
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn simulate_plays_okta_against_a_running_receiver() {
    let app = spawn_app().await;
    let output = simulate(&app.hook_url, SECRET, &["--batches", "2"]).await;
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}{}", stderr(&output));
    assert!(
        printed.contains("verify: 200 OK, challenge echoed"),
        "{printed}"
    );
    assert!(printed.contains("batch 2/2"), "{printed}");
    assert!(
        printed.contains("2 batches accepted, 0 refused, 4 MFA reset events"),
        "{printed}"
    );
    app.wait_for_alerts(4).await;

    let output = simulate(&app.hook_url, "nope", &[]).await;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("verification failed"));
}

/// A wrong path is a wrong path, not a wrong secret: simulate says so, and which path is served.
#[tokio::test]
async fn simulate_to_a_wrong_path_says_which_path_the_receiver_serves() {
    let app = spawn_app().await;
    let wrong = format!("http://{}/okta", app.addr);
    let output = simulate(&wrong, SECRET, &[]).await;
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("serves no hook at") && message.contains("hook at /okta/events"),
        "{message}"
    );
    assert!(!message.contains("Check that the secret"), "{message}");
}

#[tokio::test]
async fn simulate_sends_events_from_a_file() {
    let app = spawn_app().await;
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("events.jsonl");
    let file = path.to_str().unwrap();
    let lines = [
        r#"{"uuid":"file-1","eventType":"user.mfa.factor.deactivate"}"#,
        r#"{"uuid":"file-2","eventType":"user.session.start"}"#,
        r#"{"uuid":"file-3","eventType":"user.mfa.factor.reset_all"}"#,
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    let output = simulate(
        &app.hook_url,
        SECRET,
        &["--events", file, "--batch-size", "2"],
    )
    .await;
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}{}", stderr(&output));
    assert!(
        printed.contains("batch 1/2: 2 events (1 MFA resets)"),
        "{printed}"
    );
    let alerts = app.wait_for_alerts(2).await;
    let mut uuids = crate::helpers::alerted_uuids(&alerts);
    uuids.sort();
    assert_eq!(uuids, ["file-1", "file-3"]);

    std::fs::write(&path, "{\"uuid\":\"a\"}\nnot json\n").unwrap();
    let output = simulate(&app.hook_url, SECRET, &["--events", file]).await;
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("line 2: not JSON"), "{message}");
}

#[test]
fn rules_check_lists_rules_and_rejects_a_broken_one_with_its_file() {
    let rules_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let output = factorwatch(&["rules", "check", rules_dir], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("Okta MFA Factor Deactivated [medium]"),
        "{printed}"
    );
    assert!(printed.contains("fields:  eventType"), "{printed}");

    let dir = TempDir::new().unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        "title: Broken\nlogsource: {product: okta}\ndetection:\n  sel:\n    eventtype|nosuchmodifier: x\n  condition: sel\n",
    )
    .unwrap();
    let output = factorwatch(&["rules", "check", dir.path().to_str().unwrap()], &[]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("broken.yml"), "{message}");
    assert!(message.contains("nosuchmodifier"), "{message}");
}

#[test]
fn rules_test_runs_rules_over_an_export_and_summarises() {
    let dir = TempDir::new().unwrap();
    let rule = dir.path().join("admin_reset.yml");
    std::fs::write(
        &rule,
        "title: Admin resets MFA\nid: admin-reset\nlogsource: {product: okta, service: okta}\n\
         detection:\n  selection:\n    eventtype: user.mfa.factor.reset_all\n    actor.alternateid|endswith: '@example.com'\n  condition: selection\nlevel: high\n",
    )
    .unwrap();
    let users = factorwatch::okta::samples::users();
    let admin_reset = factorwatch::okta::samples::mfa_factor_reset_all(
        &users[0],
        factorwatch::okta::samples::Initiator::Admin,
    );
    let session = factorwatch::okta::samples::session_start(&users[0], "198.51.100.2");
    // The System Log API's shape: a JSON array; the same event twice is de-duplicated.
    let export = dir.path().join("export.json");
    let events = serde_json::json!([admin_reset, session, admin_reset]);
    std::fs::write(&export, events.to_string()).unwrap();
    let output = factorwatch(
        &[
            "rules",
            "test",
            "--rules",
            rule.to_str().unwrap(),
            export.to_str().unwrap(),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["rule"]["id"], "admin-reset");
    assert_eq!(lines[0]["event"]["uuid"], admin_reset["uuid"]);
    let summary = stderr(&output);
    assert!(summary.contains("3 events, 1 alerts"), "{summary}");
}

#[test]
fn rules_check_and_rules_test_take_placeholders_and_privileged_users_from_the_config() {
    let dir = TempDir::new().unwrap();
    let rule = dir.path().join("office.yml");
    std::fs::write(
        &rule,
        "title: MFA reset from the office\nid: office-reset\nlogsource: {product: okta, service: okta}\n\
         detection:\n  selection:\n    eventtype: user.mfa.factor.reset_all\n    \
         client.ipaddress|cidr|expand: '%office_networks%'\n  condition: selection\nlevel: low\n",
    )
    .unwrap();
    let users = factorwatch::okta::samples::users();
    let mut reset = factorwatch::okta::samples::mfa_factor_reset_all(
        &users[0],
        factorwatch::okta::samples::Initiator::Admin,
    );
    reset["client"]["ipAddress"] = serde_json::json!("192.0.2.10");
    let export = dir.path().join("export.json");
    std::fs::write(&export, serde_json::json!([reset]).to_string()).unwrap();
    let config = dir.path().join("factorwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[rules]\nprivileged_users = [\"{}\"]\n\n[rules.placeholders]\noffice_networks = [\"192.0.2.0/24\"]\n",
            users[0].login
        ),
    )
    .unwrap();
    let (rule, export, config) = (
        rule.to_str().unwrap(),
        export.to_str().unwrap(),
        config.to_str().unwrap(),
    );

    let output = factorwatch(&["rules", "check", rule, "--config", config], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("all 1 rules are valid"));

    let output = factorwatch(
        &["rules", "test", "--rules", rule, "--config", config, export],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let alert: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&output.stdout).trim()).unwrap();
    assert_eq!(alert["rule"]["id"], "office-reset");
    assert_eq!(
        alert["context"]["privileged_target"], true,
        "[rules] privileged_users apply: {alert}"
    );

    // Without the config the placeholder has no value, as before.
    let output = factorwatch(&["rules", "check", rule], &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("office_networks"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn rules_test_with_the_config_guards_the_hook_it_names() {
    let dir = TempDir::new().unwrap();
    let admin = &factorwatch::okta::samples::users()[1];
    let deactivated = |hook: &str| {
        serde_json::json!({
            "uuid": uuid::Uuid::new_v4().to_string(), "published": "2026-12-05T07:40:00.000Z",
            "eventType": "event_hook.deactivated", "displayMessage": "Deactivate event hook",
            "actor": {"id": admin.id, "type": "User", "alternateId": admin.login,
                "displayName": admin.display_name},
            "outcome": {"result": "SUCCESS"},
            "target": [{"id": "whoa1b2c3d4e5f6g7h8i", "type": "EventHook", "alternateId": hook,
                "displayName": hook}],
        })
    };
    let ours = deactivated("okta-guard");
    let export = dir.path().join("export.json");
    let events = serde_json::json!([ours, deactivated("factorwatch")]);
    std::fs::write(&export, events.to_string()).unwrap();
    let config = dir.path().join("factorwatch.toml");
    std::fs::write(&config, "[okta]\nhook_name = \"okta-guard\"\n").unwrap();
    let (export, config) = (export.to_str().unwrap(), config.to_str().unwrap());

    let output = factorwatch(
        &["rules", "test", "--builtin", "--config", config, export],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["event"]["uuid"], ours["uuid"]);
    assert_eq!(alerts[0]["level"], "critical");
    assert_eq!(alerts[0]["actor"]["alternateId"], admin.login);
}

/// `sinks test` on a fresh install, before any `serve`, creates the default alert file's
/// directory (the data directory) and delivers.
#[test]
fn sinks_test_works_before_the_first_serve() {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("fresh").join("data");
    let output = factorwatch(
        &["sinks", "test"],
        &[("FACTORWATCH_DATA_DIR", data_dir.to_str().unwrap())],
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}{}", stderr(&output));
    assert!(printed.contains("delivered test alert"), "{printed}");
    assert_eq!(read_alert_lines(&data_dir.join("alerts.jsonl")).len(), 1);
}

/// `serve` creates a file sink's directory too, when it is not the data directory.
#[tokio::test]
async fn serve_creates_the_directory_of_a_file_sink() {
    let data_dir = TempDir::new().unwrap();
    let alerts = data_dir.path().join("alerts").join("mfa.jsonl");
    let mut config = test_config(data_dir.path());
    config.sinks = vec![SinkConfig::file("alerts", alerts.clone())];
    let app = spawn_app_with(config, data_dir).await;
    let (batch, _) = batch_with_mfa(4, 1);
    assert_eq!(app.post(&batch).await.status(), 204);
    wait_for_alert_lines(&alerts, 1, std::time::Duration::from_secs(20)).await;
}

/// The shell blocks of one README section.
fn readme_shell_blocks(section: &str) -> Vec<String> {
    let readme = include_str!("../../README.md");
    let start = readme.find(section).expect("the README section exists");
    let text = &readme[start + section.len()..];
    let text = &text[..text.find("\n## ").unwrap_or(text.len())];
    text.split("```sh\n")
        .skip(1)
        .map(|block| block[..block.find("```").unwrap()].to_owned())
        .collect()
}

/// "Running it for real" never puts the secret on a command line (`cargo run` prints it), says
/// that `serve` stays in the foreground, and its second terminal's command works as written.
#[tokio::test]
async fn the_readmes_first_run_keeps_the_secret_off_the_command_line_and_works() {
    let section = "## Running it for real";
    let blocks = readme_shell_blocks(section);
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    for block in &blocks {
        assert!(!block.contains("--secret"), "{block}");
    }
    let readme = include_str!("../../README.md");
    assert!(readme.contains("`serve` stays in the foreground"));

    let app = spawn_app().await;
    let home = TempDir::new().unwrap();
    std::fs::write(home.path().join("factorwatch-okta-secret"), SECRET).unwrap();
    let script = blocks[1]
        .replace("cargo run --release --", env!("CARGO_BIN_EXE_factorwatch"))
        .replace("http://127.0.0.1:8080/okta/events", &app.hook_url);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euc", &script])
            .env("HOME", home.path())
            .env_remove("FACTORWATCH_SIMULATE_SECRET")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}{}", stderr(&output));
    assert!(
        printed.contains("3 batches accepted, 0 refused"),
        "{printed}"
    );
}
