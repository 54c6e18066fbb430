//! Finding a delegate plugin binary by its `type`, safely.
//!
//! The rule: a `type` is a bare file name. One that is empty, is `.` or `..`, or contains `/`
//! or NUL is refused (code 7) before anything is looked up or run, so no path built from a
//! config can leave the plugin directories. The candidate is `<dir>/<type>` for each plugin
//! directory in order (the node's `binDir` first, then the runtime's `CNI_PATH`), and the first
//! one that is a regular file with an execute bit wins.
//!
//! Symlinks and ownership: the directory entry `<dir>/<type>` may be a symlink (Debian links
//! plugins, operators link `/opt/cni/bin` entries), but what it finally resolves to — every
//! link followed, `..` resolved — must lie inside one of the plugin directories (also
//! resolved), and it must not be changeable by anyone but root or the user plexus runs as:
//! owned by one of them, not writable by group or others. Otherwise the delegate is refused
//! (code 7) naming the entry and what is wrong, and nothing runs. So a link planted in a
//! plugin directory cannot make plexus, which runs as root, execute a file elsewhere on the
//! node (`/tmp`, a container's root file system, a tenant's volume), and a writable plugin
//! binary is not run. A config can only name an entry, never build a path.
//!
//! Meta-plugins: a `type` naming one ([`super::policy::META_PLUGINS`]), or an entry that is
//! the running plexus binary itself under any name, is refused (code 7) before anything runs
//! (see [`super::policy`] for why).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::policy;
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

/// Finds the executable for `plugin_type` in `dirs`, in order, and checks it (see the module
/// docs).
pub fn find(plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, DelegateFailure> {
    check_type(plugin_type)?;
    if policy::is_meta_plugin(plugin_type) {
        return Err(DelegateFailure::Refused {
            reason: policy::meta_plugin_reason(plugin_type),
        });
    }
    let found = dirs
        .iter()
        .map(|d| d.join(plugin_type))
        .find(|p| is_executable_file(p))
        .ok_or_else(|| DelegateFailure::NotFound {
            searched: dirs.iter().map(|d| d.display().to_string()).collect(),
        })?;
    check_trusted(&found, dirs)?;
    if policy::is_running_binary(&found) {
        return Err(DelegateFailure::Refused {
            reason: format!(
                "{} is the plexus binary itself; {}",
                found.display(),
                policy::meta_plugin_reason(plugin_type)
            ),
        });
    }
    Ok(found)
}

/// The containment and ownership rule of the module docs for an entry that exists.
fn check_trusted(entry: &Path, dirs: &[PathBuf]) -> Result<(), DelegateFailure> {
    let untrusted = |reason: String| DelegateFailure::Untrusted {
        path: entry.display().to_string(),
        reason,
    };
    let real =
        std::fs::canonicalize(entry).map_err(|e| untrusted(format!("cannot be resolved: {e}")))?;
    let inside = dirs
        .iter()
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .any(|d| real.starts_with(&d) && real != d);
    if !inside {
        return Err(untrusted(format!(
            "resolves to {}, outside every plugin directory (binDir and CNI_PATH): a link in a \
             plugin directory may only point into one of them",
            real.display()
        )));
    }
    let meta = std::fs::metadata(&real).map_err(|e| untrusted(format!("cannot be read: {e}")))?;
    let euid = crate::perms::euid();
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(untrusted(format!(
            "({}) is owned by uid {}, not by root or uid {euid} that plexus runs as",
            real.display(),
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(untrusted(format!(
            "({}) has mode {mode:04o}: group or others could replace what plexus runs as root \
             (chmod go-w)",
            real.display()
        )));
    }
    Ok(())
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
    fn links_may_only_point_into_a_plugin_directory() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        for d in [b.path(), outside.path()] {
            let p = d.join("real");
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        // Into another plugin directory: fine; the entry is what runs.
        std::os::unix::fs::symlink(b.path().join("real"), a.path().join("ok")).unwrap();
        assert_eq!(find("ok", &dirs).unwrap(), a.path().join("ok"));
        // Relative, through `..`, out of the plugin directories: refused.
        let rel = format!(
            "../{}/real",
            outside.path().file_name().unwrap().to_str().unwrap()
        );
        std::os::unix::fs::symlink(&rel, a.path().join("rel")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("real"), a.path().join("abs")).unwrap();
        for name in ["rel", "abs"] {
            match find(name, &dirs) {
                Err(DelegateFailure::Untrusted { path, reason }) => {
                    assert_eq!(path, a.path().join(name).display().to_string());
                    assert!(
                        reason.contains("outside every plugin directory"),
                        "{reason}"
                    );
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // A link to a plugin directory itself is not a plugin.
        std::os::unix::fs::symlink(b.path(), a.path().join("dirlink")).unwrap();
        assert!(find("dirlink", &dirs).is_err());
    }

    #[test]
    fn plugins_others_could_change_are_refused() {
        let a = tempfile::tempdir().unwrap();
        let p = a.path().join("plug");
        fs::write(&p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
        let dirs = vec![a.path().to_path_buf()];
        match find("plug", &dirs) {
            Err(DelegateFailure::Untrusted { reason, .. }) => {
                assert!(reason.contains("0777"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find("plug", &dirs).unwrap(), p);
        if crate::perms::euid() == 0 {
            std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
            match find("plug", &dirs) {
                Err(DelegateFailure::Untrusted { reason, .. }) => {
                    assert!(reason.contains("owned by uid 65534"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn meta_plugins_and_the_running_binary_are_refused() {
        let a = tempfile::tempdir().unwrap();
        let dirs = vec![a.path().to_path_buf()];
        for name in ["plexus", "multus", "multus-shim"] {
            let p = a.path().join(name);
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
            match find(name, &dirs) {
                Err(DelegateFailure::Refused { reason }) => {
                    assert!(reason.contains("is a meta-plugin"), "{reason}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // The running binary under another name: a hard link beside it (a copy, as an
        // installer would make, is caught by the nested-plexus guard instead).
        let me = std::fs::read_link("/proc/self/exe").unwrap();
        let b = tempfile::tempdir_in(me.parent().unwrap()).unwrap();
        fs::hard_link(&me, b.path().join("innocent")).unwrap();
        match find("innocent", &[b.path().to_path_buf()]) {
            Err(DelegateFailure::Refused { reason }) => {
                assert!(reason.contains("is the plexus binary itself"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
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
