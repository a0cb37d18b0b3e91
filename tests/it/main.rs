//! Integration tests: the real server on 127.0.0.1:0, over real connections.

mod alerts;
mod backends;
mod cli;
mod cluster;
mod correlation;
mod dedup;
mod dlq;
mod durability;
mod edge;
mod faults;
mod fleet;
mod helpers;
mod hostile;
mod http_contract;
mod orgs;
mod receiver;
mod reload;
mod rules_sigmahq;
mod secrets;
mod sinks_amqp_mqtt;
mod sinks_brokers;
mod sinks_http;
mod sinks_kafka_sqs;
