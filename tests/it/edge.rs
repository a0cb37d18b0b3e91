//! The listener's defences over real TCP: slow clients, the connection limit, per-source rate
//! limiting, trusted proxies, the source allow-list, and TLS with HTTP/2 and certificate reload.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use factorwatch::config::{Config, RateLimitConfig, TlsConfig};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{SECRET, TestApp, batch_with_mfa, eventually, spawn_app_with, test_config};

/// Longest any test here waits for the server to act; a bound, not a speed expectation.
const PATIENCE: Duration = Duration::from_secs(20);

async fn app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = TempDir::new().unwrap();
    let mut config = test_config(data_dir.path());
    configure(&mut config);
    spawn_app_with(config, data_dir).await
}

/// Reads until the server closes the connection; returns what it sent, or None if it never closed.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&received).into()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// A verification GET with the test secret and extra headers; returns the status.
async fn verify_with(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .client
        .get(&app.hook_url)
        .header("Authorization", SECRET)
        .header("X-Okta-Verification-Challenge", "c");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn assert_nothing_stored(app: &TestApp) {
    let ready: Value = app.ops_get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["pending_batches"], 0, "{ready}");
    assert_eq!(ready["backlog_bytes"], 0, "{ready}");
}

#[tokio::test]
async fn a_client_slow_to_send_its_headers_is_disconnected_without_an_answer() {
    let app = app_with(|c| c.server.header_read_timeout = Duration::from_millis(500)).await;
    // Connected, nothing sent.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    // Slowloris: a request line and part of the headers, never the blank line that ends them.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"POST /okta/events HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        .await
        .unwrap();
    // HTTP/2 prior knowledge, cut off inside the preface.
    let mut half_preface = TcpStream::connect(app.addr).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    for stream in [&mut silent, &mut slow, &mut half_preface] {
        let answer = read_until_closed(stream).await.expect("connection closed");
        assert_eq!(answer, "", "closed without an answer");
    }
    // An idle keep-alive connection is closed too, after a complete request.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle)
        .await
        .expect("idle connection closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_client_slow_to_send_its_body_gets_503_and_its_connection_closed() {
    let app = app_with(|c| c.server.request_timeout = Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /okta/events HTTP/1.1\r\nHost: x\r\nAuthorization: {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"data\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream)
        .await
        .expect("connection closed");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"unavailable\""), "{answer}");
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn connections_over_max_connections_are_closed_and_the_slots_come_back() {
    let app = app_with(|c| c.server.max_connections = 2).await;
    let held = [
        TcpStream::connect(app.addr).await.unwrap(),
        TcpStream::connect(app.addr).await.unwrap(),
    ];
    // Give the accept loop the two held connections first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    let _ = third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut third).await.expect("closed");
    assert_eq!(answer, "", "over the limit: closed without an answer");
    drop(held);
    let healthz = format!("http://{}/healthz", app.addr);
    eventually(PATIENCE, "the slots to come back", async || {
        let client = reqwest::Client::new();
        let status = client.get(&healthz).send().await.map(|r| r.status());
        match status {
            Ok(reqwest::StatusCode::OK) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("factorwatch_connections_refused_total{reason=\"max_connections\"}"),
        "{metrics}"
    );
}

fn rate_limit(burst: u32) -> Option<RateLimitConfig> {
    Some(RateLimitConfig {
        requests_per_second: 1,
        burst,
    })
}

/// Sends verification GETs (each with the given X-Forwarded-For, if any) until one is refused
/// with 429; returns that answer, or None after `tries`.
async fn first_429(
    app: &TestApp,
    forwarded_for: impl Fn(usize) -> Option<String>,
    tries: usize,
) -> Option<reqwest::Response> {
    for i in 0..tries {
        let header = forwarded_for(i);
        let headers: Vec<(&str, &str)> = header
            .as_deref()
            .map(|v| vec![("X-Forwarded-For", v)])
            .unwrap_or_default();
        let response = verify_with(app, &headers).await;
        if response.status() == 429 {
            return Some(response);
        }
        assert_eq!(response.status(), 200);
    }
    None
}

#[tokio::test]
async fn a_source_over_the_rate_limit_gets_429_with_retry_after() {
    let app = app_with(|c| c.server.rate_limit = rate_limit(3)).await;
    let refused = first_429(&app, |_| None, 20).await.expect("a 429");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    // POSTs from that source are refused before they are read or stored.
    let (envelope, _) = batch_with_mfa(3, 1);
    assert_eq!(app.post(&envelope).await.status(), 429);
    assert_nothing_stored(&app).await;
    // The operational endpoints are not limited.
    for _ in 0..5 {
        assert_eq!(app.get("/healthz").await.status(), 200);
    }
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = app_with(|c| c.server.rate_limit = rate_limit(3)).await;
    // A new forged address each time: still one source, the TCP peer.
    let refused = first_429(&app, |i| Some(format!("198.51.100.{i}")), 20).await;
    assert!(refused.is_some(), "forged X-Forwarded-For evaded the limit");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_its_own_source() {
    let app = app_with(|c| {
        c.server.rate_limit = rate_limit(3);
        c.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let distinct = first_429(&app, |i| Some(format!("198.51.100.{i}")), 20).await;
    assert!(
        distinct.is_none(),
        "each forwarded client has its own bucket"
    );
    // The right-most untrusted address counts, whatever the client wrote to its left.
    let same = first_429(&app, |i| Some(format!("203.0.113.{i}, 192.0.2.1")), 20).await;
    assert!(same.is_some(), "192.0.2.1 is one source");
}

/// The paths a caller on the internet could try on the hook port to learn about the service.
const OPERATIONAL_PATHS: [&str; 8] = [
    "/metrics",
    "/metrics/",
    "/readyz/",
    "/dlq",
    "/secrets",
    "/backfill",
    "/debug/pprof",
    "/",
];

#[tokio::test]
async fn the_hook_port_answers_only_the_hook_and_what_a_load_balancer_needs() {
    // As reported: an allow-list that does not include the caller.
    let app = app_with(|c| c.server.allowed_sources = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let (envelope, _) = batch_with_mfa(3, 1);
    assert_eq!(app.post(&envelope).await.status(), 403);
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"ready": true}),
        "a bare status only"
    );
    for path in OPERATIONAL_PATHS {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path} on the hook port");
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("factorwatch_") && !text.contains("backlog") && !text.contains("sinks"),
            "{path} on the hook port tells nothing: {text}"
        );
    }

    // The operational listener has the detail, whatever the hook's allow-list.
    let metrics = app.ops_get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("factorwatch_http_requests_total"),
        "{metrics}"
    );
    let detailed: Value = app.ops_get("/readyz").await.json().await.unwrap();
    assert_eq!(detailed["ready"], true, "{detailed}");
    assert!(
        detailed["backlog_limit_bytes"].as_u64().unwrap() > 0,
        "{detailed}"
    );
    assert!(detailed["sinks"].is_object(), "{detailed}");
    let elsewhere = app.ops_get("/okta/events").await;
    assert_eq!(elsewhere.status(), 404, "the hook is not on the ops port");
    let text = elsewhere.text().await.unwrap();
    assert!(text.contains("/healthz, /readyz and /metrics"), "{text}");
}

#[tokio::test]
async fn the_allow_list_refuses_other_sources_with_403_on_the_hook_only() {
    let allowed = "192.0.2.0/24";
    let direct = app_with(|c| c.server.allowed_sources = vec![allowed.parse().unwrap()]).await;
    let response = verify_with(&direct, &[("X-Forwarded-For", "192.0.2.5")]).await;
    assert_eq!(response.status(), 403, "a forged header does not help");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
    let (envelope, _) = batch_with_mfa(3, 1);
    assert_eq!(direct.post(&envelope).await.status(), 403);
    assert_nothing_stored(&direct).await;
    assert_eq!(direct.get("/healthz").await.status(), 200);
    assert_eq!(direct.get("/readyz").await.status(), 200);

    let proxied = app_with(|c| {
        c.server.allowed_sources = vec![allowed.parse().unwrap()];
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let response = verify_with(&proxied, &[("X-Forwarded-For", "192.0.2.5")]).await;
    assert_eq!(response.status(), 200);
    let response = verify_with(&proxied, &[("X-Forwarded-For", "192.0.2.5, 198.51.100.1")]).await;
    assert_eq!(response.status(), 403, "198.51.100.1 is the source");
}

#[tokio::test]
async fn plain_http2_with_prior_knowledge_is_served() {
    let app = app_with(|_| {}).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .get(&app.hook_url)
        .header("Authorization", SECRET)
        .header("X-Okta-Verification-Challenge", "h2c")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), r#"{"verification":"h2c"}"#);
}

/// A self-signed certificate for `factorwatch.test`, written to `dir`; returns its DER.
fn write_certificate(dir: &Path) -> Vec<u8> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["factorwatch.test".to_owned()]).unwrap();
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), generated.cert.pem()).unwrap();
    generated.cert.der().to_vec()
}

/// A client that trusts only `cert_der` and reaches `factorwatch.test` at `addr`.
fn tls_client(addr: SocketAddr, cert_der: &[u8], http1_only: bool) -> reqwest::Client {
    let certificate = reqwest::Certificate::from_der(cert_der).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([certificate])
        .tls_info(true)
        .resolve("factorwatch.test", addr);
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

async fn tls_verify(
    client: &reqwest::Client,
    addr: SocketAddr,
) -> reqwest::Result<reqwest::Response> {
    client
        .get(format!(
            "https://factorwatch.test:{}/okta/events",
            addr.port()
        ))
        .header("Authorization", SECRET)
        .header("X-Okta-Verification-Challenge", "tls")
        .send()
        .await
}

#[tokio::test]
async fn tls_serves_http2_and_http1_and_picks_up_a_new_certificate() {
    let certs = TempDir::new().unwrap();
    let first = write_certificate(certs.path());
    let app = app_with(|c| {
        c.server.tls = Some(TlsConfig {
            cert_path: certs.path().join("cert.pem"),
            key_path: certs.path().join("key.pem"),
            reload_interval: Duration::from_millis(100),
        });
        c.server.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    for (http1_only, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let response = tls_verify(&tls_client(app.addr, &first, http1_only), app.addr)
            .await
            .unwrap();
        assert_eq!(response.version(), version);
        assert_eq!(response.text().await.unwrap(), r#"{"verification":"tls"}"#);
    }
    // A TCP connection that never starts its handshake is closed.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(read_until_closed(&mut silent).await.as_deref(), Some(""));

    // A file that is not a certificate keeps the one in force.
    std::fs::write(certs.path().join("cert.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        tls_verify(&tls_client(app.addr, &first, false), app.addr)
            .await
            .is_ok()
    );

    let second = write_certificate(certs.path());
    let response = eventually(PATIENCE, "the new certificate to be served", async || {
        // A new client each time: a new connection, so a new handshake.
        tls_verify(&tls_client(app.addr, &second, false), app.addr).await
    })
    .await;
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("tls_info is on");
    assert_eq!(info.peer_certificate(), Some(&second[..]));
    // The container health check speaks HTTPS to a TLS listener.
    let config = certs.path().join("factorwatch.toml");
    let tls_keys = format!(
        "[server]\nlisten = \"{}\"\n[server.tls]\ncert_path = \"{}\"\nkey_path = \"{}\"\n",
        app.addr,
        certs.path().join("cert.pem").display(),
        certs.path().join("key.pem").display()
    );
    std::fs::write(&config, tls_keys).unwrap();
    // On the blocking pool: the server under test runs on this test's thread.
    let healthcheck = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_factorwatch"))
            .args(["healthcheck", "--config"])
            .arg(&config)
            .env_remove("FACTORWATCH_LISTEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(healthcheck.status.success(), "{healthcheck:?}");
}
