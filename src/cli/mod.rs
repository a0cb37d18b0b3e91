//! The command line: every command's arguments (clap) and everything a command prints. The library
//! below returns data and prints nothing; `src/main.rs` only parses the arguments and calls [`run`].
//!
//! | command | module | prints |
//! |---|---|---|
//! | `serve` | [`run`] | nothing (logs on stderr) |
//! | `check-config` | [`check_config`] | the configuration, secrets redacted |
//! | `simulate` | [`simulate`] | Okta's requests and the receiver's answers |
//! | `demo` | [`demo`] | a throw-away receiver played against, and its alerts |
//! | `rules check`, `rules test` | [`rules`] | what each rule matches on; the alerts of an export (or of the live System Log) and a summary per rule |
//! | `backfill` | [`backfill`] | the running service's progress through a window of the System Log, and a summary |
//! | `sinks test` | [`sinks`] | the outcome of a test alert per sink |
//! | `dlq list`, `dlq replay`, `dlq purge` | [`dlq`] | the admin API's answers |
//! | `healthcheck` | [`healthcheck`] | nothing (the exit status) |
//! | `okta register`, `okta doctor`, `okta rotate-secret`, `okta register-ssf` | [`okta`] | the hook's plan and each step; whether the org is covered and what to do; the rotation's steps; the SSF provider's plan |
//! | `responses list`, `responses undo`, `responses approve` | [`responses`] | the responses configured and their actions; the action undone or approved |

mod admin_client;
pub mod backfill;
pub mod check_config;
pub mod demo;
pub mod dlq;
pub mod healthcheck;
pub mod okta;
pub mod responses;
pub mod rules;
pub mod simulate;
pub mod sinks;
mod status_line;
pub mod time_arg;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::secret::Secret;
use crate::{Application, Config, app, telemetry};
use rules::{EventSource, TestOptions};
use simulate::SimulateOptions;
use time_arg::TimeArg;

/// Okta Event Hook receiver that turns MFA factor resets into durable, de-duplicated alerts.
#[derive(Parser)]
#[command(name = "factorwatch", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Without it, built-in defaults plus FACTORWATCH_* variables.
    #[arg(long, global = true, env = "FACTORWATCH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the receiver.
    Serve,
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig,
    /// Play Okta against a running receiver: the verification GET, then event batches.
    Simulate {
        /// The hook URL, such as http://127.0.0.1:8080/okta/events.
        #[arg(long)]
        url: String,
        /// The secret Okta sends (the hook's "Authentication secret").
        #[arg(long, env = "FACTORWATCH_SIMULATE_SECRET", hide_env_values = true)]
        secret: String,
        /// The header it is sent in (the hook's "Authentication field").
        #[arg(long, default_value = "Authorization")]
        header: String,
        /// Send these events instead of built-in ones: a JSON array, JSON lines or an envelope.
        #[arg(long)]
        events: Option<PathBuf>,
        /// Number of batches to send.
        #[arg(long, default_value_t = 3)]
        batches: usize,
        /// Events per batch.
        #[arg(long, default_value_t = 10)]
        batch_size: usize,
    },
    /// Serve on a throw-away data directory, play Okta against it and print the alerts.
    Demo {
        /// Keep the demo's data directory afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// Validate and try out Sigma rules offline.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Check the configured sinks.
    Sinks {
        #[command(subcommand)]
        command: SinksCommand,
    },
    /// Manage dead-lettered alerts of the running service (through its admin API).
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Read a window of an org's System Log through detection, in the running service (through
    /// its admin API): what the hook missed before reconciliation was on. Safe to repeat.
    Backfill {
        /// Where to start: how long ago (7d, 12h, 90m) or an RFC 3339 time.
        #[arg(long)]
        since: TimeArg,
        /// Where to end (default: now, at most now minus `[okta.reconcile] grace`).
        #[arg(long)]
        until: Option<TimeArg>,
        /// The `[[okta.orgs]]` org (default: the top-level org).
        #[arg(long)]
        org: Option<String>,
    },
    /// What the responses (`[[responses]]`) did in Okta, and undoing or approving an action
    /// (through the running service's admin API).
    Responses {
        #[command(subcommand)]
        command: responses::ResponsesCommand,
    },
    /// Exit 0 if the receiver at the configured address answers /healthz (for container health checks).
    Healthcheck,
    /// The event hook through Okta's Management API (`[okta.api]`): register it, check it.
    Okta {
        #[command(subcommand)]
        command: okta::OktaCommand,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate rule files or folders and print what each rule matches on.
    Check {
        /// Rule files, or folders of *.yml / *.yaml.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run rules over exported events, or over the live System Log (`--okta`), and print the
    /// alerts as JSON lines, with a summary per rule. Nothing is alerted or stored.
    Test {
        /// Rule files or folders (repeat for several).
        #[arg(long = "rules")]
        rules: Vec<PathBuf>,
        /// Also run the built-in rules.
        #[arg(long)]
        builtin: bool,
        /// A privileged user's login or id (repeat for several), as `[rules] privileged_users`.
        #[arg(long = "privileged")]
        privileged: Vec<String>,
        /// A System Log export (JSON array), JSON lines, or event-hook envelopes.
        #[arg(required_unless_present = "okta", conflicts_with = "okta")]
        events: Option<PathBuf>,
        /// Read the events from the org's System Log through `[okta.api]` instead (needs --config
        /// and --since).
        #[arg(long, requires = "since")]
        okta: bool,
        /// With --okta: where to start, how long ago (7d, 12h) or an RFC 3339 time.
        #[arg(long, requires = "okta")]
        since: Option<TimeArg>,
        /// With --okta: where to end (default: now).
        #[arg(long, requires = "okta")]
        until: Option<TimeArg>,
        /// With --okta: the `[[okta.orgs]]` org whose API to read (default: the top-level org).
        #[arg(long, requires = "okta")]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
enum SinksCommand {
    /// Send a clearly marked test alert through each sink and report what happened.
    Test {
        /// Only this sink.
        #[arg(long)]
        sink: Option<String>,
        /// The sinks of this `[[okta.orgs]]` org (default: the top-level org's).
        #[arg(long)]
        org: Option<String>,
    },
}

/// Runs the command `cli` names.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config_path = cli.config.as_deref();
    match cli.command {
        Command::Serve => {
            let config = Config::load(config_path)?;
            telemetry::init_logging(&config.log);
            let app = Application::build(config).await?;
            app.run_until(app::shutdown_signal()).await
        }
        Command::CheckConfig => check_config::run(config_path).await,
        Command::Simulate {
            url,
            secret,
            header,
            events,
            batches,
            batch_size,
        } => {
            let options = SimulateOptions {
                url,
                secret: Secret::new(secret),
                header,
                events,
                batches,
                batch_size,
            };
            simulate::run(options).await
        }
        Command::Demo { keep } => demo::run(keep).await,
        Command::Healthcheck => healthcheck::run(config_path).await,
        Command::Okta { command } => okta::run(config_path, command).await,
        Command::Rules {
            command: RulesCommand::Check { paths },
        } => rules::check(paths, config_path),
        Command::Rules {
            command:
                RulesCommand::Test {
                    rules,
                    builtin,
                    privileged,
                    events,
                    okta: _,
                    since,
                    until,
                    org,
                },
        } => {
            let source = match events {
                Some(file) => EventSource::File(file),
                None => EventSource::Okta {
                    since: since.context("--okta needs --since")?,
                    until,
                    org,
                },
            };
            let options = TestOptions {
                rule_paths: rules,
                builtin,
                privileged_users: privileged,
                source,
            };
            rules::test(options, config_path).await
        }
        Command::Backfill { since, until, org } => {
            let config = Config::load(config_path)?;
            backfill::run(&config, org, since, until).await
        }
        Command::Sinks {
            command: SinksCommand::Test { sink, org },
        } => {
            let config = Config::load(config_path)?;
            let pipeline = config.pipeline(org.as_deref())?;
            sinks::test(&pipeline.sinks, sink.as_deref()).await
        }
        Command::Dlq { command } => {
            let config = Config::load(config_path)?;
            dlq::run(&config, command).await
        }
        Command::Responses { command } => {
            let config = Config::load(config_path)?;
            responses::run(&config, command).await
        }
    }
}
