//! The `factorwatch` command line: parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use factorwatch::secret::Secret;
use factorwatch::simulate::SimulateOptions;
use factorwatch::{Application, Config, app, telemetry};

/// jemalloc, not glibc's malloc. Under tokio, glibc gives each thread that allocates an arena of
/// its own and keeps what each one freed, so at a steady rate the resident memory kept rising far
/// above the live data; jemalloc keeps it flat and spends less CPU per event (BENCHMARKS.md,
/// "Latest changes", 2.).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its first allocation: a background thread gives freed pages back
/// to the kernel after 100 ms (`dirty_decay_ms`, ten seconds by default) and skips the lazy
/// "muzzy" stage (`muzzy_decay_ms: 0`), so RSS follows the live data. Under heavy load most of
/// the resident memory above the live data is pages freed but not yet given back: 100 ms keeps
/// far less of it than 1 s did, for the same CPU per event, where 0 (give back at once) cost much
/// of the intake (BENCHMARKS.md, "Latest changes", 3.).
/// `_RJEM_MALLOC_CONF` in the environment overrides them.
#[unsafe(export_name = "_rjem_malloc_conf")]
static ALLOCATOR_SETTINGS: &u8 =
    &b"background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0\0"[0];

/// Okta Event Hook receiver that turns MFA factor resets into durable, de-duplicated alerts.
#[derive(Parser)]
#[command(name = "factorwatch", version, about)]
struct Cli {
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
        command: factorwatch::admin::DlqCommand,
    },
    /// Exit 0 if the receiver at the configured address answers /healthz (for container health checks).
    Healthcheck,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate rule files or folders and print what each rule matches on.
    Check {
        /// Rule files, or folders of *.yml / *.yaml.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run rules over exported events and print the alerts as JSON lines, with a summary per rule.
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
        events: PathBuf,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config_path = cli.config.as_deref();
    match cli.command {
        Command::Serve => {
            let config = Config::load(config_path)?;
            telemetry::init_logging(&config.log);
            let app = Application::build(config).await?;
            app.run_until(app::shutdown_signal()).await
        }
        Command::CheckConfig => {
            let config = Config::load(config_path)?;
            app::preflight(&config)?;
            print!("{}", config.to_redacted_toml()?);
            eprintln!("configuration is valid");
            Ok(())
        }
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
            factorwatch::simulate::run(options).await.map(drop)
        }
        Command::Demo { keep } => factorwatch::demo::run(keep).await,
        Command::Healthcheck => healthcheck(config_path).await,
        Command::Rules {
            command: RulesCommand::Check { paths },
        } => factorwatch::detect::offline::check(paths),
        Command::Rules {
            command:
                RulesCommand::Test {
                    rules,
                    builtin,
                    privileged,
                    events,
                },
        } => {
            anyhow::ensure!(
                builtin || !rules.is_empty(),
                "name rule files with --rules, or use --builtin"
            );
            factorwatch::detect::offline::test(rules, builtin, privileged, events)
        }
        Command::Sinks {
            command: SinksCommand::Test { sink, org },
        } => {
            let config = Config::load(config_path)?;
            let pipeline = config.pipeline(org.as_deref())?;
            factorwatch::sinks::send_test_alert(&pipeline.sinks, sink.as_deref()).await
        }
        Command::Dlq { command } => {
            let config = Config::load(config_path)?;
            factorwatch::admin::run_dlq(&config, command).await
        }
    }
}

async fn healthcheck(config_path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        // Listening on every interface: loopback reaches it from inside the container.
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    // With [server.tls] the listener speaks HTTPS. The certificate names the public host, not
    // loopback, so it is not verified: this only asks our own process whether it is up.
    let tls = config.server.tls.is_some();
    let url = format!("{}://{addr}/healthz", if tls { "https" } else { "http" });
    let response = reqwest::Client::builder()
        .danger_accept_invalid_certs(tls)
        .build()?
        .get(&url)
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await
        .with_context(|| format!("{url} unreachable"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    Ok(())
}
