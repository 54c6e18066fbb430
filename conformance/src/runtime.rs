//! The container runtime's side of CNI, as containerd and CRI-O do it through libcni: what the
//! demo and the scenarios use to call plexus exactly as a node does.
//!
//! - The node's CNI config is a conflist file (`00-plexus.conflist`) whose one plugin is
//!   plexus. For each call libcni gives that plugin its own config with the list's `name` and
//!   `cniVersion` injected (and `prevResult` for CHECK and DEL).
//! - The plugin is found in the node's CNI bin dir ([`Runtime::bin_dir`], holding a symlink to
//!   the plexus binary under test); `CNI_PATH` is that dir, then Debian's plugins.
//! - `CNI_ARGS` carries what the kubelet's runtime passes for a pod:
//!   `IgnoreUnknown=1;K8S_POD_NAMESPACE=…;K8S_POD_NAME=…;K8S_POD_INFRA_CONTAINER_ID=…;K8S_POD_UID=…`.
//! - After a successful ADD the result is cached in libcni's format
//!   (`/var/lib/cni/results/<network>-<containerID>-<ifname>`, kind `cniCacheV1`); CHECK and DEL
//!   read it back as `prevResult`, and a successful DEL removes it. After a failed ADD the
//!   runtime still calls DEL (without a cached result), as kubelet runtimes do.
//!
//! Every call is bounded in time ([`CALL_TIMEOUT`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::output_with_timeout;

/// libcni's result cache directory.
pub const RESULT_CACHE: &str = "/var/lib/cni/results";
/// Debian's CNI plugins.
pub const DEBIAN_PLUGINS: &str = "/usr/lib/cni";
/// Deadline of one CNI call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// host-local's lease directory (a tmpfs inside the sandbox).
pub const LEASES: &str = "/var/lib/cni/networks";

/// What a single plugin reads on stdin for `config`, as libcni gives it: a conflist's first
/// plugin with the list's `name` and `cniVersion`; a single config as it is.
pub fn plugin_config(config: &Value) -> Value {
    match config
        .get("plugins")
        .and_then(Value::as_array)
        .and_then(|p| p.first())
    {
        Some(first) => {
            let mut p = first.clone();
            p["name"] = config["name"].clone();
            p["cniVersion"] = config["cniVersion"].clone();
            p
        }
        None => config.clone(),
    }
}

/// A pod sandbox as the runtime knows it.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: PathBuf,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's UID.
    pub uid: String,
}

/// What a CNI call ended with.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit status 0.
    pub ok: bool,
    /// stdout (the result, or the CNI error document).
    pub stdout: String,
    /// stderr (plexus's log lines when it logs there).
    pub stderr: String,
}

impl Outcome {
    /// stdout as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }

    /// `code: msg (details)` of a CNI error document; the raw output otherwise.
    pub fn error_text(&self) -> String {
        let v = self.json();
        match v.get("code") {
            Some(code) => format!(
                "code {code}: {}{}",
                v["msg"].as_str().unwrap_or(""),
                v["details"]
                    .as_str()
                    .filter(|d| !d.is_empty())
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            None => format!("stdout {:?}, stderr {:?}", self.stdout, self.stderr),
        }
    }
}

/// The runtime of one simulated node.
pub struct Runtime {
    conflist: Value,
    conflist_path: PathBuf,
    bin_dir: PathBuf,
    /// The interface name the runtime asks for (the cluster network's).
    pub ifname: String,
}

impl Runtime {
    /// A runtime whose CNI config is `conflist` (written to `conf_dir/00-plexus.conflist`) and
    /// whose CNI bin dir `bin_dir` gets a `plexus` symlink to `plexus`.
    pub fn new(conflist: Value, conf_dir: &Path, bin_dir: &Path, plexus: &Path) -> Runtime {
        fs::create_dir_all(conf_dir).expect("mkdir conf dir");
        fs::create_dir_all(bin_dir).expect("mkdir bin dir");
        let link = bin_dir.join("plexus");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(plexus, &link).expect("symlink plexus into the bin dir");
        let conflist_path = conf_dir.join("00-plexus.conflist");
        fs::write(
            &conflist_path,
            serde_json::to_string_pretty(&conflist).expect("json"),
        )
        .expect("write the node's conflist");
        Runtime {
            conflist,
            conflist_path,
            bin_dir: bin_dir.to_path_buf(),
            ifname: "eth0".into(),
        }
    }

    /// The node's CNI config file.
    pub fn conflist_path(&self) -> &Path {
        &self.conflist_path
    }

    /// The node's CNI bin dir.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    fn network_name(&self) -> &str {
        self.conflist["name"].as_str().unwrap_or("")
    }

    /// The plugin's stdin: its config with the list's name and version (and `prevResult`).
    fn stdin(&self, prev: Option<&Value>) -> Value {
        let mut p = plugin_config(&self.conflist);
        if let Some(prev) = prev {
            p["prevResult"] = prev.clone();
        }
        p
    }

    fn cache_path(&self, sb: &Sandbox) -> PathBuf {
        Path::new(RESULT_CACHE).join(format!(
            "{}-{}-{}",
            self.network_name(),
            sb.container_id,
            self.ifname
        ))
    }

    /// The cached ADD result of `sb`, if any.
    pub fn cached_result(&self, sb: &Sandbox) -> Option<Value> {
        let text = fs::read_to_string(self.cache_path(sb)).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v.get("result").cloned()
    }

    fn call(&self, command: &str, sb: &Sandbox, stdin: &Value) -> Outcome {
        let plugin = self.conflist["plugins"][0]["type"]
            .as_str()
            .unwrap_or("plexus");
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            sb.namespace, sb.name, sb.container_id, sb.uid
        );
        let mut cmd = Command::new(self.bin_dir.join(plugin));
        cmd.env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &sb.container_id)
            .env("CNI_NETNS", &sb.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env(
                "CNI_PATH",
                format!("{}:{DEBIAN_PLUGINS}", self.bin_dir.display()),
            )
            .env("CNI_ARGS", args)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        match output_with_timeout(&mut cmd, stdin.to_string().as_bytes(), CALL_TIMEOUT) {
            Ok(out) => Outcome {
                ok: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Err(e) => Outcome {
                ok: false,
                stdout: String::new(),
                stderr: e,
            },
        }
    }

    /// ADD; on success the result is cached as libcni does.
    pub fn add(&self, sb: &Sandbox) -> Outcome {
        let out = self.call("ADD", sb, &self.stdin(None));
        if out.ok {
            let conf = fs::read(&self.conflist_path).unwrap_or_default();
            let entry = json!({
                "kind": "cniCacheV1",
                "containerId": sb.container_id,
                "config": base64::engine::general_purpose::STANDARD.encode(conf),
                "ifName": self.ifname,
                "networkName": self.network_name(),
                "result": out.json(),
            });
            fs::create_dir_all(RESULT_CACHE).expect("mkdir the result cache");
            fs::write(self.cache_path(sb), entry.to_string()).expect("write the result cache");
        }
        out
    }

    /// CHECK with the cached result.
    pub fn check(&self, sb: &Sandbox) -> Outcome {
        let prev = self.cached_result(sb);
        self.call("CHECK", sb, &self.stdin(prev.as_ref()))
    }

    /// DEL with the cached result (if any); a successful DEL drops the cache entry.
    pub fn del(&self, sb: &Sandbox) -> Outcome {
        let prev = self.cached_result(sb);
        let out = self.call("DEL", sb, &self.stdin(prev.as_ref()));
        if out.ok {
            let _ = fs::remove_file(self.cache_path(sb));
        }
        out
    }

    /// Every entry left in the result cache.
    pub fn cache_entries() -> Vec<String> {
        list_dir(Path::new(RESULT_CACHE))
    }
}

/// host-local leases left anywhere under [`LEASES`] as `network/address` (its lock and
/// last-reserved bookkeeping files are not leases).
pub fn leftover_leases() -> Vec<String> {
    let mut out = vec![];
    for net in list_dir(Path::new(LEASES)) {
        for f in list_dir(&Path::new(LEASES).join(&net)) {
            if f != "lock" && !f.starts_with("last_reserved_ip") {
                out.push(format!("{net}/{f}"));
            }
        }
    }
    out
}

/// The subdirectory of plexus's state directory holding its DEL markers (plexus's
/// `state::DELETED_DIR`): empty files that make a repeated DEL free, removed by GC or after an
/// hour. They are what a finished DEL leaves on purpose, so [`state_leftovers`] skips them.
pub const DELETED_MARKERS: &str = "deleted";

/// What plexus left in its state directory `dir`, sorted: every name but its DEL markers'
/// directory.
pub fn state_leftovers(dir: &Path) -> Vec<String> {
    let mut v = list_dir(dir);
    v.retain(|n| n != DELETED_MARKERS);
    v
}

/// The DEL markers in plexus's state directory `dir` (`<containerID>:<ifname>`), sorted.
pub fn deleted_markers(dir: &Path) -> Vec<String> {
    let mut v = list_dir(&dir.join(DELETED_MARKERS));
    v.retain(|n| !n.starts_with('.'));
    v
}

/// The names in `dir`, sorted; none when it cannot be read.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
