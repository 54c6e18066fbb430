//! The operator's subcommands: `plexus explain`, `plexus doctor`, `plexus ls`.
//!
//! Not CNI commands: the binary's `main` dispatches here when `argv[1]` names one (a runtime
//! never passes arguments to a CNI plugin, so the CNI behaviour is untouched). All three are
//! read-only: they write no file, no journal, no annotation and no Event, and run no plugin.
//!
//! - [`explain`]: the plan ADD would run for a pod, or every reason ADD would refuse it;
//! - [`doctor`]: whether the node is set up right, and what to fix;
//! - [`ls`]: the attachments the node's journal holds.
//!
//! Common to all three ([`Common`]): `--conf FILE` names the node config (by default the first
//! config in `/etc/cni/net.d` that names plexus, see [`find_node_config`]); `-o json` prints
//! one JSON document instead of text; the exit status is 0 when all is well, 1 with the
//! problems listed, 2 for a usage error.

pub mod doctor;
pub mod explain;
pub mod journals;
pub mod ls;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::install::nodeconf;
use crate::node::NodeConfig;

/// Where runtimes read CNI configs from, and where the node config is looked for by default.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";

/// The runtime's usual `CNI_PATH`, searched after `binDir` when no `--cni-path` is given.
pub const DEFAULT_CNI_PATH: &str = "/opt/cni/bin";

/// Output format (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text for people (the default).
    Text,
    /// One JSON document (`-o json`).
    Json,
}

/// The options every subcommand takes, and the arguments left for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// `--conf FILE`.
    pub conf: Option<PathBuf>,
    /// `--conf-dir DIR`: where runtimes read CNI configs ([`DEFAULT_CONF_DIR`]).
    pub conf_dir: PathBuf,
    /// `--cni-path A:B`: the runtime's `CNI_PATH` ([`DEFAULT_CNI_PATH`]).
    pub cni_path: Vec<PathBuf>,
    /// `-o json` / `-o text`.
    pub format: Format,
    /// Flags and positional arguments the common parser did not take, in order.
    pub rest: Vec<String>,
}

/// A usage error (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

impl Common {
    /// Takes the common options out of `args`.
    pub fn parse(args: &[String]) -> Result<Common, Usage> {
        let mut c = Common {
            conf: None,
            conf_dir: PathBuf::from(DEFAULT_CONF_DIR),
            cni_path: vec![PathBuf::from(DEFAULT_CNI_PATH)],
            format: Format::Text,
            rest: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = split_flag(arg);
            let mut value = |name: &str| flag_value(inline, &mut it, name);
            match flag {
                "--conf" => c.conf = Some(PathBuf::from(value("--conf")?)),
                "--conf-dir" => c.conf_dir = PathBuf::from(value("--conf-dir")?),
                "--cni-path" => {
                    c.cni_path = value("--cni-path")?
                        .split(':')
                        .filter(|d| !d.is_empty())
                        .map(PathBuf::from)
                        .collect();
                }
                "-o" | "--output" => {
                    c.format = match value("-o")?.as_str() {
                        "json" => Format::Json,
                        "text" | "wide" => Format::Text,
                        other => {
                            return Err(Usage(format!("-o must be json or text, not {other:?}")));
                        }
                    }
                }
                _ => c.rest.push(arg.clone()),
            }
        }
        Ok(c)
    }

    /// The node config: `--conf`, else [`find_node_config`] in `--conf-dir`.
    pub fn node_config(&self) -> Result<(PathBuf, NodeConfig), String> {
        let path = match &self.conf {
            Some(p) => p.clone(),
            None => find_node_config(&self.conf_dir)?,
        };
        let node = read_node_config(&path)?;
        Ok((path, node))
    }

    /// binDir, then `--cni-path` (without repeating binDir): where ADD would look for plugins.
    pub fn plugin_dirs(&self, node: &NodeConfig) -> Vec<PathBuf> {
        let mut dirs = vec![node.bin_dir.clone()];
        dirs.extend(
            self.cni_path
                .iter()
                .filter(|p| **p != node.bin_dir)
                .cloned(),
        );
        dirs
    }
}

/// `--flag=value` as (`--flag`, `Some("value")`); anything else as (`arg`, `None`).
pub(crate) fn split_flag(arg: &str) -> (&str, Option<&str>) {
    match arg.split_once('=') {
        Some((f, v)) if f.starts_with('-') => (f, Some(v)),
        _ => (arg, None),
    }
}

/// The value of flag `name`: the one after `=`, else the next argument; never empty.
pub(crate) fn flag_value(
    inline: Option<&str>,
    rest: &mut std::slice::Iter<'_, String>,
    name: &str,
) -> Result<String, Usage> {
    inline
        .map(str::to_owned)
        .or_else(|| rest.next().cloned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Usage(format!("{name} needs a value")))
}

/// The first config in `dir`, in the order runtimes load them (byte order of the names of
/// `*.conf`, `*.conflist` and `*.json` files), that names plexus: a single config of type
/// `plexus`, or a conflist whose first plugin is.
pub fn find_node_config(dir: &Path) -> Result<PathBuf, String> {
    let names =
        nodeconf::config_files(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for name in &names {
        let path = dir.join(name);
        if read_node_config(&path).is_ok() {
            return Ok(path);
        }
    }
    Err(format!(
        "no plexus config in {} (looked at {}): give it with --conf FILE",
        dir.display(),
        if names.is_empty() {
            "no config file".to_owned()
        } else {
            names.join(", ")
        }
    ))
}

/// Reads a node config file as a runtime would hand it to plexus: a single config of type
/// `plexus` as it is; a conflist's first plugin if its type is `plexus`, with the list's
/// `name` and `cniVersion` injected (as libcni does).
pub fn read_node_config(path: &Path) -> Result<NodeConfig, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let stdin = plexus_entry(&doc).ok_or_else(|| {
        format!(
            "{} is not a plexus config (no \"type\": \"plexus\", alone or as the first plugin of \
             a conflist)",
            path.display()
        )
    })?;
    NodeConfig::from_map(stdin).map_err(|e| format!("{}: {}", path.display(), e.msg()))
}

/// What a runtime gives plexus on stdin for this config document, if it names plexus.
fn plexus_entry(doc: &Value) -> Option<Map<String, Value>> {
    let obj = doc.as_object()?;
    if let Some(plugins) = obj.get("plugins").and_then(Value::as_array) {
        let mut first = plugins.first()?.as_object()?.clone();
        if first.get("type").and_then(Value::as_str) != Some("plexus") {
            return None;
        }
        for key in ["name", "cniVersion"] {
            if let Some(v) = obj.get(key) {
                first.insert(key.into(), v.clone());
            }
        }
        return Some(first);
    }
    (obj.get("type").and_then(Value::as_str) == Some("plexus")).then(|| obj.clone())
}

/// Runs subcommand `name` (`explain`, `doctor` or `ls`) with the arguments after it; returns
/// the exit status.
pub fn main(name: &str, args: &[OsString]) -> u8 {
    let args: Result<Vec<String>, _> = args.iter().map(|a| a.clone().into_string()).collect();
    let Ok(args) = args else {
        eprintln!("plexus {name}: arguments must be UTF-8");
        return 2;
    };
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", usage(name));
        return 0;
    }
    crate::log::init(Some("error"), None, true);
    let common = match Common::parse(&args) {
        Ok(c) => c,
        Err(Usage(msg)) => {
            eprintln!("plexus {name}: {msg} (see plexus {name} --help)");
            return 2;
        }
    };
    let outcome = match name {
        "explain" => explain::run(&common),
        "doctor" => doctor::run(&common),
        "ls" => ls::run(&common),
        _ => Err(Usage(format!("unknown subcommand {name}"))),
    };
    match outcome {
        Ok(report) => {
            print!("{}", report.render(common.format));
            u8::from(!report.problems.is_empty())
        }
        Err(Usage(msg)) => {
            eprintln!("plexus {name}: {msg} (see plexus {name} --help)");
            2
        }
    }
}

/// Whether `argv[1]` names a subcommand of this module.
pub fn is_subcommand(arg: &str) -> bool {
    matches!(arg, "explain" | "doctor" | "ls")
}

/// What a subcommand found: its document (for `-o json`), its text, and the problems (each
/// one line an operator can act on; none means exit status 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The JSON document; `problems` is added to it as a list of strings.
    pub doc: Value,
    /// The text output, problems excluded (they are appended by [`Report::render`]).
    pub text: String,
    pub problems: Vec<String>,
}

impl Report {
    /// The output in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let mut doc = self.doc.clone();
                if let Some(obj) = doc.as_object_mut() {
                    obj.insert(
                        "problems".into(),
                        Value::Array(self.problems.iter().cloned().map(Value::String).collect()),
                    );
                }
                let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
                s.push('\n');
                s
            }
            Format::Text => {
                let mut s = self.text.clone();
                if !self.problems.is_empty() {
                    if !s.is_empty() && !s.ends_with("\n\n") {
                        s.push('\n');
                    }
                    s.push_str(&format!("{} problem(s):\n", self.problems.len()));
                    for p in &self.problems {
                        s.push_str(&format!("  - {p}\n"));
                    }
                }
                s
            }
        }
    }
}

fn usage(name: &str) -> String {
    let what = match name {
        "explain" => {
            "plexus explain NAMESPACE/POD [--config] [--ifname NAME]\n\n\
             Reads the pod and its NADs as ADD would and prints the plan ADD would run: each\n\
             attachment's network, interface, delegate plugins (and where they would be run\n\
             from), runtime values, default route and device. Everything ADD would refuse is\n\
             listed, all at once, with ADD's own message. Changes nothing.\n\n\
             \x20 --config        print each delegate's config as ADD would give it\n\
             \x20 --ifname NAME   the runtime's CNI_IFNAME [eth0]\n"
        }
        "doctor" => {
            "plexus doctor\n\n\
             Checks the node and says what to fix: the runtime's first CNI config, the node\n\
             config, the plugins every network needs, the kubeconfig and token, the API and\n\
             plexus's permissions, the readiness indicator, the journal directory and the\n\
             kubelet's PodResources socket. Changes nothing.\n"
        }
        _ => {
            "plexus ls\n\n\
             Lists the attachments the node's journal holds: pod, container ID, interface,\n\
             network, IPs, age, and anything in flight or rolled back. Changes nothing.\n"
        }
    };
    format!(
        "usage: {what}\nCommon options:\n\
         \x20 --conf FILE      the node config [the first plexus config in {DEFAULT_CONF_DIR}]\n\
         \x20 --conf-dir DIR   where the runtime reads CNI configs [{DEFAULT_CONF_DIR}]\n\
         \x20 --cni-path A:B   the runtime's CNI_PATH [{DEFAULT_CNI_PATH}]\n\
         \x20 -o json|text     output format [text]\n\
         Exit status: 0 all is well, 1 problems (listed), 2 usage error.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn common_options_both_forms_and_the_rest_in_order() {
        let c = Common::parse(&args(&[
            "default/web",
            "--conf=/c.conf",
            "-o",
            "json",
            "--cni-path",
            "/a:/b",
            "--config",
        ]))
        .unwrap();
        assert_eq!(c.conf.as_deref(), Some(Path::new("/c.conf")));
        assert_eq!(c.format, Format::Json);
        assert_eq!(c.cni_path, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(c.rest, ["default/web", "--config"]);
        assert_eq!(
            Common::parse(&args(&["-o", "yaml"])).unwrap_err(),
            Usage("-o must be json or text, not \"yaml\"".into())
        );
        assert_eq!(
            Common::parse(&args(&["--conf"])).unwrap_err(),
            Usage("--conf needs a value".into())
        );
    }

    #[test]
    fn the_node_config_is_found_as_the_runtime_would_read_it() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("10-flannel.conflist"),
            r#"{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel"}]}"#,
        )
        .unwrap();
        let e = find_node_config(d.path()).unwrap_err();
        assert!(e.contains("looked at 10-flannel.conflist"), "{e}");
        std::fs::write(
            d.path().join("00-plexus.conflist"),
            r#"{"cniVersion":"0.3.1","name":"plexus-cni-network",
                "plugins":[{"type":"plexus","cniDir":"/s","clusterNetwork":"/x"}]}"#,
        )
        .unwrap();
        let c = Common::parse(&args(&["--conf-dir", d.path().to_str().unwrap()])).unwrap();
        let (path, node) = c.node_config().unwrap();
        assert_eq!(path, d.path().join("00-plexus.conflist"));
        assert_eq!(node.name, "plexus-cni-network");
        assert_eq!(node.cni_dir, Path::new("/s"));
        let e = read_node_config(&d.path().join("10-flannel.conflist")).unwrap_err();
        assert!(e.contains("is not a plexus config"), "{e}");
    }

    #[test]
    fn problems_decide_the_text_and_the_json() {
        let r = Report {
            doc: serde_json::json!({"a": 1}),
            text: "plan\n".into(),
            problems: vec!["one".into(), "two".into()],
        };
        assert_eq!(
            r.render(Format::Text),
            "plan\n\n2 problem(s):\n  - one\n  - two\n"
        );
        let j: Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
        assert_eq!(j, serde_json::json!({"a": 1, "problems": ["one", "two"]}));
    }
}
