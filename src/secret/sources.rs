//! Where an org's accepted secrets come from: the config file, the environment and a secrets
//! file, which is read again on every reload.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Secret;

/// Where one accepted secret came from: what tells secrets apart without showing them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SecretSource {
    /// The config file's `secrets` (a `"${NAME}"` value included).
    #[default]
    Config,
    /// An environment variable listing secrets (`FACTORWATCH_OKTA_SECRETS`).
    Env {
        /// The variable's name.
        variable: String,
    },
    /// A line of a secrets file.
    File {
        /// The file.
        path: PathBuf,
        /// The line, counted from 1.
        line: usize,
    },
}

/// How `okta doctor` shows a source: `config`, `env NAME`, `PATH:LINE`.
impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config => f.write_str("config"),
            Self::Env { variable } => write!(f, "env {variable}"),
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
        }
    }
}

/// One accepted secret and where it came from.
#[derive(Debug, Clone)]
pub struct SourcedSecret {
    /// The secret.
    pub secret: Secret,
    /// Where it came from.
    pub source: SecretSource,
}

/// Where one org's accepted secrets come from: those fixed at start (the config file or the
/// environment) and a secrets file, which [`SecretSources::read`] reads again each time.
#[derive(Debug, Clone, Default)]
pub struct SecretSources {
    /// The secrets read once, at start, each with its source.
    pub fixed: Vec<SourcedSecret>,
    /// The secrets file, if one is configured.
    pub file: Option<PathBuf>,
}

/// Why an org's secrets cannot be read, or would leave its hook refusing everything.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The secrets file cannot be read.
    #[error("cannot read the secrets file {}: {error}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        error: std::io::Error,
    },
    /// No secret at all: the hook would refuse every request.
    #[error(
        "no secret would be accepted ({}), so the hook would refuse every request",
        match file {
            Some(path) => format!("{} holds none and no other secret is configured", path.display()),
            None => "none is configured".to_owned(),
        }
    )]
    NoSecret {
        /// The secrets file, which held no secret.
        file: Option<PathBuf>,
    },
}

impl SecretSources {
    /// `secrets` (all from `origin`) and the secrets file `file`.
    pub fn new(secrets: &[Secret], origin: &SecretSource, file: Option<&Path>) -> Self {
        Self {
            fixed: secrets
                .iter()
                .map(|secret| SourcedSecret {
                    secret: secret.clone(),
                    source: origin.clone(),
                })
                .collect(),
            file: file.map(Path::to_path_buf),
        }
    }

    /// Every accepted secret: the fixed ones, then the file's in its order. Fails when the file
    /// cannot be read or no secret is left.
    pub fn read(&self) -> Result<Vec<SourcedSecret>, SecretsError> {
        let mut secrets = self.fixed.clone();
        if let Some(path) = &self.file {
            secrets.extend(read_secrets_file(path)?);
        }
        if secrets.is_empty() {
            return Err(SecretsError::NoSecret {
                file: self.file.clone(),
            });
        }
        Ok(secrets)
    }
}

/// The secrets in the file at `path`, one per line (blank lines and `#` comments ignored).
fn read_secrets_file(path: &Path) -> Result<Vec<SourcedSecret>, SecretsError> {
    let text = std::fs::read_to_string(path).map_err(|error| SecretsError::Unreadable {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(line, secret)| SourcedSecret {
            secret: Secret::new(secret),
            source: SecretSource::File {
                path: path.to_path_buf(),
                line,
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_secret_is_named_by_its_path_and_line() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(&path, "# rotated in\n\nold-one\n  new-one  \n").unwrap();
        let sources = SecretSources::new(
            &[Secret::new("from-env")],
            &SecretSource::Env {
                variable: "FACTORWATCH_OKTA_SECRETS".into(),
            },
            Some(&path),
        );
        let read = sources.read().unwrap();
        let shown: Vec<(&str, &SecretSource)> = read
            .iter()
            .map(|s| (s.secret.expose(), &s.source))
            .collect();
        let line = |line| SecretSource::File {
            path: path.clone(),
            line,
        };
        let env = SecretSource::Env {
            variable: "FACTORWATCH_OKTA_SECRETS".into(),
        };
        assert_eq!(
            shown,
            [
                ("from-env", &env),
                ("old-one", &line(3)),
                ("new-one", &line(4))
            ]
        );
    }

    #[test]
    fn an_empty_or_missing_file_alone_is_refused_and_names_the_file() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(&path, "# nothing yet\n").unwrap();
        let sources = SecretSources::new(&[], &SecretSource::Config, Some(&path));
        let err = sources.read().unwrap_err().to_string();
        assert!(
            err.contains("holds none") && err.contains("secrets"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        let err = sources.read().unwrap_err().to_string();
        assert!(err.starts_with("cannot read the secrets file"), "{err}");
    }
}
