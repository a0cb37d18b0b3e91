//! Processes the tests start themselves (Redis, NATS, HAProxy, Prometheus, Alertmanager): where
//! Debian put their binaries, waiting for them to listen, and killing them when a test ends.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use crate::helpers::eventually;

/// The path of a Debian binary that may sit in /usr/sbin, which a non-root PATH may lack.
pub fn system_binary(name: &str) -> String {
    ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|path| Path::new(path).exists())
        .unwrap_or_else(|| name.to_owned())
}

/// A process the test started, killed when dropped.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on `port` of loopback.
pub async fn wait_for_port(port: u16) {
    let awaited = format!("something to listen on {port}");
    eventually(Duration::from_secs(60), &awaited, async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await
    })
    .await;
}
