//! Where incidents are kept while alerts are folded into them ([`super::incident`]): standalone
//! in the spool's `incidents` table, read before the pass's alerts are queued and written in the
//! same transaction as their outbox rows; in a `[cluster]` in the shared backend, one record per
//! user changed by compare-and-set (read, fold, write if unchanged, else read again), so that
//! every replica folds into the same incident. A backend that cannot answer never holds an alert
//! back: the alerts of that pass go out without their incident, logged and counted in
//! `factorwatch_incidents_unavailable_total`.
//!
//! Standalone, each pass also sweeps the next [`SWEPT_PER_PASS`] stored incidents and removes
//! those whose window ended, with the pass's commit; the cluster backends expire their records
//! by themselves (Redis TTL, NATS KV `max_age`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::alert::{Alert, Incident};
use crate::cluster::SharedState;
use crate::sinks::NotifyPolicy;
use crate::spool::SpoolError;
use crate::telemetry::metrics::INCIDENTS_UNAVAILABLE_TOTAL;

use super::Detector;
use super::incident::{IncidentKey, IncidentState, Routes, alert_time_ms, fold, incident_view};

/// Compare-and-set attempts on one incident before its alerts go out without it (other
/// replicas kept writing it).
const ATTEMPTS: usize = 5;

/// Stored incidents checked for expiry per pass: bounds the read and the delete of one pass,
/// and still goes through a million rows in about 4000 passes.
const SWEPT_PER_PASS: usize = 256;

/// Alerts folded into their incidents, ready to queue.
#[derive(Debug, Default)]
pub(super) struct Folded {
    /// The alerts, each with its incident (when it has one).
    pub alerts: Vec<Alert>,
    /// Each alert's routes to `notify = "first"` sinks (by index; empty: sent to every sink).
    pub routes: Vec<Routes>,
    /// Standalone: the incidents to store with the pass, by record key.
    pub records: Vec<(String, Vec<u8>)>,
}

/// The alerts of one user's incident: their indexes in time order, each with its parsed event.
type Members = Vec<(usize, Value)>;

/// One incident folded: its new state, and what each member alert gets.
struct GroupFold {
    state: IncidentState,
    members: Vec<(usize, Incident, Routes)>,
}

impl Detector {
    /// Folds `alerts` into their users' incidents (nothing with `incident_window = "0s"`).
    pub(super) async fn fold_incidents(&self, alerts: Vec<Alert>) -> Result<Folded, SpoolError> {
        let mut folded = Folded {
            routes: vec![Routes::new(); alerts.len()],
            alerts,
            records: Vec::new(),
        };
        if self.incident_window.is_zero() || folded.alerts.is_empty() {
            return Ok(folded);
        }
        let groups = by_incident(&folded.alerts);
        match &self.shared {
            None => self.fold_in_spool(groups, &mut folded).await?,
            Some(shared) => self.fold_shared(shared, groups, &mut folded).await,
        }
        Ok(folded)
    }

    /// Standalone: the keys of the next few stored incidents whose window ended by `now_ms` (or
    /// that no longer decode), to remove with the pass. In a `[cluster]`, none: the backend
    /// expires them.
    pub(super) async fn expired_incidents(&self, now_ms: u64) -> Result<Vec<String>, SpoolError> {
        if self.shared.is_some() {
            return Ok(Vec::new());
        }
        let swept = self.spool.incidents_to_sweep(SWEPT_PER_PASS).await?;
        let window = self.incident_window;
        Ok(swept
            .into_iter()
            .filter(|(_, bytes)| {
                serde_json::from_slice::<IncidentState>(bytes)
                    .map_or(true, |state| state.ended_by(now_ms, window))
            })
            .map(|(key, _)| key)
            .collect())
    }

    /// Standalone: the stored incidents read in one go, the new ones to store with the pass.
    async fn fold_in_spool(
        &self,
        groups: BTreeMap<IncidentKey, Members>,
        folded: &mut Folded,
    ) -> Result<(), SpoolError> {
        let keys = groups.keys().map(IncidentKey::record).collect();
        let stored: BTreeMap<String, Vec<u8>> =
            self.spool.incidents(keys).await?.into_iter().collect();
        for (key, members) in groups {
            let record = key.record();
            let group = self.fold_group(
                stored.get(&record).map(Vec::as_slice),
                &key,
                &members,
                folded,
            );
            folded.records.push((record, encode(&group.state)));
            apply(group, folded);
        }
        Ok(())
    }

    /// Cluster: each incident read, folded and compare-and-set in the backend.
    async fn fold_shared(
        &self,
        shared: &SharedState,
        groups: BTreeMap<IncidentKey, Members>,
        folded: &mut Folded,
    ) {
        let window = self.incident_window;
        let mut left_out = 0;
        let mut failure = None;
        for (key, members) in groups {
            if failure.is_some() {
                // The backend is down: the rest of the pass does not wait for it again.
                left_out += members.len();
                continue;
            }
            let record = key.record();
            let mut written = None;
            for _ in 0..ATTEMPTS {
                let stored = match shared.load_incident(&record, window).await {
                    Ok(stored) => stored,
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                };
                let group = self.fold_group(stored.as_deref(), &key, &members, folded);
                match shared
                    .swap_incident(&record, stored.as_deref(), &encode(&group.state), window)
                    .await
                {
                    Ok(true) => {
                        written = Some(group);
                        break;
                    }
                    Ok(false) => continue,
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                }
            }
            match written {
                Some(group) => apply(group, folded),
                None => left_out += members.len(),
            }
        }
        if left_out > 0 {
            self.report_unavailable(left_out, failure.map(|err| err.chain()));
        }
    }

    /// Folds `members` in time order onto the incident stored as `stored`.
    fn fold_group(
        &self,
        stored: Option<&[u8]>,
        key: &IncidentKey,
        members: &Members,
        folded: &Folded,
    ) -> GroupFold {
        let mut state = stored.and_then(|bytes| decode(key, bytes));
        let mut folded_members = Vec::with_capacity(members.len());
        for (at, event) in members {
            let alert = &folded.alerts[*at];
            let first_sinks: Vec<&str> = self
                .sinks
                .iter()
                .filter(|sink| sink.notify == NotifyPolicy::First && sink.accepts(alert))
                .map(|sink| sink.name.as_str())
                .collect();
            let (next, routes) = fold(
                state.take(),
                key,
                alert,
                event,
                self.incident_window,
                &first_sinks,
            );
            folded_members.push((*at, next.incident.clone(), routes));
            state = Some(next);
        }
        GroupFold {
            state: state.expect("a group has at least one alert"),
            members: folded_members,
        }
    }

    /// Logs and counts alerts sent without their incident.
    fn report_unavailable(&self, alerts: usize, error: Option<String>) {
        metrics::counter!(
            INCIDENTS_UNAVAILABLE_TOTAL,
            crate::telemetry::org_labels(self.org.as_deref(), &[])
        )
        .increment(alerts as u64);
        tracing::warn!(
            alerts,
            error = error
                .as_deref()
                .unwrap_or("other replicas kept changing the incident"),
            "alerts go out without their incident: the cluster backend did not answer (check \
             cluster.url and /readyz; incidents resume once it answers)"
        );
    }
}

/// The alerts about a user, grouped by incident key, each group in time order.
fn by_incident(alerts: &[Alert]) -> BTreeMap<IncidentKey, Members> {
    let mut groups: BTreeMap<IncidentKey, Members> = BTreeMap::new();
    for (at, alert) in alerts.iter().enumerate() {
        let event = incident_view(&alert.raw_event);
        if let Some(key) = IncidentKey::of(alert, &event) {
            groups.entry(key).or_default().push((at, event));
        }
    }
    for members in groups.values_mut() {
        members.sort_by_key(|(at, _)| alert_time_ms(&alerts[*at]));
    }
    groups
}

/// Gives each member alert its incident and routes.
fn apply(group: GroupFold, folded: &mut Folded) {
    for (at, incident, routes) in group.members {
        folded.alerts[at].incident = Some(incident);
        folded.routes[at] = routes;
    }
}

fn encode(state: &IncidentState) -> Vec<u8> {
    serde_json::to_vec(state).expect("an incident serializes")
}

/// A stored incident; one that does not decode (written by another version) is replaced.
fn decode(key: &IncidentKey, bytes: &[u8]) -> Option<IncidentState> {
    serde_json::from_slice(bytes)
        .inspect_err(|err| {
            tracing::warn!(user = %key.user, error = %err,
                "a stored incident is unreadable; a new incident starts for this user");
        })
        .ok()
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::clock::rfc3339;
    use crate::detect::{RuleSet, RulesConfig, SharedRules};
    use crate::spool::{DetectionCommit, Spool};

    const HOUR_MS: u64 = 3600 * 1000;
    /// 2026-12-01T00:00:00Z.
    const NOW_MS: u64 = 1_764_547_200_000;

    /// A stored incident about `user` whose last alert was at `last_seen_ms`.
    fn stored(user: &str, last_seen_ms: u64) -> (String, Vec<u8>) {
        let incident = Incident {
            id: format!("incident-{user}"),
            user: user.to_owned(),
            first_seen: rfc3339(last_seen_ms),
            last_seen: rfc3339(last_seen_ms),
            steps: Vec::new(),
            steps_omitted: 0,
            also: Vec::new(),
            also_omitted: 0,
        };
        let state = json!({ "incident": incident, "last_seen_ms": last_seen_ms });
        (
            format!("acme.okta.com:{user}"),
            state.to_string().into_bytes(),
        )
    }

    /// A detector on `spool` with the built-in rules and nothing else configured.
    pub(in crate::detect) fn standalone_detector(
        spool: Arc<Spool>,
        incident_window: Duration,
    ) -> Detector {
        Detector {
            rules: SharedRules::new(RuleSet::load(&RulesConfig::default()).unwrap()),
            spool,
            sinks: Vec::new().into(),
            responses: Vec::new().into(),
            dedup_window: Duration::from_secs(60),
            privileged_users: Arc::new([]),
            live_context: None,
            forwarders: Vec::new(),
            shared: None,
            org: None,
            tallies: Default::default(),
            incident_window,
        }
    }

    async fn stored_keys(spool: &Spool, keys: &[&str]) -> Vec<String> {
        let keys = keys.iter().map(|key| key.to_string()).collect();
        let found = spool.incidents(keys).await.unwrap();
        found.into_iter().map(|(key, _)| key).collect()
    }

    #[tokio::test]
    async fn an_incident_past_its_window_leaves_the_spool_and_a_live_one_stays() {
        let dir = tempfile::TempDir::new().unwrap();
        let spool = Arc::new(Spool::open(dir.path(), u64::MAX).unwrap());
        let incidents = vec![
            stored("gone@example.com", NOW_MS - 2 * HOUR_MS),
            stored("live@example.com", NOW_MS - HOUR_MS / 2),
            ("acme.okta.com:garbled@example.com".into(), b"{".to_vec()),
        ];
        spool
            .complete_batches(DetectionCommit {
                incidents,
                ..Default::default()
            })
            .await
            .unwrap();
        let detector = standalone_detector(spool.clone(), Duration::from_secs(3600));

        let expired = detector.expired_incidents(NOW_MS).await.unwrap();
        spool
            .complete_batches(DetectionCommit {
                expired_incidents: expired,
                ..Default::default()
            })
            .await
            .unwrap();

        let all = [
            "acme.okta.com:gone@example.com",
            "acme.okta.com:live@example.com",
            "acme.okta.com:garbled@example.com",
        ];
        assert_eq!(
            stored_keys(&spool, &all).await,
            ["acme.okta.com:live@example.com"]
        );
    }

    #[tokio::test]
    async fn an_incident_the_pass_stores_again_outlives_its_expiry_in_the_same_commit() {
        let dir = tempfile::TempDir::new().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let (key, old) = stored("back@example.com", NOW_MS - 2 * HOUR_MS);
        let (_, reopened) = stored("back@example.com", NOW_MS);
        let commit = DetectionCommit {
            incidents: vec![(key.clone(), old)],
            ..Default::default()
        };
        spool.complete_batches(commit).await.unwrap();

        let commit = DetectionCommit {
            incidents: vec![(key.clone(), reopened.clone())],
            expired_incidents: vec![key.clone()],
            ..Default::default()
        };
        spool.complete_batches(commit).await.unwrap();

        assert_eq!(
            spool.incidents(vec![key.clone()]).await.unwrap(),
            [(key, reopened)]
        );
    }

    #[tokio::test]
    async fn the_sweep_goes_through_every_row_a_page_at_a_time_then_starts_over() {
        let dir = tempfile::TempDir::new().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let incidents = ["a", "b", "c"].map(|user| stored(user, NOW_MS)).to_vec();
        let commit = DetectionCommit {
            incidents,
            ..Default::default()
        };
        spool.complete_batches(commit).await.unwrap();

        let mut pages = Vec::new();
        for _ in 0..3 {
            let page = spool.incidents_to_sweep(2).await.unwrap();
            pages.push(page.into_iter().map(|(key, _)| key).collect::<Vec<_>>());
        }

        let keys = |users: &[&str]| -> Vec<String> {
            users
                .iter()
                .map(|user| format!("acme.okta.com:{user}"))
                .collect()
        };
        assert_eq!(pages, [keys(&["a", "b"]), keys(&["c"]), keys(&["a", "b"])]);
    }
}
