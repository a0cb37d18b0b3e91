//! The two shared backends of `[cluster]`, for the tests that run once on each: the machine's
//! Redis and NATS on loopback, or a server of the test's own that it may stop and start.

use std::path::Path;
use std::process::{Command, Stdio};

use factorwatch::cluster::{ClusterConfig, ClusterMode};
use factorwatch::config::ServerUrl;

use crate::daemons::{Daemon, system_binary, wait_for_port};

/// A shared backend of `[cluster]`.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Redis,
    NatsKv,
}

impl Backend {
    /// The backend's URL on `port` of loopback.
    pub fn url(self, port: u16) -> String {
        match self {
            Backend::Redis => format!("redis://127.0.0.1:{port}"),
            Backend::NatsKv => format!("nats://127.0.0.1:{port}"),
        }
    }

    /// The port of the machine's own server.
    pub fn machine_port(self) -> u16 {
        match self {
            Backend::Redis => 6379,
            Backend::NatsKv => 4222,
        }
    }

    /// `[cluster]` on the machine's server, under the test's own `prefix`.
    pub fn on_machine(self, prefix: &str) -> ClusterConfig {
        self.cluster(&self.url(self.machine_port()), prefix)
    }

    /// `[cluster]` for this backend at `url`, under `prefix`.
    pub fn cluster(self, url: &str, prefix: &str) -> ClusterConfig {
        ClusterConfig {
            mode: match self {
                Backend::Redis => ClusterMode::Redis,
                Backend::NatsKv => ClusterMode::NatsKv,
            },
            url: Some(ServerUrl::new(url)),
            key_prefix: Some(prefix.to_owned()),
        }
    }

    /// Removes what a test under `prefix` (made of characters a bucket name can hold, ending in
    /// `_`) left on the machine's server: NATS buckets would stay for good; Redis claims and
    /// incidents expire with their windows.
    pub async fn forget(self, prefix: &str) {
        if let Backend::NatsKv = self {
            let client = async_nats::connect(self.url(self.machine_port()))
                .await
                .unwrap();
            let jetstream = async_nats::jetstream::new(client);
            for bucket in ["seen", "correlation", "incidents"] {
                let name = format!("{}_{bucket}", prefix.trim_end_matches('_'));
                let _ = jetstream.delete_key_value(name).await;
            }
        }
    }

    /// A server of the test's own on `port`, keeping its data in `dir`: Redis keeps nothing
    /// on disk (a restart finds it empty), NATS keeps its JetStream store (a restart finds
    /// the buckets as they were), as each is usually run.
    pub async fn start_own(self, port: u16, dir: &Path) -> Daemon {
        let child = match self {
            Backend::Redis => Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server is installed with the machine's Redis"),
            Backend::NatsKv => Command::new(system_binary("nats-server"))
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server is installed with the machine's NATS"),
        };
        wait_for_port(port).await;
        Daemon(child)
    }
}

/// Runs each named async test function (taking a [`Backend`]) once per backend: a module per
/// test, with a `redis` and a `nats_kv` test in it, each with the attributes given first.
macro_rules! on_each_backend {
    (#[$attr:meta] $($test:ident),+ $(,)?) => {
        $(
            mod $test {
                use crate::backends::Backend;

                #[$attr]
                async fn redis() {
                    super::$test(Backend::Redis).await
                }

                #[$attr]
                async fn nats_kv() {
                    super::$test(Backend::NatsKv).await
                }
            }
        )+
    };
}
pub(crate) use on_each_backend;
