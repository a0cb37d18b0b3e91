//! factorwatch: an Okta Event Hook receiver that catches MFA factor resets and delivers alerts.
//!
//! Okta pushes System Log events to the hook; factorwatch authenticates each batch, stores it
//! durably before answering, then detects (Sigma rules), de-duplicates and forwards alerts to the
//! sinks a team watches, at least once and with a deterministic alert id for idempotency.
//!
//! # Layout
//! The modules form layers that point one way: each uses only the layers below it
//! (docs/architecture.md, "Layers", which `tests/layers.rs` checks against the code).
//!
//! | layer | module | concern |
//! |---|---|---|
//! | 0 | [`clock`] | time helpers and the wait between passes |
//! | 0 | [`secret`] | the secret type that never prints, constant-time checks of Okta's auth header |
//! | 0 | [`telemetry`] | logging (`[log]`), the Prometheus recorder, every metric's name |
//! | 1 | [`okta`] | the event-hook envelope, tolerant access to LogEvent fields, reading a System Log export, realistic sample events |
//! | 1 | [`okta_api`] | the Okta Management API client (`[okta.api]`): an API Services app's tokens (client assertion, DPoP) or an SSWS token, a rate-limit budget per bucket, retries, System Log pages, event hooks |
//! | 1 | [`brokers`] | broker URLs that hide credentials, clients connected on first use, typed connect errors; shared by sinks and cluster |
//! | 2 | [`alert`] | the alert schema, its level, the MFA context it carries, its deterministic id |
//! | 3 | [`spool`] | the embedded durable store (`[storage]`): batches, outbox and dead letters in redb with a group-commit writer; the de-duplication window in append-only files (`seen/`) |
//! | 3 | [`sinks`] | the `Sink` trait, `[[sinks]]` and which alerts each takes, one module per destination with its own keys |
//! | 3 | [`cluster`] | `[cluster]`: event keys claimed, and correlation state kept, in Redis or NATS JetStream key-value buckets, shared by replicas behind a load balancer |
//! | 4 | [`detect`] | the detector (`[rules]`): split, de-duplicate, enrich, run Sigma detection and correlation rules, queue alerts per sink |
//! | 4 | [`forward`] | the per-sink delivery loop (`[delivery]`): backoff, retry, dead-letter |
//! | 4 | [`reconcile`] | `[okta.reconcile]`: one System Log poller per org, its pages stored with their cursor, the hook's grace, the polling lease of a cluster, the hook's silence |
//! | 4 | [`respond`] | `[[responses]]`: acting on alerts through Okta (risk, sessions, suspension, Shared Signals events) behind dry-run, `never` lists, caps and a ledger |
//! | 5 | [`http`] | `[server]`: the accept loop (connection limit, header timeout, TLS, HTTP/2), the guard (source, allow-list, rate limit), the hook endpoint of each org, `/healthz`, `/readyz`, `/metrics` |
//! | 5 | [`admin`] | the admin API (dead letters, backfill), which the `dlq` and `backfill` commands call |
//! | 5 | [`hook_lifecycle`] | the event hook through Okta's API: the event types the rules need and how each arrives, what registering would change, the verification challenge played against factorwatch itself |
//! | 6 | [`config`] | the TOML tree composed of each component's config, environment overrides, `[[okta.orgs]]` resolved into one pipeline per org |
//! | 7 | [`app`] | the preflight `serve` and `check-config` share, wiring (one pipeline per org), graceful shutdown |
//! | 8 | [`cli`] | every command's arguments and printing: `check-config`, `simulate`, `demo`, `rules`, `sinks test`, `dlq`, `healthcheck` |
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
pub mod hook_lifecycle;
pub mod http;
pub mod okta;
pub mod okta_api;
pub mod reconcile;
pub mod respond;
pub mod secret;
pub mod sinks;
pub mod spool;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
