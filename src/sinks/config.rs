//! `[[sinks]]` (and each org's `[[okta.orgs.sinks]]`): where alerts go, and which alerts go
//! there. Each kind's own keys live beside its sink (`NatsConfig` in `nats.rs`, ...).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertFormat, Level};

/// One `[[sinks]]` block: where alerts go, and which alerts go there. `type` selects the kind;
/// the keys of each kind are documented in docs/sinks.md.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SinkConfig {
    /// Unique name of this sink: labels its metrics, outbox and dead letters.
    pub name: String,
    /// Only alerts of this level or above (`informational`, `low`, `medium`, `high`, `critical`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_level: Option<Level>,
    /// Only alerts of these rule ids. Empty: every rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Only alerts whose rule has at least one of these tags (such as `attack.t1556.006`). Empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `every` (the default): every alert the filters accept. `first`: inside one incident,
    /// a repeat of a rule this sink was already sent is not delivered again; the next alert
    /// delivered says how many were held back (`suppressed`). Not for `file` sinks, which keep
    /// every alert.
    #[serde(default, skip_serializing_if = "NotifyPolicy::is_every")]
    pub notify: NotifyPolicy,
    /// The document delivered: `factorwatch` (the default, docs/alerts.md), `ocsf` (an OCSF
    /// Detection Finding) or `ecs` (an Elastic Common Schema document). For the sinks that carry the alert document; `slack`, `pagerduty` and
    /// `alertmanager` write their own messages.
    #[serde(default, skip_serializing_if = "AlertFormat::is_factorwatch")]
    pub format: AlertFormat,
    /// The destination and its own keys.
    #[serde(flatten)]
    pub kind: SinkKind,
}

/// Which alerts a response takes (its `when`): the filter language of `[[sinks]]`, plus a list
/// of exact levels. Every key left empty accepts any alert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertFilter {
    /// Only alerts of this level or above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_level: Option<Level>,
    /// Only alerts of one of these levels (`["critical"]`). Empty: any level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<Level>,
    /// Only alerts of these rule ids. Empty: every rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Only alerts whose rule has at least one of these tags. Empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl AlertFilter {
    /// True when `alert` passes every key of the filter.
    pub fn accepts(&self, alert: &Alert) -> bool {
        passes(alert, self.min_level, &self.levels, &self.rules, &self.tags)
    }

    /// True when nothing narrows it: every alert passes.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The filter language shared by sinks and responses: the alert's level (after risk
/// adjustment) against `min_level` and `levels`, its rule against `rules` and `tags`.
fn passes(
    alert: &Alert,
    min_level: Option<Level>,
    levels: &[Level],
    rules: &[String],
    tags: &[String],
) -> bool {
    let rule = &alert.rule;
    min_level.is_none_or(|min| alert.level >= min)
        && (levels.is_empty() || levels.contains(&alert.level))
        && (rules.is_empty() || rules.contains(&rule.id))
        && (tags.is_empty() || rule.tags.iter().any(|tag| tags.contains(tag)))
}

/// Which of an incident's alerts a sink is sent (`notify`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyPolicy {
    /// Every alert the sink's filters accept.
    #[default]
    Every,
    /// The first alert of each rule inside one incident; repeats are counted, not sent.
    First,
}

impl NotifyPolicy {
    fn is_every(&self) -> bool {
        *self == NotifyPolicy::Every
    }
}

/// The kinds of sink. Unknown keys inside a block are rejected with their name.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkKind {
    /// Append each alert as one JSON line to a local file.
    File(super::file::FileConfig),
    /// Publish to a RabbitMQ (AMQP 0-9-1) exchange with publisher confirms.
    Amqp(super::amqp::AmqpConfig),
    /// Publish to an MQTT broker with QoS 1.
    Mqtt(super::mqtt::MqttConfig),
    /// POST each alert, signed the Standard Webhooks way, to an HTTPS endpoint.
    Webhook(super::webhook::WebhookConfig),
    /// Post a readable message to a Slack incoming webhook.
    Slack(super::slack::SlackConfig),
    /// Trigger a PagerDuty incident (Events API v2).
    PagerDuty(super::pagerduty::PagerDutyConfig),
    /// Publish each alert to a NATS JetStream subject; delivered once the stream acknowledged it.
    Nats(super::nats::NatsConfig),
    /// Add each alert to a Redis stream (`XADD`); delivered once Redis returned the entry id.
    Redis(super::redis::RedisConfig),
    /// Produce each alert as one record to a Kafka topic (acks=all), keyed by the alert id.
    Kafka(super::kafka::KafkaConfig),
    /// Send each alert as one message to an Amazon SQS queue (FIFO queues de-duplicate on the alert id).
    Sqs(super::sqs::SqsConfig),
    /// Post each alert to Prometheus Alertmanager's v2 API, labelled for its routes and silences.
    Alertmanager(super::alertmanager::AlertmanagerConfig),
}

impl SinkConfig {
    /// The sink's unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A sink of `kind` named `name`, with no filter.
    pub fn new(name: &str, kind: SinkKind) -> Self {
        Self {
            name: name.to_owned(),
            min_level: None,
            rules: Vec::new(),
            tags: Vec::new(),
            notify: NotifyPolicy::Every,
            format: AlertFormat::Factorwatch,
            kind,
        }
    }

    /// A file sink with no filter (the default sink, and handy in tests).
    pub fn file(name: &str, path: impl Into<PathBuf>) -> Self {
        Self::new(
            name,
            SinkKind::File(super::file::FileConfig { path: path.into() }),
        )
    }

    /// True when this sink wants `alert` (its level, after risk adjustment, and its rule).
    pub fn accepts(&self, alert: &Alert) -> bool {
        passes(alert, self.min_level, &[], &self.rules, &self.tags)
    }

    /// Checks this block's keys without connecting anywhere; errors name the key at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.notify == NotifyPolicy::First && matches!(self.kind, SinkKind::File(_)) {
            bail!(
                "notify = \"first\" is for the sinks people are paged by; a file sink keeps every \
                 alert (remove notify, or set it on a webhook, chat or broker sink)"
            );
        }
        let own_message = matches!(
            self.kind,
            SinkKind::Slack(_) | SinkKind::PagerDuty(_) | SinkKind::Alertmanager(_)
        );
        if own_message && !self.format.is_factorwatch() {
            bail!(
                "format = {:?}: this sink writes its own message (a chat text, a page, an \
                 Alertmanager alert); set format on a file, webhook or broker sink",
                serde_json::to_value(self.format).unwrap_or_default()
            );
        }
        match &self.kind {
            SinkKind::File(_) | SinkKind::Slack(_) | SinkKind::PagerDuty(_) => Ok(()),
            SinkKind::Amqp(amqp) => amqp.validate(),
            SinkKind::Mqtt(mqtt) => mqtt.validate(),
            SinkKind::Webhook(webhook) => webhook.signing_key().map(drop),
            SinkKind::Nats(nats) => nats.validate(),
            SinkKind::Redis(redis) => redis.validate(),
            SinkKind::Kafka(kafka) => kafka.validate(),
            SinkKind::Sqs(sqs) => sqs.validate(),
            SinkKind::Alertmanager(alertmanager) => alertmanager.validate(),
        }
    }
}

/// Checks a list of sinks (`key` names it in errors): unique, non-empty names, and each sink's
/// keys, without connecting anywhere.
pub fn check_sinks(key: &str, sinks: &[SinkConfig]) -> anyhow::Result<()> {
    let mut names = std::collections::HashSet::new();
    for sink in sinks {
        if sink.name().is_empty() {
            bail!("{key}: a sink has an empty name");
        }
        if !names.insert(sink.name()) {
            bail!(
                "{key}: two sinks are named {:?}; names must be unique",
                sink.name()
            );
        }
    }
    for sink in sinks {
        sink.validate()
            .with_context(|| format!("{key}: sink {:?}", sink.name()))?;
    }
    Ok(())
}
