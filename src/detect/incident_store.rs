//! Where incidents are kept while alerts are folded into them ([`super::incident`]): standalone
//! in the spool's `incidents` table, read before the pass's alerts are queued and written in the
//! same transaction as their outbox rows; in a `[cluster]` in the shared backend, one record per
//! user changed by compare-and-set (read, fold, write if unchanged, else read again), so that
//! every replica folds into the same incident. A backend that cannot answer never holds an alert
//! back: the alerts of that pass go out without their incident, logged and counted in
//! `factorwatch_incidents_unavailable_total`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::alert::{Alert, Incident};
use crate::cluster::SharedState;
use crate::sinks::NotifyPolicy;
use crate::spool::SpoolError;
use crate::telemetry::metrics::INCIDENTS_UNAVAILABLE_TOTAL;

use super::Detector;
use super::incident::{IncidentKey, IncidentState, Routes, alert_time_ms, fold};

/// Compare-and-set attempts on one incident before its alerts go out without it (other
/// replicas kept writing it).
const ATTEMPTS: usize = 5;

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
        let event: Value = serde_json::from_str(alert.raw_event.get()).unwrap_or(Value::Null);
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
