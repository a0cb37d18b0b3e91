//! What the HTTPS sinks (webhook, Slack, PagerDuty) share: one client per sink and the mapping of
//! an HTTP answer to a delivery outcome. Each sink only builds its request.

use std::time::Duration;

use reqwest::StatusCode;

use super::DeliveryError;

/// How long one delivery request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one sink.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        // A redirect would turn the POST into a body-less GET whose 2xx proves nothing: a 3xx
        // is reported as a refusal instead, with its status.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("factorwatch/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends `request` and decides: 2xx delivered; 408, 429 and 5xx (and no answer) worth retrying;
/// any other 4xx refused for good. `what` names the destination in errors (never its secret URL).
pub async fn send(request: reqwest::RequestBuilder, what: &str) -> Result<(), DeliveryError> {
    let response = request.send().await.map_err(|err| {
        // reqwest's error can include the URL, which for Slack is the secret: leave it out.
        DeliveryError::Transient(format!("{what}: no answer ({})", describe(&err)))
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let snippet: String = body.chars().take(200).collect();
    let message = format!("{what} answered {status}: {snippet}");
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        Err(DeliveryError::Transient(message))
    } else {
        Err(DeliveryError::Permanent(message))
    }
}

fn describe(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}
