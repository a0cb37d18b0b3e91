//! Integration tests: the real server on 127.0.0.1:0, over real connections. The tests of a
//! broker sink or cluster mode build only with its Cargo feature (all are on by default).

mod alerts;
#[cfg(all(feature = "nats", feature = "redis"))]
mod backends;
mod cli;
#[cfg(all(feature = "nats", feature = "redis"))]
mod cluster;
mod context;
mod correlation;
mod correlation_pack;
mod daemons;
mod dedup;
mod dlq;
mod durability;
mod edge;
mod faults;
#[cfg(all(feature = "nats", feature = "redis"))]
mod fleet;
#[cfg(all(feature = "nats", feature = "redis"))]
mod formats;
mod helpers;
#[cfg(all(feature = "nats", feature = "redis"))]
mod hook_guard;
#[cfg(all(feature = "nats", feature = "redis"))]
mod hook_register;
#[cfg(all(feature = "nats", feature = "redis"))]
mod hook_rotate;
#[cfg(all(feature = "nats", feature = "redis"))]
mod hook_silence;
mod hostile;
mod http_contract;
#[cfg(all(feature = "nats", feature = "redis"))]
mod incident;
// The docs' code blocks, read as the docs tests read them (some examples are checked here).
#[allow(dead_code)]
#[path = "../docs/markdown.rs"]
mod markdown;
mod monitoring;
mod okta_actions;
mod okta_standin;
mod orgs;
mod ports;
mod receiver;
#[cfg(all(feature = "nats", feature = "redis"))]
mod reconcile;
mod reload;
mod responses;
mod rules_sigmahq;
mod secrets;
mod secrets_reload;
mod sinks_alertmanager;
#[cfg(all(feature = "amqp", feature = "mqtt"))]
mod sinks_amqp_mqtt;
#[cfg(all(feature = "nats", feature = "redis"))]
mod sinks_brokers;
mod sinks_http;
#[cfg(all(feature = "kafka", feature = "sqs"))]
mod sinks_kafka_sqs;
