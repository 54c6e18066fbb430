//! Logging: `tracing` to stderr and/or the node config's `logFile`, never to stdout.
//!
//! stdout carries exactly one JSON document per run, so no log line may ever reach it. The
//! subscriber is installed once the node config is read (VERSION and early env errors log
//! nothing). A log file that cannot be opened falls back to stderr with a warning there; it
//! never fails the CNI command.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// Maps a Multus-style level name to a tracing level. Multus's `verbose` is `info`, its
/// `panic` is `error`. Unknown names give `None` (the caller keeps the default).
pub fn parse_level(s: &str) -> Option<Level> {
    Some(match s.to_ascii_lowercase().as_str() {
        "trace" => Level::TRACE,
        "debug" => Level::DEBUG,
        "verbose" | "info" => Level::INFO,
        "warn" | "warning" => Level::WARN,
        "error" | "panic" => Level::ERROR,
        _ => return None,
    })
}

/// The default level when the node config names none.
pub const DEFAULT_LEVEL: Level = Level::WARN;

#[derive(Clone)]
struct Sink {
    file: Option<Arc<File>>,
    stderr: bool,
}

struct SinkWriter(Sink);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(f) = &self.0.file {
            // Log write failures are not CNI failures.
            let _ = (&**f).write_all(buf);
        }
        if self.0.stderr {
            let _ = io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = SinkWriter;
    fn make_writer(&'a self) -> SinkWriter {
        SinkWriter(self.clone())
    }
}

/// Installs the global subscriber. `level` is the node config's `logLevel`.
pub fn init(level: Option<&str>, file: Option<&Path>, to_stderr: bool) {
    let lvl = level.and_then(parse_level).unwrap_or(DEFAULT_LEVEL);
    let mut warn_open = None;
    let file = file.and_then(|p| {
        OpenOptions::new()
            .create(true)
            .append(true)
            // Logs name pods, networks and configs: readable by the node's admin only.
            .mode(0o600)
            .open(p)
            .map_err(|e| {
                warn_open = Some(format!(
                    "cannot open logFile {}: {e}; logging to stderr",
                    p.display()
                ))
            })
            .ok()
            .map(Arc::new)
    });
    let sink = Sink {
        stderr: to_stderr || file.is_none(),
        file,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(lvl)
        .with_writer(sink)
        .with_target(false)
        .try_init();
    if let Some(w) = warn_open {
        tracing::warn!("{w}");
    }
    if let Some(l) = level.filter(|l| parse_level(l).is_none()) {
        tracing::warn!("unknown logLevel {l:?}; using {DEFAULT_LEVEL}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multus_levels() {
        assert_eq!(parse_level("verbose"), Some(Level::INFO));
        assert_eq!(parse_level("PANIC"), Some(Level::ERROR));
        assert_eq!(parse_level("debug"), Some(Level::DEBUG));
        assert_eq!(parse_level("loud"), None);
    }
}
