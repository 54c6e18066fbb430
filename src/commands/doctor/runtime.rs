//! Check 1, `runtime config`: the config the runtime loads first from `--conf-dir` (the
//! byte-order first `*.conf`, `*.conflist` or `*.json` regular file, as libcni sorts them) is
//! plexus's node config, and the runtime's `CNI_PATH` (`--cni-path`) holds a `plexus`
//! executable. (Check 2, `node config`, is [`super::run`]'s: it reads the node config.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Findings, join_dirs};
use crate::commands::Common;
use crate::install::nodeconf;

/// Check 1; returns where the runtime finds plexus.
pub(super) fn runtime_config(
    f: &mut Findings,
    common: &Common,
    node_path: Option<&Path>,
) -> Option<PathBuf> {
    const CHECK: &str = "runtime config";
    let dir = &common.conf_dir;
    match nodeconf::config_files(dir) {
        Err(e) => f.fail(
            CHECK,
            format!("cannot read {}: {e}", dir.display()),
            format!(
                "give the runtime's CNI config directory with --conf-dir (containerd and CRI-O \
                 use {})",
                crate::commands::DEFAULT_CONF_DIR
            ),
        ),
        Ok(names) if names.is_empty() => f.fail(
            CHECK,
            format!(
                "{} holds no CNI config: the runtime has no network for pods",
                dir.display()
            ),
            "install plexus's config (plexus install writes 00-plexus.conflist there)",
        ),
        Ok(names) => {
            let first = dir.join(&names[0]);
            let same = |a: &Path, b: &Path| {
                fs::canonicalize(a)
                    .ok()
                    .is_some_and(|a| fs::canonicalize(b).ok() == Some(a))
            };
            let doc: Option<Value> = fs::read(&first)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let names_plexus = doc
                .as_ref()
                .is_some_and(|d| first_type(d) == Some("plexus"));
            if node_path.is_some_and(|p| same(p, &first)) {
                f.ok(
                    CHECK,
                    format!(
                        "the runtime loads {} first: plexus's node config",
                        first.display()
                    ),
                );
            } else if names_plexus {
                match crate::commands::read_node_config(&first) {
                    Err(e) => f.fail(
                        CHECK,
                        format!(
                            "the runtime loads {} first, a plexus config that does not parse: {e}",
                            first.display()
                        ),
                        format!("fix or remove {}", first.display()),
                    ),
                    Ok(_) => f.warn(
                        CHECK,
                        format!(
                            "the runtime loads {} first, a plexus config, but not the one checked \
                             ({})",
                            first.display(),
                            node_path.map_or_else(|| "none".into(), |p| p.display().to_string())
                        ),
                        Some(format!("check that one: --conf {}", first.display())),
                    ),
                }
            } else {
                let what = match &doc {
                    None => "not valid JSON, which the runtime cannot load".to_owned(),
                    Some(d) => format!(
                        "network {:?}, plugin {:?}",
                        d["name"].as_str().unwrap_or(""),
                        first_type(d).unwrap_or("")
                    ),
                };
                let ours = node_path.and_then(Path::file_name).map_or_else(
                    || "00-plexus.conflist".to_owned(),
                    |n| n.to_string_lossy().into_owned(),
                );
                f.fail(
                    CHECK,
                    format!(
                        "the runtime loads {} first ({what}), not plexus's config: pods never \
                         reach plexus",
                        first.display()
                    ),
                    format!(
                        "rename or remove {}, or give plexus's config a name that sorts before \
                         {:?} (plexus's is {ours:?})",
                        first.display(),
                        names[0]
                    ),
                );
            }
        }
    }
    let found = common.cni_path.iter().map(|d| d.join("plexus")).find(|p| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    });
    match &found {
        Some(p) => f.ok(
            CHECK,
            format!("the runtime's CNI_PATH has plexus at {}", p.display()),
        ),
        None => f.fail(
            CHECK,
            format!(
                "no plexus executable in the runtime's CNI_PATH ({}): the runtime cannot run it",
                join_dirs(&common.cni_path)
            ),
            "install it there (plexus install copies it to /opt/cni/bin), or give the \
             runtime's CNI_PATH with --cni-path",
        ),
    }
    found
}

/// The `type` of a single config, or of a conflist's first plugin.
fn first_type(doc: &Value) -> Option<&str> {
    match doc.get("plugins").and_then(Value::as_array) {
        Some(plugins) => plugins.first()?.get("type")?.as_str(),
        None => doc.get("type")?.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::super::tests::statuses;
    use super::*;

    #[test]
    fn the_first_config_decides_and_plexus_must_be_on_cni_path() {
        let d = tempfile::tempdir().unwrap();
        let ours = d.path().join("00-plexus.conflist");
        fs::write(
            &ours,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"plexus"}]}"#,
        )
        .unwrap();
        let common = Common {
            conf: Some(ours.clone()),
            conf_dir: d.path().to_owned(),
            cni_path: vec![d.path().to_owned()],
            format: crate::commands::Format::Text,
            rest: vec![],
        };
        let mut f = Findings::default();
        assert_eq!(runtime_config(&mut f, &common, Some(&ours)), None);
        assert_eq!(
            statuses(&f),
            [
                ("runtime config", Status::Ok),
                ("runtime config", Status::Fail)
            ]
        );
        let bin = d.path().join("plexus");
        fs::write(&bin, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            d.path().join("00-aaa.conflist"),
            r#"{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel"}]}"#,
        )
        .unwrap();
        let mut f = Findings::default();
        assert_eq!(runtime_config(&mut f, &common, Some(&ours)), Some(bin));
        assert_eq!(
            statuses(&f),
            [
                ("runtime config", Status::Fail),
                ("runtime config", Status::Ok)
            ]
        );
        assert!(
            f.0[0]
                .detail
                .contains("00-aaa.conflist first (network \"cbr0\", plugin \"flannel\")"),
            "{:?}",
            f.0[0]
        );
    }
}
