//! Reading LogEvents from a file: a System Log export (the JSON array `/api/v1/logs` returns),
//! JSON lines, or event-hook envelopes. `simulate --events` reads its events with it, and
//! `rules test` streams them ([`for_each_log_event`]), so a file of any size takes little memory.

use std::io::{BufRead, BufReader, Read};
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
    /// A JSON array of events that breaks off or goes wrong inside.
    #[error("{}: not a JSON array of events", path.display())]
    Array {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said, with the line and column.
        source: serde_json::Error,
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

/// Calls `each` with every LogEvent in `path`, in file order, as [`read_log_events`] would
/// return them, holding one event (or one line) in memory at a time: a JSON array is read element
/// by element, JSON lines line by line. Anything else (one object or one envelope, on one line
/// or pretty-printed over several) is read whole, as [`read_log_events`] reads it.
pub fn for_each_log_event(path: &Path, mut each: impl FnMut(Value)) -> Result<(), ExportError> {
    let read_error = |source| ExportError::Read {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::new(std::fs::File::open(path).map_err(read_error)?);
    let first = loop {
        let buffer = reader.fill_buf().map_err(read_error)?;
        match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(at) => break Some(buffer[at]),
            None if buffer.is_empty() => break None,
            None => {
                let len = buffer.len();
                reader.consume(len);
            }
        }
    };
    let mut unpack = |value: Value| match value["data"]["events"].as_array() {
        Some(events) => events.iter().cloned().for_each(&mut each),
        None => each(value),
    };
    match first {
        Some(b'[') => stream_array(path, reader, &mut unpack),
        Some(b'{') if is_json_lines(path)? => stream_lines(path, reader, &mut unpack),
        _ => {
            read_log_events(path)?.into_iter().for_each(unpack);
            Ok(())
        }
    }
}

/// True for JSON lines: the file's first non-empty line is a whole JSON value, and another
/// follows. One object alone, or spread over several lines, is read whole instead.
fn is_json_lines(path: &Path) -> Result<bool, ExportError> {
    let file = std::fs::File::open(path).map_err(|source| ExportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|line| !line.trim().is_empty());
    let first_is_json = lines
        .next()
        .is_some_and(|line| serde_json::from_str::<serde::de::IgnoredAny>(&line).is_ok());
    Ok(first_is_json && lines.next().is_some())
}

/// Each line of `reader` that is not empty, parsed, to `each`.
fn stream_lines(
    path: &Path,
    reader: impl BufRead,
    each: &mut impl FnMut(Value),
) -> Result<(), ExportError> {
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| ExportError::Read {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line).map_err(|source| ExportError::Line {
            path: path.to_owned(),
            line: number + 1,
            source,
        })?;
        each(value);
    }
    Ok(())
}

/// Each element of the JSON array `reader` holds, parsed, to `each`.
fn stream_array(
    path: &Path,
    reader: impl Read,
    each: &mut impl FnMut(Value),
) -> Result<(), ExportError> {
    use serde::Deserializer as _;
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    deserializer
        .deserialize_seq(EachElement(each))
        .and_then(|()| deserializer.end())
        .map_err(|source| ExportError::Array {
            path: path.to_owned(),
            source,
        })
}

/// Visits a JSON array, handing each element to its function instead of collecting them.
struct EachElement<'f, F>(&'f mut F);

impl<'de, F: FnMut(Value)> serde::de::Visitor<'de> for EachElement<'_, F> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<Value>()? {
            (self.0)(value);
        }
        Ok(())
    }
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

    /// The events of a file holding `text`, read whole and streamed; fails the test unless
    /// both ways read the same.
    fn read(text: &str) -> Result<Vec<Value>, ExportError> {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("events");
        std::fs::write(&path, text).unwrap();
        let whole = read_log_events(&path);
        let mut streamed = Vec::new();
        let outcome = for_each_log_event(&path, |event| streamed.push(event));
        match (&whole, outcome) {
            (Ok(events), Ok(())) => assert_eq!(events, &streamed, "{text}"),
            (Err(_), Err(_)) => {}
            (whole, streamed) => panic!("{text}: whole {whole:?}, streamed {streamed:?}"),
        }
        whole
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
        let array_of_envelopes = format!("\n  [{envelope}, {{\"uuid\":3}}]\n");
        assert_eq!(uuids(read(&array_of_envelopes).unwrap()), ["1", "2", "3"]);
        let pretty = "{\n  \"data\": {\"events\": [\n    {\"uuid\": 1}\n  ]}\n}\n";
        assert_eq!(uuids(read(pretty).unwrap()), ["1"]);
        assert_eq!(uuids(read("").unwrap_or_default()), Vec::<String>::new());
    }

    #[test]
    fn a_broken_array_is_named_with_where_it_breaks() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("export.json");
        std::fs::write(&path, "[{\"uuid\":1},\n{\"uuid\":").unwrap();
        let mut read = Vec::new();
        let err = for_each_log_event(&path, |event| read.push(event)).unwrap_err();
        assert_eq!(read.len(), 1, "the events before the break are read");
        assert!(matches!(err, ExportError::Array { .. }), "{err:?}");
        let message = format!("{:#}", anyhow::Error::from(err));
        assert!(message.contains("not a JSON array of events"), "{message}");
        assert!(message.contains("line 2"), "{message}");
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
