//! Who may read and change the files plexus trusts: its journals and its API credentials.
//!
//! plexus runs as root on every node. A file it reads decides what it runs (a journal lists
//! the delegate configs DEL runs) or whom it talks to and as whom (a kubeconfig names the API
//! server, its CA and a token). So such files must be changeable only by the user plexus runs
//! as (or root), and secrets must be readable by nobody else. The rules, applied every time a
//! file is read:
//!
//! | found | journal files (`cniDir`) | kubeconfig and the `tokenFile` it names |
//! |---|---|---|
//! | owned by another user than plexus's or root | refused | refused |
//! | writable by group or others | mode set to 0600 (the directory is 0700, see [`crate::state`]) | refused: someone else may have pointed plexus at another server |
//! | readable by group or others | mode set to 0600, with a warning | mode set to 0600, with a warning |
//! | its directory owned by another user, or writable by group or others (without the sticky bit) | (the state directory is checked and set to 0700 by [`crate::state::StateDir::open`]) | refused |
//!
//! plexus never changes the mode of a kubeconfig's *directory*: it is often shared with the
//! runtime's own configs (`/etc/cni/net.d`), and `plexus install` creates its own `plexus.d`
//! with mode 0700. A mode that cannot be fixed (a read-only file system, a file of root's when
//! plexus is not root) is logged and the file is used: what it exposes was exposed already.
//! Refusals are I/O errors (code 5) naming the file, its owner or mode, and the fix.

use std::fs::{File, Metadata, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::cni::Error;

/// Group and other write bits.
const WRITE_OTHERS: u32 = 0o022;
/// Every group and other bit.
const ANY_OTHERS: u32 = 0o077;
/// The sticky bit of a directory.
const STICKY: u32 = 0o1000;

/// What to do with a file writable by group or others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writable {
    /// Refuse it (its content may have been changed by someone else).
    Refuse,
    /// Set its mode to 0600 (its directory already keeps others out).
    Fix,
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

fn trusted_owner(uid: u32) -> bool {
    uid == euid() || uid == 0
}

/// What the rules of the module docs say about a file, decided from its metadata alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Fine,
    /// Readable by group or others (mode `mode`): plexus sets it to 0600 with a warning.
    Tighten { mode: u32 },
    /// Refused; the text says why and how to fix it.
    Refuse(String),
}

/// The rules of the module docs for a file at `path` with metadata `meta`, without changing
/// anything ([`private_file`] acts on the answer; `plexus doctor` reports it).
pub fn file_verdict(meta: &Metadata, path: &Path, writable: Writable) -> Verdict {
    if !trusted_owner(meta.uid()) {
        return Verdict::Refuse(format!(
            "it is owned by uid {}, not by uid {} that plexus runs as (or root), so someone \
             else could change it: refusing to use it. Fix: `chown {} {p} && chmod 0600 {p}`",
            meta.uid(),
            euid(),
            euid(),
            p = path.display()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & WRITE_OTHERS != 0 && writable == Writable::Refuse {
        return Verdict::Refuse(format!(
            "its mode {mode:04o} lets group or others change it: refusing to use it. Fix: \
             `chmod 0600 {}`",
            path.display()
        ));
    }
    if mode & ANY_OTHERS != 0 {
        return Verdict::Tighten { mode };
    }
    Verdict::Fine
}

/// Applies the rules of the module docs to an open file `f` at `path` (`what` names it in
/// messages, e.g. "the kubeconfig").
pub fn private_file(f: &File, path: &Path, what: &str, writable: Writable) -> Result<(), Error> {
    let ctx = || format!("checking {what} {}", path.display());
    let meta = f.metadata().map_err(|e| Error::io(ctx(), e))?;
    match file_verdict(&meta, path, writable) {
        Verdict::Fine => {}
        Verdict::Refuse(why) => return Err(Error::io(ctx(), why)),
        Verdict::Tighten { mode } => match f.set_permissions(Permissions::from_mode(0o600)) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:04o}"),
                "{what} was accessible to group or others; its mode is now 0600"
            ),
            Err(e) => tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:04o}"),
                error = %e,
                "{what} is accessible to group or others and its mode cannot be set to 0600"
            ),
        },
    }
    Ok(())
}

/// Refuses a directory holding a secret that someone else could change: owned by another
/// user than plexus's or root, or writable by group or others without the sticky bit.
pub fn trusted_dir(dir: &Path, what: &str) -> Result<(), Error> {
    let ctx = || format!("checking the directory {} of {what}", dir.display());
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(ctx(), e))?;
    dir_verdict(&meta, dir, what).map_err(|why| Error::io(ctx(), why))
}

/// [`trusted_dir`]'s rule for a directory with metadata `meta`; `Err` says why it is refused.
pub fn dir_verdict(meta: &Metadata, dir: &Path, what: &str) -> Result<(), String> {
    if !trusted_owner(meta.uid()) {
        return Err(format!(
            "it is owned by uid {}, not by uid {} that plexus runs as (or root), so someone \
             else could replace {what}: refusing to use it",
            meta.uid(),
            euid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & WRITE_OTHERS != 0 && mode & STICKY == 0 {
        return Err(format!(
            "its mode {mode:04o} lets group or others replace {what}: refusing to use it. \
             Fix: `chmod go-w {}` (plexus install creates its directory with mode 0700)",
            dir.display()
        ));
    }
    Ok(())
}

/// Checks a secret file plexus reads by path (the kubeconfig, a token file): its directory
/// with [`trusted_dir`], then the file with [`private_file`] (writable by others: refused).
/// Symlinks are followed (the checks apply to the file and directory they lead to). A file
/// that cannot be opened passes: reading it fails next, with the reader's own message.
pub fn secret_file(path: &Path, what: &str) -> Result<(), Error> {
    let Ok(real) = std::fs::canonicalize(path) else {
        return Ok(());
    };
    if let Some(dir) = real.parent() {
        trusted_dir(dir, what)?;
    }
    let Ok(f) = File::open(&real) else {
        return Ok(());
    };
    private_file(&f, path, what, Writable::Refuse)
}

/// [`secret_file`]'s checks without changing anything: `Ok(None)` when the file passes,
/// `Ok(Some(mode))` when it is readable by group or others (which [`secret_file`] would set to
/// 0600), `Err` when it is refused (the same error). What `plexus doctor` and other read-only
/// readers use.
pub fn inspect_secret_file(path: &Path, what: &str) -> Result<Option<u32>, Error> {
    let Ok(real) = std::fs::canonicalize(path) else {
        return Ok(None);
    };
    if let Some(dir) = real.parent() {
        trusted_dir(dir, what)?;
    }
    let Ok(meta) = std::fs::metadata(&real) else {
        return Ok(None);
    };
    match file_verdict(&meta, path, Writable::Refuse) {
        Verdict::Fine => Ok(None),
        Verdict::Tighten { mode } => Ok(Some(mode)),
        Verdict::Refuse(why) => Err(Error::io(
            format!("checking {what} {}", path.display()),
            why,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o7777
    }

    fn file_with_mode(dir: &Path, name: &str, m: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        fs::write(&p, "secret").unwrap();
        fs::set_permissions(&p, Permissions::from_mode(m)).unwrap();
        p
    }

    #[test]
    fn readable_by_others_is_fixed_writable_is_refused() {
        let t = tempfile::tempdir().unwrap();
        fs::set_permissions(t.path(), Permissions::from_mode(0o700)).unwrap();
        let p = file_with_mode(t.path(), "kc", 0o644);
        secret_file(&p, "the kubeconfig").unwrap();
        assert_eq!(mode(&p), 0o600);
        let p = file_with_mode(t.path(), "kc2", 0o662);
        let e = secret_file(&p, "the kubeconfig").unwrap_err();
        assert_eq!(e.code().0, 5);
        assert!(
            e.msg().contains("0662") && e.msg().contains("chmod 0600"),
            "{e}"
        );
        assert_eq!(mode(&p), 0o662, "a refused file is left as it is");
        // A journal-like file writable by others is fixed instead.
        let f = File::open(&p).unwrap();
        private_file(&f, &p, "the journal", Writable::Fix).unwrap();
        assert_eq!(mode(&p), 0o600);
    }

    #[test]
    fn directory_writable_by_others_is_refused_sticky_is_not() {
        let t = tempfile::tempdir().unwrap();
        let p = file_with_mode(t.path(), "kc", 0o600);
        fs::set_permissions(t.path(), Permissions::from_mode(0o777)).unwrap();
        let e = secret_file(&p, "the kubeconfig").unwrap_err();
        assert!(
            e.msg().contains("0777") && e.msg().contains("directory"),
            "{e}"
        );
        fs::set_permissions(t.path(), Permissions::from_mode(0o1777)).unwrap();
        secret_file(&p, "the kubeconfig").unwrap();
        fs::set_permissions(t.path(), Permissions::from_mode(0o755)).unwrap();
        secret_file(&p, "the kubeconfig").unwrap();
        assert_eq!(
            mode(t.path()),
            0o755,
            "plexus never changes a kubeconfig's directory"
        );
    }

    #[test]
    fn files_of_another_user_are_refused() {
        if euid() != 0 {
            eprintln!("SKIPPED: needs root (chown to 65534)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let p = file_with_mode(t.path(), "kc", 0o600);
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
        let e = secret_file(&p, "the kubeconfig").unwrap_err();
        assert!(e.msg().contains("owned by uid 65534"), "{e}");
        let f = File::open(&p).unwrap();
        let e = private_file(&f, &p, "the journal", Writable::Fix).unwrap_err();
        assert!(e.msg().contains("owned by uid 65534"), "{e}");
        std::os::unix::fs::chown(&p, Some(0), Some(0)).unwrap();
        std::os::unix::fs::chown(t.path(), Some(65534), Some(65534)).unwrap();
        let e = secret_file(&p, "the kubeconfig").unwrap_err();
        assert!(
            e.msg().contains("directory") && e.msg().contains("65534"),
            "{e}"
        );
    }

    #[test]
    fn inspecting_says_what_secret_file_would_do_and_changes_nothing() {
        let t = tempfile::tempdir().unwrap();
        fs::set_permissions(t.path(), Permissions::from_mode(0o700)).unwrap();
        let p = file_with_mode(t.path(), "kc", 0o600);
        assert_eq!(inspect_secret_file(&p, "the kubeconfig").unwrap(), None);
        let p = file_with_mode(t.path(), "kc2", 0o644);
        assert_eq!(
            inspect_secret_file(&p, "the kubeconfig").unwrap(),
            Some(0o644)
        );
        assert_eq!(mode(&p), 0o644, "inspecting changes no mode");
        let p = file_with_mode(t.path(), "kc3", 0o666);
        let e = inspect_secret_file(&p, "the kubeconfig").unwrap_err();
        assert_eq!(e, secret_file(&p, "the kubeconfig").unwrap_err());
        fs::set_permissions(t.path(), Permissions::from_mode(0o777)).unwrap();
        let p = t.path().join("kc");
        let e = inspect_secret_file(&p, "the kubeconfig").unwrap_err();
        assert_eq!(e, secret_file(&p, "the kubeconfig").unwrap_err());
        assert!(
            inspect_secret_file(Path::new("/nonexistent/kc"), "x")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_missing_file_is_left_to_its_reader() {
        secret_file(Path::new("/nonexistent/kc"), "the kubeconfig").unwrap();
    }
}
