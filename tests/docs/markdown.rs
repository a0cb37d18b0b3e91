//! The fenced code blocks of the documents, read the way the tests use them.

use std::path::{Path, PathBuf};

/// The documents whose examples are run: README.md and every docs/*.md, relative to the crate root.
pub fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir("docs")
        .expect("docs/ is readable")
        .map(|entry| entry.expect("docs/ is readable").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    docs.insert(0, PathBuf::from("README.md"));
    docs
}

/// One fenced code block.
pub struct Block {
    /// The document, relative to the crate root.
    pub doc: PathBuf,
    /// The line of the opening fence (1-based), for messages.
    pub line: usize,
    /// The info string after the opening fence (`console`, `console,ignore`, `toml`...).
    pub info: String,
    /// The lines between the fences, each ending in a line feed.
    pub body: String,
    /// The file an example writes this block to, from `<!-- file: PATH -->` on the line before.
    pub file: Option<String>,
}

/// The marker, on the line before a fence, of a block that is a file the examples use.
const FILE_MARKER: (&str, &str) = ("<!-- file: ", " -->");

/// Every fenced block of `doc`, indented ones (in list items) included.
pub fn blocks(doc: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(doc)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", doc.display()));
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    let mut previous = "";
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match open.as_mut() {
            Some(_) if trimmed.starts_with("```") => blocks.extend(open.take()),
            Some(block) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
            None if trimmed.starts_with("```") => {
                open = Some(Block {
                    doc: doc.to_path_buf(),
                    line: index + 1,
                    info: trimmed.trim_start_matches('`').trim().to_owned(),
                    body: String::new(),
                    file: file_marker(previous),
                });
            }
            None => {}
        }
        previous = line;
    }
    blocks
}

/// The path named by a `<!-- file: PATH -->` line.
fn file_marker(line: &str) -> Option<String> {
    let (start, end) = FILE_MARKER;
    let path = line.trim().strip_prefix(start)?.strip_suffix(end)?;
    Some(path.trim().to_owned())
}

/// Whether `wanted` matches `actual`, line by line: `[..]` in a line stands for any text within
/// the line, and a line that is only `...` for any number of lines (trycmd's wildcards).
pub fn matches(wanted: &str, actual: &str) -> bool {
    let wanted: Vec<&str> = wanted.lines().collect();
    let actual: Vec<&str> = actual.lines().collect();
    lines_match(&wanted, &actual)
}

fn lines_match(wanted: &[&str], actual: &[&str]) -> bool {
    match wanted.split_first() {
        None => actual.is_empty(),
        Some((&"...", rest)) => (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..])),
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, more)| line_matches(first, line) && lines_match(rest, more)),
    }
}

fn line_matches(wanted: &str, actual: &str) -> bool {
    let mut parts = wanted.split("[..]");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}
