//! The command line as users script it.

use std::process::{Command, Output};

use tempfile::TempDir;

use crate::helpers::{SECRET, spawn_app};

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
    assert_eq!(printed.matches("<redacted>").count(), 3, "{printed}");
    for secret in ["env-secret-a", "env-secret-b", "file-secret-value"] {
        assert!(!printed.contains(secret) && !stderr(&output).contains(secret));
    }
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
