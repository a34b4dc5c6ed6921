//! Where the stack's own messages and its functions' output go: the terminal for
//! `make run`, or a buffer that tests can read.

use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub enum LogSink {
    #[default]
    Stdout,
    Buffer(Arc<Mutex<Vec<String>>>),
}

impl LogSink {
    pub fn buffer() -> Self {
        Self::Buffer(Arc::default())
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
        }
    }

    /// A copy of what was logged so far (empty for stdout).
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Stdout => Vec::new(),
            Self::Buffer(lines) => lines.lock().map(|l| l.clone()).unwrap_or_default(),
        }
    }
}
