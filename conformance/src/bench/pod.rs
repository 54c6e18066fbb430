//! A simulated node for benchmarks: the API stand-in over HTTPS with `n` networks, and pods
//! attached either through plexus or by running the same delegates directly.
//!
//! The networks: the cluster network is a bridge conflist read from disk (as a node's default
//! CNI config); the others are NADs, alternately a macvlan on the veth `plx-up0` and a bridge
//! of their own, each with its own host-local subnet. The direct run gives each delegate
//! exactly what plexus gives it for these configs (a conflist's plugin gets the list's name
//! and version, as libcni does), in the same order, and DELs them in reverse with their
//! results as prevResult.
//!
//! Runs only inside the sandbox ([`crate::sandbox::enter`]): it creates interfaces.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::proc::{Outcome, run};
use crate::apiserver::ApiServer;
use crate::netns::veth_pair;

/// The Debian plugins.
pub const REAL_PLUGINS: &str = "/usr/lib/cni";

/// Which delegates run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugins {
    /// The real Debian plugins (bridge, macvlan, host-local).
    Real,
    /// `plexus-canned` under the plugins' names: no work, so what is left is plexus's own cost.
    Canned,
}

impl Plugins {
    /// How the reports name these delegates.
    pub fn label(self) -> &'static str {
        match self {
            Plugins::Real => "real Debian plugins",
            Plugins::Canned => "canned no-op delegates",
        }
    }
}

/// One network of the pod.
#[derive(Debug, Clone)]
pub struct Net {
    /// The NAD name (`None` for the cluster network).
    pub nad: Option<String>,
    /// The interface in the pod.
    pub ifname: String,
    /// The network's config (a conflist for the cluster network).
    pub config: Value,
}

impl Net {
    fn plugin(&self) -> &str {
        self.config
            .get("type")
            .or_else(|| self.config["plugins"][0].get("type"))
            .and_then(Value::as_str)
            .expect("type")
    }

    /// What the delegate reads on stdin (a conflist's single plugin gets its name and version).
    fn plugin_stdin(&self) -> Value {
        crate::runtime::plugin_config(&self.config)
    }
}

/// The `n` networks (n ≥ 1): the cluster network first.
pub fn networks(n: usize) -> Vec<Net> {
    assert!(n >= 1, "a pod has at least the cluster network");
    let mut nets = vec![Net {
        nad: None,
        ifname: "eth0".into(),
        config: json!({"cniVersion":"1.0.0","name":"cluster","plugins":[{"type":"bridge","bridge":"plxb0","isGateway":true,
            "ipam":{"type":"host-local","subnet":"10.200.0.0/16","routes":[{"dst":"0.0.0.0/0"}]}}]}),
    }];
    for i in 1..n {
        let subnet = format!("10.{}.0.0/16", 200 + i);
        let (nad, config) = if i % 2 == 1 {
            let name = format!("macvlan-{i}");
            let c = json!({"cniVersion":"1.0.0","name":name,"type":"macvlan","master":"plx-up0","mode":"bridge",
                "ipam":{"type":"host-local","subnet":subnet}});
            (name, c)
        } else {
            let name = format!("bridge-{i}");
            let c = json!({"cniVersion":"1.0.0","name":name,"type":"bridge","bridge":format!("plxb{i}"),
                "ipam":{"type":"host-local","subnet":subnet}});
            (name, c)
        };
        nets.push(Net {
            nad: Some(nad),
            ifname: format!("net{i}"),
            config,
        });
    }
    nets
}

/// The node: API stand-in, configs on disk, the plexus node config.
pub struct Node {
    /// The API stand-in.
    pub server: ApiServer,
    /// The networks, cluster network first.
    pub nets: Vec<Net>,
    /// The plexus binary.
    pub binary: PathBuf,
    /// CNI_PATH for everything.
    pub plugin_dir: PathBuf,
    /// plexus's `cniDir`.
    pub state_dir: PathBuf,
    node_config: Value,
    /// Whether calls carry the pod's annotations in `runtimeConfig` (see [`Node::new`]).
    runtime_annotations: bool,
    _work: tempfile::TempDir,
}

/// The `runtimeConfig` key (and capability) under which containerd and CRI-O pass the pod's
/// annotations.
const RUNTIME_ANNOTATIONS: &str = "io.kubernetes.cri.pod-annotations";

/// The CNI environment of one call.
pub struct Call<'a> {
    /// CNI_COMMAND.
    pub command: &'a str,
    /// CNI_CONTAINERID.
    pub container_id: &'a str,
    /// CNI_NETNS.
    pub netns: &'a str,
    /// CNI_IFNAME.
    pub ifname: &'a str,
    /// The pod's name (namespace `default`).
    pub pod: &'a str,
}

impl Node {
    /// Sets up the node for pods with `n` networks. `state_dir` overrides plexus's `cniDir`
    /// (default: a directory under the temp dir, on the same disk as `/tmp`).
    ///
    /// The node config declares the `io.kubernetes.cri.pod-annotations` capability, as
    /// `plexus install` writes it, and every call carries the pod's annotations in
    /// `runtimeConfig`, as containerd and CRI-O then pass them; with `BENCH_POD_READ` set, the
    /// capability is not declared and plexus reads the pod from the API instead.
    pub fn new(binary: &Path, n: usize, plugins: Plugins, state_dir: Option<PathBuf>) -> Node {
        if crate::netns::host_links()
            .iter()
            .all(|l| l.name != "plx-up0")
        {
            veth_pair("plx-up0", "plx-up0p");
        }
        let work = tempfile::tempdir().expect("tempdir");
        let plugin_dir = match plugins {
            Plugins::Real => PathBuf::from(REAL_PLUGINS),
            Plugins::Canned => {
                let dir = work.path().join("canned");
                std::fs::create_dir(&dir).expect("mkdir canned");
                let canned = std::env::current_exe()
                    .expect("current_exe")
                    .with_file_name("plexus-canned");
                assert!(
                    canned.exists(),
                    "{} is missing: build the conformance binaries (cargo build --release -p plexus-conformance)",
                    canned.display()
                );
                // Copies, not links: plexus runs nothing that resolves outside its plugin
                // directories.
                for name in ["bridge", "macvlan"] {
                    std::fs::copy(&canned, dir.join(name)).expect("copy plexus-canned");
                }
                dir
            }
        };
        let server = ApiServer::start();
        server.set_latencies(super::api_latencies());
        let kubeconfig = work.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig);
        let nets = networks(n);
        let cluster_file = work.path().join("cluster.conflist");
        std::fs::write(&cluster_file, nets[0].config.to_string()).expect("write cluster conflist");
        for net in &nets[1..] {
            server.put(json!({"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
                "metadata":{"namespace":"default","name":net.nad},"spec":{"config":net.config.to_string()}}));
        }
        let state_dir = state_dir.unwrap_or_else(|| work.path().join("state"));
        let mut node_config = json!({"cniVersion":"1.0.0","name":"plexus","type":"plexus",
            "kubeconfig": kubeconfig, "clusterNetwork": cluster_file,
            "cniDir": state_dir, "binDir": "/nonexistent", "confDir": work.path()});
        let runtime_annotations = std::env::var_os("BENCH_POD_READ").is_none();
        if runtime_annotations {
            node_config["capabilities"] = json!({ RUNTIME_ANNOTATIONS: true });
        }
        if std::env::var_os("BENCH_NO_AHEAD").is_some() {
            // plexus starts each delegate at its turn: its own cost without the start-ups it hides.
            node_config["startDelegatesAhead"] = json!(false);
        }
        if let Ok(log) = std::env::var("BENCH_LOG") {
            // For profiling: plexus's debug log (timestamps per step) in that file.
            node_config["logLevel"] = json!("debug");
            node_config["logFile"] = json!(log);
            node_config["logToStderr"] = json!(false);
        }
        Node {
            server,
            nets,
            binary: binary.to_path_buf(),
            plugin_dir,
            state_dir,
            node_config,
            runtime_annotations,
            _work: work,
        }
    }

    /// The annotations of every pod of this node, as the API holds them.
    fn annotations(&self) -> Value {
        let selected: Vec<&str> = self.nets[1..]
            .iter()
            .filter_map(|n| n.nad.as_deref())
            .collect();
        if selected.is_empty() {
            json!({})
        } else {
            json!({"k8s.v1.cni.cncf.io/networks": selected.join(",")})
        }
    }

    /// Creates pod `name` in namespace `default` selecting every NAD of the node.
    pub fn add_pod(&self, name: &str) {
        let mut meta = json!({"namespace":"default","name":name,"uid":format!("u-{name}")});
        let annotations = self.annotations();
        if annotations.as_object().is_some_and(|a| !a.is_empty()) {
            meta["annotations"] = annotations;
        }
        self.server
            .put(json!({"apiVersion":"v1","kind":"Pod","metadata":meta}));
    }

    fn env<'a>(&'a self, call: &'a Call<'a>, args: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("CNI_COMMAND", call.command),
            ("CNI_CONTAINERID", call.container_id),
            ("CNI_NETNS", call.netns),
            ("CNI_IFNAME", call.ifname),
            ("CNI_PATH", self.plugin_dir.to_str().expect("utf-8 path")),
            ("CNI_ARGS", args),
        ]
    }

    fn args(call: &Call<'_>) -> String {
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID=u-{}",
            call.pod, call.container_id, call.pod
        )
    }

    /// ADD then DEL of pod `pod` (sandbox `netns`) through plexus, as a runtime calls it (DEL
    /// with the ADD result as prevResult). Returns the two outcomes or what failed.
    pub fn through_plexus(
        &self,
        pod: &str,
        container_id: &str,
        netns: &str,
        measure_rss: bool,
    ) -> Result<(Outcome, Outcome), String> {
        let add = self.plexus(
            &Call {
                command: "ADD",
                container_id,
                netns,
                ifname: "eth0",
                pod,
            },
            None,
            measure_rss,
        )?;
        let prev: Value = serde_json::from_slice(&add.stdout).map_err(|e| e.to_string())?;
        let del = self.plexus(
            &Call {
                command: "DEL",
                container_id,
                netns,
                ifname: "eth0",
                pod,
            },
            Some(prev),
            measure_rss,
        )?;
        Ok((add, del))
    }

    /// One plexus call; an unsuccessful exit is an error quoting stdout.
    pub fn plexus(
        &self,
        call: &Call<'_>,
        prev_result: Option<Value>,
        measure_rss: bool,
    ) -> Result<Outcome, String> {
        let mut conf = self.node_config.clone();
        if let Some(prev) = prev_result {
            conf["prevResult"] = prev;
        }
        if self.runtime_annotations {
            // The kubelet's copy of a pod (the sandbox config's annotations) has these two more.
            let mut given = self.annotations();
            given["kubernetes.io/config.source"] = json!("api");
            given["kubernetes.io/config.seen"] = json!("2026-11-27T10:00:00.000000000Z");
            conf["runtimeConfig"] = json!({ RUNTIME_ANNOTATIONS: given });
        }
        let args = Self::args(call);
        let out = run(
            &self.binary,
            &self.env(call, &args),
            conf.to_string().as_bytes(),
            measure_rss,
        );
        if !out.success {
            return Err(format!(
                "plexus {} of {}: {}",
                call.command,
                call.pod,
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        Ok(out)
    }

    /// Attaches every network of pod `pod` by running its delegate directly, in order.
    /// Returns the total wall time and the results (for [`Node::direct_del`]).
    pub fn direct_add(
        &self,
        pod: &str,
        container_id: &str,
        netns: &str,
    ) -> Result<(Duration, Vec<Value>), String> {
        let mut total = Duration::ZERO;
        let mut results = Vec::with_capacity(self.nets.len());
        for net in &self.nets {
            let call = Call {
                command: "ADD",
                container_id,
                netns,
                ifname: &net.ifname,
                pod,
            };
            let args = Self::args(&call);
            let out = run(
                &self.plugin_dir.join(net.plugin()),
                &self.env(&call, &args),
                net.plugin_stdin().to_string().as_bytes(),
                false,
            );
            total += out.wall;
            if !out.success {
                return Err(format!(
                    "direct {} ADD: {}",
                    net.plugin(),
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
            results.push(serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?);
        }
        Ok((total, results))
    }

    /// Detaches what [`Node::direct_add`] attached, last first, each with its prevResult.
    pub fn direct_del(
        &self,
        pod: &str,
        container_id: &str,
        netns: &str,
        results: Vec<Value>,
    ) -> Result<Duration, String> {
        let mut total = Duration::ZERO;
        for (net, result) in self.nets.iter().zip(results).rev() {
            let call = Call {
                command: "DEL",
                container_id,
                netns,
                ifname: &net.ifname,
                pod,
            };
            let args = Self::args(&call);
            let mut stdin = net.plugin_stdin();
            stdin["prevResult"] = result;
            let out = run(
                &self.plugin_dir.join(net.plugin()),
                &self.env(&call, &args),
                stdin.to_string().as_bytes(),
                false,
            );
            total += out.wall;
            if !out.success {
                return Err(format!(
                    "direct {} DEL: {}",
                    net.plugin(),
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
        }
        Ok(total)
    }

    /// Files plexus left in its state directory (its DEL markers are not leftovers).
    pub fn leftover_state(&self) -> Vec<String> {
        crate::runtime::state_leftovers(&self.state_dir)
    }
}
