//! The NATS JetStream sink: each alert is published to a subject with `Nats-Msg-Id` = alert id, and
//! counts as delivered once the stream's publish acknowledgement arrived. JetStream drops a second
//! message with the same id inside the stream's duplicate window, so a retry after a lost ack, or a
//! restart between the publish and the outbox removal, does not reach consumers twice.
//!
//! The connection is made on the first publish, not at start (through [`LazyClient`]), so a broker
//! that is down when the service starts only delays this sink: publishes fail as transient, the
//! alerts wait in the outbox, and the forwarder retries. Once connected, the client reconnects by
//! itself.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use async_nats::ConnectOptions;
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, stream};
use serde::{Deserialize, Serialize};

use super::template::{self, NameTemplate};
use super::{Delivery, DeliveryError, PublishFuture, Sink};
use crate::brokers::nats::parse_servers;
use crate::brokers::{CONNECT_TIMEOUT, LazyClient, ServerUrl};
use crate::secret::Secret;

/// Longest wait for JetStream's acknowledgement of one publish.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// `type = "nats"` keys: NATS JetStream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The NATS server, such as `nats://127.0.0.1:4222` (`tls://` for TLS); several servers of one
    /// cluster separated by commas. A `user:password@` in the URL is accepted and never printed.
    #[serde(default = "default_url")]
    pub url: ServerUrl,
    /// The subject each alert is published to. `{rule_id}` and `{level}` are replaced by the
    /// alert's rule id and level (characters a subject cannot hold become `_`).
    pub subject: NameTemplate,
    /// A JetStream stream to create on connect if it does not exist, capturing `subject` (each
    /// token holding a placeholder becomes `*`). Unset: a stream capturing the subject must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// A NATS credentials file (`.creds`: user JWT and NKey seed), read on each connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// A token for NATS token authentication. Never logged or printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

impl NatsConfig {
    /// Checks the block without connecting: the URL, the subject, the stream name, one credential.
    pub fn validate(&self) -> anyhow::Result<()> {
        parse_servers(&self.url)?;
        check_subject(self.subject.as_str())?;
        if let Some(stream) = &self.stream
            && (stream.is_empty()
                || stream.contains(|c: char| c.is_whitespace() || ".*>/\\".contains(c)))
        {
            bail!(
                "stream = {stream:?}: a stream name cannot be empty nor hold spaces, '.', '*', '>', '/' or '\\'"
            );
        }
        if self.credentials_file.is_some() && self.token.is_some() {
            bail!("set credentials_file or token, not both");
        }
        Ok(())
    }
}

fn default_url() -> ServerUrl {
    ServerUrl::new("nats://127.0.0.1:4222")
}

/// Publishes alerts to NATS JetStream. `Debug` shows no credential: the URL and the token redact
/// themselves.
#[derive(Debug)]
pub struct NatsSink {
    name: String,
    url: ServerUrl,
    subject: NameTemplate,
    /// What a stream created by this sink captures: `subject` with each placeholder token as `*`.
    capture: String,
    stream: Option<String>,
    credentials_file: Option<PathBuf>,
    token: Option<Secret>,
    /// The JetStream context, with `stream` in place, once connected.
    client: LazyClient<jetstream::Context>,
}

impl NatsSink {
    /// A sink named `name` configured by `config`; checks the block without connecting and
    /// connects on the first publish.
    pub fn new(name: &str, config: &NatsConfig) -> anyhow::Result<Self> {
        config.validate()?;
        Ok(Self {
            name: name.to_owned(),
            url: config.url.clone(),
            subject: config.subject.clone(),
            capture: capture_subject(config.subject.as_str()),
            stream: config.stream.clone(),
            credentials_file: config.credentials_file.clone(),
            token: config.token.clone(),
            client: LazyClient::new(format!("NATS at {}", config.url)),
        })
    }

    /// The subject an alert is published to.
    pub fn subject_for(&self, delivery: &Delivery<'_>) -> String {
        self.subject.render_with(delivery.alert, subject_token)
    }

    /// Connects and creates the configured stream unless it exists.
    async fn connect(&self) -> anyhow::Result<jetstream::Context> {
        let mut options = match &self.credentials_file {
            Some(path) => ConnectOptions::with_credentials_file(path)
                .await
                .with_context(|| format!("cannot read credentials_file {}", path.display()))?,
            None => ConnectOptions::new(),
        };
        if let Some(token) = &self.token {
            options = options.token(token.expose().to_owned());
        }
        let client = options
            .name(format!("factorwatch ({})", self.name))
            .connection_timeout(CONNECT_TIMEOUT)
            .connect(parse_servers(&self.url)?)
            .await?;
        let mut context = jetstream::new(client);
        context.set_timeout(ACK_TIMEOUT);
        self.ensure_stream(&context).await?;
        Ok(context)
    }

    /// Creates the configured stream unless it exists.
    async fn ensure_stream(&self, context: &jetstream::Context) -> anyhow::Result<()> {
        let Some(name) = &self.stream else {
            return Ok(());
        };
        let subject = self.capture.clone();
        let stream = context
            .get_or_create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![subject.clone()],
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot create or find JetStream stream {name:?}"))?;
        let subjects = &stream.cached_info().config.subjects;
        if !subjects.contains(&subject) {
            tracing::warn!(sink = %self.name, stream = %name, ?subjects, %subject,
                "the existing stream does not list this sink's subject; publishes fail unless another subject of it matches");
        }
        Ok(())
    }

    async fn send(&self, delivery: Delivery<'_>) -> Result<(), DeliveryError> {
        let context = self.client.get(|| self.connect()).await?;
        let subject = self.subject_for(&delivery);
        let alert_id = delivery.alert.id.as_str();
        let message = PublishMessage::build()
            .payload(delivery.payload.to_owned().into())
            .message_id(alert_id)
            .header("Content-Type", "application/json");
        let result = match context.send_publish(subject.clone(), message).await {
            Ok(ack) => ack.await,
            Err(err) => Err(err),
        };
        let ack = match result {
            Ok(ack) => ack,
            Err(err) => return Err(self.publish_error(&subject, err).await),
        };
        if ack.duplicate {
            tracing::debug!(sink = %self.name, alert_id, stream = %ack.stream,
                "JetStream already held this alert (duplicate id); counted as delivered");
        }
        Ok(())
    }

    async fn publish_error(
        &self,
        subject: &str,
        err: jetstream::context::PublishError,
    ) -> DeliveryError {
        match err.kind() {
            PublishErrorKind::StreamNotFound => {
                if self.stream.is_some() {
                    // The stream vanished (deleted, or a server without persistence restarted):
                    // connect again, which makes it again, before the next attempt.
                    self.client.reset().await;
                }
                DeliveryError::Transient(format!(
                    "NATS: no JetStream stream captures subject {subject:?}"
                ))
            }
            PublishErrorKind::MaxPayloadExceeded => DeliveryError::Permanent(format!(
                "NATS: the alert is larger than the server's max_payload: {err}"
            )),
            _ => DeliveryError::Transient(format!("NATS publish to {subject:?}: {err}")),
        }
    }
}

/// The subject filter capturing every subject `template` renders to: placeholder tokens become `*`.
fn capture_subject(template: &str) -> String {
    template
        .split('.')
        .map(|token| if token.contains('{') { "*" } else { token })
        .collect::<Vec<_>>()
        .join(".")
}

/// A substituted value as one subject token: characters a subject token cannot hold become `_`,
/// and an empty value (an empty token is not allowed) becomes `_`.
fn subject_token(value: &str) -> String {
    if value.is_empty() {
        return "_".into();
    }
    template::safe_value(value)
}

fn check_subject(subject: &str) -> anyhow::Result<()> {
    if subject.chars().any(char::is_whitespace) {
        bail!("subject = {subject:?}: a subject cannot hold spaces");
    }
    if subject
        .split('.')
        .any(|token| token.is_empty() || token.contains(['*', '>']))
    {
        bail!(
            "subject = {subject:?}: alerts are published to one subject, so it needs non-empty \
             tokens separated by '.' and no wildcard ('*', '>')"
        );
    }
    Ok(())
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, delivery: Delivery<'a>) -> PublishFuture<'a> {
        Box::pin(self.send(delivery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;

    fn config(subject: &str) -> NatsConfig {
        NatsConfig {
            url: ServerUrl::new("nats://127.0.0.1:4222"),
            subject: NameTemplate::new(subject),
            stream: Some("ALERTS".into()),
            credentials_file: None,
            token: None,
        }
    }

    #[test]
    fn subjects_fill_placeholders_and_streams_capture_them() {
        let sink = NatsSink::new("nats", &config("factorwatch.{level}.rule-{rule_id}")).unwrap();
        assert_eq!(sink.capture, "factorwatch.*.*");
        let subject_of_rule = |rule_id: &str| {
            let mut alert = Alert::test_alert();
            alert.rule.id = rule_id.into();
            let delivery = Delivery {
                payload: "{}",
                alert: &alert,
            };
            sink.subject_for(&delivery)
        };
        assert_eq!(
            subject_of_rule("1f2e.3d*4c"),
            "factorwatch.informational.rule-1f2e_3d_4c"
        );
        assert_eq!(subject_of_rule(""), "factorwatch.informational.rule-_");
    }

    #[test]
    fn bad_blocks_are_refused_with_the_key() {
        for subject in ["a..b", "a.*", "a.>", "a b", ".a"] {
            let err = format!("{:#}", NatsSink::new("n", &config(subject)).unwrap_err());
            assert!(err.contains("subject"), "{subject}: {err}");
        }
        let mut both = config("a");
        both.token = Some(Secret::new("t"));
        both.credentials_file = Some("x.creds".into());
        assert!(NatsSink::new("n", &both).is_err());
        let mut bad_stream = config("a");
        bad_stream.stream = Some("a.b".into());
        assert!(NatsSink::new("n", &bad_stream).is_err());
        let mut bad_url = config("a");
        bad_url.url = ServerUrl::new("nats://alice:pa55word@127.0.0.1:4222,http://[::1");
        let err = format!("{:#}", NatsSink::new("n", &bad_url).unwrap_err());
        assert!(err.contains("url") && !err.contains("pa55word"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_token_and_url_password() {
        let mut config = config("a");
        config.url = ServerUrl::new("nats://alice:pa55word@127.0.0.1:4222");
        config.token = Some(Secret::new("t0ken-value"));
        let sink = NatsSink::new("n", &config).unwrap();
        let shown = format!("{sink:?}");
        assert!(
            !shown.contains("pa55word") && !shown.contains("t0ken-value"),
            "{shown}"
        );
    }
}
