//! `factorwatch backfill`: asks the running service to read a window of an org's System Log
//! through detection (`POST /backfill` of the admin API), shows its progress on stderr and prints
//! a summary.

use anyhow::Context;

use super::admin_client::AdminClient;
use super::status_line::StatusLine;
use super::time_arg::TimeArg;
use crate::admin::Selection;
use crate::admin::backfill::BackfillRequest;
use crate::clock::parse_rfc3339_ms;
use crate::config::Config;
use crate::reconcile::backfill::{Progress, Summary};

/// Width of the progress bar, in characters.
const BAR_WIDTH: usize = 30;

/// Runs the backfill of `org` over `since` to `until`, through the service `config` describes.
pub async fn run(
    config: &Config,
    org: Option<String>,
    since: TimeArg,
    until: Option<TimeArg>,
) -> anyhow::Result<()> {
    let client = AdminClient::new(config)?;
    client.announce_instance().await?;
    let selection = Selection {
        org,
        ..Default::default()
    };
    let request = BackfillRequest {
        since: since.rfc3339(),
        until: until.as_ref().map(TimeArg::rfc3339),
    };
    let mut response = client
        .post_streaming("/backfill", &selection, &request)
        .await?;
    let mut view = ProgressView::new(StatusLine::stderr());
    let mut pending = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .context("the service stopped answering mid-backfill")?
    {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let progress: Progress = serde_json::from_slice(&line)
                .context("the service sent a progress line this version cannot read")?;
            if let Some(outcome) = view.show(progress) {
                return outcome;
            }
        }
    }
    anyhow::bail!(
        "the service stopped answering before the backfill finished (did it stop or restart?); \
         run the same backfill again: what was already seen is not alerted twice"
    )
}

/// What the command shows of the progress: a bar on a [`StatusLine`].
struct ProgressView {
    status: StatusLine,
    /// The window, as Unix ms, once the service said it.
    window: Option<(i64, i64)>,
}

impl ProgressView {
    fn new(status: StatusLine) -> Self {
        Self {
            status,
            window: None,
        }
    }

    /// Shows one update; the command's outcome once the last one came.
    fn show(&mut self, progress: Progress) -> Option<anyhow::Result<()>> {
        match progress {
            Progress::Started {
                since,
                until,
                filter,
            } => {
                eprintln!("reading the System Log from {since} to {until}");
                eprintln!("  filter: {}", filter.as_deref().unwrap_or("every event"));
                self.window = parse_rfc3339_ms(&since).zip(parse_rfc3339_ms(&until));
            }
            Progress::Read {
                pages,
                events,
                reached,
            } => {
                let done = self.share_of_window(reached.as_deref());
                let reached = reached.unwrap_or_default();
                self.status.show(&format!(
                    "{} read {events} events in {pages} pages, up to {reached}",
                    bar(done)
                ));
            }
            Progress::Waiting { reason } => self.status.show(&format!("waiting: {reason}")),
            Progress::Detecting { pages, detected } => self.status.show(&format!(
                "{} detected {} of {pages} pages: {} new, {} already seen, {} alerts",
                bar(1.0),
                detected.batches,
                detected.new,
                detected.already_seen,
                detected.alerts
            )),
            Progress::Done(summary) => {
                self.status.finish();
                print_summary(&summary);
                return Some(Ok(()));
            }
            Progress::Failed { error } => {
                self.status.finish();
                return Some(Err(anyhow::anyhow!("backfill failed: {error}")));
            }
        }
        None
    }

    /// How far into the window `reached` (a `published` time) is, 0 to 1.
    fn share_of_window(&self, reached: Option<&str>) -> f64 {
        let (Some((since, until)), Some(at)) = (self.window, reached.and_then(parse_rfc3339_ms))
        else {
            return 0.0;
        };
        ((at - since) as f64 / (until - since).max(1) as f64).clamp(0.0, 1.0)
    }
}

/// `[#########.....................]` for `done` (0 to 1).
fn bar(done: f64) -> String {
    let filled = (done * BAR_WIDTH as f64).round() as usize;
    format!(
        "[{}{}]",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled.min(BAR_WIDTH))
    )
}

fn print_summary(summary: &Summary) {
    println!(
        "backfill done in {:.1} s: {} events read in {} pages",
        summary.seconds, summary.events, summary.pages
    );
    println!(
        "  new:          {:>8}  (detected now; alerts say \"source\": \"system_log\")",
        summary.new
    );
    println!(
        "  already seen: {:>8}  (the hook, the poller or an earlier backfill brought them)",
        summary.already_seen
    );
    println!(
        "  alerts:       {:>8}  (queued for every sink whose filter takes them)",
        summary.alerts
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_share_of_the_window_read() {
        let mut view = ProgressView::new(StatusLine::new(false));
        assert!(
            view.show(Progress::Started {
                since: "2026-12-04T00:00:00.000Z".into(),
                until: "2026-12-04T10:00:00.000Z".into(),
                filter: None,
            })
            .is_none()
        );
        assert_eq!(view.share_of_window(Some("2026-12-04T05:00:00.000Z")), 0.5);
        assert_eq!(view.share_of_window(Some("2026-12-05T00:00:00.000Z")), 1.0);
        assert_eq!(view.share_of_window(None), 0.0);
        assert_eq!(bar(0.5), format!("[{}{}]", "#".repeat(15), ".".repeat(15)));
        let failed = view.show(Progress::Failed {
            error: "Okta said no".into(),
        });
        let message = failed.unwrap().unwrap_err().to_string();
        assert_eq!(message, "backfill failed: Okta said no");
    }
}
