//! The monitoring that ships with the service (`deploy/monitoring/`): the alert rules pass
//! promtool's checks and their unit tests, each has a runbook, the rules and the Grafana
//! dashboard use only metrics factorwatch emits, and a real Prometheus scrapes the operational
//! listener (and gets nothing from the hook port), with the rules loaded and evaluating.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::daemons::{Daemon, system_binary, wait_for_port};
use crate::helpers::{ChildServer, batch_with_mfa, eventually, free_port, post_envelope};

const RULES: &str = "deploy/monitoring/factorwatch-alerts.yml";
const RULE_TESTS: &str = "deploy/monitoring/factorwatch-alerts.test.yml";
const DASHBOARD: &str = "deploy/monitoring/factorwatch-dashboard.json";

/// A file of the repository.
fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Runs promtool (installed by scripts/test-services.sh) with `args`; panics with its output
/// unless it succeeds.
fn promtool(args: &[&str]) -> String {
    let output = Command::new(system_binary("promtool"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("promtool is installed by scripts/test-services.sh (Debian's prometheus)");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{printed}");
    printed
}

/// The alerting rules, as (name, expression, annotations).
fn alert_rules() -> Vec<(String, String, Value)> {
    let rules: Value = yaml_serde::from_str(&read(RULES)).expect("the rules are YAML");
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().clone())
        .map(|rule| {
            let name = rule["alert"]
                .as_str()
                .expect("only alerting rules")
                .to_owned();
            let expr = rule["expr"].as_str().unwrap().to_owned();
            (name, expr, rule["annotations"].clone())
        })
        .collect()
}

/// Every panel of the dashboard, rows' nested panels included.
fn dashboard_panels(dashboard: &Value) -> Vec<Value> {
    dashboard["panels"]
        .as_array()
        .expect("a dashboard has panels")
        .iter()
        .flat_map(|panel| {
            let nested = panel["panels"].as_array().cloned().unwrap_or_default();
            std::iter::once(panel.clone()).chain(nested)
        })
        .collect()
}

/// The PromQL of every dashboard query, with its template variables given a value.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    dashboard_panels(&dashboard)
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().unwrap().replace("$instance", ".*"))
        .collect()
}

/// The metric names factorwatch emits: every name constant of `src/telemetry/metrics.rs` (whose
/// own tests check that no metric is recorded under any other name).
fn emitted_metrics() -> HashSet<String> {
    metric_names(&read("src/telemetry/metrics.rs"))
}

/// The `factorwatch_*` names in `text`, a histogram's `_bucket`, `_sum` and `_count` series
/// named after the histogram.
fn metric_names(text: &str) -> HashSet<String> {
    let name = regex::Regex::new(r"factorwatch_[a-z0-9_]+").unwrap();
    name.find_iter(text)
        .map(|found| {
            let series = found.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| series.strip_suffix(suffix))
                .unwrap_or(series)
                .to_owned()
        })
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", RULES]);
    let count = alert_rules().len();
    assert!(
        checked.contains(&format!("SUCCESS: {count} rules found")),
        "{checked}"
    );
    let tested = promtool(&["test", "rules", RULE_TESTS]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_is_unit_tested_and_has_a_runbook() {
    let tests = read(RULE_TESTS);
    let operations = read("docs/operations.md");
    for (name, _, annotations) in alert_rules() {
        assert!(
            tests.contains(&format!(
                "alertname: {name}\n        exp_alerts:\n          - "
            )),
            "{name}: no unit test in {RULE_TESTS} expects it to fire"
        );
        let runbook = annotations["runbook"].as_str().unwrap_or_default();
        let (doc, anchor) = runbook
            .split_once('#')
            .unwrap_or_else(|| panic!("{name}: runbook {runbook:?} is not docs/...#section"));
        assert_eq!(doc, "docs/operations.md", "{name}");
        let documented = operations
            .lines()
            .filter_map(|line| line.strip_prefix("#### "))
            .any(|heading| heading.to_lowercase() == anchor);
        assert!(
            documented,
            "{name}: docs/operations.md has no `#### ` section for #{anchor}"
        );
        for key in ["summary", "description"] {
            assert!(annotations[key].is_string(), "{name} has no {key}");
        }
    }
}

#[test]
fn the_rules_and_the_dashboard_use_only_metrics_factorwatch_emits() {
    let emitted = emitted_metrics();
    assert!(emitted.len() > 40, "{emitted:?}");
    let rules: Vec<String> = alert_rules().into_iter().map(|(_, expr, _)| expr).collect();
    let queries = dashboard_queries();
    let used: BTreeSet<String> = rules
        .iter()
        .chain(&queries)
        .flat_map(|expr| metric_names(expr))
        .collect();
    let unknown: Vec<&String> = used
        .iter()
        .filter(|name| !emitted.contains(*name))
        .collect();
    assert!(
        unknown.is_empty(),
        "not emitted by factorwatch: {unknown:?}"
    );
    // Each expression names a factorwatch metric, or `up`, Prometheus's own for the scrape.
    for expr in rules.iter().chain(&queries) {
        assert!(
            !metric_names(expr).is_empty() || expr.starts_with("up{job=\"factorwatch\""),
            "{expr}"
        );
    }
    // Every dashboard query is valid PromQL: promtool checks them as recording rules.
    let scratch = TempDir::new().unwrap();
    let records: String = queries
        .iter()
        .enumerate()
        .map(|(n, expr)| format!("      - record: dashboard:query_{n}\n        expr: {expr:?}\n"))
        .collect();
    let file = scratch.path().join("dashboard-queries.yml");
    std::fs::write(
        &file,
        format!("groups:\n  - name: dashboard\n    rules:\n{records}"),
    )
    .unwrap();
    promtool(&["check", "rules", file.to_str().unwrap()]);
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_over_a_chosen_prometheus() {
    let dashboard: Value = serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "factorwatch");
    assert!(dashboard["title"].is_string() && dashboard["schemaVersion"].is_u64());
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["type"] == "datasource"
            && v["name"] == "datasource"
            && v["query"] == "prometheus"),
        "a Prometheus data source variable: {variables:?}"
    );
    let panels = dashboard_panels(&dashboard);
    let mut ids = HashSet::new();
    for panel in &panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id twice"
        );
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(
            x + w <= 24 && grid["h"].as_u64() > Some(0),
            "{title}: {grid}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            ["timeseries", "stat"].contains(&panel["type"].as_str().unwrap()),
            "{title}"
        );
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        let ref_ids: HashSet<&str> = targets
            .iter()
            .map(|t| t["refId"].as_str().unwrap())
            .collect();
        assert_eq!(ref_ids.len(), targets.len(), "{title}: refIds repeat");
    }
}

/// Prometheus, scraping `jobs` (name, target, path) every second with the alert rules loaded;
/// returns the process and its API's base URL.
async fn start_prometheus(dir: &Path, jobs: &[(&str, String, &str)]) -> (Daemon, String) {
    let port = free_port();
    let scrape: String = jobs
        .iter()
        .map(|(job, target, path)| {
            format!(
                "  - job_name: {job}\n    metrics_path: {path}\n    static_configs:\n      \
                 - targets: [\"{target}\"]\n"
            )
        })
        .collect();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n{scrape}",
            repo_file(RULES).display()
        ),
    )
    .unwrap();
    let child = Command::new(system_binary("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed by scripts/test-services.sh (Debian's prometheus)");
    wait_for_port(port).await;
    (Daemon(child), format!("http://127.0.0.1:{port}/api/v1"))
}

/// The value of the instant `query` in Prometheus at `api`: the first series' value, or why not.
async fn query(api: &str, query: &str) -> Result<f64, String> {
    let answer: Value = reqwest::Client::new()
        .get(format!("{api}/query"))
        .query(&[("query", query)])
        .send()
        .await
        .map_err(|err| err.to_string())?
        .json()
        .await
        .map_err(|err| err.to_string())?;
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| answer.to_string())
}

#[tokio::test]
async fn prometheus_scrapes_the_operational_listener_and_not_the_hook_port() {
    // A process of its own: the in-process apps of other tests share their metrics.
    let data = TempDir::new().unwrap();
    let server = ChildServer::start(data.path(), free_port()).await;
    let (batch, _) = batch_with_mfa(5, 1);
    assert!(post_envelope(&reqwest::Client::new(), &server.hook_url, &batch).await);
    let dir = TempDir::new().unwrap();
    let jobs = [
        ("factorwatch", server.ops_addr.to_string(), "/metrics"),
        ("hook_port", server.addr.to_string(), "/metrics"),
    ];
    let (_prometheus, api) = start_prometheus(dir.path(), &jobs).await;
    let wait = Duration::from_secs(60);

    let scraped = r#"factorwatch_events_received_total{job="factorwatch"}"#;
    let received = eventually(
        wait,
        "Prometheus to scrape the events received",
        async || query(&api, scraped).await,
    )
    .await;
    assert_eq!(received, 5.0);
    let up = |job: &'static str| format!(r#"up{{job="{job}"}}"#);
    assert_eq!(query(&api, &up("factorwatch")).await, Ok(1.0));
    let hook_port = eventually(wait, "a scrape of the hook port", async || {
        query(&api, &up("hook_port")).await
    })
    .await;
    assert_eq!(hook_port, 0.0, "the hook port serves no metrics");

    // The shipped rules are loaded and evaluate against factorwatch's series without error.
    let count = alert_rules().len();
    let rules = eventually(wait, "every rule evaluated", async || {
        let answer: Value = reqwest::get(format!("{api}/rules"))
            .await
            .map_err(|err| err.to_string())?
            .json()
            .await
            .map_err(|err| err.to_string())?;
        let rules: Vec<Value> = answer["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = rules.iter().all(|rule| rule["health"] == "ok");
        match rules.len() == count && evaluated {
            true => Ok(rules),
            false => Err(answer.to_string()),
        }
    })
    .await;
    let firing: Vec<&Value> = rules.iter().filter(|r| r["state"] == "firing").collect();
    assert!(
        firing.is_empty(),
        "a healthy factorwatch fires nothing: {firing:?}"
    );
}
