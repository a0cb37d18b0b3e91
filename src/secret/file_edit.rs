//! Changes to a secrets file for a rotation: a new secret appended, one line taken out, or every
//! secret but one. Each change writes the file whole (a temporary file renamed over it, created
//! owner-only and then given the original's permissions), so that a reload never reads half of
//! it. Comments and blank lines stay.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use super::Secret;

/// A new random secret: `bytes` random bytes, hex-encoded (no character a header refuses).
pub fn generate(bytes: usize) -> Secret {
    let hex: String = (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    Secret::new(hex)
}

/// Appends `secret` to `file` as a new line; returns its line number (from 1).
pub fn append(file: &Path, secret: &Secret) -> std::io::Result<usize> {
    let mut text = std::fs::read_to_string(file)?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(secret.expose());
    text.push('\n');
    let line = text.lines().count();
    replace(file, &text)?;
    Ok(line)
}

/// Removes line `line` (from 1) of `file`.
pub fn remove_line(file: &Path, line: usize) -> std::io::Result<()> {
    let text = std::fs::read_to_string(file)?;
    let kept: Vec<&str> = (text.lines().enumerate())
        .filter(|(index, _)| index + 1 != line)
        .map(|(_, text)| text)
        .collect();
    replace(file, &(kept.join("\n") + "\n"))
}

/// Keeps the secret at `line` and every comment and blank line; returns how many secrets went.
pub fn keep_only(file: &Path, line: usize) -> std::io::Result<usize> {
    let text = std::fs::read_to_string(file)?;
    let mut removed = 0;
    let mut kept = Vec::new();
    for (index, text) in text.lines().enumerate() {
        let trimmed = text.trim();
        let other_secret = !trimmed.is_empty() && !trimmed.starts_with('#') && index + 1 != line;
        if other_secret {
            removed += 1;
        } else {
            kept.push(text);
        }
    }
    replace(file, &(kept.join("\n") + "\n"))?;
    Ok(removed)
}

/// Replaces `file` with `text` whole.
fn replace(file: &Path, text: &str) -> std::io::Result<()> {
    let permissions = std::fs::metadata(file)?.permissions();
    let temporary = file.with_extension("rotating");
    // Owner-only from the start: it holds secrets before the original's permissions are copied.
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    std::fs::set_permissions(&temporary, permissions)?;
    std::fs::rename(&temporary, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_appends_then_keeps_only_the_new_secret_and_the_comments() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("okta");
        std::fs::write(&file, "# the hook's secret\nold-one\n\nold-two").unwrap();
        let new = generate(32);
        assert_eq!(new.expose().len(), 64);
        let line = append(&file, &new).unwrap();
        assert_eq!(line, 5);
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().nth(line - 1), Some(new.expose()));
        assert_eq!(keep_only(&file, line).unwrap(), 2);
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text, format!("# the hook's secret\n\n{}\n", new.expose()));
        remove_line(&file, 3).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "# the hook's secret\n\n"
        );
    }
}
