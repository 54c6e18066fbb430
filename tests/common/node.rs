//! A simulated Kubernetes node for the transaction tests: the API stand-in holding pods and
//! NADs, a node config for plexus (cluster network from a conflist file, journal in a temp
//! `cniDir`, the fake plugins' directory as `binDir`), pods with their own network namespace,
//! and plexus called for them exactly as a kubelet runtime calls it (CNI env + node config on
//! stdin, `prevResult` added for DEL and CHECK). Every call is bounded in time.
//!
//! Only the binary's CNI contract is used: exit codes, stdout/stderr, the pod's
//! `k8s.v1.cni.cncf.io/network-status` annotation in the stand-in, interfaces and routes in the
//! pod's netns, host-local's leases and the journal files in `cniDir`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plexus_conformance::apiserver::ApiServer;
use plexus_conformance::netns::Netns;
use plexus_conformance::plugins::fixtures_dir;
use plexus_conformance::runtime::{DELETED_MARKERS, deleted_markers};
use plexus_conformance::sandbox;
use serde_json::{Map, Value, json};

use super::{DEBIAN_PLUGINS, Run};

/// host-local's default lease directory (a tmpfs inside the sandbox).
pub const LEASES: &str = "/var/lib/cni/networks";
/// The pod annotation plexus writes on ADD.
pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";
/// The pod annotation selecting secondary networks.
pub const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
/// The namespace of every pod and NAD made by [`Node`].
pub const NS: &str = "default";
/// Deadline of one plexus call made by these helpers.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The API stand-in plus plexus's node config and directories.
pub struct Node {
    /// The stand-in; pods and NADs live in namespace [`NS`].
    pub api: ApiServer,
    /// Everything on disk for this node (kubeconfig, cluster conflist, cniDir, confDir).
    pub dir: tempfile::TempDir,
    /// The journal directory (`cniDir`).
    pub cni_dir: PathBuf,
    /// The `name` of the cluster network's config (its network-status entry's name).
    pub cluster_name: String,
    /// The node config's own keys; [`Node::set`] changes them.
    config: Map<String, Value>,
}

impl Node {
    /// Starts the stand-in and writes a node config whose `clusterNetwork` is `cluster` (a
    /// config or conflist with a `name`) written to a file.
    pub fn start(cluster: Value) -> Node {
        let dir = if sandbox::inside() {
            // /run/cni is a fresh tmpfs inside the sandbox: gone with it.
            tempfile::tempdir_in("/run/cni").expect("temp dir in /run/cni")
        } else {
            tempfile::tempdir().expect("temp dir")
        };
        let api = ApiServer::start();
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig);
        let cni_dir = dir.path().join("journal");
        let conf_dir = dir.path().join("conf.d");
        fs::create_dir_all(&conf_dir).expect("mkdir confDir");
        let cluster_name = cluster["name"]
            .as_str()
            .expect("the cluster network config has a name")
            .to_owned();
        let cluster_path = write_json(&dir.path().join("cluster.conflist"), &cluster);
        let config = json!({
            "cniVersion": "1.0.0",
            "name": "plexus",
            "type": "plexus",
            "kubeconfig": kubeconfig,
            "clusterNetwork": cluster_path,
            "cniDir": cni_dir,
            "binDir": fixtures_dir(),
            "confDir": conf_dir,
            "readinessTimeoutSeconds": 1,
            "delegateTimeoutSeconds": 20,
            "logLevel": "debug",
        });
        Node {
            api,
            dir,
            cni_dir,
            cluster_name,
            config: config.as_object().expect("an object").clone(),
        }
    }

    /// Sets a node config key for every later call (`cniVersion`, `delegateTimeoutSeconds`...).
    pub fn set(&mut self, key: &str, value: Value) {
        self.config.insert(key.to_owned(), value);
    }

    /// Writes `value` as JSON to `name` in the node's directory; returns its absolute path.
    pub fn write_file(&self, name: &str, value: &Value) -> PathBuf {
        write_json(&self.dir.path().join(name), value)
    }

    /// The node config (with `extra` merged over it) as the runtime sends it on stdin.
    pub fn config_with(&self, extra: &Value) -> Value {
        let mut c = self.config.clone();
        if let Some(extra) = extra.as_object() {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        Value::Object(c)
    }

    /// Stores NAD `name` in [`NS`] with `config` (serialised compactly) as `spec.config`.
    pub fn nad(&self, name: &str, config: &Value) {
        self.api.put(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"namespace": NS, "name": name},
            "spec": {"config": config.to_string()}
        }));
    }

    /// A pod `name` in [`NS`] with its own netns and container ID, stored in the stand-in with
    /// `networks` as its `k8s.v1.cni.cncf.io/networks` annotation (none when empty).
    pub fn pod(&self, name: &str, networks: &str) -> Pod {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let netns = Netns::new("pod");
        let netns_path = netns.path().display().to_string();
        let uid = format!("uid-{name}-{n}");
        let container_id = format!("{name}-{n}-c0ffee");
        let mut annotations = Map::new();
        annotations.insert("team".into(), json!("blue"));
        if !networks.is_empty() {
            annotations.insert(NETWORKS.into(), json!(networks));
        }
        self.api.put(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": NS, "name": name, "uid": uid, "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "pause"}], "nodeName": "node-1"}
        }));
        let record_dir = self.dir.path().join(format!("record-{name}-{n}"));
        Pod {
            netns: Some(netns),
            netns_path,
            name: name.to_owned(),
            uid,
            container_id,
            record_dir,
        }
    }

    /// The CNI environment of `command` for `pod` (CNI_IFNAME=eth0, CNI_PATH=/usr/lib/cni, the
    /// K8S_POD_* args), plus `FAKE_RECORD_DIR` (inherited by delegates).
    pub fn env(&self, command: &str, pod: &Pod) -> Vec<(String, String)> {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={};\
             K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            pod.name, pod.container_id, pod.uid
        );
        [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", pod.container_id.clone()),
            ("CNI_NETNS", pod.netns_path.clone()),
            ("CNI_IFNAME", "eth0".to_owned()),
            ("CNI_PATH", DEBIAN_PLUGINS.to_owned()),
            ("CNI_ARGS", args),
            ("FAKE_RECORD_DIR", pod.record_dir.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// ADD for `pod`.
    pub fn add(&self, pod: &Pod) -> Run {
        self.add_with(pod, &json!({}))
    }

    /// ADD for `pod` with `extra` keys merged over the node config.
    pub fn add_with(&self, pod: &Pod, extra: &Value) -> Run {
        let stdin = self.config_with(extra).to_string();
        run_plexus(&self.env("ADD", pod), &stdin, CALL_TIMEOUT)
    }

    /// DEL for `pod`, with `prev` as `prevResult` when given (as libcni sends it).
    pub fn del(&self, pod: &Pod, prev: Option<&Value>) -> Run {
        self.del_with(pod, prev, &json!({}))
    }

    /// [`Node::del`] with `extra` keys merged over the node config.
    pub fn del_with(&self, pod: &Pod, prev: Option<&Value>, extra: &Value) -> Run {
        let mut config = self.config_with(extra);
        if let Some(prev) = prev {
            config["prevResult"] = prev.clone();
        }
        run_plexus(&self.env("DEL", pod), &config.to_string(), CALL_TIMEOUT)
    }

    /// CHECK for `pod` with `prev` as `prevResult`.
    pub fn check(&self, pod: &Pod, prev: &Value) -> Run {
        let mut config = self.config_with(&json!({}));
        config["prevResult"] = prev.clone();
        run_plexus(&self.env("CHECK", pod), &config.to_string(), CALL_TIMEOUT)
    }

    /// GC with `cni.dev/valid-attachments` = `valid` (container ID, ifname); only CNI_COMMAND
    /// and CNI_PATH in the environment, as the spec says.
    pub fn gc(&self, valid: &[(&str, &str)]) -> Run {
        let mut config = self.config_with(&json!({}));
        config["cni.dev/valid-attachments"] = valid
            .iter()
            .map(|(c, i)| json!({"containerID": c, "ifname": i}))
            .collect();
        let env = [
            ("CNI_COMMAND".to_owned(), "GC".to_owned()),
            ("CNI_PATH".to_owned(), DEBIAN_PLUGINS.to_owned()),
        ];
        run_plexus(&env, &config.to_string(), CALL_TIMEOUT)
    }

    /// STATUS (only CNI_COMMAND and CNI_PATH in the environment).
    pub fn status(&self) -> Run {
        let env = [
            ("CNI_COMMAND".to_owned(), "STATUS".to_owned()),
            ("CNI_PATH".to_owned(), DEBIAN_PLUGINS.to_owned()),
        ];
        run_plexus(
            &env,
            &self.config_with(&json!({})).to_string(),
            CALL_TIMEOUT,
        )
    }

    /// Starts ADD for `pod` without waiting (stdout discarded, stderr to `stderr_file`).
    pub fn spawn_add(&self, pod: &Pod, stderr_file: &Path) -> Child {
        let stdin = self.config_with(&json!({})).to_string();
        let mut child = plexus_command(&self.env("ADD", pod))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(fs::File::create(stderr_file).expect("stderr file"))
            .spawn()
            .expect("spawn plexus");
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(stdin.as_bytes()).expect("write stdin");
        drop(pipe);
        child
    }

    /// The pod's `k8s.v1.cni.cncf.io/network-status` annotation text, if written.
    pub fn status_text(&self, pod: &Pod) -> Option<String> {
        let obj = self.api.get("pods", NS, &pod.name).expect("the pod exists");
        obj["metadata"]["annotations"][NETWORK_STATUS]
            .as_str()
            .map(str::to_owned)
    }

    /// The pod's network-status entries; panics when missing or not a JSON list.
    pub fn network_status(&self, pod: &Pod) -> Vec<Value> {
        let text = self
            .status_text(pod)
            .unwrap_or_else(|| panic!("pod {} has no {NETWORK_STATUS} annotation", pod.name));
        match serde_json::from_str(&text) {
            Ok(Value::Array(v)) => v,
            _ => panic!("{NETWORK_STATUS} is not a JSON list: {text}"),
        }
    }

    /// Every journal file (`*.json`, and the `*.progress` of its steps) under `cniDir` (any
    /// depth), relative paths, sorted.
    pub fn journal_files(&self) -> Vec<String> {
        let mut found = Vec::new();
        collect_files(&self.cni_dir, &self.cni_dir, &mut found);
        found.retain(|f| f.ends_with(".json") || f.ends_with(".progress"));
        found.sort();
        found
    }

    /// The journal files of `pod`'s attachment (container ID, eth0), whatever the separator
    /// between the two in the name: `*.json` files in `cniDir` starting with the container ID
    /// and ending with `eth0.json`. [`journal_name`] is the exact name the contract asks for.
    pub fn journal_files_of(&self, pod: &Pod) -> Vec<PathBuf> {
        self.journal_files()
            .into_iter()
            .filter(|f| f.starts_with(&pod.container_id) && f.ends_with("eth0.json"))
            .map(|f| self.cni_dir.join(f))
            .collect()
    }

    /// Panics unless `cniDir` holds no journal file (`*.json`, `*.progress`).
    pub fn assert_no_journal(&self, when: &str) {
        let files = self.journal_files();
        assert!(
            files.is_empty(),
            "{when}: cniDir must hold no journal file, found {files:?}"
        );
    }

    /// `command` for `pod` with `env` added to the CNI environment (delegates inherit it),
    /// `prev` as `prevResult` and `extra` merged over the node config.
    pub fn call(
        &self,
        command: &str,
        pod: &Pod,
        env: &[(&str, &str)],
        prev: Option<&Value>,
        extra: &Value,
    ) -> Run {
        let mut config = self.config_with(extra);
        if let Some(prev) = prev {
            config["prevResult"] = prev.clone();
        }
        let mut vars = self.env(command, pod);
        vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        run_plexus(&vars, &config.to_string(), CALL_TIMEOUT)
    }

    /// Every file under `cniDir` (journals, progress, lock files, rollback markers, temp
    /// files) but the DEL markers, relative paths, sorted.
    pub fn state_files(&self) -> Vec<String> {
        let mut found = Vec::new();
        collect_files(&self.cni_dir, &self.cni_dir, &mut found);
        found.retain(|f| !f.starts_with(&format!("{DELETED_MARKERS}/")));
        found.sort();
        found
    }

    /// The DEL markers a finished DEL leaves (`<containerID>:<ifname>`), which
    /// [`Node::state_files`] does not count: they are removed by GC or after an hour.
    pub fn deleted_markers(&self) -> Vec<String> {
        deleted_markers(&self.cni_dir)
    }

    /// [`Node::assert_clean`], and `cniDir` holds no file at all (no lock file or rollback
    /// marker either).
    pub fn assert_spotless(&self, pod: &Pod, when: &str) {
        self.assert_clean(pod, when);
        let left = self.state_files();
        assert!(
            left.is_empty(),
            "{when}: cniDir must be empty, found {left:?}"
        );
    }

    /// Panics unless the pod holds only `lo`, no host-local lease exists for any network and
    /// `cniDir` holds no journal file.
    pub fn assert_clean(&self, pod: &Pod, when: &str) {
        pod.assert_only_lo(when);
        assert_no_leases(when);
        self.assert_no_journal(when);
    }
}

/// Between the container ID and the interface name in a journal file's name: `:`, which
/// neither may contain (a `-` would let two attachments share one file).
pub const JOURNAL_SEP: &str = ":";

/// The journal file name the contract gives the attachment (`container_id`, `eth0`):
/// `<containerID>:eth0.json`.
pub fn journal_name(container_id: &str) -> String {
    format!("{container_id}{JOURNAL_SEP}eth0.json")
}

/// One pod: its netns (`None` once deleted), names and IDs.
pub struct Pod {
    /// The pod's network namespace; [`Pod::delete_netns`] removes it.
    pub netns: Option<Netns>,
    /// `/run/netns/<name>`: CNI_NETNS (kept after the netns is deleted).
    pub netns_path: String,
    /// metadata.name (namespace [`NS`]).
    pub name: String,
    /// metadata.uid, also sent as K8S_POD_UID.
    pub uid: String,
    /// CNI_CONTAINERID and K8S_POD_INFRA_CONTAINER_ID.
    pub container_id: String,
    /// FAKE_RECORD_DIR for this pod's calls.
    pub record_dir: PathBuf,
}

impl Pod {
    /// The pod's netns; panics if it was deleted.
    pub fn ns(&self) -> &Netns {
        self.netns.as_ref().expect("the pod's netns still exists")
    }

    /// Deletes the pod's netns (`ip netns del`) and waits (bounded) until it is gone.
    pub fn delete_netns(&mut self) {
        drop(self.netns.take());
        let path = PathBuf::from(&self.netns_path);
        plexus_conformance::wait_until(
            "the pod netns to be deleted",
            Duration::from_secs(10),
            || !path.exists(),
        );
    }

    /// Names of the links in the pod, sorted.
    pub fn link_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.ns().links().into_iter().map(|l| l.name).collect();
        v.sort();
        v
    }

    /// Panics unless the pod holds only `lo`.
    pub fn assert_only_lo(&self, when: &str) {
        assert_eq!(
            self.link_names(),
            vec!["lo".to_owned()],
            "{when}: the pod netns must hold only lo"
        );
    }

    /// The IPv4 addresses (with prefix) of interface `ifname` in the pod; panics if it is missing.
    pub fn ipv4(&self, ifname: &str) -> Vec<String> {
        let link = self
            .ns()
            .link(ifname)
            .unwrap_or_else(|| panic!("no {ifname} in pod {}: {:?}", self.name, self.link_names()));
        link.ipv4().into_iter().map(str::to_owned).collect()
    }

    /// The IPv4 default routes in the pod, as `ip -j route` prints them.
    pub fn default_routes(&self) -> Vec<Value> {
        self.ns()
            .routes(4)
            .into_iter()
            .filter(|r| r["dst"] == "default")
            .collect()
    }

    /// What the fakes recorded for this pod: `(command, the config's name)`, in order.
    pub fn fake_calls(&self) -> Vec<(String, String)> {
        plexus_conformance::plugins::recorded(&self.record_dir)
            .into_iter()
            .map(|i| {
                let name = serde_json::from_slice::<Value>(&i.stdin)
                    .ok()
                    .and_then(|v| v["name"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                (i.command, name)
            })
            .collect()
    }
}

impl Run {
    /// The CNI error on stdout: `(code, msg, details)`; panics unless this run failed with one.
    pub fn error(&self) -> (i64, String, String) {
        assert_ne!(self.code, 0, "expected a failure, got success: {self:?}");
        let v = self.json();
        let code = v["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no numeric code in the error {v}"));
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        (code, s("msg"), s("details"))
    }

    /// Panics with everything plexus printed unless it exited 0.
    pub fn assert_ok(&self, what: &str) -> &Run {
        assert_eq!(
            self.code, 0,
            "{what} must succeed; stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A single-plugin bridge config with host-local (`isGateway`: the bridge holds `.1`).
pub fn bridge(name: &str, bridge: &str, subnet: &str) -> Value {
    json!({
        "cniVersion": "1.0.0", "name": name, "type": "bridge", "bridge": bridge,
        "isGateway": true, "ipMasq": false,
        "ipam": {"type": "host-local", "subnet": subnet}
    })
}

/// A conflist with one bridge + host-local plugin and a default route: a cluster network.
pub fn cluster_bridge(name: &str, bridge: &str, subnet: &str) -> Value {
    json!({
        "cniVersion": "1.0.0", "name": name,
        "plugins": [{
            "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
            "ipam": {"type": "host-local", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}]}
        }]
    })
}

/// A macvlan config on `master` with host-local.
pub fn macvlan(name: &str, master: &str, subnet: &str) -> Value {
    json!({
        "cniVersion": "1.0.0", "name": name, "type": "macvlan", "master": master,
        "mode": "bridge", "ipam": {"type": "host-local", "subnet": subnet}
    })
}

/// A conflist `name` of `plugins` at 1.0.0.
pub fn conflist(name: &str, plugins: Vec<Value>) -> Value {
    json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins})
}

/// The IP leases host-local holds for `network` (file names that are IP addresses), sorted.
pub fn leases(network: &str) -> Vec<String> {
    let Ok(dir) = fs::read_dir(Path::new(LEASES).join(network)) else {
        return vec![];
    };
    let mut v: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    v.sort();
    v
}

/// Every lease of every network: `network/ip`, sorted.
pub fn all_leases() -> Vec<String> {
    let Ok(dir) = fs::read_dir(LEASES) else {
        return vec![];
    };
    let mut v = Vec::new();
    for net in dir.filter_map(|e| e.ok()?.file_name().into_string().ok()) {
        v.extend(leases(&net).into_iter().map(|ip| format!("{net}/{ip}")));
    }
    v.sort();
    v
}

/// The container IDs host-local recorded in `network`'s leases (each lease file holds
/// `<containerID>\r\n<ifname>`), one per lease, sorted.
pub fn lease_owners(network: &str) -> Vec<String> {
    let mut v: Vec<String> = leases(network)
        .iter()
        .filter_map(|ip| fs::read_to_string(Path::new(LEASES).join(network).join(ip)).ok())
        .map(|t| t.lines().next().unwrap_or_default().trim().to_owned())
        .collect();
    v.sort();
    v
}

/// Panics if any host-local lease remains.
pub fn assert_no_leases(when: &str) {
    let left = all_leases();
    assert!(
        left.is_empty(),
        "{when}: host-local leases remain: {left:?}"
    );
}

/// `10.1.2.3/24` -> `10.1.2.3`.
pub fn bare(addr: &str) -> String {
    addr.split('/').next().unwrap_or(addr).to_owned()
}

/// The addresses of a CNI 1.0 result's `ips`, with prefix.
pub fn result_ips(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str().map(str::to_owned))
        .collect()
}

fn write_json(path: &Path, value: &Value) -> PathBuf {
    fs::write(path, serde_json::to_vec_pretty(value).expect("serialise"))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path.to_path_buf()
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let path = e.path();
        if path.is_dir() {
            collect_files(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.display().to_string());
        }
    }
}

fn plexus_command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plexus"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

/// Runs plexus with exactly `env` (plus PATH) and `stdin`; panics (after killing it) if it
/// is still running after `timeout`, or if something it left behind holds its output.
pub fn run_plexus(env: &[(String, String)], stdin: &str, timeout: Duration) -> Run {
    let out = plexus_conformance::output_with_timeout(
        &mut plexus_command(env),
        stdin.as_bytes(),
        timeout,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        signal: std::os::unix::process::ExitStatusExt::signal(&out.status),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
