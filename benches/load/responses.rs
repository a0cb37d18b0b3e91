//! Responses (`[[responses]]`, issue 24): the time from the hook's POST of an MFA reset to the
//! executed action in Okta, the target being under 1 s at p99.
//!
//! The Okta stand-in (tests/it/okta_standin) runs in this process on loopback with an API token
//! holding what `raise_risk` and `clear_sessions` need, and `2 × events` users seeded `ACTIVE`.
//! Its rate limits for the families the calls hit (the user, its groups and roles, its risk and
//! sessions) are raised out of the way, so that what is measured is not the stand-in's 429s. A
//! fresh `factorwatch serve` (release build, empty spool, file sink, the built-in rules and
//! correlations as a user runs them) has one response in enforce mode, `raise_risk` then
//! `clear_sessions` on the "Okta MFA Factor Deactivated" rule's alerts.
//!
//! The generator POSTs one MFA reset a request, each for a different user (so the guard against
//! acting twice on a user within the hour never skips), open loop at a fixed rate: request `i` is
//! due at `start + i / rate`, and every latency runs from that intended time. Per user, it takes
//! the stand-in's own record of when the `PUT /api/v1/users/{id}/risk` (risk raised) and the
//! `DELETE /api/v1/users/{id}/sessions` (the last action) arrived, counting only requests
//! answered 2xx. It also times each POST's acknowledgement (the 204).
//!
//! The baseline of the same run is a plain client making the same six Okta calls per user (the
//! user, its groups, its roles, its risk, the risk set to HIGH, the sessions ended) against the
//! same stand-in, sequentially per user, users due at the same rate, on users of its own (the
//! stand-in's state changes): what the Okta calls alone cost, timed to the same two arrivals. The
//! difference is factorwatch's own share: intake and its fsync, detection, the outbox and the
//! ledger.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use factorwatch::okta::samples::{self, Initiator, SIMULATED_HOOK_ID, SIMULATED_ORG, SampleUser};
use hdrhistogram::Histogram;
use hyper::body::Bytes;
use serde_json::Value;

use crate::client::histogram;
use crate::okta_standin::{Family, OktaStandIn, Recorded, UserSeed};
use crate::progress;
use crate::report::{Medians, Row};
use crate::server::{self, HOOK_PATH, ProcStats, SECRET, Server};

/// MFA resets per run (one user each).
pub const DEFAULT_EVENTS: usize = 600;
/// Resets per second.
pub const DEFAULT_RATE: f64 = 20.0;
/// The SSWS token factorwatch and the baseline call the stand-in with.
const API_TOKEN: &str = "00benchResponsesToken";
/// What the token's admin holds: the guards' reads, `raise_risk` and `clear_sessions`.
const SCOPES: [&str; 5] = [
    "okta.users.read",
    "okta.roles.read",
    "okta.userRisk.read",
    "okta.userRisk.manage",
    "okta.users.manage",
];
/// "Okta MFA Factor Deactivated" (rules/mfa_factor_deactivated.yml).
const FACTOR_DEACTIVATED: &str = "6f1e2b9c-3a0d-4e57-9a61-2d4c8b7f0a11";
/// No rate limit to speak of (the stand-in's defaults, 2,000 reads of a user and 1,200 calls of
/// each other family a minute, are exceeded at 20 users a second: groups and roles make 2,400 a
/// minute, the risk and sessions calls 3,600).
const UNLIMITED: (u32, Duration) = (1_000_000_000, Duration::from_secs(60));
/// How long after the last POST (or the baseline's last start) every action may take.
const DEADLINE: Duration = Duration::from_secs(120);
/// Issue 24's target for the p99 of POST to action.
const TARGET_MS: f64 = 1000.0;
/// The scenario name of every row.
const SCENARIO: &str = "responses";
/// Labels of the rows.
const FIRST: &str = "first call";
const RISK: &str = "risk raised";
const SESSIONS: &str = "sessions cleared";
const ANSWERED: &str = "sessions answered";
const ACK: &str = "ack";
const OUTCOMES: &str = "outcomes";

/// One run: a fresh stand-in, the baseline on its users, then factorwatch on its own.
pub async fn run(run: usize, events: usize, rate: f64) -> anyhow::Result<Vec<Row>> {
    let okta = OktaStandIn::start().await;
    okta.add_api_token(API_TOKEN, &SCOPES);
    for family in [Family::Users, Family::UserResources, Family::UserActions] {
        okta.set_rate_limit_of(family, UNLIMITED.0, UNLIMITED.1);
    }
    let baseline_users = users("base", events);
    let factorwatch_users = users("resp", events);
    for user in baseline_users.iter().chain(&factorwatch_users) {
        okta.add_user(UserSeed::active(user));
    }
    let mut rows = baseline(run, &okta, &baseline_users, rate).await?;
    rows.extend(factorwatch(run, &okta, &factorwatch_users, rate).await?);
    Ok(rows)
}

/// `n` users whose ids are `00u` + `tag` (four letters) + 13 digits: 20 characters, as Okta's.
fn users(tag: &str, n: usize) -> Vec<SampleUser> {
    (0..n)
        .map(|i| {
            SampleUser::new(
                &format!("00u{tag}{i:013}"),
                &format!("{tag}{i}@example.com"),
                &format!("User {tag} {i}"),
            )
        })
        .collect()
}

/// When each user's first call (`GET /api/v1/users/{id}`), risk PUT and sessions DELETE
/// arrived at the stand-in, of those answered 2xx; `None` until all three did for every user of
/// `sent`.
fn arrivals(
    requests: &[Recorded],
    sent: &HashMap<String, Instant>,
) -> Option<HashMap<String, Acted>> {
    let mut first = HashMap::new();
    let mut risk = HashMap::new();
    let mut sessions = HashMap::new();
    for request in requests {
        if !request.status.is_some_and(|s| (200..300).contains(&s)) {
            continue;
        }
        let Some(rest) = request.path.strip_prefix("/api/v1/users/") else {
            continue;
        };
        let (id, what) = rest.split_once('/').unwrap_or((rest, ""));
        if !sent.contains_key(id) {
            continue;
        }
        let seen = match (request.method.as_str(), what) {
            ("GET", "") => &mut first,
            ("PUT", "risk") => &mut risk,
            ("DELETE", "sessions") => &mut sessions,
            _ => continue,
        };
        seen.entry(id.to_owned()).or_insert(request.at);
    }
    sent.keys()
        .map(|id| {
            let acted = Acted {
                first: *first.get(id)?,
                risk: *risk.get(id)?,
                sessions: *sessions.get(id)?,
            };
            Some((id.clone(), acted))
        })
        .collect()
}

/// When one user's calls arrived at the stand-in.
#[derive(Clone, Copy)]
struct Acted {
    /// The first: reading the user for the guards.
    first: Instant,
    /// The risk set to HIGH.
    risk: Instant,
    /// The sessions ended: the last action.
    sessions: Instant,
}

/// Waits (at most [`DEADLINE`]) until the stand-in holds both answered writes of every user in
/// `sent`; returns them.
async fn until_acted(
    okta: &OktaStandIn,
    sent: &HashMap<String, Instant>,
    what: &str,
) -> anyhow::Result<HashMap<String, Acted>> {
    let started = Instant::now();
    loop {
        // Cheap first: the request log is cloned only once every session is gone.
        let pending = sent.keys().filter(|id| okta.user_sessions(id) > 0).count();
        if pending == 0
            && let Some(found) = arrivals(&okta.requests(), sent)
        {
            return Ok(found);
        }
        if started.elapsed() > DEADLINE {
            bail!(
                "{what}: {pending} of {} users still had sessions {} s after the last request",
                sent.len(),
                DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The histograms (µs) of the first call's, the risk PUT's and the sessions DELETE's arrival
/// after each user's `sent`.
fn latencies(
    sent: &HashMap<String, Instant>,
    acted: &HashMap<String, Acted>,
) -> [Histogram<u64>; 3] {
    let mut out = [histogram(), histogram(), histogram()];
    for (id, at) in sent {
        let calls = acted[id];
        for (histogram, arrived) in out
            .iter_mut()
            .zip([calls.first, calls.risk, calls.sessions])
        {
            record(histogram, arrived.saturating_duration_since(*at));
        }
    }
    out
}

fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    histogram.saturating_record((latency.as_micros() as u64).max(1));
}

/// A row of p50, p90, p99 and max (ms) of `latency`.
fn latency_row(run: usize, server: &str, label: &str, latency: &Histogram<u64>) -> Row {
    let ms = |micros: u64| micros as f64 / 1000.0;
    let mut row = Row::new(run, SCENARIO, server, 1, label);
    row.set("count", latency.len() as f64)
        .set("min_ms", ms(latency.min()))
        .set("p50_ms", ms(latency.value_at_quantile(0.5)))
        .set("p90_ms", ms(latency.value_at_quantile(0.9)))
        .set("p99_ms", ms(latency.value_at_quantile(0.99)))
        .set("max_ms", ms(latency.max()));
    row
}

fn say(row: &Row, what: &str) {
    let v = |name: &str| row.values.get(name).copied().unwrap_or(f64::NAN);
    progress!(
        "  {what}: p50 {:.1} / p90 {:.1} / p99 {:.1} / max {:.1} ms over {}",
        v("p50_ms"),
        v("p90_ms"),
        v("p99_ms"),
        v("max_ms"),
        v("count")
    );
}

/// A ticker whose `i`-th tick is due at `start + i / rate`; missed ticks come at once, and each
/// latency runs from the due time, so a stall shows as latency.
fn schedule(rate: f64) -> tokio::time::Interval {
    let every = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    tokio::time::interval_at(start, every)
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    // Idle connections are dropped well before the hook listener's idle timeout would close
    // them under a request.
    Ok(reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(2))
        .build()?)
}

/// The baseline: the six calls of a response for each of `users`, one user due every
/// `1 / rate` s, each user's calls one after the other.
async fn baseline(
    run: usize,
    okta: &OktaStandIn,
    users: &[SampleUser],
    rate: f64,
) -> anyhow::Result<Vec<Row>> {
    progress!(
        "run {run}: baseline, the six Okta calls for each of {} users at {rate}/s",
        users.len()
    );
    let client = http_client()?;
    let org = okta.org_url();
    let mut ticker = schedule(rate);
    let mut tasks = Vec::with_capacity(users.len());
    let mut sent = HashMap::with_capacity(users.len());
    for user in users {
        let due = ticker.tick().await.into_std();
        sent.insert(user.id.clone(), due);
        let (client, org, id) = (client.clone(), org.clone(), user.id.clone());
        tasks.push(tokio::spawn(async move {
            let lag = Instant::now().saturating_duration_since(due);
            six_calls(&client, &org, &id).await?;
            anyhow::Ok((Instant::now().saturating_duration_since(due), lag))
        }));
    }
    let (mut answered, mut lag) = (histogram(), histogram());
    for task in tasks {
        let (took, late) = task.await??;
        record(&mut answered, took);
        record(&mut lag, late);
    }
    let acted = until_acted(okta, &sent, "baseline").await?;
    let [first, risk, sessions] = latencies(&sent, &acted);
    let mut rows = vec![
        latency_row(run, "baseline", FIRST, &first),
        latency_row(run, "baseline", RISK, &risk),
        latency_row(run, "baseline", SESSIONS, &sessions),
        latency_row(run, "baseline", ANSWERED, &answered),
    ];
    rows[3]
        .set(
            "send_lag_p50_ms",
            lag.value_at_quantile(0.5) as f64 / 1000.0,
        )
        .set("send_lag_max_ms", lag.max() as f64 / 1000.0);
    say(&rows[0], "baseline, start to the user's GET");
    say(&rows[1], "baseline, start to the risk PUT");
    say(&rows[2], "baseline, start to the sessions DELETE");
    say(&rows[3], "baseline, start to the DELETE's answer");
    Ok(rows)
}

/// What a response calls for one user, as a plain client: the user, its groups and roles (the
/// guards), its risk, the risk set to HIGH, its sessions ended.
async fn six_calls(client: &reqwest::Client, org: &str, id: &str) -> anyhow::Result<()> {
    let user = format!("{org}/api/v1/users/{id}");
    for path in ["", "/groups", "/roles", "/risk"] {
        okta_call(client.get(format!("{user}{path}"))).await?;
    }
    let raise = client
        .put(format!("{user}/risk"))
        .header("Content-Type", "application/json")
        .body(r#"{"riskLevel":"HIGH","riskReason":"factorwatch bench baseline"}"#);
    okta_call(raise).await?;
    okta_call(client.delete(format!("{user}/sessions?oauthTokens=true"))).await
}

/// Sends `request` with the API token, as Okta wants it, and reads the whole answer; a non-2xx
/// answer is an error.
async fn okta_call(request: reqwest::RequestBuilder) -> anyhow::Result<()> {
    request
        .header("Authorization", format!("SSWS {API_TOKEN}"))
        .header("Accept", "application/json")
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    Ok(())
}

/// The config of the factorwatch under test: the stand-in's API with the token, and the
/// response.
fn factorwatch_toml(org_url: &str) -> String {
    format!(
        "\n[okta.api]\norg_url = \"{org_url}\"\napi_token = \"{API_TOKEN}\"\n\n\
         [[responses]]\nname = \"contain\"\nmode = \"enforce\"\n\
         actions = [\"raise_risk\", \"clear_sessions\"]\n\
         when = {{ rules = [\"{FACTOR_DEACTIVATED}\"] }}\nmax_per_hour = 100000\n"
    )
}

/// factorwatch: one MFA reset a POST for each of `users` at `rate`, then the arrival of its
/// actions at the stand-in.
async fn factorwatch(
    run: usize,
    okta: &OktaStandIn,
    users: &[SampleUser],
    rate: f64,
) -> anyhow::Result<Vec<Row>> {
    let extra = factorwatch_toml(&okta.org_url());
    let (dir, alert_file, spec) = server::with_alert_file("factorwatch-responses-", extra)?;
    let server = Server::factorwatch_in(dir, &spec)?;
    let from = okta.requests().len();
    // Every body built before the drive, so that building one never delays a POST.
    let bodies: Vec<(String, Bytes)> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let tx = format!("benchResp{run}x{i:08}");
            let event = samples::mfa_factor_deactivate(user, "SMS", Initiator::Admin, &tx);
            let envelope = samples::envelope(SIMULATED_ORG, SIMULATED_HOOK_ID, vec![event]);
            let bytes = serde_json::to_vec(&envelope).expect("an envelope serialises");
            (user.id.clone(), Bytes::from(bytes))
        })
        .collect();
    progress!(
        "run {run}: factorwatch, {} MFA resets POSTed at {rate}/s, one user each",
        users.len()
    );
    let client = http_client()?;
    let hook = format!("http://{}{HOOK_PATH}", server.addr);
    let mut ticker = schedule(rate);
    let mut tasks = Vec::with_capacity(bodies.len());
    let mut sent = HashMap::with_capacity(bodies.len());
    for (id, body) in bodies {
        let due = ticker.tick().await.into_std();
        sent.insert(id, due);
        let (client, hook) = (client.clone(), hook.clone());
        tasks.push(tokio::spawn(async move {
            let lag = Instant::now().saturating_duration_since(due);
            let status = post(&client, &hook, body).await?;
            anyhow::Ok((Instant::now().saturating_duration_since(due), lag, status))
        }));
    }
    let (mut ack, mut lag) = (histogram(), histogram());
    for task in tasks {
        let (took, late, status) = task.await??;
        if status != 204 {
            bail!(
                "the hook answered {status}; see {}",
                server.dir.path().display()
            );
        }
        record(&mut ack, took);
        record(&mut lag, late);
    }
    let acted = until_acted(okta, &sent, "factorwatch").await?;
    let executed = until_reported(&alert_file, 2 * users.len()).await?;
    let stats = ProcStats::read(server.pid())?;
    let calls = okta.requests().len().saturating_sub(from);
    let [first, risk, sessions] = latencies(&sent, &acted);
    let n = users.len() as f64;
    let high = users
        .iter()
        .filter(|u| okta.user_risk(&u.id).as_deref() == Some("HIGH"))
        .count();
    let signed_out = users
        .iter()
        .filter(|u| okta.user_sessions(&u.id) == 0)
        .count();
    let mut rows = vec![
        latency_row(run, "factorwatch", FIRST, &first),
        latency_row(run, "factorwatch", RISK, &risk),
        latency_row(run, "factorwatch", SESSIONS, &sessions),
    ];
    rows.insert(0, latency_row(run, "factorwatch", ACK, &ack));
    let mut outcomes = Row::new(run, SCENARIO, "factorwatch", 1, OUTCOMES);
    outcomes
        .set("resets", n)
        .set("rate", rate)
        .set("executed_reports", executed.executed as f64)
        .set("other_reports", executed.other as f64)
        .set("risk_high", high as f64)
        .set("signed_out", signed_out as f64)
        .set("okta_calls_per_reset", calls as f64 / n)
        .set("cpu_ms_per_reset", stats.cpu_seconds * 1000.0 / n)
        .set("hwm_mib", stats.hwm_kib as f64 / 1024.0)
        .set(
            "send_lag_p50_ms",
            lag.value_at_quantile(0.5) as f64 / 1000.0,
        )
        .set("send_lag_max_ms", lag.max() as f64 / 1000.0)
        .set("violations", okta.spec_violations().len() as f64);
    say(&rows[0], "factorwatch, POST to the 204");
    say(&rows[1], "factorwatch, POST to the user's GET");
    say(&rows[2], "factorwatch, POST to the risk PUT");
    say(&rows[3], "factorwatch, POST to the sessions DELETE");
    progress!(
        "  {} executed reports of {} expected ({} other); {high} users at HIGH, {signed_out} \
         signed out; {:.1} Okta calls a reset; CPU {:.1} ms a reset (start-up included); peak \
         RSS {:.1} MiB; send lag p50 {:.2} ms",
        executed.executed,
        2 * users.len(),
        executed.other,
        calls as f64 / n,
        stats.cpu_seconds * 1000.0 / n,
        stats.hwm_kib as f64 / 1024.0,
        lag.value_at_quantile(0.5) as f64 / 1000.0
    );
    rows.push(outcomes);
    drop(server);
    Ok(rows)
}

/// POSTs one envelope to the hook as Okta does; its status. A request that fails on the
/// connection (a pooled connection the server had just closed) is sent again, at most twice.
async fn post(client: &reqwest::Client, hook: &str, body: Bytes) -> anyhow::Result<u16> {
    let mut attempt = 0;
    loop {
        let sent = client
            .post(hook)
            .header("Authorization", SECRET)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) => {
                let status = answer.status().as_u16();
                answer.bytes().await?;
                return Ok(status);
            }
            Err(err) if attempt < 2 && !err.is_status() => attempt += 1,
            Err(err) => return Err(err).context("POST to the hook"),
        }
    }
}

/// The response reports in the alert file.
struct Reports {
    executed: usize,
    other: usize,
}

/// Waits (at most [`DEADLINE`]) until the alert file holds `executed` reports whose outcome is
/// `executed`.
async fn until_reported(path: &Path, executed: usize) -> anyhow::Result<Reports> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut reports = Reports {
            executed: 0,
            other: 0,
        };
        for line in text.lines() {
            let Ok(alert) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            match alert["response"]["outcome"].as_str() {
                Some("executed") => reports.executed += 1,
                Some(_) => reports.other += 1,
                None => {}
            }
        }
        if reports.executed >= executed || started.elapsed() > DEADLINE {
            return Ok(reports);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `responses.json` (every figure of every run) and `responses-summary.md` into `dir`.
pub fn write(dir: &Path, rows: &[Row]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("responses.json"),
        serde_json::to_string_pretty(rows)?,
    )?;
    std::fs::write(dir.join("responses-summary.md"), markdown(rows))?;
    Ok(())
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "–".to_owned(),
    }
}

fn times(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    }
}

/// The Markdown table of the medians over runs, and each run's p99s.
pub fn markdown(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let m = Medians::of(rows);
    let runs = rows.iter().map(|r| r.run).max().unwrap_or(0);
    let get = |server: &str, label: &str, name: &str| m.get(SCENARIO, server, 1, label, name);
    let outcome = |name: &str| get("factorwatch", OUTCOMES, name);
    let mut out = format!(
        "### Responses: from the hook's POST to the action in Okta\n\n\
         Medians of {runs} run(s); {} MFA resets a run at {} a second, one user each; times from \
         each POST's (or baseline user's) due time to the stand-in's arrival of the call.\n\n",
        cell(outcome("resets"), 0),
        cell(outcome("rate"), 0),
    );
    let _ = writeln!(
        out,
        "| measure | p50 ms | p90 ms | p99 ms | max ms | p99 / target 1 s | p99 / baseline p99 |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let lines = [
        (
            "factorwatch",
            ACK,
            "factorwatch: POST → 204 (the hook's acknowledgement)",
            None,
        ),
        (
            "factorwatch",
            FIRST,
            "factorwatch: POST → first Okta call (GET the user)",
            None,
        ),
        (
            "factorwatch",
            RISK,
            "factorwatch: POST → risk raised (PUT /risk)",
            Some(RISK),
        ),
        (
            "factorwatch",
            SESSIONS,
            "factorwatch: POST → sessions cleared (DELETE /sessions, the last action)",
            Some(SESSIONS),
        ),
        (
            "baseline",
            FIRST,
            "baseline, six calls: start → GET the user",
            None,
        ),
        (
            "baseline",
            RISK,
            "baseline, six calls: start → PUT /risk",
            None,
        ),
        (
            "baseline",
            SESSIONS,
            "baseline, six calls: start → DELETE /sessions",
            None,
        ),
        (
            "baseline",
            ANSWERED,
            "baseline, six calls: start → DELETE answered",
            None,
        ),
    ];
    for (server, label, what, against) in lines {
        let v = |name: &str| get(server, label, name);
        let versus = against
            .map(|b| times(v("p99_ms"), get("baseline", b, "p99_ms")))
            .unwrap_or_else(|| "–".to_owned());
        let target = match label {
            RISK | SESSIONS if server == "factorwatch" => {
                format!(
                    "{:.0}%",
                    100.0 * v("p99_ms").unwrap_or(f64::NAN) / TARGET_MS
                )
            }
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {} | {} | {target} | {versus} |",
            cell(v("p50_ms"), 1),
            cell(v("p90_ms"), 1),
            cell(v("p99_ms"), 1),
            cell(v("max_ms"), 1),
        );
    }
    let share = |q: &str| match (
        get("factorwatch", SESSIONS, q),
        get("baseline", SESSIONS, q),
    ) {
        (Some(a), Some(b)) => cell(Some(a - b), 1),
        _ => "–".to_owned(),
    };
    let _ = writeln!(
        out,
        "\nfactorwatch's own share (POST → sessions cleared minus the baseline's start → DELETE): \
         p50 {} ms, p99 {} ms.\n",
        share("p50_ms"),
        share("p99_ms")
    );
    let _ = writeln!(
        out,
        "Outcomes (medians): {} executed reports of {} expected ({} other); {} users at HIGH and {} \
         signed out of {}; {} Okta calls a reset; factorwatch CPU {} ms a reset (start-up \
         included), peak RSS {} MiB; the generator's lag behind the due time (tokio's 1 ms timer; in every \
         figure above, both sides) p50 {} ms, at most {} ms (baseline: p50 {}, at most {}); spec \
         violations {}.\n",
        cell(outcome("executed_reports"), 0),
        cell(outcome("resets").map(|n| 2.0 * n), 0),
        cell(outcome("other_reports"), 0),
        cell(outcome("risk_high"), 0),
        cell(outcome("signed_out"), 0),
        cell(outcome("resets"), 0),
        cell(outcome("okta_calls_per_reset"), 2),
        cell(outcome("cpu_ms_per_reset"), 2),
        cell(outcome("hwm_mib"), 1),
        cell(outcome("send_lag_p50_ms"), 2),
        cell(outcome("send_lag_max_ms"), 1),
        cell(get("baseline", ANSWERED, "send_lag_p50_ms"), 2),
        cell(get("baseline", ANSWERED, "send_lag_max_ms"), 1),
        cell(outcome("violations"), 0),
    );
    let _ = writeln!(out, "Each run (p50 / p99 / max ms):\n");
    for run in 1..=runs {
        let one = |server: &str, label: &str| {
            let row = rows
                .iter()
                .find(|r| r.run == run && r.server == server && r.label == label);
            let v = |name: &str| row.and_then(|r| r.values.get(name).copied());
            format!(
                "{} / {} / {}",
                cell(v("p50_ms"), 1),
                cell(v("p99_ms"), 1),
                cell(v("max_ms"), 1)
            )
        };
        let load = rows
            .iter()
            .find(|r| r.run == run && r.scenario == "machine")
            .and_then(|r| r.values.get("loadavg_1m").copied());
        let _ = writeln!(
            out,
            "- run {run} (loadavg 1 min {}): risk raised {}; sessions cleared {}; baseline DELETE \
             {}; ack {}",
            cell(load, 2),
            one("factorwatch", RISK),
            one("factorwatch", SESSIONS),
            one("baseline", SESSIONS),
            one("factorwatch", ACK),
        );
    }
    out
}
