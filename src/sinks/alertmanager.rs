//! The Alertmanager sink: posts each alert to Prometheus Alertmanager's v2 API, so that its
//! routing, grouping, inhibition and silences apply to factorwatch's alerts.
//!
//! Alertmanager identifies an alert by its label set (its fingerprint), and the labels here are
//! a function of the alert (rule, level, org, target user, incident): an alert delivered again
//! after a retry, a replay or a restart updates the alert Alertmanager already has instead of
//! adding one. Two alerts of one rule about one victim in one incident are one Alertmanager alert,
//! which is what a page should be. `endsAt` is when the incident's window closes, so the alert
//! stays firing while the story goes on and resolves by itself afterwards.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Delivery, PublishFuture, Sink, http};
use crate::alert::{Alert, Level};
use crate::clock::{parse_rfc3339_ms, rfc3339};

/// `type = "alertmanager"` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base URL, such as `http://alertmanager:9093`; alerts are posted to
    /// `<url>/api/v2/alerts`.
    pub url: String,
    /// How long after the incident's last event (or the alert's event, outside an incident) the
    /// alert ends (`endsAt`). Set it to `[rules] incident_window`, which it defaults to.
    #[serde(with = "humantime_serde", default = "default_resolve_after")]
    pub resolve_after: Duration,
    /// Link put in each alert's `runbook_url` annotation; `{rule_id}` is replaced by the rule's
    /// id. Unset: the rule's first reference, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
    /// More labels on every alert, such as `team = "secops"`, for Alertmanager's routes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn default_resolve_after() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl AlertmanagerConfig {
    /// Checks the URL, the labels and `resolve_after` without connecting.
    pub fn validate(&self) -> anyhow::Result<()> {
        let url = reqwest::Url::parse(&self.url).map_err(|err| {
            anyhow::anyhow!(
                "url = {:?}: {err} (such as http://alertmanager:9093)",
                self.url
            )
        })?;
        if !["http", "https"].contains(&url.scheme()) {
            bail!("url = {:?}: must be http:// or https://", self.url);
        }
        if self.resolve_after.is_zero() {
            bail!("resolve_after must be greater than 0");
        }
        let name = |label: &str| {
            let mut chars = label.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if let Some(bad) = self.labels.keys().find(|label| !name(label)) {
            bail!("labels: {bad:?} is not a label name (letters, digits and _, not first a digit)");
        }
        Ok(())
    }

    /// The API endpoint alerts are posted to.
    fn alerts_endpoint(&self) -> String {
        format!("{}/api/v2/alerts", self.url.trim_end_matches('/'))
    }
}

/// Posts alerts to Alertmanager.
pub struct AlertmanagerSink {
    name: String,
    config: AlertmanagerConfig,
    client: reqwest::Client,
}

impl AlertmanagerSink {
    /// Builds the sink.
    pub fn new(name: &str, config: &AlertmanagerConfig) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            config: config.clone(),
            client: http::client()?,
        })
    }
}

/// Alertmanager's usual `severity` for a level.
pub fn severity(level: Level) -> &'static str {
    match level {
        Level::Critical | Level::High => "critical",
        Level::Medium => "warning",
        Level::Low | Level::Informational => "info",
    }
}

/// The posted alert's labels: what identifies it, and what routes, groups and silences match.
fn labels(alert: &Alert, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = extra.clone();
    let own = [
        ("alertname", Some(alert.rule.title.clone())),
        ("rule_id", Some(alert.rule.id.clone())),
        ("level", Some(alert.level.as_str().to_owned())),
        ("severity", Some(severity(alert.level).to_owned())),
        ("service", Some("factorwatch".to_owned())),
        ("org", alert.org.clone().or_else(|| alert.okta.org.clone())),
        (
            "target_user",
            alert
                .targets
                .first()
                .map(|target| target.label().to_owned()),
        ),
        ("incident", alert.incident.as_ref().map(|i| i.id.clone())),
    ];
    labels.extend(
        own.into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?))),
    );
    labels
}

/// What a person reads: the summary, the incident's story so far, where to look next.
fn annotations(alert: &Alert, runbook_url: Option<&str>) -> BTreeMap<&'static str, String> {
    let mut annotations =
        BTreeMap::from([("summary", alert.summary()), ("alert_id", alert.id.clone())]);
    let description = match &alert.incident {
        Some(incident) => incident
            .steps
            .iter()
            .map(|step| format!("{} {}", step.at, step.what))
            .collect::<Vec<_>>()
            .join("\n"),
        None => alert.event.display_message.clone().unwrap_or_default(),
    };
    if !description.is_empty() {
        annotations.insert("description", description);
    }
    let runbook = match runbook_url {
        Some(template) => Some(template.replace("{rule_id}", &alert.rule.id)),
        None => alert.rule.references.first().cloned(),
    };
    if let Some(runbook) = runbook {
        annotations.insert("runbook_url", runbook);
    }
    annotations
}

/// An RFC 3339 time as Unix ms; `None` if it does not parse or is before 1970.
fn unix_ms(text: &str) -> Option<u64> {
    parse_rfc3339_ms(text).and_then(|ms| u64::try_from(ms).ok())
}

/// When the alert's event happened (Unix ms): Okta's `published`, else when it was received.
fn event_ms(alert: &Alert) -> Option<u64> {
    let published = alert.event.published.as_deref().and_then(unix_ms);
    published.or_else(|| unix_ms(&alert.received_at))
}

/// The `postableAlerts` body for one alert.
pub fn postable(alert: &Alert, config: &AlertmanagerConfig) -> serde_json::Value {
    let starts_ms = event_ms(alert).unwrap_or_else(crate::clock::now_ms);
    let last_ms = alert
        .incident
        .as_ref()
        .and_then(|incident| unix_ms(&incident.last_seen))
        .unwrap_or(starts_ms)
        .max(starts_ms);
    let ends_ms = last_ms + config.resolve_after.as_millis() as u64;
    json!([{
        "labels": labels(alert, &config.labels),
        "annotations": annotations(alert, config.runbook_url.as_deref()),
        "startsAt": rfc3339(starts_ms),
        "endsAt": rfc3339(ends_ms),
    }])
}

impl Sink for AlertmanagerSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(async move {
            let endpoint = self.config.alerts_endpoint();
            let body = postable(delivery.alert, &self.config);
            let request = self.client.post(&endpoint).json(&body);
            http::send(request, &format!("Alertmanager ({endpoint})")).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> anyhow::Result<AlertmanagerConfig> {
        let config: AlertmanagerConfig = toml::from_str(toml)?;
        config.validate().map(|()| config)
    }

    #[test]
    fn the_keys_default_and_each_mistake_is_named() {
        let plain = config("url = \"http://alertmanager:9093/\"").unwrap();
        assert_eq!(plain.resolve_after, Duration::from_secs(86_400));
        assert_eq!(
            plain.alerts_endpoint(),
            "http://alertmanager:9093/api/v2/alerts"
        );
        let error = |toml| config(toml).unwrap_err().to_string();
        assert!(error("url = \"alertmanager:9093\"").contains("http:// or https://"));
        assert!(error("url = \"not a url\"").contains("such as http://alertmanager:9093"));
        assert!(error("url = \"http://a\"\nresolve_after = \"0s\"").contains("resolve_after"));
        let label = error("url = \"http://a\"\nlabels = { \"2team\" = \"x\" }");
        assert!(label.contains("\"2team\" is not a label name"), "{label}");
    }
}
