//! The name of every metric factorwatch emits, in one place: call sites, the Prometheus
//! exporter's bucket settings and docs/operations.md's table all use these, and the tests below
//! hold the docs and the call sites to them.
//!
//! Labels marked "`org`" are present only on the series of an `[[okta.orgs]]` org (see
//! [`org_labels`](super::org_labels)).

// Intake: the hook listener.

/// Counter: every answer of the hook listener. Labels: `route` (the matched route, or
/// `unmatched`), `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "factorwatch_http_requests_total";
/// Gauge: connections open on `listen`.
pub const CONNECTIONS_OPEN: &str = "factorwatch_connections_open";
/// Counter: connections closed before any request was read. Label: `reason`
/// (`max_connections`, `header_read_timeout`, `tls_handshake`).
pub const CONNECTIONS_REFUSED_TOTAL: &str = "factorwatch_connections_refused_total";
/// Counter: certificate file changes seen. Label: `outcome` (`reloaded`, `failed`).
pub const TLS_RELOADS_TOTAL: &str = "factorwatch_tls_reloads_total";
/// Counter: events in accepted batches, Okta's redeliveries included. Label: `org`.
pub const EVENTS_RECEIVED_TOTAL: &str = "factorwatch_events_received_total";
/// Histogram: seconds from the start of the hook handler to its `204`, accepted batches only.
/// No labels.
pub const ACK_LATENCY_SECONDS: &str = "factorwatch_ack_latency_seconds";
/// Gauge: Unix time of the last delivery authenticated with an accepted Okta secret, on this
/// replica. Labels: `fingerprint` (the secret's, keyed per process), `org`.
pub const OKTA_SECRET_LAST_USED_TIMESTAMP_SECONDS: &str =
    "factorwatch_okta_secret_last_used_timestamp_seconds";

// The spool.

/// Histogram: jobs folded into each commit of the spool writer. No labels.
pub const SPOOL_COMMIT_GROUP_SIZE: &str = "factorwatch_spool_commit_group_size";
/// Gauge: bytes of batches waiting for detection plus alerts waiting for delivery. Label: `org`.
pub const SPOOL_BACKLOG_BYTES: &str = "factorwatch_spool_backlog_bytes";
/// Gauge: `storage.max_backlog_bytes`, the backlog at which new batches are refused. Label: `org`.
pub const SPOOL_BACKLOG_LIMIT_BYTES: &str = "factorwatch_spool_backlog_limit_bytes";
/// Gauge: batches stored and not yet detected. Label: `org`.
pub const SPOOL_PENDING_BATCHES: &str = "factorwatch_spool_pending_batches";
/// Gauge: 1 if the spool's last commit succeeded, else 0. Label: `org`.
pub const SPOOL_WRITABLE: &str = "factorwatch_spool_writable";
/// Gauge: bytes free to this process on the filesystem of the spool. Label: `org`.
pub const STORAGE_AVAILABLE_BYTES: &str = "factorwatch_storage_available_bytes";
/// Gauge: size in bytes of the filesystem of the spool. Label: `org`.
pub const STORAGE_CAPACITY_BYTES: &str = "factorwatch_storage_capacity_bytes";
/// Gauge: alerts waiting in a sink's outbox. Labels: `sink`, `org`.
pub const OUTBOX_PENDING: &str = "factorwatch_outbox_pending";
/// Gauge: alerts in a sink's dead-letter table. Labels: `sink`, `org`.
pub const DEAD_LETTER_PENDING: &str = "factorwatch_dead_letter_pending";
/// Gauge: event keys the de-duplication window holds. Label: `org`.
pub const DEDUP_WINDOW_KEYS: &str = "factorwatch_dedup_window_keys";
/// Gauge: sealed segments of the de-duplication window. Label: `org`.
pub const DEDUP_WINDOW_SEGMENTS: &str = "factorwatch_dedup_window_segments";

// Detection, per process.

/// Counter: stored batches the detector could not read, moved to quarantine. No labels.
pub const BATCHES_QUARANTINED_TOTAL: &str = "factorwatch_batches_quarantined_total";
/// Counter: new events that are valid JSON but cannot be built into a JSON tree. No labels.
pub const EVENTS_UNREADABLE_TOTAL: &str = "factorwatch_events_unreadable_total";
/// Counter: events taken out of stored batches by the detector, duplicates included. No labels.
pub const EVENTS_DETECTED_TOTAL: &str = "factorwatch_events_detected_total";
/// Counter: events dropped because this replica had already seen their key. No labels.
pub const DUPLICATE_EVENTS_TOTAL: &str = "factorwatch_duplicate_events_total";
/// Counter: events dropped because another replica (or batch) claimed their key first in the
/// shared backend. No labels.
pub const CLUSTER_DUPLICATE_EVENTS_TOTAL: &str = "factorwatch_cluster_duplicate_events_total";
/// Counter: alerts raised, once per alert. Labels: `rule_id`, `level`.
pub const ALERTS_TOTAL: &str = "factorwatch_alerts_total";
/// Counter: alerts not delivered to a `notify = "first"` sink, as repeats of a rule inside an
/// incident that sink was already sent. Labels: `sink`, `org`.
pub const ALERTS_SUPPRESSED_TOTAL: &str = "factorwatch_alerts_suppressed_total";
/// Counter: alerts sent without their incident because the cluster backend did not answer.
/// Label: `org`.
pub const INCIDENTS_UNAVAILABLE_TOTAL: &str = "factorwatch_incidents_unavailable_total";
/// Histogram: seconds each stage of a detection pass took. Label: `stage` (`read`, `rules`,
/// `claim`, `prepare`, `store`).
pub const DETECTION_STAGE_SECONDS: &str = "factorwatch_detection_stage_seconds";
/// Gauge: correlation windows and absence timers open. No labels.
pub const CORRELATION_OPEN_STATE: &str = "factorwatch_correlation_open_state";
/// Counter: absence timers not opened because the most that may be open were. No labels.
pub const CORRELATION_TIMERS_REFUSED_TOTAL: &str = "factorwatch_correlation_timers_refused_total";
/// Counter: events fed to a correlation that already held the most groups it remembers (rsigma
/// then drops the groups past their timespan and, if still at the cap, the tenth quiet longest).
/// No labels.
pub const CORRELATION_GROUP_CAP_REACHED_TOTAL: &str =
    "factorwatch_correlation_group_cap_reached_total";
/// Counter: correlation steps that found the shared state written by another replica first.
/// No labels.
pub const CLUSTER_CORRELATION_CONFLICTS_TOTAL: &str =
    "factorwatch_cluster_correlation_conflicts_total";
/// Gauge: 1 if the last call to the shared `[cluster]` backend succeeded, else 0. No labels.
pub const CLUSTER_BACKEND_UP: &str = "factorwatch_cluster_backend_up";

// Delivery.

/// Counter: alerts a sink was asked to publish. Labels: `sink`, `org`.
pub const DELIVERY_ATTEMPTS_TOTAL: &str = "factorwatch_delivery_attempts_total";
/// Counter: failed attempts, transient or permanent. Labels: `sink`, `org`.
pub const DELIVERY_FAILURES_TOTAL: &str = "factorwatch_delivery_failures_total";
/// Counter: alerts moved to the dead-letter table by this process. Labels: `sink`, `org`.
pub const DEAD_LETTERS_TOTAL: &str = "factorwatch_dead_letters_total";
/// Gauge: 1 after a sink's successful delivery attempt, 0 after a failed one. Labels: `sink`,
/// `org`.
pub const SINK_UP: &str = "factorwatch_sink_up";
/// Gauge: Unix time of a sink's last failed attempt. Labels: `sink`, `org`.
pub const SINK_LAST_ERROR_TIMESTAMP_SECONDS: &str = "factorwatch_sink_last_error_timestamp_seconds";

// Rules.

/// Gauge: rules in force after the last successful SIGHUP reload. Label: `org`.
pub const RULES_LOADED: &str = "factorwatch_rules_loaded";
/// Counter: SIGHUP rule reloads that failed (the previous rules stayed). Label: `org`.
pub const RULE_RELOAD_FAILURES_TOTAL: &str = "factorwatch_rule_reload_failures_total";

// The Okta Management API client.

/// Counter: requests to Okta's API. Labels: `endpoint` (`token`, `logs`), `outcome` (`ok`,
/// `rate_limited`, `client_error`, `server_error`, `timeout`, `transport`), `org`.
pub const OKTA_API_REQUESTS_TOTAL: &str = "factorwatch_okta_api_requests_total";
/// Histogram: seconds from sending a request to Okta's API to the end of its answer. Label:
/// `endpoint`.
pub const OKTA_API_REQUEST_DURATION_SECONDS: &str = "factorwatch_okta_api_request_duration_seconds";
/// Counter: seconds spent waiting for Okta's rate-limit windows to reset. Label: `org`.
pub const OKTA_API_RATE_LIMIT_WAIT_SECONDS_TOTAL: &str =
    "factorwatch_okta_api_rate_limit_wait_seconds_total";

// Reconciliation with the System Log.

/// Counter: events the System Log poller read and stored, duplicates of the hook's included.
/// Label: `org`.
pub const RECONCILE_EVENTS_READ_TOTAL: &str = "factorwatch_reconcile_events_read_total";
/// Counter: events the System Log brought that a hook could have delivered and did not (new when
/// detected, after the grace the hook had). Label: `org`.
pub const OKTA_EVENTS_RECOVERED_TOTAL: &str = "factorwatch_okta_events_recovered_total";
/// Gauge: how far behind now the poller's last poll was: 0 once it caught up (a page that was not
/// full), else the age of the newest event it read. Label: `org`.
pub const RECONCILE_LAG_SECONDS: &str = "factorwatch_reconcile_lag_seconds";
/// Gauge: Unix time of the poller's last successful poll. Label: `org`.
pub const RECONCILE_LAST_SUCCESS_TIMESTAMP_SECONDS: &str =
    "factorwatch_reconcile_last_success_timestamp_seconds";
/// Gauge: 1 on the replica that holds an org's polling lease (or a standalone poller), else 0.
/// Label: `org`.
pub const RECONCILE_LEASE_HELD: &str = "factorwatch_reconcile_lease_held";
/// Counter: actions of the responses, by `response`, `action` and `outcome` (`executed`,
/// `dry_run`, `skipped`, `held`, `failed`).
pub const RESPONSE_ACTIONS_TOTAL: &str = "factorwatch_response_actions_total";
/// Gauge: 1 while the event hook is silent (the System Log shows events it should have delivered
/// and it delivered nothing for `silence_after`), else 0; set by the replica that polls, 0 on
/// the others. Label: `org`.
pub const OKTA_HOOK_SILENT: &str = "factorwatch_okta_hook_silent";
/// Gauge: Unix time of the event hook's last delivery (the fleet's, in a cluster). Label: `org`.
pub const OKTA_HOOK_LAST_DELIVERY_TIMESTAMP_SECONDS: &str =
    "factorwatch_okta_hook_last_delivery_timestamp_seconds";

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// This file, whose constants are the only place a metric name may be written.
    const NAMES_FILE: &str = "src/telemetry/metrics.rs";
    /// What starts a metric name.
    const PREFIX: &str = "factorwatch_";
    /// Macro and matcher calls whose first argument is a metric name (`describe_counter!(`
    /// contains `counter!(`, and so on).
    const NAME_TAKERS: [&str; 4] = ["counter!(", "gauge!(", "histogram!(", "Matcher::"];

    fn read(relative: impl AsRef<Path>) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    /// This file up to its tests: the constants.
    fn constants() -> String {
        let source = read(NAMES_FILE);
        source
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// The values of the constants: every string literal in them that starts with the prefix.
    fn names() -> Vec<String> {
        let constants = constants();
        let quoted = format!("\"{PREFIX}");
        constants
            .match_indices(&quoted)
            .map(|(at, _)| {
                let name = &constants[at + 1..];
                name[..name.find('"').expect("a closed string")].to_owned()
            })
            .collect()
    }

    /// The metric names of docs/operations.md's metrics table: each row starts with one.
    fn documented() -> Vec<String> {
        read("docs/operations.md")
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter(|rest| rest.starts_with(PREFIX))
            .map(|rest| rest[..rest.find('`').expect("a closed name")].to_owned())
            .collect()
    }

    /// Every `.rs` file under `dir`.
    fn rust_files(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                files.extend(rust_files(&path));
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
        files
    }

    #[test]
    fn every_constant_is_a_distinct_prefixed_name() {
        let names = names();
        let constants = constants().matches("pub const ").count();
        assert_eq!(
            names.len(),
            constants,
            "a constant does not start with {PREFIX}: {names:?}"
        );
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a name is defined twice");
    }

    #[test]
    fn every_metric_has_a_row_in_operations_md_and_every_row_a_metric() {
        let (names, documented) = (names(), documented());
        let undocumented: Vec<_> = names.iter().filter(|n| !documented.contains(n)).collect();
        assert!(
            undocumented.is_empty(),
            "docs/operations.md's metrics table has no row for {undocumented:?}"
        );
        let unknown: Vec<_> = documented.iter().filter(|d| !names.contains(d)).collect();
        assert!(
            unknown.is_empty(),
            "docs/operations.md documents {unknown:?}, which no constant names"
        );
    }

    #[test]
    fn no_metric_is_named_by_a_string_literal_outside_this_module() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (mut calls, mut literals) = (0, Vec::new());
        for path in rust_files(&root.join("src")) {
            if path == root.join(NAMES_FILE) {
                continue;
            }
            let source = read(&path);
            for taker in NAME_TAKERS {
                for (at, _) in source.match_indices(taker) {
                    calls += 1;
                    let argument = source[at + taker.len()..].trim_start();
                    let argument = ["Full(", "Prefix(", "Suffix("]
                        .iter()
                        .find_map(|matcher| argument.strip_prefix(matcher))
                        .unwrap_or(argument)
                        .trim_start();
                    if argument.starts_with('"') {
                        let line = source[..at].matches('\n').count() + 1;
                        let relative = path.strip_prefix(root).unwrap_or(&path);
                        literals.push(format!("{}:{line}", relative.display()));
                    }
                }
            }
        }
        assert!(
            calls > 20,
            "no metric call found under src/: the scan is broken"
        );
        assert!(
            literals.is_empty(),
            "metric names written as string literals instead of a telemetry::metrics constant: {literals:?}"
        );
    }
}
