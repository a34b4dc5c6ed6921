//! Where the stack's own messages and its functions' output go: the terminal for
//! `make run`, a buffer that tests can read, or a file (`make bench`).

use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub enum LogSink {
    #[default]
    Stdout,
    Buffer(Arc<Mutex<Vec<String>>>),
    File(Arc<Mutex<LineWriter<File>>>),
}

impl LogSink {
    pub fn buffer() -> Self {
        Self::Buffer(Arc::default())
    }

    /// Appends every line to the file at `path` (created, or truncated).
    pub fn file(path: &Path) -> std::io::Result<Self> {
        Ok(Self::File(Arc::new(Mutex::new(LineWriter::new(
            File::create(path)?,
        )))))
    }

    pub fn line(&self, line: impl Into<String>) {
        let line = line.into();
        match self {
            Self::Stdout => println!("{line}"),
            Self::Buffer(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
            Self::File(file) => {
                if let Ok(mut file) = file.lock() {
                    let _ = writeln!(file, "{line}");
                }
            }
        }
    }

    /// A copy of what was logged so far (empty for stdout and files).
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Stdout | Self::File(_) => Vec::new(),
            Self::Buffer(lines) => lines.lock().map(|l| l.clone()).unwrap_or_default(),
        }
    }
}
