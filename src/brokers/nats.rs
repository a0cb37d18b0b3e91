//! NATS server lists, for the JetStream sink and the cluster's `nats-kv` mode.

use async_nats::ServerAddr;

use super::ServerUrl;

/// The servers of a NATS URL (several of one cluster separated by commas); an error names the
/// part that does not parse, without credentials.
pub fn parse_servers(url: &ServerUrl) -> anyhow::Result<Vec<ServerAddr>> {
    url.expose()
        .split(',')
        .map(str::trim)
        .zip(url.redacted().split(','))
        .map(|(one, shown)| {
            one.parse::<ServerAddr>()
                .map_err(|err| anyhow::anyhow!("url = {:?}: {err}", shown.trim()))
        })
        .collect()
}
