//! Integration tests: the real server on 127.0.0.1:0, over real connections.

mod alerts;
mod cli;
mod dedup;
mod durability;
mod helpers;
mod http_contract;
mod sinks_kafka_sqs;
