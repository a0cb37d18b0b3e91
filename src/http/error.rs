//! The errors the HTTP API answers with. Each becomes a status and a short JSON body
//! `{"error": code, "message": text}`; the log line for it carries the detail the body leaves out.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A request refused by the hook endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or wrong secret. The detail is for the log only: the body never says which.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// No secret at all: the request lacks the configured auth header, which the log names.
    #[error("unauthorized: auth header missing (the secret is expected in the {0:?} header)")]
    MissingAuthHeader(axum::http::HeaderName),
    /// A GET without the verification challenge header.
    #[error("missing X-Okta-Verification-Challenge header")]
    MissingChallenge,
    /// A POST whose Content-Type is not JSON.
    #[error("unsupported content type {0:?}; Okta sends application/json")]
    UnsupportedMediaType(String),
    /// A body larger than `server.max_body_bytes`.
    #[error("request body exceeds server.max_body_bytes = {0}")]
    PayloadTooLarge(usize),
    /// The body is not an Okta event-hook envelope (or could not be read).
    #[error("{0}")]
    BadRequest(String),
    /// The batch could not be stored; Okta will retry once.
    #[error("cannot store the batch now: {0}")]
    Unavailable(String),
    /// The request's source is not in `server.allowed_sources`.
    #[error("the request's source is not in server.allowed_sources")]
    SourceNotAllowed,
    /// The request's source is over `server.rate_limit`; it may retry after this many seconds.
    #[error("too many requests from this source; retry after {0} s")]
    RateLimited(u64),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) | ApiError::MissingAuthHeader(_) => StatusCode::UNAUTHORIZED,
            ApiError::MissingChallenge | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::SourceNotAllowed => StatusCode::FORBIDDEN,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) | ApiError::MissingAuthHeader(_) => "unauthorized",
            ApiError::MissingChallenge => "missing_challenge",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::BadRequest(_) => "invalid_envelope",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::SourceNotAllowed => "forbidden",
            ApiError::RateLimited(_) => "rate_limited",
        }
    }

    /// What the client is told.
    fn public_message(&self) -> String {
        match self {
            ApiError::Unauthorized(_) | ApiError::MissingAuthHeader(_) => {
                "missing or invalid credentials".into()
            }
            ApiError::Unavailable(_) => {
                "the batch could not be stored; retry later (the receiver's log says why)".into()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.code(), "message": self.public_message()}));
        let retry_after = match self {
            ApiError::Unavailable(_) => Some(5),
            ApiError::RateLimited(secs) => Some(secs),
            _ => None,
        };
        let mut response = (self.status(), body).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_body_does_not_say_what_was_wrong() {
        let message = ApiError::Unauthorized("header value not accepted").public_message();
        assert!(!message.contains("header value"));
    }

    #[test]
    fn a_missing_auth_header_is_named_in_the_log_not_in_the_body() {
        let err = ApiError::MissingAuthHeader(axum::http::HeaderName::from_static("x-okta-key"));
        assert!(err.to_string().contains("\"x-okta-key\" header"), "{err}");
        assert_eq!(err.public_message(), "missing or invalid credentials");
    }
}
