//! Okta's verification challenge, played by factorwatch against its own public URL: the `GET`
//! with `X-Okta-Verification-Challenge` and the auth header Okta would send. Okta's own verify
//! call says only "execution failed"; this says why (not reachable, another service at that
//! path, the secret refused, a wrong answer).

use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// Okta's timeout for the verification answer (shared/okta/README.md §1).
const OKTA_TIMEOUT: Duration = Duration::from_secs(3);
/// The challenge header.
const CHALLENGE_HEADER: &str = "X-Okta-Verification-Challenge";

/// Why the challenge failed, each saying what to do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChallengeFailure {
    /// No answer at all.
    #[error(
        "nothing answers at {url} ({detail}): is factorwatch serving, and is --url its public \
         address (scheme, host, port, hook path)?"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What failed.
        detail: String,
    },
    /// Not within Okta's 3 s.
    #[error("{url} did not answer within Okta's 3 s: check the proxy in front of factorwatch")]
    Slow {
        /// The URL tried.
        url: String,
    },
    /// 401 or 403: the secret is not accepted there.
    #[error(
        "factorwatch at {url} refused the secret in {header} ({status}): the running service \
         accepts other secrets than this configuration holds; reload it (SIGHUP) or restart it \
         with this configuration"
    )]
    SecretRefused {
        /// The URL tried.
        url: String,
        /// The auth header's name.
        header: String,
        /// The status.
        status: u16,
    },
    /// Another status.
    #[error(
        "{url} answered {status} to the challenge: is its path factorwatch's hook_path (or an \
         org's path)?"
    )]
    Status {
        /// The URL tried.
        url: String,
        /// The status.
        status: u16,
    },
    /// 200 without the challenge echoed.
    #[error("{url} answered 200 without echoing the challenge: another service answers there")]
    WrongAnswer {
        /// The URL tried.
        url: String,
    },
}

/// Sends the challenge to `url` with `header: secret`, as Okta does, and checks the echo.
pub async fn play(url: &str, header: &str, secret: &Secret) -> Result<(), ChallengeFailure> {
    #[derive(Deserialize)]
    struct Echo {
        verification: String,
    }
    let challenge = uuid::Uuid::new_v4().to_string();
    let client = reqwest::Client::builder()
        .timeout(OKTA_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|err| unreachable(url, &err))?;
    let response = client
        .get(url)
        .header(CHALLENGE_HEADER, &challenge)
        .header(header, secret.expose())
        .send()
        .await
        .map_err(|err| unreachable(url, &err))?;
    let status = response.status().as_u16();
    match status {
        200 => {}
        401 | 403 => {
            return Err(ChallengeFailure::SecretRefused {
                url: url.to_owned(),
                header: header.to_owned(),
                status,
            });
        }
        _ => {
            return Err(ChallengeFailure::Status {
                url: url.to_owned(),
                status,
            });
        }
    }
    let echoed = response.json::<Echo>().await.ok();
    match echoed {
        Some(echo) if echo.verification == challenge => Ok(()),
        _ => Err(ChallengeFailure::WrongAnswer {
            url: url.to_owned(),
        }),
    }
}

fn unreachable(url: &str, err: &reqwest::Error) -> ChallengeFailure {
    if err.is_timeout() {
        return ChallengeFailure::Slow {
            url: url.to_owned(),
        };
    }
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    ChallengeFailure::Unreachable {
        url: url.to_owned(),
        detail,
    }
}
