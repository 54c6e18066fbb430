//! Replacing a file on the host so that a reader only ever sees the old or the new version.
//!
//! The runtime may read the CNI config, and exec the plexus binary, at any moment while the
//! installer writes them; a crash, a SIGKILL or a power loss may stop the installer at any
//! point. So every file is replaced in the same steps:
//!
//! 1. create a temp file in the target's own directory (`.<name>.plexus-tmp-<pid>-<n>`:
//!    hidden, with no `.conf`/`.conflist`/`.json` extension, so neither a runtime nor the
//!    installer's own default-config search ever reads it), `O_EXCL | O_NOFOLLOW`;
//! 2. write the content, set the mode with `fchmod` (the umask does not apply), `fsync`;
//! 3. `rename(2)` it over the target: atomic within one file system, which is why the temp
//!    file lives in the same directory;
//! 4. `fsync` the directory, so the new directory entry is durable before the function
//!    returns.
//!
//! A writer stopped before step 3 leaves a temp file and the old target untouched;
//! [`remove_stale_temps`] removes such leftovers when the installer starts. A second
//! installer starting at the very moment the first one writes may remove the first one's
//! temp file; the first one's rename then fails and its next reconcile step writes again.
//!
//! [`same`] lets callers skip a write whose content and mode are already in place, so an
//! unchanged file keeps its inode and a runtime's file watch sees nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Marks the installer's temp files (after the target's name).
const TMP_MARK: &str = ".plexus-tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temp file name prefix of `name`: every temp file of that target starts with it.
fn temp_prefix(name: &str) -> String {
    format!(".{name}{TMP_MARK}")
}

/// Writes `dir/name` atomically and durably with `mode`; `fill` writes the content into the
/// temp file. On any error the temp file is removed and the target is left as it was.
pub fn replace_with(
    dir: &Path,
    name: &str,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let target = dir.join(name);
    let tmp = dir.join(format!(
        "{}{}-{}",
        temp_prefix(name),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        fill(&mut f)?;
        f.flush()?;
        #[cfg(debug_assertions)]
        stall_for_tests(name, &tmp, &f)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &target)
    })();
    if let Err(e) = written {
        if let Err(rm) = fs::remove_file(&tmp)
            && rm.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %tmp.display(), error = %rm, "cannot remove a temp file");
        }
        return Err(e);
    }
    sync_dir(dir)
}

/// [`replace_with`] for content already in memory.
pub fn replace(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    replace_with(dir, name, mode, |f| f.write_all(bytes))
}

/// Debug builds only: when `PLEXUS_DEBUG_STALL_WRITE` names this target, cut the temp file
/// to half its content, say so on stderr and wait forever, so that a test can SIGKILL a writer
/// in the middle of a write, at a known point (`tests/install.rs`). Release builds have no
/// such hook.
#[cfg(debug_assertions)]
fn stall_for_tests(name: &str, tmp: &Path, f: &File) -> io::Result<()> {
    if std::env::var_os("PLEXUS_DEBUG_STALL_WRITE").is_some_and(|v| v == name) {
        f.set_len(f.metadata()?.len() / 2)?;
        tracing::warn!(
            "PLEXUS_DEBUG_STALL_WRITE: stalled writing {}",
            tmp.display()
        );
        loop {
            nix::unistd::pause();
        }
    }
    Ok(())
}

/// Whether `path` is a regular file (not a symlink) with exactly `mode` and content `bytes`.
pub fn same(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    same_as(path, mode, bytes.len() as u64, &mut io::Cursor::new(bytes))
}

/// Whether `path` is a regular file (not a symlink) with exactly `mode`, `len` bytes, and the
/// content `source` yields. Compares in chunks: large files are never read whole.
pub fn same_as(path: &Path, mode: u32, len: u64, source: &mut dyn Read) -> io::Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_file() || meta.permissions().mode() & 0o7777 != mode {
        return Ok(false);
    }
    if meta.len() != len {
        return Ok(false);
    }
    let mut existing = File::open(path)?;
    let mut a = vec![0u8; 64 * 1024];
    let mut b = vec![0u8; 64 * 1024];
    loop {
        let n = read_full(&mut existing, &mut a)?;
        let m = read_full(source, &mut b)?;
        if n != m || a[..n] != b[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the end of the input.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Removes `dir/name` if it exists, durably. Returns whether there was a file.
pub fn remove(dir: &Path, name: &str) -> io::Result<bool> {
    match fs::remove_file(dir.join(name)) {
        Ok(()) => {
            sync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the temp files that earlier writers of `dir/name` left behind; returns them.
pub fn remove_stale_temps(dir: &Path, name: &str) -> io::Result<Vec<PathBuf>> {
    let prefix = temp_prefix(name);
    let mut removed = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed.push(entry.path()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Creates `dir` and its parents if missing (mode 0755 before the umask); an existing
/// directory is left as it is (the host's CNI directories belong to the host).
pub fn ensure_dir_exists(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", dir.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dir),
        Err(e) => Err(e),
    }
}

/// Creates `dir` (and its parents) if missing and gives it exactly `mode`.
pub fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", dir.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)?;
        }
        Err(e) => return Err(e),
    }
    if fs::metadata(dir)?.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replace_writes_mode_and_content_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        replace(d.path(), "f", b"one", 0o600).unwrap();
        assert_eq!(fs::read(d.path().join("f")).unwrap(), b"one");
        assert_eq!(mode(&d.path().join("f")), 0o600);
        replace(d.path(), "f", b"two", 0o755).unwrap();
        assert_eq!(fs::read(d.path().join("f")).unwrap(), b"two");
        assert_eq!(mode(&d.path().join("f")), 0o755);
        assert_eq!(names(d.path()), ["f"]);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_removes_the_temp() {
        let d = tempfile::tempdir().unwrap();
        replace(d.path(), "f", b"old", 0o644).unwrap();
        let e = replace_with(d.path(), "f", 0o644, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("writer died"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "writer died");
        assert_eq!(fs::read(d.path().join("f")).unwrap(), b"old");
        assert_eq!(names(d.path()), ["f"]);
    }

    #[test]
    fn same_compares_kind_mode_length_and_bytes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        assert!(!same(&p, b"x", 0o644).unwrap());
        replace(d.path(), "f", b"abc", 0o644).unwrap();
        assert!(same(&p, b"abc", 0o644).unwrap());
        assert!(!same(&p, b"abd", 0o644).unwrap());
        assert!(!same(&p, b"abcd", 0o644).unwrap());
        assert!(!same(&p, b"abc", 0o600).unwrap());
        std::os::unix::fs::symlink(&p, d.path().join("l")).unwrap();
        assert!(!same(&d.path().join("l"), b"abc", 0o644).unwrap());
        // Larger than one chunk, differing only at the end.
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        replace(d.path(), "big", &big, 0o755).unwrap();
        assert!(same(&d.path().join("big"), &big, 0o755).unwrap());
        let mut other = big.clone();
        *other.last_mut().unwrap() ^= 1;
        assert!(!same(&d.path().join("big"), &other, 0o755).unwrap());
    }

    #[test]
    fn stale_temps_of_that_target_only_are_removed() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            ".f.plexus-tmp-1-0",
            ".f.plexus-tmp-x",
            ".g.plexus-tmp-1-0",
            "f",
        ] {
            fs::write(d.path().join(n), "x").unwrap();
        }
        let removed = remove_stale_temps(d.path(), "f").unwrap();
        assert_eq!(removed.len(), 2);
        assert_eq!(names(d.path()), [".g.plexus-tmp-1-0", "f"]);
        assert!(
            remove_stale_temps(&d.path().join("missing"), "f")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn ensure_dir_creates_and_tightens() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("a/b");
        ensure_dir(&sub, 0o700).unwrap();
        assert_eq!(mode(&sub), 0o700);
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_dir(&sub, 0o700).unwrap();
        assert_eq!(mode(&sub), 0o700);
        fs::write(d.path().join("file"), "").unwrap();
        assert!(ensure_dir(&d.path().join("file"), 0o700).is_err());
    }

    #[test]
    fn remove_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("f"), "x").unwrap();
        assert!(remove(d.path(), "f").unwrap());
        assert!(!remove(d.path(), "f").unwrap());
    }
}
