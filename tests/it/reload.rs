//! Rules reload on SIGHUP without a restart; a broken reload keeps the rules in force.

use std::time::Duration;

use factorwatch::okta::samples;
use tempfile::TempDir;

use crate::helpers::{
    ChildServer, envelope, free_port, post_envelope, read_alert_lines, wait_for_alert_lines,
};

pub(crate) const SESSION_RULE: &str = "title: Session started\nid: session-start\nlogsource: {product: okta, service: okta}\n\
detection:\n  selection:\n    eventtype: user.session.start\n  condition: selection\nlevel: low\n";

pub(crate) const PASSWORD_RULE: &str = "title: Password reset\nid: password-reset\nlogsource: {product: okta, service: okta}\n\
detection:\n  selection:\n    eventtype: user.account.reset_password\n  condition: selection\nlevel: high\n";

pub(crate) fn hangup(server: &ChildServer) {
    // SAFETY: signalling our own child process.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGHUP) },
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_rules_and_a_broken_reload_keeps_the_old_ones() {
    let data_dir = TempDir::new().unwrap();
    let rules_dir = TempDir::new().unwrap();
    let rule_file = rules_dir.path().join("custom.yml");
    std::fs::write(&rule_file, SESSION_RULE).unwrap();
    let config = data_dir.path().join("factorwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[rules]\nbuiltin = false\npaths = [{:?}]\n",
            rules_dir.path()
        ),
    )
    .unwrap();
    let mut server = ChildServer::start_with(
        data_dir.path(),
        free_port(),
        &[("FACTORWATCH_CONFIG", config.to_str().unwrap())],
    )
    .await;
    let client = reqwest::Client::new();
    let alerts_path = data_dir.path().join("alerts.jsonl");
    let users = samples::users();
    let session = || envelope(vec![samples::session_start(&users[0], "198.51.100.3")]);
    let password_reset = || {
        envelope(vec![samples::password_reset(
            &users[0],
            samples::Initiator::Admin,
        )])
    };

    assert!(post_envelope(&client, &server.hook_url, &session()).await);
    wait_for_alert_lines(&alerts_path, 1, Duration::from_secs(20)).await;

    // A broken rule file: the reload fails and the session rule stays in force.
    std::fs::write(&rule_file, "title: [unclosed\n").unwrap();
    hangup(&server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(post_envelope(&client, &server.hook_url, &session()).await);
    wait_for_alert_lines(&alerts_path, 2, Duration::from_secs(20)).await;

    // A good new rule: after the reload, sessions no longer alert and password resets do.
    std::fs::write(&rule_file, PASSWORD_RULE).unwrap();
    hangup(&server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(post_envelope(&client, &server.hook_url, &session()).await);
    assert!(post_envelope(&client, &server.hook_url, &password_reset()).await);
    let alerts = wait_for_alert_lines(&alerts_path, 3, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alerts_after = read_alert_lines(&alerts_path);
    assert_eq!(alerts_after.len(), 3, "{alerts_after:?}");
    assert_eq!(alerts[2]["rule"]["id"], "password-reset");
    assert_eq!(alerts[0]["rule"]["id"], "session-start");
    assert_eq!(alerts[1]["rule"]["id"], "session-start");

    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
