//! Logging: `tracing` to stderr and/or the node config's `logFile`, never to stdout.
//!
//! stdout carries exactly one JSON document per run, so no log line may ever reach it. The
//! subscriber is installed once the node config is read (VERSION and early env errors log
//! nothing). A log file that cannot be opened, or that fails the checks of [`open_log_file`],
//! falls back to stderr with a warning there; it never fails the CNI command.

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

/// Opens `logFile` for appending, with the rules plexus applies to its journals (root writes
/// here): the last component is never followed if it is a symlink (`O_NOFOLLOW`); only a
/// regular file is used (a FIFO would block, a device is not a log; `O_NONBLOCK` keeps the
/// open itself from blocking); a file owned by another user than plexus's (or root) is
/// refused untouched, since its owner could read what plexus logs or have linked it
/// elsewhere; a mode wider than 0600 is set to 0600 ([`crate::perms::private_file`]). A new
/// file is created 0600.
pub fn open_log_file(path: &Path) -> Result<File, String> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "it is a symlink, which plexus does not follow".to_owned(),
            _ => format!("cannot open it: {e}"),
        })?;
    let meta = f.metadata().map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err("it is not a regular file".to_owned());
    }
    crate::perms::private_file(&f, path, "the log file", crate::perms::Writable::Fix)
        .map_err(|e| e.msg())?;
    Ok(f)
}

/// The `logLevel` and `logFile` the global subscriber was installed with, for processes
/// plexus starts to finish its work (the detached Event sender).
static SETTINGS: std::sync::OnceLock<(Option<String>, Option<std::path::PathBuf>)> =
    std::sync::OnceLock::new();

/// The `logLevel` and `logFile` given to [`init`], if it ran.
pub fn settings() -> (Option<String>, Option<std::path::PathBuf>) {
    SETTINGS.get().cloned().unwrap_or_default()
}

/// Installs the global subscriber. `level` is the node config's `logLevel`.
pub fn init(level: Option<&str>, file: Option<&Path>, to_stderr: bool) {
    let _ = SETTINGS.set((level.map(str::to_owned), file.map(Path::to_path_buf)));
    let lvl = level.and_then(parse_level).unwrap_or(DEFAULT_LEVEL);
    let mut warn_open = None;
    let file = file.and_then(|p| {
        open_log_file(p)
            .map_err(|e| {
                warn_open = Some(format!("logFile {}: {e}; logging to stderr", p.display()))
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

    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn log_files_get_the_journal_rules() {
        let d = tempfile::tempdir().unwrap();
        let new = d.path().join("new.log");
        open_log_file(&new).unwrap();
        assert_eq!(std::fs::metadata(&new).unwrap().mode() & 0o777, 0o600);
        // Too wide, ours: tightened and used.
        let wide = d.path().join("wide.log");
        std::fs::write(&wide, "before\n").unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o666)).unwrap();
        (&open_log_file(&wide).unwrap())
            .write_all(b"line\n")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&wide).unwrap(), "before\nline\n");
        assert_eq!(std::fs::metadata(&wide).unwrap().mode() & 0o777, 0o600);
        // A symlink, even to our own file: refused.
        let link = d.path().join("link.log");
        std::os::unix::fs::symlink(&wide, &link).unwrap();
        let e = open_log_file(&link).unwrap_err();
        assert!(e.contains("symlink"), "{e}");
        // Not a regular file.
        let dev_null = open_log_file(Path::new("/dev/null")).unwrap_err();
        assert_eq!(dev_null, "it is not a regular file");
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        // Without a reader the open fails at once (ENXIO) instead of blocking.
        assert!(open_log_file(&fifo).is_err());
        if crate::perms::euid() == 0 {
            let foreign = d.path().join("foreign.log");
            std::fs::write(&foreign, "theirs\n").unwrap();
            std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o666)).unwrap();
            std::os::unix::fs::chown(&foreign, Some(65534), None).unwrap();
            let e = open_log_file(&foreign).unwrap_err();
            assert!(e.contains("owned by uid 65534"), "{e}");
            let m = std::fs::metadata(&foreign).unwrap();
            assert_eq!((m.mode() & 0o777, m.uid()), (0o666, 65534));
            assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "theirs\n");
        }
    }

    #[test]
    fn multus_levels() {
        assert_eq!(parse_level("verbose"), Some(Level::INFO));
        assert_eq!(parse_level("PANIC"), Some(Level::ERROR));
        assert_eq!(parse_level("debug"), Some(Level::DEBUG));
        assert_eq!(parse_level("loud"), None);
    }
}
