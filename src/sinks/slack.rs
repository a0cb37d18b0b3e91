//! The Slack sink: a readable message through an incoming webhook. Who reset whose MFA, from
//! where, under which rule and level, with the alert id for follow-up. Slack has no idempotency
//! key: a retry after a lost answer can post twice, and the alert id in the message tells so.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Delivery, PublishFuture, Sink, http};
use crate::alert::{Alert, Level};
use crate::secret::Secret;

/// `type = "slack"` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook URL (`https://hooks.slack.com/services/...`). It is a credential:
    /// anyone holding it can post to the channel, so it is redacted everywhere.
    pub webhook_url: Secret,
}

/// Posts alerts to Slack.
pub struct SlackSink {
    name: String,
    webhook_url: Secret,
    client: reqwest::Client,
}

impl SlackSink {
    /// Builds the sink.
    pub fn new(name: &str, config: &SlackConfig) -> anyhow::Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            webhook_url: config.webhook_url.clone(),
            client: http::client()?,
        })
    }
}

/// The Slack message for an alert: a plain-text fallback and blocks.
pub fn message(alert: &Alert) -> serde_json::Value {
    let icon = match alert.level {
        Level::Critical | Level::High => ":rotating_light:",
        Level::Medium => ":warning:",
        Level::Low | Level::Informational => ":information_source:",
    };
    let headline = format!(
        "{icon} [{}] {}",
        alert.level.as_str().to_uppercase(),
        alert.rule.title
    );
    let details = format!(
        "{}\n*Event:* `{}` at {}\n*Org:* {}   *Alert id:* `{}`",
        alert.summary(),
        alert.event.event_type.as_deref().unwrap_or("unknown"),
        alert.event.published.as_deref().unwrap_or("unknown time"),
        alert.okta.org.as_deref().unwrap_or("unknown"),
        alert.id
    );
    json!({
        "text": format!(
            "{icon} [{}] {}",
            alert.level.as_str().to_uppercase(),
            alert.summary()
        ),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": details}}
        ]
    })
}

impl Sink for SlackSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(async move {
            let request = self
                .client
                .post(self.webhook_url.expose())
                .json(&message(delivery.alert));
            http::send(request, &format!("Slack webhook of sink {}", self.name)).await
        })
    }
}
