//! The PagerDuty sink: triggers an incident through the Events API v2. `dedup_key` is the alert
//! id, so a retried or replayed alert updates the same incident instead of paging twice.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Delivery, PublishFuture, Sink, http};
use crate::alert::{Alert, Level};
use crate::secret::Secret;

/// PagerDuty's Events API v2 endpoint.
pub const EVENTS_API: &str = "https://events.pagerduty.com/v2/enqueue";

/// `type = "pagerduty"` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// The integration's routing key (Events API v2).
    pub routing_key: Secret,
    /// The Events API URL; change it only for a proxy or a test endpoint.
    #[serde(default = "default_url")]
    pub url: String,
}

fn default_url() -> String {
    EVENTS_API.to_owned()
}

/// Triggers PagerDuty incidents.
pub struct PagerDutySink {
    name: String,
    config: PagerDutyConfig,
    client: reqwest::Client,
}

impl PagerDutySink {
    /// Builds the sink.
    pub fn new(name: &str, config: &PagerDutyConfig) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            config: config.clone(),
            client: http::client()?,
        })
    }
}

/// PagerDuty severity for a rule level.
pub fn severity(level: Level) -> &'static str {
    match level {
        Level::Critical => "critical",
        Level::High => "error",
        Level::Medium => "warning",
        Level::Low | Level::Informational => "info",
    }
}

/// The Events API v2 body for an alert.
pub fn event(alert: &Alert, routing_key: &str) -> serde_json::Value {
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.id,
        "client": "factorwatch",
        "payload": {
            "summary": alert.summary().chars().take(1024).collect::<String>(),
            "source": alert.okta.org.as_deref().unwrap_or("okta"),
            "severity": severity(alert.rule.level),
            "timestamp": alert.event.published,
            "component": "okta",
            "group": "identity",
            "class": alert.event.event_type,
            "custom_details": alert,
        }
    })
}

impl Sink for PagerDutySink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(async move {
            let body = event(delivery.alert, self.config.routing_key.expose());
            let request = self.client.post(&self.config.url).json(&body);
            http::send(request, &format!("PagerDuty ({})", self.config.url)).await
        })
    }
}
