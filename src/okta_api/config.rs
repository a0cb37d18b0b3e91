//! `[okta.api]`: how factorwatch calls Okta's Management API (org URL, credentials, share of
//! the rate limit, timeout). Checked without I/O by [`OktaApiConfig::validate`]; the private key
//! is read by [`OktaClient::new`](super::OktaClient::new).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The Management API settings of one Okta org.
///
/// Two ways to authenticate, exactly one of which is set: an API Services app (`client_id` and
/// `private_key_file`, OAuth 2.0 client credentials with `private_key_jwt`, recommended), or a
/// legacy SSWS `api_token`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OktaApiConfig {
    /// The org's base URL, such as `https://acme.okta.com` (not the `-admin` console URL).
    /// `http` is accepted only for a loopback host (tests, a local stand-in).
    pub org_url: String,
    /// The client id of the API Services app (OAuth client credentials).
    pub client_id: Option<String>,
    /// The app's private key, PEM: RSA (PKCS#1 or PKCS#8) or EC P-256 (PKCS#8). Its public key
    /// is registered on the app.
    pub private_key_file: Option<PathBuf>,
    /// The `kid` of that public key on the app, sent in the client assertion's header. Needed
    /// when the app has several keys.
    pub key_id: Option<String>,
    /// A legacy SSWS API token, instead of `client_id` + `private_key_file`. `"${NAME}"` reads
    /// the environment variable `NAME`.
    pub api_token: Option<Secret>,
    /// The most of each rate-limit bucket this client uses before it waits for the window to
    /// reset: 0 < share <= 1. Leaves the rest to other clients of the same app or token.
    #[serde(default = "default_rate_limit_share")]
    pub rate_limit_share: f64,
    /// How long one HTTP request to Okta may take, answer body included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

/// Half of each bucket: Okta's own default cap for one token or app is 50 %.
fn default_rate_limit_share() -> f64 {
    0.5
}

/// Okta answers a System Log query within 30 s or with a 500 (`E0000009`).
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl OktaApiConfig {
    /// Checks the keys without reading the key file or connecting; each error names its key.
    pub fn validate(&self) -> anyhow::Result<()> {
        check_org_url(&self.org_url)?;
        self.check_credentials()?;
        let share = self.rate_limit_share;
        if !(share > 0.0 && share <= 1.0) {
            bail!("rate_limit_share = {share}: must be greater than 0 and at most 1");
        }
        if self.timeout.is_zero() {
            bail!("timeout must be greater than 0");
        }
        Ok(())
    }

    /// Exactly one way to authenticate, with no empty value.
    fn check_credentials(&self) -> anyhow::Result<()> {
        for (key, value) in [
            ("client_id", self.client_id.as_deref()),
            ("key_id", self.key_id.as_deref()),
            ("api_token", self.api_token.as_ref().map(Secret::expose)),
        ] {
            if value.is_some_and(|v| v.trim().is_empty()) {
                bail!("{key} is empty: set a value or remove the key");
            }
        }
        if self
            .private_key_file
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            bail!("private_key_file is empty: set the path of the app's private key (PEM)");
        }
        let (client_id, key_file, token) = (
            self.client_id.is_some(),
            self.private_key_file.is_some(),
            self.api_token.is_some(),
        );
        match (client_id, key_file, token) {
            (false, false, false) => bail!(
                "no credentials: set client_id and private_key_file (an API Services app, \
                 recommended) or api_token (a legacy SSWS token)"
            ),
            (true, _, true) | (_, true, true) => bail!(
                "api_token is set together with client_id or private_key_file: use either the \
                 app (client_id + private_key_file) or api_token, not both"
            ),
            (true, false, false) => {
                bail!("client_id is set but private_key_file is not: set the app's private key")
            }
            (false, true, false) => {
                bail!("private_key_file is set but client_id is not: set the app's client id")
            }
            (true, true, false) | (false, false, true) => {}
        }
        if self.key_id.is_some() && self.api_token.is_some() {
            bail!("key_id applies to client_id + private_key_file only; remove it with api_token");
        }
        Ok(())
    }
}

/// `https://` and a bare origin (no path, query, fragment or credentials), `http://` for a
/// loopback host only, and not the Admin Console's `-admin` host.
fn check_org_url(org_url: &str) -> anyhow::Result<()> {
    let url = match Url::parse(org_url) {
        Ok(url) => url,
        Err(err) => bail!("org_url = {org_url:?}: not a URL ({err}); write https://<org>.okta.com"),
    };
    let Some(host) = url.host_str() else {
        bail!("org_url = {org_url:?}: no host; write https://<org>.okta.com");
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => bail!(
            "org_url = {org_url:?}: Okta is reached over https only (http is accepted for a \
             loopback host)"
        ),
        other => bail!("org_url = {org_url:?}: scheme {other:?}; write https://<org>.okta.com"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("org_url: credentials do not belong in the URL; use client_id or api_token");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        bail!(
            "org_url = {org_url:?}: only the org's origin, without a path, such as https://acme.okta.com"
        );
    }
    if host
        .split('.')
        .next()
        .is_some_and(|label| label.ends_with("-admin"))
    {
        bail!(
            "org_url = {org_url:?}: that is the Admin Console's address; the API is on the org \
             URL, without -admin"
        );
    }
    Ok(())
}

/// `localhost`, 127.0.0.0/8 or `::1` (with or without brackets).
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> OktaApiConfig {
        toml::from_str(
            r#"
            org_url = "https://acme.okta.com"
            client_id = "0oa1234567890abcdef"
            private_key_file = "/etc/factorwatch/okta-app.pem"
            "#,
        )
        .expect("a valid [okta.api] block")
    }

    fn error(config: &OktaApiConfig) -> String {
        format!("{:#}", config.validate().expect_err("refused"))
    }

    #[test]
    fn defaults_are_half_the_bucket_and_thirty_seconds() {
        let config = app();
        config.validate().expect("valid");
        assert_eq!(config.rate_limit_share, 0.5);
        assert_eq!(config.timeout, Duration::from_secs(30));
    }

    #[test]
    fn an_api_token_alone_is_enough_and_never_printed() {
        let config: OktaApiConfig = toml::from_str(
            r#"
            org_url = "https://acme.okta.com"
            api_token = "00abcdefSECRETtoken"
            timeout = "10s"
            rate_limit_share = 1.0
            "#,
        )
        .expect("valid TOML");
        config.validate().expect("valid");
        assert_eq!(config.timeout, Duration::from_secs(10));
        let shown = format!(
            "{config:?} {}",
            toml::to_string(&config).expect("serializes")
        );
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err =
            toml::from_str::<OktaApiConfig>("org_url = \"https://a.okta.com\"\nscope = \"x\"")
                .expect_err("refused");
        assert!(err.to_string().contains("scope"), "{err}");
    }

    #[test]
    fn exactly_one_way_to_authenticate() {
        let mut none = app();
        none.client_id = None;
        none.private_key_file = None;
        assert!(error(&none).starts_with("no credentials: set client_id and private_key_file"));

        let mut both = app();
        both.api_token = Some(Secret::new("00token"));
        assert!(error(&both).contains("not both"), "{}", error(&both));

        let mut no_key = app();
        no_key.private_key_file = None;
        assert!(error(&no_key).starts_with("client_id is set but private_key_file is not"));

        let mut no_client = app();
        no_client.client_id = None;
        assert!(error(&no_client).starts_with("private_key_file is set but client_id is not"));

        let mut token_with_kid = none.clone();
        token_with_kid.api_token = Some(Secret::new("00token"));
        token_with_kid.key_id = Some("kid-1".into());
        assert!(error(&token_with_kid).starts_with("key_id applies to"));

        let mut empty = app();
        empty.client_id = Some(" ".into());
        assert_eq!(
            error(&empty),
            "client_id is empty: set a value or remove the key"
        );
    }

    #[test]
    fn org_url_is_an_https_origin_or_a_loopback_http_one() {
        for (url, expected) in [
            ("acme.okta.com", "org_url = \"acme.okta.com\": not a URL"),
            ("http://acme.okta.com", "Okta is reached over https only"),
            ("ftp://acme.okta.com", "scheme \"ftp\""),
            ("https://acme.okta.com/api/v1", "only the org's origin"),
            ("https://acme.okta.com?x=1", "only the org's origin"),
            (
                "https://u:p@acme.okta.com",
                "credentials do not belong in the URL",
            ),
            ("https://acme-admin.okta.com", "the Admin Console's address"),
        ] {
            let mut config = app();
            config.org_url = url.into();
            let err = error(&config);
            assert!(err.contains(expected), "{url}: {err}");
            assert!(err.starts_with("org_url"), "{url}: {err}");
        }
        for url in [
            "https://acme.okta.com",
            "https://acme.okta.com/",
            "https://login.acme.example:8443",
            "http://127.0.0.1:8080",
            "http://localhost:1234",
            "http://[::1]:9000",
        ] {
            let mut config = app();
            config.org_url = url.into();
            config
                .validate()
                .unwrap_or_else(|err| panic!("{url}: {err:#}"));
        }
    }

    #[test]
    fn share_and_timeout_are_bounded() {
        for share in [0.0, -0.5, 1.01, f64::NAN] {
            let mut config = app();
            config.rate_limit_share = share;
            assert!(
                error(&config).starts_with("rate_limit_share"),
                "{share}: {}",
                error(&config)
            );
        }
        let mut config = app();
        config.timeout = Duration::ZERO;
        assert_eq!(error(&config), "timeout must be greater than 0");
    }
}
