//! `factorwatch demo`: serves on the embedded default with a throw-away data directory, plays Okta
//! against itself (verification, batches, and a redelivered batch), and prints the alerts that
//! reach the alert file. A newcomer sees the whole path work in a few seconds.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::simulate::{OktaPlayer, SimulateOptions};
use crate::alert::Alert;
use crate::config::Config;
use crate::secret::Secret;
use crate::{Application, telemetry};

/// Runs the demo. `keep` leaves the data directory in place for a look afterwards.
pub async fn run(keep: bool) -> anyhow::Result<()> {
    let data_dir = std::env::temp_dir().join(format!("factorwatch-demo-{}", uuid::Uuid::new_v4()));
    let secret = format!("demo-{}", uuid::Uuid::new_v4());
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse()?;
    config.server.ops_listen = "127.0.0.1:0".parse()?;
    config.storage.data_dir = data_dir.clone();
    config.okta.secrets = vec![Secret::new(secret.as_str())];
    config.log.level = "warn".into();
    config.server.admin_enabled = false;
    telemetry::init_logging(&config.log);

    let app = Application::build(config.clone()).await?;
    let url = format!("http://{}{}", app.local_addr(), config.server.hook_path);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let mut out = std::io::stdout();
    writeln!(
        out,
        "factorwatch demo: receiver on {url}, spool in {}",
        data_dir.display()
    )?;

    let result = play(&url, &secret, &data_dir, &mut out).await;
    let _ = stop.send(());
    server.await??;
    if keep {
        writeln!(out, "data kept in {}", data_dir.display())?;
    } else {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    result
}

async fn play(
    url: &str,
    secret: &str,
    data_dir: &Path,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let player = OktaPlayer::new(SimulateOptions {
        url: url.to_owned(),
        secret: Secret::new(secret),
        header: "Authorization".into(),
        events: None,
        batches: 3,
        batch_size: 10,
    })?;
    writeln!(out, "\n== Okta verifies the hook, then delivers 3 batches")?;
    let report = player.run(out).await?;
    writeln!(
        out,
        "\n== Okta retries batch 1 (at-least-once delivery): it must not alert twice"
    )?;
    let (status, took) = player.post(&report.envelopes[0]).await?;
    writeln!(
        out,
        "redelivery -> {status} in {:.1} ms",
        took.as_secs_f64() * 1000.0
    )?;

    let expected = report.mfa_event_uuids.len();
    let alerts_file = data_dir.join("alerts.jsonl");
    writeln!(
        out,
        "\n== Waiting for the {expected} MFA alerts in {}",
        alerts_file.display()
    )?;
    wait_for_alerts(&alerts_file, expected, Duration::from_secs(15)).await?;
    // Give a wrongly doubled alert (or a late correlation) time to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settled = read_alerts(&alerts_file)?;
    for alert in &settled {
        writeln!(out, "{}", describe(alert))?;
    }
    let single = settled.iter().filter(|a| a.correlation.is_none()).count();
    let ids: HashSet<&str> = settled.iter().map(|a| a.id.as_str()).collect();
    let duplicates = settled.len() - ids.len();
    writeln!(
        out,
        "\n{expected} MFA reset events sent, {single} alerts for them, {} correlation alerts \
         (patterns across events, such as an MFA reset followed by a sign-in from a new network), \
         {duplicates} duplicates",
        settled.len() - single,
    )?;
    if let Some(first) = settled.first() {
        writeln!(
            out,
            "\n== One alert in full (docs/alerts.md explains each field)"
        )?;
        writeln!(out, "{}", serde_json::to_string_pretty(first)?)?;
    }
    if single != expected || duplicates > 0 {
        bail!("expected {expected} MFA alerts and no duplicates, found {single} and {duplicates}");
    }
    Ok(())
}

/// One line a person can read: level, summary, alert id.
pub fn describe(alert: &Alert) -> String {
    format!("[{}] {} [alert {}]", alert.level, alert.summary(), alert.id)
}

/// Every alert in a JSON-lines file (none if the file does not exist yet).
pub fn read_alerts(path: &Path) -> anyhow::Result<Vec<Alert>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).context("alert file line is not an alert"))
        .collect()
}

/// Polls `path` until it holds at least `count` single-event alerts (correlation alerts are not
/// counted), or fails after `timeout`.
pub async fn wait_for_alerts(
    path: &Path,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Alert>> {
    let started = Instant::now();
    loop {
        let alerts = read_alerts(path)?;
        let single = alerts.iter().filter(|a| a.correlation.is_none()).count();
        if single >= count {
            return Ok(alerts);
        }
        if started.elapsed() > timeout {
            bail!("only {single} of {count} alerts arrived within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
