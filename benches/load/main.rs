//! The load generator: plays Okta against the real `factorwatch serve` (release build, durable
//! acknowledgement, a child process on loopback) and against a no-op axum handler, and measures
//! what issue 5 asks for. BENCHMARKS.md has the results and `scripts/bench.sh` reproduces them.
//!
//! ```text
//! cargo bench --bench load -- all [--runs 3]      # every scenario, medians over the runs
//! cargo bench --bench load -- long [--events N]   # RSS over ten million events
//! cargo bench --bench load -- poller [--runs 3]   # the System Log poller against the Okta stand-in
//! cargo bench --bench load -- responses [--runs 3]  # POST of an MFA reset to the action in Okta
//! cargo bench --bench load -- mixes [--runs 3]    # end to end on a mass reset and an org (issue 23)
//! ```
//!
//! A plain `cargo bench` runs this binary with no mode: it then only says how to run it, so the
//! criterion benches stay the only thing `cargo bench` times. CI builds it with
//! `cargo bench --no-run`.
//!
//! | module | concern |
//! |---|---|
//! | `payload` | Okta-shaped envelopes of 1, 10 and 50 events, unique ids rewritten per request; the mass-reset and org mixes, users rewritten per event |
//! | `client` | keep-alive HTTP/1.1 connections, open-loop and closed-loop pacing, HDR histograms |
//! | `server` | the servers as child processes; `/proc` figures; the no-op server |
//! | `disk` | the fdatasync baseline |
//! | `e2e` | reading alerts back from the file sink and from JetStream |
//! | `okta_standin` | the Okta stand-in of the integration tests (tests/it/okta_standin) |
//! | `poller` | the System Log poller's catch-up and steady state, and its baseline client |
//! | `responses` | POST of an MFA reset to the response's actions in the stand-in, and its baseline client |
//! | `scenarios` | one function per measurement |
//! | `mixes` | end-to-end and acknowledged throughput on the mass-reset and org mixes, the generator check, memory with a million users (issue 23) |
//! | `report` | rows, medians, Markdown and CSV |

mod client;
mod disk;
mod e2e;
mod mixes;
// Cargo builds benches with `cfg(test)` but without the test harness, so the stand-in's own unit
// tests compile here without their `#[test]` functions, and some of their imports go unused.
#[allow(unused_imports)]
#[path = "../../tests/it/okta_standin/mod.rs"]
mod okta_standin;
mod payload;
mod poller;
mod report;
mod responses;
mod scenarios;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use payload::Payloads;
use report::Row;
use scenarios::Kind;

/// Prints one line of progress to stderr, prefixed with the time since the start.
#[macro_export]
macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!("[{:>7.1}s] {}", $crate::elapsed().as_secs_f64(), format!($($arg)*))
    };
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Time since the generator started.
pub fn elapsed() -> Duration {
    START.get_or_init(Instant::now).elapsed()
}

#[derive(Parser)]
#[command(about = "Load generator for factorwatch (issue 5); see BENCHMARKS.md")]
struct Cli {
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true, global = true)]
    bench: bool,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Subcommand)]
enum Mode {
    /// Every scenario: fsync baseline, saturation, fixed rates, end to end, crash recovery.
    All {
        /// Repetitions; the report holds the median of each figure.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Seconds measured per saturation drive (after 1 s of warm-up).
        #[arg(long, default_value_t = 8)]
        saturation_secs: u64,
        /// Seconds measured per fixed-rate drive (after 1 s of warm-up).
        #[arg(long, default_value_t = 10)]
        rate_secs: u64,
        /// Events acknowledged before the SIGKILL of the recovery scenario.
        #[arg(long, default_value_t = 100_000)]
        recovery_events: u64,
        /// Where runs.json, summary.md and latency.csv go.
        #[arg(long, default_value = "target/bench-results")]
        out: PathBuf,
        /// Only these phases (comma-separated: fsync, saturation, rate, e2e, recovery). The
        /// fractions of saturation are left out of `rate` when `saturation` does not run.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// RSS over many events at a fixed rate (default: 80% of what detection keeps up with).
    Long {
        /// Events to send.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Events per second; 0 measures saturation for 5 s first and takes 80% of the events
        /// detected meanwhile (intake alone acknowledges more, but a backlog would then grow).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Where long.json and long-rss.csv go.
        #[arg(long, default_value = "target/bench-results")]
        out: PathBuf,
    },
    /// The System Log poller: catching up on a day of System Log at 1,000 events a page against
    /// the Okta stand-in, beside a plain client fetching the same pages, and the lag in steady
    /// state at Okta's ceiling of 400,000 events a day.
    Poller {
        /// Repetitions; the report holds the median of each figure.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Events in the day of System Log (Okta's ceiling per org).
        #[arg(long, default_value_t = poller::DAY_EVENTS)]
        events: usize,
        /// Seconds of the steady-state case.
        #[arg(long, default_value_t = 30)]
        steady_secs: u64,
        /// Where poller.json and poller-summary.md go.
        #[arg(long, default_value = "target/bench-results")]
        out: PathBuf,
        /// Only these cases (comma-separated: builtin, every, limited, steady).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Responses (issue 24): from the hook's POST of an MFA reset to the executed actions in the
    /// Okta stand-in (risk raised, sessions cleared), beside a plain client making the same six
    /// Okta calls.
    Responses {
        /// Repetitions; the report holds the median of each figure.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// MFA resets per run, one user each.
        #[arg(long, default_value_t = responses::DEFAULT_EVENTS)]
        events: usize,
        /// Resets per second (open loop).
        #[arg(long, default_value_t = responses::DEFAULT_RATE)]
        rate: f64,
        /// Where responses.json and responses-summary.md go.
        #[arg(long, default_value = "target/bench-results")]
        out: PathBuf,
    },
    /// What users feel (issue 23): acknowledged and end-to-end throughput (first request to the
    /// last alert in the file) on a mass reset by one admin and on an org of 400,000 users, the
    /// generator check against the no-op handler, and memory with a million distinct users.
    Mixes {
        /// Repetitions of the generator check and the two mixes; the report holds medians.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Seconds of each saturation drive.
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Where mixes.json, mixes-summary.md and mixes-rss.csv go.
        #[arg(long, default_value = "target/bench-results")]
        out: PathBuf,
        /// Events (and distinct users) of the memory phase; 0 leaves it out.
        #[arg(long, default_value_t = mixes::MEMORY_USERS)]
        memory_events: u64,
        /// Events per second of the memory phase; 0: 80% of the org mix's end-to-end rate.
        #[arg(long, default_value_t = 0.0)]
        memory_rate: f64,
        /// Only these phases (comma-separated: generator, mass-reset, org, memory).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Each phase waits (at most 5 min) for the 1-minute load average to fall below this.
        #[arg(long, default_value_t = mixes::QUIET_LOAD)]
        quiet_load: f64,
    },
    /// The no-op baseline server (started by `all` as a child process).
    #[command(hide = true)]
    NoopServer {
        #[arg(long)]
        listen: SocketAddr,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Some(mode) = cli.mode else {
        println!(
            "load: the load generator runs only when asked: `cargo bench --bench load -- all` or \
             scripts/bench.sh (see BENCHMARKS.md)"
        );
        return Ok(());
    };
    if let Mode::NoopServer { listen } = mode {
        return server::run_noop_server(listen);
    }
    elapsed();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match mode {
            Mode::All {
                runs,
                saturation_secs,
                rate_secs,
                recovery_events,
                out,
                only,
            } => {
                let durations = (
                    Duration::from_secs(saturation_secs),
                    Duration::from_secs(rate_secs),
                );
                let phases = Phases(only);
                all(runs, durations, recovery_events, &phases, &out).await
            }
            Mode::Long { events, rate, out } => long(events, rate, &out).await,
            Mode::Poller {
                runs,
                events,
                steady_secs,
                out,
                only,
            } => {
                let steady = Duration::from_secs(steady_secs);
                poller_phase(runs, events, steady, &Phases(only), &out).await
            }
            Mode::Responses {
                runs,
                events,
                rate,
                out,
            } => responses_phase(runs, events, rate, &out).await,
            Mode::Mixes {
                runs,
                secs,
                out,
                memory_events,
                memory_rate,
                only,
                quiet_load,
            } => {
                mixes::run(mixes::Options {
                    runs,
                    secs,
                    out,
                    memory_rate,
                    memory_events,
                    only,
                    quiet_load,
                })
                .await
            }
            Mode::NoopServer { .. } => unreachable!("handled above"),
        }
    })
}

/// The pools of envelopes, one per batch size.
fn pools() -> Vec<(usize, Arc<Payloads>)> {
    [1, 10, 50]
        .into_iter()
        .map(|batch| (batch, Arc::new(Payloads::new(batch, 5))))
        .collect()
}

/// The phases `all` runs.
struct Phases(Vec<String>);

impl Phases {
    fn run(&self, phase: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| p == phase)
    }
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

async fn all(
    runs: usize,
    (saturation_secs, rate_secs): (Duration, Duration),
    recovery_events: u64,
    phases: &Phases,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let pools = pools();
    let ten = pools[1].1.clone();
    progress!(
        "payloads: {} B, {} B, {} B per body of 1, 10, 50 events; {:.1}% of events raise an alert",
        pools[0].1.mean_bytes(),
        pools[1].1.mean_bytes(),
        pools[2].1.mean_bytes(),
        ten.alerting_share() * 100.0
    );
    let mut rows = Vec::new();
    for run in 1..=runs {
        rows.push(machine_row(run, runs));

        if phases.run("fsync") {
            progress!("run {run}: disk baseline (write + fdatasync)");
            rows.extend(scenarios::fsync(run, &pools, Duration::from_secs(2))?);
        }

        let mut saturation10 = 0.0;
        for kind in [Kind::Noop, Kind::Factorwatch] {
            if !phases.run("saturation") {
                break;
            }
            progress!("run {run}: saturation, closed loop, {}", kind.name());
            for (batch, pool) in &pools {
                let row =
                    scenarios::saturation(run, kind, *batch, pool.clone(), saturation_secs).await?;
                if kind == Kind::Factorwatch && *batch == 10 {
                    saturation10 = row.values["events_per_s"];
                }
                rows.push(row);
            }
        }

        let mut rates = vec![
            (100.0, "100".to_owned()),
            (1_000.0, "1000".to_owned()),
            (5_000.0, "5000".to_owned()),
        ];
        if saturation10 > 0.0 {
            rates.push(((saturation10 * 0.5).round(), "50% sat".to_owned()));
            rates.push(((saturation10 * 0.8).round(), "80% sat".to_owned()));
        }
        for kind in [Kind::Factorwatch, Kind::Noop] {
            if !phases.run("rate") {
                break;
            }
            progress!("run {run}: fixed rates, open loop, {}", kind.name());
            for (rate, label) in &rates {
                rows.push(scenarios::rate(run, kind, *rate, label, ten.clone(), rate_secs).await?);
            }
        }

        if phases.run("e2e") {
            progress!("run {run}: end to end, 1,000 events/s, file sink and NATS JetStream");
            rows.extend(scenarios::end_to_end(run, ten.clone(), Duration::from_secs(15)).await?);
        }

        if phases.run("recovery") {
            progress!("run {run}: SIGKILL with {recovery_events} events, restart, drain");
            rows.push(scenarios::recovery(run, ten.clone(), recovery_events).await?);
        }

        report::write(out, &rows)?;
        progress!("run {run} done; results so far in {}", out.display());
    }
    print!("{}", report::markdown(&rows));
    Ok(())
}

async fn long(events: u64, rate: f64, out: &std::path::Path) -> anyhow::Result<()> {
    let ten = Arc::new(Payloads::new(10, 5));
    let rate = if rate > 0.0 {
        rate
    } else {
        progress!("long: measuring saturation for 5 s");
        let row = scenarios::saturation(
            1,
            Kind::Factorwatch,
            10,
            ten.clone(),
            Duration::from_secs(5),
        )
        .await?;
        (row.values["detected_eps"].min(row.values["events_per_s"]) * 0.8).round()
    };
    progress!(
        "long: {events} events at {rate:.0} events/s, about {:.0} s",
        events as f64 / rate
    );
    let row = scenarios::long(ten, events, rate, out).await?;
    println!("{}", serde_json::to_string_pretty(&row)?);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("long.json"), serde_json::to_string_pretty(&row)?)?;
    Ok(())
}

async fn poller_phase(
    runs: usize,
    events: usize,
    steady: Duration,
    phases: &Phases,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    progress!("poller: publishing {events} events of the load mix to the Okta stand-in");
    let bench = poller::Bench::start(events).await?;
    progress!(
        "poller: {} events published, {} of them MFA resets that alert",
        bench.day().events,
        bench.day().alerting.len()
    );
    let mut rows = Vec::new();
    for run in 1..=runs {
        rows.push(machine_row(run, runs));
        rows.extend(bench.catch_ups(run, |case| phases.run(case)).await?);
        if phases.run("steady") {
            rows.push(poller::steady(run, steady).await?);
        }
        poller::write(out, &rows)?;
        progress!("run {run} done; results so far in {}", out.display());
    }
    print!("{}", report::poller_markdown(&rows));
    Ok(())
}

async fn responses_phase(
    runs: usize,
    events: usize,
    rate: f64,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        events > 0 && rate > 0.0,
        "--events and --rate must be positive"
    );
    let mut rows = Vec::new();
    for run in 1..=runs {
        rows.push(machine_row(run, runs));
        rows.extend(responses::run(run, events, rate).await?);
        responses::write(out, &rows)?;
        progress!("run {run} done; results so far in {}", out.display());
    }
    print!("{}", responses::markdown(&rows));
    Ok(())
}

/// The row that records the machine's load as run `run` of `runs` starts, said in the progress
/// too: a busy machine explains a slow run.
fn machine_row(run: usize, runs: usize) -> Row {
    let load = loadavg();
    let mut machine = Row::new(run, "machine", "host", 0, "start");
    machine.set("loadavg_1m", load);
    progress!("run {run}/{runs}: loadavg {load:.2}");
    machine
}
