//! factorwatch: an Okta Event Hook receiver that catches MFA factor resets and delivers alerts.
//!
//! Okta pushes System Log events to the hook; factorwatch authenticates each batch, stores it
//! durably before answering, then detects (Sigma rules), de-duplicates and forwards alerts to the
//! sinks a team watches, at least once and with a deterministic alert id for idempotency.
//!
//! # Layout
//! The path of one batch, module by module:
//!
//! | module | concern |
//! |---|---|
//! | [`http`] | the accept loop (connection limit, header timeout, TLS, HTTP/2), the guard (source, allow-list, rate limit), the axum router: the hook endpoint of each org (verification GET, delivery POST), `/healthz`, `/readyz`, `/metrics` |
//! | [`secret`] | the secret type that never prints, constant-time checks of Okta's auth header |
//! | [`okta`] | the event-hook envelope, tolerant access to LogEvent fields, reading a System Log export, realistic sample events |
//! | [`spool`] | the embedded durable store: batches, outbox and dead letters in redb with a group-commit writer; the de-duplication window in append-only files (`seen/`) |
//! | [`detect`] | the detector: split, de-duplicate, enrich, run Sigma detection and correlation rules (correlation over the shared backend in a loop of its own in cluster mode), queue alerts per sink |
//! | [`cluster`] | `[cluster]`: event keys claimed, and correlation state kept, in Redis or NATS JetStream key-value buckets, shared by replicas behind a load balancer |
//! | [`alert`] | the alert schema and its deterministic id |
//! | [`forward`] | the per-sink delivery loop: backoff, retry, dead-letter |
//! | [`sinks`] | the `Sink` trait and one module per destination |
//! | [`config`] | TOML configuration, environment overrides, validation; `[[okta.orgs]]` resolved into one pipeline per org |
//! | [`app`] | wiring (one pipeline per org: spool, rules, sinks, detector, forwarders) and graceful shutdown |
//! | [`admin`] | the admin API (dead letters), which the `dlq` commands call |
//! | [`telemetry`] | logging and Prometheus metrics |
//! | [`clock`] | time helpers |
//! | [`cli`] | every command's arguments and printing: `check-config`, `simulate`, `demo`, `rules`, `sinks test`, `dlq`, `healthcheck` |
//!
//! The binary (`src/main.rs`) only parses the command line and calls [`cli`]; nothing else prints.

pub mod admin;
pub mod alert;
pub mod app;
pub mod brokers;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod detect;
pub mod forward;
pub mod http;
pub mod okta;
pub mod secret;
pub mod sinks;
pub mod spool;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
