//! `factorwatch dlq list|replay|purge`: a client of the running service's admin API
//! ([`crate::admin`]), which alone may open the spool, and the printing of its answers.

use super::admin_client::AdminClient;
use crate::admin::{DeadLetter, Selection};
use crate::config::Config;

/// `factorwatch dlq ...`.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List dead-lettered alerts.
    List {
        /// Of this `[[okta.orgs]]` org (default: the top-level org).
        #[arg(long)]
        org: Option<String>,
        /// Only this sink's.
        #[arg(long)]
        sink: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Queue dead-lettered alerts for delivery again.
    Replay {
        /// Of this `[[okta.orgs]]` org (default: the top-level org).
        #[arg(long)]
        org: Option<String>,
        /// Only this sink's.
        #[arg(long)]
        sink: Option<String>,
        /// Only this alert.
        #[arg(long)]
        id: Option<String>,
    },
    /// Delete dead-lettered alerts for good.
    Purge {
        /// Of this `[[okta.orgs]]` org (default: the top-level org).
        #[arg(long)]
        org: Option<String>,
        /// Only this sink's.
        #[arg(long)]
        sink: Option<String>,
        /// Only this alert.
        #[arg(long)]
        id: Option<String>,
        /// Every dead letter (required without --sink or --id).
        #[arg(long)]
        all: bool,
    },
}

/// Runs a `dlq` command against the service the configuration describes, saying first (on
/// stderr, so that `--json` stays JSON) which instance answers.
pub async fn run(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    if let DlqCommand::Purge {
        sink: None,
        id: None,
        all: false,
        ..
    } = command
    {
        anyhow::bail!(
            "name the dead letters to purge with --sink or --id, or confirm purging every one \
             (of the org) with --all"
        );
    }
    let client = AdminClient::new(config)?;
    client.announce_instance().await?;
    match command {
        DlqCommand::List { org, sink, json } => {
            let selection = Selection {
                org,
                sink,
                ..Default::default()
            };
            let letters: Vec<DeadLetter> = client
                .call(reqwest::Method::GET, "/dlq", Some(&selection))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else {
                print_table(&letters);
            }
        }
        DlqCommand::Replay { org, sink, id } => {
            let selection = Selection {
                org,
                sink,
                id,
                all: false,
            };
            let answer: serde_json::Value = client
                .call(reqwest::Method::POST, "/dlq/replay", Some(&selection))
                .await?;
            println!(
                "{} dead letters queued for delivery again",
                answer["replayed"]
            );
        }
        DlqCommand::Purge { org, sink, id, all } => {
            let selection = Selection { org, sink, id, all };
            let answer: serde_json::Value = client
                .call(reqwest::Method::POST, "/dlq/purge", Some(&selection))
                .await?;
            println!("{} dead letters deleted", answer["purged"]);
        }
    }
    Ok(())
}

fn print_table(letters: &[DeadLetter]) {
    if letters.is_empty() {
        println!("no dead letters");
        return;
    }
    println!(
        "{:<16} {:<36} {:>8}  {:<24}  last error",
        "sink", "alert id", "attempts", "raised"
    );
    for letter in letters {
        let error: String = letter
            .last_error
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(100)
            .collect();
        println!(
            "{:<16} {:<36} {:>8}  {:<24}  {error}",
            letter.sink, letter.alert_id, letter.attempts, letter.created_at
        );
    }
    println!("{} dead letters", letters.len());
}
