//! Hostile input against the real server over real TCP: the corpus in `tests/hostile/` plus
//! generated cases too large to keep as files. Every case gets its documented answer (a 4xx, or a
//! closed connection), refused input leaves nothing in the spool, accepted odd input goes through
//! detection without harm, and the server stays healthy with its memory bounded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{ChildServer, SECRET, TestApp, free_port, spawn_app_with, test_config};

/// The hook's body limit in these tests: small, so the generated cases stay quick.
const LIMIT: usize = 1024 * 1024;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

#[derive(Deserialize)]
struct BodyCases {
    case: Vec<BodyCase>,
}

/// One body of `tests/hostile/cases.toml`.
#[derive(Deserialize)]
struct BodyCase {
    file: String,
    status: u16,
    message: Option<String>,
}

#[derive(Deserialize)]
struct RequestCases {
    request: Vec<RequestCase>,
}

/// One raw request of `tests/hostile/requests.toml`.
#[derive(Deserialize)]
struct RequestCase {
    name: String,
    request: String,
    status: u16,
}

fn read_toml<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(corpus_dir().join(name)).unwrap();
    toml::from_str(&text).unwrap_or_else(|err| panic!("{name}: {err}"))
}

async fn hostile_app() -> TestApp {
    let data_dir = TempDir::new().unwrap();
    let mut config = test_config(data_dir.path());
    config.server.max_body_bytes = LIMIT;
    spawn_app_with(config, data_dir).await
}

/// POSTs `body` with the secret; returns the status and the error body (Null for an empty body).
/// A refusal the server sends before the client finished writing may surface as a send error
/// instead: that counts as a closed connection (status 0).
async fn post(app: &TestApp, body: Vec<u8>) -> (u16, Value) {
    match app
        .client
        .post(&app.hook_url)
        .header("Authorization", SECRET)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap_or_default();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }
        Err(_) => (0, Value::Null),
    }
}

/// Sends `request` byte for byte; returns the status of the answer, or 0 if the connection was
/// closed without one.
async fn raw_status(app: &TestApp, request: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // The server may answer and close before it read everything: a write error is no failure.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    // Only the status line is needed; stop there, or when the server closes.
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let line = String::from_utf8_lossy(&answer);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

async fn assert_nothing_stored(app: &TestApp) {
    let ready: Value = app.ops_get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["pending_batches"], 0, "{ready}");
    assert_eq!(ready["backlog_bytes"], 0, "{ready}");
}

/// After a run: still healthy, and the detector could read every batch intake accepted.
async fn assert_healthy(app: &TestApp) {
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.ops_get("/readyz").await.status(), 200);
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        !metrics.contains("factorwatch_batches_quarantined_total"),
        "a batch intake accepted could not be read by the detector"
    );
}

#[tokio::test]
async fn every_body_in_the_corpus_gets_its_documented_answer() {
    let app = hostile_app().await;
    let cases: BodyCases = read_toml("cases.toml");
    let (refused, accepted): (Vec<_>, Vec<_>) = cases.case.iter().partition(|c| c.status >= 400);
    assert!(
        refused.len() >= 30 && accepted.len() >= 5,
        "the corpus shrank"
    );
    for case in refused {
        let body = std::fs::read(corpus_dir().join("bodies").join(&case.file)).unwrap();
        let (status, error) = post(&app, body).await;
        assert_eq!(status, case.status, "{}: {error}", case.file);
        let message = error["message"].as_str().unwrap_or_default();
        let expected = case.message.as_deref().unwrap_or_default();
        assert!(message.contains(expected), "{}: {message}", case.file);
    }
    assert_nothing_stored(&app).await;
    for case in accepted {
        let body = std::fs::read(corpus_dir().join("bodies").join(&case.file)).unwrap();
        let (status, error) = post(&app, body).await;
        assert_eq!(status, case.status, "{}: {error}", case.file);
    }
    app.wait_until_drained().await;
    assert_healthy(&app).await;
}

/// `count` copies of `item`, comma-separated.
fn repeat(item: &str, count: usize) -> String {
    vec![item; count].join(",")
}

/// An envelope around the given text of `data.events`' array contents.
fn envelope_of(events: &str) -> Vec<u8> {
    format!(r#"{{"eventType":"com.okta.event_hook","data":{{"events":[{events}]}}}}"#).into_bytes()
}

#[tokio::test]
async fn generated_huge_deep_and_numerous_bodies_are_bounded() {
    let app = hostile_app().await;
    let huge_string = "A".repeat(2 * LIMIT);
    let deep = 100_000;
    let refused: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a string twice the body limit",
            envelope_of(&format!(r#"{{"displayMessage":"{huge_string}"}}"#)),
            413,
            "max_body_bytes",
        ),
        (
            "a million tiny events",
            envelope_of(&repeat(r#"{"uuid":"x"}"#, 1_000_000)),
            413,
            "max_body_bytes",
        ),
        (
            "an array of two million numbers",
            envelope_of(&repeat("0", 2_000_000)),
            413,
            "max_body_bytes",
        ),
        (
            "an envelope nested 100,000 deep",
            format!("{}{}", "[".repeat(deep), "]".repeat(deep)).into_bytes(),
            400,
            "not an Okta event-hook envelope",
        ),
        (
            "an envelope of objects nested 100,000 deep",
            format!("{}1{}", "{\"data\":".repeat(deep), "}".repeat(deep)).into_bytes(),
            400,
            "not an Okta event-hook envelope",
        ),
    ];
    for (name, body, expected, message) in refused {
        let (status, error) = post(&app, body).await;
        // A 413 may come while the client is still sending: then the client sees a closed
        // connection rather than the answer, which is as good.
        let closed_early = status == 0 && expected == 413;
        assert!(
            status == expected || closed_early,
            "{name}: {status} {error}"
        );
        if !closed_early {
            let text = error["message"].as_str().unwrap_or_default();
            assert!(text.contains(message), "{name}: {text}");
        }
    }
    assert_nothing_stored(&app).await;
    let accepted: Vec<(&str, Vec<u8>)> = vec![
        (
            "a string just under the limit",
            envelope_of(&format!(
                r#"{{"displayMessage":"{}"}}"#,
                "B".repeat(LIMIT - 200)
            )),
        ),
        ("200,000 empty events", envelope_of(&repeat("{}", 200_000))),
        (
            "an event with 50,000 keys",
            envelope_of(&format!(
                "{{{}}}",
                (0..50_000)
                    .map(|i| format!("\"k{i}\":{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
        ),
        (
            "an event nested 100 deep",
            envelope_of(&format!("{}1{}", "{\"a\":".repeat(100), "}".repeat(100))),
        ),
        // Valid JSON, but deeper than a JSON tree may be: stored, counted as unreadable, and
        // never matched (see the check below).
        (
            "an event nested 100,000 deep",
            envelope_of(&format!("{}1{}", "[".repeat(deep), "]".repeat(deep))),
        ),
    ];
    for (name, body) in accepted {
        assert!(body.len() <= LIMIT, "{name} is over the limit");
        let (status, error) = post(&app, body).await;
        assert_eq!(status, 204, "{name}: {error}");
    }
    app.wait_until_drained().await;
    assert_healthy(&app).await;
    let metrics = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("factorwatch_events_unreadable_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn wrong_methods_odd_paths_and_broken_framing_get_their_answers() {
    let app = hostile_app().await;
    let cases: RequestCases = read_toml("requests.toml");
    assert!(cases.request.len() >= 25, "the corpus shrank");
    for case in &cases.request {
        let request = case.request.replace("{secret}", SECRET);
        let status = raw_status(&app, request.as_bytes()).await;
        assert_eq!(status, case.status, "{}", case.name);
    }
    assert_nothing_stored(&app).await;
    assert_healthy(&app).await;
}

#[tokio::test]
async fn header_floods_and_huge_request_lines_are_refused() {
    let app = hostile_app().await;
    let many: String = (0..200).map(|i| format!("X-Flood-{i}: {i}\r\n")).collect();
    let cases: Vec<(&str, String, &[u16])> = vec![
        (
            "200 headers",
            format!("GET /okta/events HTTP/1.1\r\nHost: x\r\n{many}\r\n"),
            &[431],
        ),
        (
            "one header of 1 MiB",
            format!(
                "GET /okta/events HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "h".repeat(1 << 20)
            ),
            &[431, 0],
        ),
        (
            "a path of 1 MiB",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "p".repeat(1 << 20)),
            &[414, 431, 0],
        ),
        (
            "an auth header of 64 KiB",
            format!(
                "GET /okta/events HTTP/1.1\r\nHost: x\r\nX-Okta-Verification-Challenge: c\r\nAuthorization: {}\r\n\r\n",
                "s".repeat(64 << 10)
            ),
            &[401],
        ),
    ];
    for (name, request, expected) in cases {
        let status = raw_status(&app, request.as_bytes()).await;
        assert!(expected.contains(&status), "{name}: {status}");
    }
    assert_healthy(&app).await;
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

#[tokio::test]
async fn memory_stays_bounded_under_concurrent_oversized_and_deep_bodies() {
    // A child process, so that only the server's memory is measured; default limit (5 MiB).
    let data_dir = TempDir::new().unwrap();
    let mut server = ChildServer::start(data_dir.path(), free_port()).await;
    let pid = server.child.id();
    let before = rss_kib(pid);
    let oversized = envelope_of(&repeat(r#"{"uuid":"x"}"#, 1_000_000));
    let deep = {
        let depth = 2_000_000;
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
    };
    let client = reqwest::Client::new();
    for round in 0..8 {
        let sends = (0..8).map(|i| {
            let body = if (round + i) % 2 == 0 {
                &oversized
            } else {
                &deep
            };
            client
                .post(&server.hook_url)
                .header("Authorization", SECRET)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
        });
        // 413 or 400, or a connection closed by an early 413 (a send error): never a 2xx.
        for response in futures_util::future::join_all(sends)
            .await
            .into_iter()
            .flatten()
        {
            assert!(response.status().is_client_error(), "{}", response.status());
        }
    }
    let after = rss_kib(pid);
    assert!(
        reqwest::get(format!("http://{}/healthz", server.addr))
            .await
            .is_ok_and(|r| r.status() == 200)
    );
    server.child.kill().unwrap();
    let _ = server.child.wait();
    // 64 bodies of 4-16 MB went in, 8 at a time: the growth must stay far below their sum.
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 256,
        "RSS grew by {grown_mib} MiB ({before} -> {after} KiB)"
    );
}
