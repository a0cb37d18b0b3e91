//! The one-time verification of an event hook: Okta's `GET` to the hook with a challenge.
//!
//! shared/okta/README.md §1: Okta sends `GET <hook URL>` with `X-Okta-Verification-Challenge` and
//! no body [CONCEPT], with the configured auth header and custom headers [KB]; the hook answers
//! `200`, `Content-Type: application/json`, `{"verification":"<value>"}`. The spec's
//! `verifyEventHook`: "If a response is not received within 3 seconds, the outbound request times
//! out. One retry is attempted after a timeout or error response."

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

/// How long Okta waits for each answer.
const TIMEOUT: Duration = Duration::from_secs(3);
/// One attempt and one retry.
const ATTEMPTS: usize = 2;
/// The challenge header.
pub(super) const HEADER: &str = "x-okta-verification-challenge";

/// What the verification GET sends.
pub(super) struct Target {
    pub(super) uri: String,
    /// Custom headers, then the auth header (`authScheme.key`: `authScheme.value`).
    pub(super) headers: Vec<(String, String)>,
}

/// How a verification ended.
pub(super) struct Outcome {
    /// Why it failed, `None` when the hook echoed the challenge.
    pub(super) failure: Option<String>,
    /// Deviations of a passing answer from the documented contract (a `Content-Type` other than
    /// `application/json`): the stand-in accepts them, Okta's docs do not promise to.
    pub(super) deviations: Vec<String>,
}

/// One attempt's result.
enum Attempt {
    Echoed {
        content_type: String,
    },
    /// A timeout, a connection error or a non-2xx status: the spec retries these.
    Error(String),
    /// A 2xx answer without the challenge: a wrong answer, not an error, so not retried.
    Wrong(String),
}

/// Sends the challenge to `target`, retrying once after a timeout or error response.
pub(super) async fn verify(target: &Target) -> Outcome {
    let challenge = super::random_token();
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("a reqwest client");
    let mut why = String::new();
    for _ in 0..ATTEMPTS {
        match attempt(&client, target, &challenge).await {
            Attempt::Echoed { content_type } => return passed(&content_type),
            Attempt::Wrong(reason) => return failed(reason),
            Attempt::Error(reason) => why = reason,
        }
    }
    failed(why)
}

async fn attempt(client: &reqwest::Client, target: &Target, challenge: &str) -> Attempt {
    let mut request = client.get(&target.uri).header(HEADER, challenge);
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) if e.is_timeout() => return Attempt::Error("no answer within 3 s".to_owned()),
        Err(e) => return Attempt::Error(format!("the request failed: {e}")),
    };
    let status = answer.status();
    if !status.is_success() {
        return Attempt::Error(format!("the answer was HTTP {}", status.as_u16()));
    }
    let content_type = answer
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = match answer.bytes().await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(e) if e.is_timeout() => return Attempt::Error("no answer within 3 s".to_owned()),
        Err(e) => return Attempt::Error(format!("reading the answer failed: {e}")),
    };
    if status.as_u16() != 200 || body["verification"] != challenge {
        return Attempt::Wrong(format!(
            "HTTP {} did not echo the challenge as {{\"verification\": \"...\"}}",
            status.as_u16()
        ));
    }
    Attempt::Echoed { content_type }
}

fn passed(content_type: &str) -> Outcome {
    let json = content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    let deviations = match json {
        true => Vec::new(),
        false => vec![format!(
            "the hook answered the verification with Content-Type {content_type:?}, not application/json"
        )],
    };
    Outcome {
        failure: None,
        deviations,
    }
}

fn failed(why: String) -> Outcome {
    Outcome {
        failure: Some(why),
        deviations: Vec::new(),
    }
}
