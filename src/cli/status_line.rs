//! One line of progress on stderr: redrawn in place on a terminal, a line per update otherwise
//! (logs, CI), so that long commands show where they are either way.

use std::io::{IsTerminal, Write};

/// Where a long command's progress goes.
pub struct StatusLine {
    terminal: bool,
    drawn: bool,
}

impl StatusLine {
    /// On stderr, redrawn in place when stderr is a terminal.
    pub fn stderr() -> Self {
        Self::new(std::io::stderr().is_terminal())
    }

    /// Redrawn in place when `terminal`.
    pub fn new(terminal: bool) -> Self {
        Self {
            terminal,
            drawn: false,
        }
    }

    /// Shows `text` as the current progress.
    pub fn show(&mut self, text: &str) {
        let mut stderr = std::io::stderr();
        let _ = match self.terminal {
            true => write!(stderr, "\r\x1b[2K{text}"),
            false => writeln!(stderr, "{text}"),
        };
        let _ = stderr.flush();
        self.drawn = true;
    }

    /// Ends the line drawn in place, so what follows starts on a line of its own.
    pub fn finish(&mut self) {
        if self.terminal && self.drawn {
            eprintln!();
        }
        self.drawn = false;
    }
}
