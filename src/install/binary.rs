//! Installing the plexus binary into the host's CNI plugin directory.
//!
//! The source is the running executable (`/proc/self/exe`, which stays readable even if the
//! image's file is replaced) unless `--binary` names another file; the target is
//! `<cni-bin-dir>/plexus`, mode 0755. The copy goes through [`super::atomic`]: a runtime that
//! execs `plexus` during the copy runs either the old binary or the new one, never a
//! half-written file, and never gets "text file busy" (the rename gives the path a new inode;
//! running processes keep the old one). When the target already has the same bytes and mode,
//! nothing is written.

use std::fs::File;
use std::io;
use std::path::Path;

use super::atomic;

/// The file name of the binary in the CNI plugin directory: the node config's `type`.
pub const NAME: &str = "plexus";
/// Mode of the installed binary.
pub const MODE: u32 = 0o755;

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The target already had the same content and mode.
    Unchanged,
    /// The binary was copied.
    Copied,
}

/// Copies `source` to `bin_dir/plexus` unless it is already there.
pub fn install(source: &Path, bin_dir: &Path) -> io::Result<Outcome> {
    atomic::ensure_dir_exists(bin_dir)?;
    let len = File::open(source)?.metadata()?.len();
    let target = bin_dir.join(NAME);
    if atomic::same_as(&target, MODE, len, &mut File::open(source)?)? {
        return Ok(Outcome::Unchanged);
    }
    atomic::replace_with(bin_dir, NAME, MODE, |out| {
        let mut src = File::open(source)?;
        let copied = io::copy(&mut src, out)?;
        if copied != len {
            return Err(io::Error::other(format!(
                "{} changed while being copied ({len} bytes expected, {copied} copied)",
                source.display()
            )));
        }
        Ok(())
    })?;
    Ok(Outcome::Copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copies_once_then_skips_and_repairs_mode() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::write(&src, b"#!/bin/sh\nexit 0\n").unwrap();
        let bin = d.path().join("opt/cni/bin");
        assert_eq!(install(&src, &bin).unwrap(), Outcome::Copied);
        let target = bin.join("plexus");
        assert_eq!(fs::read(&target).unwrap(), fs::read(&src).unwrap());
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        assert_eq!(install(&src, &bin).unwrap(), Outcome::Unchanged);
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(install(&src, &bin).unwrap(), Outcome::Copied);
        fs::write(&src, b"#!/bin/sh\nexit 1\n").unwrap();
        assert_eq!(install(&src, &bin).unwrap(), Outcome::Copied);
        assert_eq!(fs::read(&target).unwrap(), b"#!/bin/sh\nexit 1\n");
    }

    #[test]
    fn a_missing_source_is_an_error_and_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let e = install(&d.path().join("nope"), d.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
