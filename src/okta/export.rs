//! Reading LogEvents from a file: a System Log export (the JSON array `/api/v1/logs` returns),
//! JSON lines, or event-hook envelopes. `simulate --events` and `rules test` read their events
//! with it.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why a file does not hold events.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The file cannot be read.
    #[error("cannot read events file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// The whole file is one envelope, but without its `data.events` array.
    #[error("{}: envelope without data.events array", path.display())]
    EnvelopeWithoutEvents {
        /// The file.
        path: PathBuf,
    },
    /// The whole file is a JSON string, number, boolean or null.
    #[error("{}: expected events, not a JSON scalar", path.display())]
    Scalar {
        /// The file.
        path: PathBuf,
    },
    /// Neither one JSON value nor JSON lines: this line is not JSON.
    #[error(
        "{} line {line}: not JSON (expected a JSON array, an envelope or JSON lines)",
        path.display()
    )]
    Line {
        /// The file.
        path: PathBuf,
        /// The line, counted from 1.
        line: usize,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
}

/// The values in `path`: the elements of a JSON array, the events of one envelope, one object, or
/// one value per line. An envelope inside an array or on a line stays as it is.
pub fn read_events(path: &Path) -> Result<Vec<Value>, ExportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExportError::Read {
        path: path.to_owned(),
        source,
    })?;
    if let Ok(whole) = serde_json::from_str::<Value>(&text) {
        return match whole {
            Value::Array(events) => Ok(events),
            Value::Object(ref object) if object.contains_key("data") => whole["data"]["events"]
                .as_array()
                .cloned()
                .ok_or_else(|| ExportError::EnvelopeWithoutEvents {
                    path: path.to_owned(),
                }),
            single @ Value::Object(_) => Ok(vec![single]),
            _ => Err(ExportError::Scalar {
                path: path.to_owned(),
            }),
        };
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str(line).map_err(|source| ExportError::Line {
                path: path.to_owned(),
                line: number + 1,
                source,
            })
        })
        .collect()
}

/// The LogEvents in `path`, as [`read_events`] reads it, with every envelope (one, or one per
/// line or array element) unpacked into its events.
pub fn read_log_events(path: &Path) -> Result<Vec<Value>, ExportError> {
    Ok(read_events(path)?
        .into_iter()
        .flat_map(|value| match value["data"]["events"].as_array() {
            Some(events) => events.clone(),
            None => vec![value],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<Value>, ExportError> {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("events");
        std::fs::write(&path, text).unwrap();
        read_log_events(&path)
    }

    #[test]
    fn reads_arrays_lines_and_envelopes() {
        let uuids = |events: Vec<Value>| -> Vec<String> {
            events.iter().map(|e| e["uuid"].to_string()).collect()
        };
        assert_eq!(
            uuids(read(r#"[{"uuid":1},{"uuid":2}]"#).unwrap()),
            ["1", "2"]
        );
        assert_eq!(
            uuids(read("{\"uuid\":1}\n\n{\"uuid\":2}\n").unwrap()),
            ["1", "2"]
        );
        let envelope = r#"{"data":{"events":[{"uuid":1},{"uuid":2}]}}"#;
        assert_eq!(uuids(read(envelope).unwrap()), ["1", "2"]);
        let lines = format!("{envelope}\n{{\"uuid\":3}}");
        assert_eq!(uuids(read(&lines).unwrap()), ["1", "2", "3"]);
    }

    #[test]
    fn names_the_line_that_is_not_json() {
        let err = read("{\"uuid\":1}\nnot json\n").unwrap_err();
        assert!(
            err.to_string().ends_with(
                "events line 2: not JSON (expected a JSON array, an envelope or JSON lines)"
            ),
            "{err}"
        );
        assert!(matches!(read("42"), Err(ExportError::Scalar { .. })));
        assert!(matches!(
            read(r#"{"data":{}}"#),
            Err(ExportError::EnvelopeWithoutEvents { .. })
        ));
    }
}
