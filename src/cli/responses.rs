//! `factorwatch responses list|undo|approve`: what the responses did, through the running
//! service's admin API ([`crate::admin::responses`]), and the two things a person may do about
//! it: reverse an executed action, or let a held one run.

use super::admin_client::AdminClient;
use crate::admin::Selection;
use crate::admin::responses::ResponsesView;
use crate::alert::ActionRecord;
use crate::config::Config;

/// `factorwatch responses ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ResponsesCommand {
    /// List the configured responses and every action they recorded, oldest first.
    List {
        /// Of this `[[okta.orgs]]` org (default: the top-level org).
        #[arg(long)]
        org: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Reverse an executed action: the user's risk back to what it was, or unsuspend.
    Undo {
        /// The action's id (`responses list` shows it).
        id: String,
        /// Of this `[[okta.orgs]]` org (default: the top-level org).
        #[arg(long)]
        org: Option<String>,
    },
    /// Let an action held by `max_per_hour` run now (the guards run again first).
    Approve {
        /// The action's id (`responses list` shows it).
        id: String,
        /// Of this `[[okta.orgs]]` org (default: the top-level org).
        #[arg(long)]
        org: Option<String>,
    },
}

/// Runs a `responses` command against the service the configuration describes.
pub async fn run(config: &Config, command: ResponsesCommand) -> anyhow::Result<()> {
    let client = AdminClient::new(config)?;
    client.announce_instance().await?;
    let (path, org, id) = match command {
        ResponsesCommand::List { org, json } => {
            let selection = Selection {
                org,
                ..Default::default()
            };
            let view: ResponsesView = client
                .call(reqwest::Method::GET, "/responses", Some(&selection))
                .await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&view)?),
                false => print_list(&view),
            }
            return Ok(());
        }
        ResponsesCommand::Undo { id, org } => ("/responses/undo", org, id),
        ResponsesCommand::Approve { id, org } => ("/responses/approve", org, id),
    };
    let selection = Selection {
        org,
        id: Some(id),
        ..Default::default()
    };
    let record: ActionRecord = client
        .call(reqwest::Method::POST, path, Some(&selection))
        .await?;
    print_record(&record);
    Ok(())
}

fn print_list(view: &ResponsesView) {
    if view.configured.is_empty() {
        println!("no [[responses]] configured (docs/responses.md)");
    }
    for response in &view.configured {
        println!(
            "response {:?}: {} [{}], at most {} an hour",
            response.name,
            response.mode,
            response.actions.join(", "),
            response.max_per_hour
        );
    }
    if view.actions.is_empty() {
        println!("no action recorded");
        return;
    }
    println!(
        "{:<36} {:<24} {:<20} {:<16} {:<9} {:<28} reason",
        "id", "at", "response", "action", "outcome", "user"
    );
    for record in &view.actions {
        print_row(record);
    }
    println!("{} actions", view.actions.len());
}

fn print_row(record: &ActionRecord) {
    let user = record
        .target_login
        .as_deref()
        .or(record.target_id.as_deref())
        .unwrap_or("-");
    let outcome = match &record.undone_at {
        Some(_) => "undone",
        None => record.outcome.as_str(),
    };
    println!(
        "{:<36} {:<24} {:<20} {:<16} {:<9} {:<28} {}",
        record.id, record.at, record.response, record.action, outcome, user, record.reason
    );
}

fn print_record(record: &ActionRecord) {
    println!(
        "{} {} on {}: {}",
        record.response,
        record.action,
        record
            .target_login
            .as_deref()
            .or(record.target_id.as_deref())
            .unwrap_or("-"),
        record.outcome.as_str()
    );
    println!("  {}", record.reason);
    if let Some(at) = &record.undone_at {
        println!("  undone at {at}");
    }
}
