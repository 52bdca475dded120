//! Every formatted log line, from every thread, for tests that check what is logged (and what
//! is not).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A `MakeWriter` target that keeps what it is given; clone it to read what was written.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Installs a global subscriber that writes every event up to `level`, without colours,
    /// into a new capture, and returns it. Once per test binary.
    pub fn install(level: tracing::Level) -> Self {
        let captured = CapturedLogs::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        captured
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
