//! `factorwatch sinks test`: one clearly marked test alert through each configured sink, with a
//! line per sink saying what happened.

use crate::alert::Alert;
use crate::config::SinkConfig;
use crate::sinks::{Delivery, send_test_alert};

/// Sends the test alert through each of `sinks` (or only the one named `only`), straight to the
/// destination, and prints the outcome per sink. Fails if any sink failed.
pub async fn test(sinks: &[SinkConfig], only: Option<&str>) -> anyhow::Result<()> {
    let chosen: Vec<&SinkConfig> = sinks
        .iter()
        .filter(|s| only.is_none_or(|name| s.name() == name))
        .collect();
    if let Some(name) = only {
        anyhow::ensure!(!chosen.is_empty(), "no sink named {name:?} is configured");
    }
    let alert = Alert::test_alert();
    let payload = alert.to_json();
    let delivery = Delivery {
        payload: &payload,
        alert: &alert,
    };
    let mut failed = 0;
    for config in chosen {
        match send_test_alert(config, delivery).await {
            Ok(took) => println!(
                "{}: delivered test alert {} in {:.0} ms",
                config.name(),
                alert.id,
                took.as_secs_f64() * 1000.0
            ),
            Err(err) => {
                failed += 1;
                println!("{}: FAILED: {err}", config.name());
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} sinks failed the test");
    Ok(())
}
