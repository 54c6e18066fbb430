//! Finding a delegate plugin binary by its `type`, safely.
//!
//! The rule: a `type` is a bare file name. One that is empty, is `.` or `..`, or contains `/`
//! or NUL is refused (code 7) before anything is looked up or run, so no path built from a
//! config can leave the plugin directories. The candidate is `<dir>/<type>` for each plugin
//! directory in order (the node's `binDir` first, then the runtime's `CNI_PATH`), and the first
//! one that is a regular file with an execute bit wins.
//!
//! Symlinks: the directory entry `<dir>/<type>` may itself be a symlink and is followed. The
//! plugin directories are root-owned and written by the node's administrator or package
//! manager (Debian links plugins, operators link `/opt/cni/bin` entries), so what they link to
//! is trusted just as a file placed there would be; a config can only name an entry, never
//! build a path.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cni::DelegateFailure;

/// Checks that `plugin_type` is a bare file name (see the module docs).
pub fn check_type(plugin_type: &str) -> Result<(), DelegateFailure> {
    if plugin_type.is_empty()
        || plugin_type == "."
        || plugin_type == ".."
        || plugin_type.contains('/')
        || plugin_type.contains('\0')
    {
        return Err(DelegateFailure::UnsafeType);
    }
    Ok(())
}

/// Finds the executable for `plugin_type` in `dirs`, in order.
pub fn find(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, DelegateFailure> {
    check_type(plugin_type)?;
    dirs.iter()
        .map(|d| d.join(plugin_type))
        .find(|p| is_executable_file(p))
        .ok_or_else(|| DelegateFailure::NotFound {
            searched: dirs.iter().map(|d| d.display().to_string()).collect(),
        })
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn refuses_anything_but_a_bare_name() {
        for bad in ["", ".", "..", "../../bin/sh", "/bin/sh", "a/b", "a\0b"] {
            assert_eq!(check_type(bad), Err(DelegateFailure::UnsafeType), "{bad:?}");
            // Even when the directory list would make the path exist.
            assert_eq!(
                find(bad, &[PathBuf::from("/usr")]),
                Err(DelegateFailure::UnsafeType)
            );
        }
        assert!(check_type("bridge").is_ok());
        assert!(check_type("..bridge").is_ok());
    }

    #[test]
    fn first_executable_in_order_wins_and_non_executables_are_skipped() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let pa = a.path().join("plug");
        fs::write(&pa, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&pa, fs::Permissions::from_mode(0o644)).unwrap();
        let pb = b.path().join("plug");
        fs::write(&pb, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&pb, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(a.path().join("dir")).unwrap();
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find("plug", &dirs).unwrap(), pb);
        fs::set_permissions(&pa, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find("plug", &dirs).unwrap(), pa);
        match find("dir", &dirs) {
            Err(DelegateFailure::NotFound { searched }) => assert_eq!(searched.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
