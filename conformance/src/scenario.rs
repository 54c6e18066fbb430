//! Conformance scenarios: a simulated node, pods, NADs and what each pod must end up with,
//! written as YAML files in `conformance/scenarios/` that anyone can add to. The demo is the
//! scenario `demo.yaml` run with its output shown; the test suite runs every scenario.
//!
//! # A scenario file
//!
//! ```yaml
//! description: one line saying what it shows
//! uplinks: [plx-up0]          # veth pairs <name>/<name>p on the node (masters, VFs)
//! cluster: {...}              # the node's default network: a CNI conflist (YAML or JSON)
//! confDir: examples/net.d     # optional: plexus's confDir, copied from the repository
//! node: {logLevel: debug}     # optional: more plexus node config keys
//! plugins: {sriov: fake-sriov}  # optional: CNI plugins named so on the node, copied from the
//!                             # fake plugins of conformance/fixtures/plugins
//! kubelet:                    # optional: the kubelet's PodResources API (a stand-in) and the
//!   pods: [{namespace: default, name: vf-pod,     # device plugin's device-information files
//!           containers: [{name: app, devices: {example.com/sriov_vf: ["0000:03:00.1"]}}]}]
//!   deviceInfo: {example.com/sriov_vf: {"0000:03:00.1": {type: pci, version: 1.1.0, pci: {pci-address: "0000:03:00.1"}}}}
//! objects: [examples/nads/macvlan-hostlocal.yaml]   # files or dirs, loaded into the API
//! manifests: |                # optional: more objects, inline (multi-document YAML)
//!   apiVersion: v1
//!   kind: Pod
//!   ...
//! pods:
//!   - name: web               # a Pod among the objects (namespace: default unless given)
//!     expect:
//!       links: [eth0, lo, net1]                 # exactly these interfaces in the pod
//!       addresses: {net1: [10.71.0.0/24]}       # each CIDR holds one of its addresses (/32: exact)
//!       macs: {net1: "02:00:00:00:00:01"}
//!       defaultRoute: {dev: eth0, via: 10.70.0.1}
//!       status:                                 # network-status, entry by entry, in order:
//!         - {name: cluster-net, interface: eth0, default: true, ips: [10.70.0.0/16]}
//!   - name: broken
//!     error: {code: 7, contains: [macvlan-broken]}   # ADD must fail so, leaving nothing
//! ```
//!
//! Paths are relative to the repository root. Every key of a status entry must equal the
//! entry's (`ips`: each CIDR holds one of the entry's addresses), and there must be as many
//! entries as listed.
//!
//! # What a run does
//!
//! In a sandbox (its own network and mount namespace, see [`crate::sandbox`]): creates the
//! uplinks, starts the API stand-in over HTTPS and loads the objects, writes plexus's node
//! config and kubeconfig, then for each pod creates its sandbox (a network namespace) and
//! calls plexus as a container runtime does ([`crate::runtime`]): ADD, and checks the pod's
//! interfaces, addresses, MACs, default route and network-status annotation; then CHECK of
//! every pod; then DEL of every pod, last first (also of those whose ADD failed, as runtimes
//! do); and finally checks that nothing is left: only `lo` in every pod, no host-local lease,
//! no plexus journal, no cached result.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::apiserver::ApiServer;
use crate::netns::{Netns, host_links, veth_pair};
use crate::runtime::{Outcome, Runtime, Sandbox, leftover_leases, list_dir as list};
use crate::{COMMAND_TIMEOUT, output_with_timeout};

/// plexus's journal directory on the simulated node (its default, a tmpfs in the sandbox).
pub const STATE_DIR: &str = "/var/lib/cni/plexus";
/// The status annotation.
pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

/// A scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// What it shows.
    pub description: String,
    /// veth pairs `<name>`/`<name>p` to create on the node.
    #[serde(default)]
    pub uplinks: Vec<String>,
    /// The node's default network (a conflist).
    pub cluster: Value,
    /// plexus's confDir, copied from this repository directory.
    #[serde(default)]
    pub conf_dir: Option<String>,
    /// More node config keys.
    #[serde(default)]
    pub node: Map<String, Value>,
    /// Plugin name on the node → fake plugin of `conformance/fixtures/plugins`.
    #[serde(default)]
    pub plugins: BTreeMap<String, String>,
    /// The kubelet's side of devices.
    #[serde(default)]
    pub kubelet: Option<Kubelet>,
    /// YAML files or directories loaded into the API stand-in.
    #[serde(default)]
    pub objects: Vec<String>,
    /// More objects, inline.
    #[serde(default)]
    pub manifests: Option<String>,
    /// The pods, in the order they are added.
    pub pods: Vec<PodCase>,
}

/// The kubelet's PodResources answers and the device plugin's device-information files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kubelet {
    /// Pods and their devices, in the format of
    /// [`PodResourcesServer::load`](crate::podresources::PodResourcesServer::load).
    #[serde(default)]
    pub pods: Vec<Value>,
    /// resource → device ID → the device-information file's content.
    #[serde(default)]
    pub device_info: BTreeMap<String, BTreeMap<String, Value>>,
}

/// One pod of a scenario.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodCase {
    /// The Pod object's name.
    pub name: String,
    /// Its namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// What a successful ADD must leave.
    #[serde(default)]
    pub expect: Option<Expect>,
    /// How ADD must fail instead.
    #[serde(default)]
    pub error: Option<ExpectError>,
}

fn default_namespace() -> String {
    "default".into()
}

/// What a pod must have after ADD.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    /// Exactly these interface names.
    #[serde(default)]
    pub links: Option<Vec<String>>,
    /// Per interface, CIDRs each holding one of its addresses.
    #[serde(default)]
    pub addresses: BTreeMap<String, Vec<String>>,
    /// Per interface, its MAC.
    #[serde(default)]
    pub macs: BTreeMap<String, String>,
    /// The pod's IPv4 default route.
    #[serde(default)]
    pub default_route: Option<Route>,
    /// The network-status entries, in order.
    #[serde(default)]
    pub status: Vec<Map<String, Value>>,
}

/// A default route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The interface.
    pub dev: String,
    /// The gateway.
    pub via: String,
}

/// How ADD must fail.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectError {
    /// The CNI error code.
    #[serde(default)]
    pub code: Option<u64>,
    /// Texts the error's `msg` + `details` must contain.
    #[serde(default)]
    pub contains: Vec<String>,
}

/// How much a run prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing but failures (returned).
    Quiet,
    /// A progress line per step and every pod's interfaces and network-status.
    Demo,
}

/// Reads a scenario file.
pub fn load(path: &Path) -> Result<Scenario, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every `*.yaml` file in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A run in progress: numbered steps, failures collected.
pub(crate) struct Run {
    pub(crate) mode: Mode,
    pub(crate) step: usize,
    pub(crate) steps: usize,
    pub(crate) failures: Vec<String>,
}

impl Run {
    pub(crate) fn step(&mut self, what: &str) {
        self.step += 1;
        if self.mode == Mode::Demo {
            println!("[{}/{}] {what}", self.step, self.steps);
        }
    }

    pub(crate) fn say(&self, text: &str) {
        if self.mode == Mode::Demo {
            println!("{text}");
        }
    }

    pub(crate) fn fail(&mut self, what: String) {
        if self.mode == Mode::Demo {
            println!("    FAILED: {what}");
        }
        self.failures.push(what);
    }
}

/// One pod during a run.
struct PodRun<'a> {
    case: &'a PodCase,
    sandbox: Sandbox,
    netns: Netns,
    added: bool,
}

/// Runs the scenario at `path` (inside the sandbox) with the plexus binary `plexus`; paths in
/// it are relative to `repo`. Returns every failure, each naming its step and why.
pub fn run(path: &Path, repo: &Path, plexus: &Path, mode: Mode) -> Result<(), Vec<String>> {
    let sc = load(path).map_err(|e| vec![e])?;
    let mut r = Run {
        mode,
        step: 0,
        steps: 6 + 2 * sc.pods.len(),
        failures: vec![],
    };
    r.say(&format!("Scenario {}: {}", path.display(), sc.description));
    let work = tempfile::tempdir_in("/run/cni").map_err(|e| vec![format!("temp dir: {e}")])?;

    r.step(&format!(
        "node uplinks: {}",
        if sc.uplinks.is_empty() {
            "none".to_string()
        } else {
            sc.uplinks
                .iter()
                .map(|u| format!("{u} (veth, peer {u}p)"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    make_uplinks(&sc);

    r.step("Kubernetes API stand-in over HTTPS, with the scenario's NADs and pods");
    let kubeconfig = work.path().join("kubeconfig");
    let api = start_api(&sc, repo, &kubeconfig)?;
    r.say(&format!(
        "    {} at {}: {} NetworkAttachmentDefinitions, {} pods",
        "API stand-in",
        api.url(),
        api.list("network-attachment-definitions", "").len(),
        api.list("pods", "").len()
    ));

    r.step("plexus node config (as /etc/cni/net.d/00-plexus.conflist) and kubeconfig");
    let net_d = work.path().join("net.d");
    let cluster_file = net_d.join("10-cluster.conflist");
    std::fs::create_dir_all(&net_d).map_err(|e| vec![e.to_string()])?;
    std::fs::write(
        &cluster_file,
        serde_json::to_string_pretty(&sc.cluster).unwrap_or_default(),
    )
    .map_err(|e| vec![e.to_string()])?;
    let conf_dir = work.path().join("multus.d");
    std::fs::create_dir_all(&conf_dir).map_err(|e| vec![e.to_string()])?;
    if let Some(d) = &sc.conf_dir {
        for f in std::fs::read_dir(repo.join(d)).map_err(|e| vec![format!("{d}: {e}")])? {
            let f = f.map_err(|e| vec![e.to_string()])?;
            std::fs::copy(f.path(), conf_dir.join(f.file_name()))
                .map_err(|e| vec![format!("copying {}: {e}", f.path().display())])?;
        }
    }
    let mut plugin = json!({
        "type": "plexus",
        "kubeconfig": kubeconfig,
        "clusterNetwork": cluster_file,
        "confDir": conf_dir,
        "cniDir": STATE_DIR,
        "binDir": work.path().join("bin"),
    });
    let kubelet = match &sc.kubelet {
        Some(k) => Some(start_kubelet(k, work.path(), &mut plugin).map_err(|e| vec![e])?),
        None => None,
    };
    for (k, v) in &sc.node {
        plugin[k] = v.clone();
    }
    let conflist = json!({"cniVersion": "1.0.0", "name": "plexus-net", "plugins": [plugin]});
    let runtime = Runtime::new(conflist.clone(), &net_d, &work.path().join("bin"), plexus);
    for (name, fake) in &sc.plugins {
        let fixtures = crate::plugins::fixtures_dir();
        for (link, target) in [(name.as_str(), fake.as_str()), ("common.sh", "common.sh")] {
            // Copies: plexus follows a link in a plugin directory only into a plugin directory.
            let at = runtime.bin_dir().join(link);
            let _ = std::fs::remove_file(&at);
            std::fs::copy(fixtures.join(target), &at)
                .map_err(|e| vec![format!("plugin {name}: {e}")])?;
        }
    }
    r.say(&indent(
        &serde_json::to_string_pretty(&conflist).unwrap_or_default(),
    ));

    let mut pods = vec![];
    for (i, case) in sc.pods.iter().enumerate() {
        let Some(obj) = api.get("pods", &case.namespace, &case.name) else {
            return Err(vec![format!(
                "pod {}/{} is not among the scenario's objects",
                case.namespace, case.name
            )]);
        };
        let netns = Netns::new("pod");
        let sandbox = Sandbox {
            container_id: format!("{}{:02}c0ffee{}", case.name, i, std::process::id()),
            netns: netns.path().to_path_buf(),
            namespace: case.namespace.clone(),
            name: case.name.clone(),
            uid: obj["metadata"]["uid"].as_str().unwrap_or("").to_owned(),
        };
        pods.push(PodRun {
            case,
            sandbox,
            netns,
            added: false,
        });
    }

    for p in &mut pods {
        let key = format!("{}/{}", p.case.namespace, p.case.name);
        let annotation = api
            .get("pods", &p.case.namespace, &p.case.name)
            .and_then(|o| {
                o["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "(no networks annotation)".into());
        r.step(&format!(
            "ADD pod {key} (sandbox {}, networks: {})",
            p.netns.name(),
            annotation.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
        // What `plexus explain` says ADD will do, asked before it does it.
        let explained = explain(plexus, &runtime, &p.sandbox);
        let out = runtime.add(&p.sandbox);
        p.added = out.ok;
        match &explained {
            Err(e) => r.fail(format!("plexus explain {key}: {e}")),
            Ok(doc) => {
                for f in explained_as_added(doc, &out, &p.sandbox) {
                    r.fail(format!("plexus explain {key}: {f}"));
                }
            }
        }
        match (&p.case.error, out.ok) {
            (None, true) => {
                let expect = p.case.expect.as_ref();
                show_pod(&r, &p.netns);
                if mode == Mode::Demo {
                    println!(
                        "{}",
                        indent(&annotations_yaml(
                            &api,
                            &kubeconfig,
                            &p.case.namespace,
                            &p.case.name
                        ))
                    );
                }
                if let Some(e) = expect {
                    for f in check_pod(&p.netns, e, &api, &p.case.namespace, &p.case.name) {
                        r.fail(format!("pod {key} after ADD: {f}"));
                    }
                }
            }
            (None, false) => r.fail(format!("ADD of pod {key} failed: {}", out.error_text())),
            (Some(_), true) => r.fail(format!("ADD of pod {key} succeeded but must fail")),
            (Some(want), false) => {
                r.say(&format!("    failed as expected: {}", out.error_text()));
                for f in check_error(&out, want) {
                    r.fail(format!("pod {key}: {f}"));
                }
                let left = other_links(&p.netns);
                if !left.is_empty() {
                    r.fail(format!(
                        "pod {key}: a failed ADD left interfaces {left:?} in the pod"
                    ));
                }
            }
        }
    }

    r.step(&format!(
        "CHECK of every added pod ({})",
        pods.iter().filter(|p| p.added).count()
    ));
    for p in pods.iter().filter(|p| p.added) {
        let out = runtime.check(&p.sandbox);
        if !out.ok {
            r.fail(format!(
                "CHECK of pod {}/{} failed: {}",
                p.case.namespace,
                p.case.name,
                out.error_text()
            ));
        }
    }
    for p in pods.iter().rev() {
        let key = format!("{}/{}", p.case.namespace, p.case.name);
        r.step(&format!("DEL pod {key}"));
        let out = runtime.del(&p.sandbox);
        if !out.ok {
            r.fail(format!("DEL of pod {key} failed: {}", out.error_text()));
        }
        let left = other_links(&p.netns);
        if !left.is_empty() {
            r.fail(format!("pod {key} after DEL still has {left:?}"));
        }
    }
    r.step("the node after DEL of every pod: nothing may be left");
    let leases = leftover_leases();
    let journal = crate::runtime::state_leftovers(Path::new(STATE_DIR));
    let cache = Runtime::cache_entries();
    r.say(&format!(
        "    interfaces in pods: {}; host-local leases: {}; plexus journal files: {}; cached results: {}",
        pods.iter().map(|p| other_links(&p.netns).len()).sum::<usize>(),
        leases.len(),
        journal.len(),
        cache.len()
    ));
    if !leases.is_empty() {
        r.fail(format!("host-local leases left: {leases:?}"));
    }
    if !journal.is_empty() {
        r.fail(format!("plexus state left in {STATE_DIR}: {journal:?}"));
    }
    if !cache.is_empty() {
        r.fail(format!("cached results left: {cache:?}"));
    }
    if let Some(dir) = kubelet.as_ref().map(|(_, d)| d.join("cni")) {
        let copies = list(&dir);
        if !copies.is_empty() {
            r.fail(format!(
                "device-information copies left in {}: {copies:?}",
                dir.display()
            ));
        }
    }
    r.step(&format!(
        "deleting the {} pod sandboxes (network namespaces)",
        pods.len()
    ));
    drop(pods);
    drop(kubelet);
    if r.failures.is_empty() {
        r.say("Done: every pod is as the scenario expects, and nothing is left.");
        Ok(())
    } else {
        Err(r.failures)
    }
}

/// Starts the PodResources stand-in and writes the device-information files; points the node
/// config at both. Returns the server and the device-information directory.
/// `plexus explain` of the sandbox's pod, as JSON, with the runtime's node config, CNI_PATH
/// and container ID (it names the device-information copies).
fn explain(plexus: &Path, runtime: &Runtime, sb: &Sandbox) -> Result<Value, String> {
    let mut cmd = Command::new(plexus);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .arg("explain")
        .arg(format!("{}/{}", sb.namespace, sb.name))
        .arg("--conf")
        .arg(runtime.conflist_path())
        .arg("--cni-path")
        .arg(format!(
            "{}:{}",
            runtime.bin_dir().display(),
            crate::runtime::DEBIAN_PLUGINS
        ))
        .arg("--container-id")
        .arg(&sb.container_id)
        .args(["-o", "json"]);
    let out = output_with_timeout(&mut cmd, b"", COMMAND_TIMEOUT)?;
    let doc: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "stdout is not JSON ({e}): {}; stderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let problems = doc["problems"].as_array().map_or(0, Vec::len);
    if out.status.code() != Some(u8::from(problems > 0).into()) {
        return Err(format!(
            "exit status {:?} with {problems} problem(s)",
            out.status.code()
        ));
    }
    Ok(doc)
}

/// What `plexus explain` said before the ADD against what the ADD did: after a successful ADD,
/// no problem, and the journal's attachments are the plan's (networks, interface names, exact
/// config bytes, runtime values) in its order; after a failed one, ADD's error is among the
/// problems, or (a failure only running the plugins can show) names a plugin of the plan.
fn explained_as_added(doc: &Value, add: &Outcome, sb: &Sandbox) -> Vec<String> {
    let mut failures = vec![];
    let problems: Vec<&str> = doc["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let plan = doc["attachments"].as_array().cloned().unwrap_or_default();
    if !add.ok {
        let msg = add.json()["msg"].as_str().unwrap_or_default().to_owned();
        let named_plugin = plan.iter().any(|a| {
            a["plugins"].as_array().into_iter().flatten().any(|p| {
                msg.starts_with(&format!(
                    "delegate plugin {:?} for network {:?}",
                    p["type"].as_str().unwrap_or(""),
                    a["network"].as_str().unwrap_or("")
                ))
            })
        });
        let explained = problems.contains(&msg.as_str()) || (problems.is_empty() && named_plugin);
        if !explained {
            failures.push(format!(
                "ADD failed with {msg:?}, which is not among its problems {problems:?}"
            ));
        }
        return failures;
    }
    if !problems.is_empty() {
        failures.push(format!(
            "ADD succeeded, but it listed problems {problems:?}"
        ));
    }
    let path = Path::new(STATE_DIR).join(format!("{}:eth0.json", sb.container_id));
    let journal: Value = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(j) => j,
        Err(e) => {
            failures.push(format!("reading the journal {}: {e}", path.display()));
            return failures;
        }
    };
    let done = journal["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if done.len() != plan.len() {
        failures.push(format!(
            "it planned {} attachments, ADD made {}",
            plan.len(),
            done.len()
        ));
    }
    for (i, (want, got)) in plan.iter().zip(&done).enumerate() {
        for (ours, theirs) in [
            ("network", "network"),
            ("interface", "ifname"),
            ("config", "config"),
            ("runtimeConfig", "runtimeConfig"),
        ] {
            if want[ours] != got[theirs] {
                failures.push(format!(
                    "attachment {i}: it said {ours} {}, ADD's journal has {}",
                    want[ours], got[theirs]
                ));
            }
        }
    }
    failures
}

/// Creates the scenario's node uplinks (a veth each, peer `<name>p`) that do not exist yet.
pub(crate) fn make_uplinks(sc: &Scenario) {
    let existing: Vec<String> = host_links().into_iter().map(|l| l.name).collect();
    for u in &sc.uplinks {
        if !existing.contains(u) {
            veth_pair(u, &format!("{u}p"));
        }
    }
}

/// Starts the API stand-in with the scenario's objects and inline manifests loaded, and
/// writes its kubeconfig to `kubeconfig`.
pub(crate) fn start_api(
    sc: &Scenario,
    repo: &Path,
    kubeconfig: &Path,
) -> Result<ApiServer, Vec<String>> {
    let api = ApiServer::start();
    api.write_kubeconfig(kubeconfig);
    for o in &sc.objects {
        api.load_yaml_path(&repo.join(o))
            .map_err(|e| vec![format!("loading {o}: {e}")])?;
    }
    if let Some(text) = &sc.manifests {
        api.load_yaml_str(text)
            .map_err(|e| vec![format!("loading the inline manifests: {e}")])?;
    }
    Ok(api)
}

pub(crate) fn start_kubelet(
    k: &Kubelet,
    work: &Path,
    plugin: &mut Value,
) -> Result<(crate::podresources::PodResourcesServer, PathBuf), String> {
    let socket = work.join("kubelet.sock");
    let server = crate::podresources::PodResourcesServer::try_start(&socket)?;
    server.load(&json!({"pods": k.pods}))?;
    let devinfo = work.join("devinfo");
    let dp = devinfo.join("dp");
    std::fs::create_dir_all(&dp).map_err(|e| e.to_string())?;
    for (resource, devices) in &k.device_info {
        for (id, info) in devices {
            let file = dp.join(format!("{}-{id}-device.json", resource.replace('/', "-")));
            std::fs::write(&file, info.to_string()).map_err(|e| e.to_string())?;
        }
    }
    plugin["podResourcesSocket"] = json!(socket);
    plugin["deviceInfoDir"] = json!(devinfo);
    Ok((server, devinfo))
}

pub(crate) fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints a pod's interfaces, addresses and routes.
pub(crate) fn show_pod(r: &Run, netns: &Netns) {
    if r.mode != Mode::Demo {
        return;
    }
    for l in netns.links().iter().filter(|l| l.name != "lo") {
        let addrs: Vec<&str> = l
            .addrs
            .iter()
            .map(String::as_str)
            .filter(|a| !a.starts_with("fe80"))
            .collect();
        println!(
            "    {:<6} {:<9} {}  {}",
            l.name,
            l.kind.as_deref().unwrap_or("-"),
            l.mac,
            addrs.join(" ")
        );
    }
    for route in netns.routes(4) {
        if route["dst"] == "default" {
            println!(
                "    default via {} dev {}",
                route["gateway"].as_str().unwrap_or("?"),
                route["dev"].as_str().unwrap_or("?")
            );
        }
    }
}

/// The pod's annotations as `kubectl get pod -o yaml` prints them (kubectl when installed,
/// else the same object read from the stand-in).
pub(crate) fn annotations_yaml(
    api: &ApiServer,
    kubeconfig: &Path,
    namespace: &str,
    name: &str,
) -> String {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["get", "pod", "-n", namespace, name, "-o", "yaml"]);
    if let Ok(out) = output_with_timeout(&mut cmd, b"", COMMAND_TIMEOUT)
        && out.status.success()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        let mut shown =
            format!("$ kubectl get pod -n {namespace} {name} -o yaml   (its annotations)\n");
        let mut inside = false;
        for line in text.lines() {
            if line == "  annotations:" {
                inside = true;
            } else if inside && !line.starts_with("    ") {
                break;
            }
            if inside {
                let _ = writeln!(shown, "{line}");
            }
        }
        return shown;
    }
    let obj = api.get("pods", namespace, name).unwrap_or(Value::Null);
    let ann = json!({"metadata": {"annotations": obj["metadata"]["annotations"]}});
    format!(
        "(kubectl not installed; the stand-in's object)\n{}",
        serde_yaml::to_string(&ann).unwrap_or_default()
    )
}

/// The pod's interfaces other than `lo`.
pub(crate) fn other_links(netns: &Netns) -> Vec<String> {
    netns
        .links()
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n != "lo")
        .collect()
}

/// What is wrong with the pod after ADD.
pub(crate) fn check_pod(
    netns: &Netns,
    e: &Expect,
    api: &ApiServer,
    namespace: &str,
    name: &str,
) -> Vec<String> {
    let mut bad = vec![];
    let links = netns.links();
    if let Some(want) = &e.links {
        let mut want = want.clone();
        want.sort();
        let mut got: Vec<String> = links.iter().map(|l| l.name.clone()).collect();
        got.sort();
        if got != want {
            bad.push(format!("interfaces {got:?}, expected {want:?}"));
        }
    }
    for (ifname, cidrs) in &e.addresses {
        let Some(l) = links.iter().find(|l| &l.name == ifname) else {
            bad.push(format!("no interface {ifname}"));
            continue;
        };
        for c in cidrs {
            if !l
                .addrs
                .iter()
                .any(|a| cidr_contains(c, a.split('/').next().unwrap_or("")))
            {
                bad.push(format!("{ifname} has {:?}, none in {c}", l.addrs));
            }
        }
    }
    for (ifname, mac) in &e.macs {
        match links.iter().find(|l| &l.name == ifname) {
            Some(l) if l.mac.eq_ignore_ascii_case(mac) => {}
            Some(l) => bad.push(format!("{ifname} has MAC {}, expected {mac}", l.mac)),
            None => bad.push(format!("no interface {ifname}")),
        }
    }
    if let Some(want) = &e.default_route {
        let defaults: Vec<Value> = netns
            .routes(4)
            .into_iter()
            .filter(|r| r["dst"] == "default")
            .collect();
        let ok = defaults.len() == 1
            && defaults[0]["dev"] == want.dev.as_str()
            && defaults[0]["gateway"] == want.via.as_str();
        if !ok {
            bad.push(format!(
                "default routes {defaults:?}, expected exactly one via {} dev {}",
                want.via, want.dev
            ));
        }
    }
    if !e.status.is_empty() {
        let text = api.get("pods", namespace, name).and_then(|o| {
            o["metadata"]["annotations"][NETWORK_STATUS]
                .as_str()
                .map(str::to_owned)
        });
        let entries: Vec<Value> = text
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        if entries.len() != e.status.len() {
            bad.push(format!(
                "network-status has {} entries, expected {}: {}",
                entries.len(),
                e.status.len(),
                text.unwrap_or_else(|| "(none)".into())
            ));
        }
        for (i, (want, got)) in e.status.iter().zip(&entries).enumerate() {
            for (k, v) in want {
                let matches = if k == "ips" {
                    let got_ips: Vec<&str> = got["ips"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    v.as_array().is_some_and(|cidrs| {
                        cidrs
                            .iter()
                            .filter_map(Value::as_str)
                            .all(|c| got_ips.iter().any(|ip| cidr_contains(c, ip)))
                    })
                } else {
                    &got[k] == v
                };
                if !matches {
                    bad.push(format!(
                        "network-status entry {i}: {k} is {}, expected {v}",
                        got[k]
                    ));
                }
            }
        }
    }
    bad
}

/// What is wrong with a failed ADD's error.
fn check_error(out: &Outcome, want: &ExpectError) -> Vec<String> {
    let mut bad = vec![];
    let v = out.json();
    if let Some(code) = want.code
        && v["code"].as_u64() != Some(code)
    {
        bad.push(format!("error code {}, expected {code}", v["code"]));
    }
    let text = format!(
        "{} {}",
        v["msg"].as_str().unwrap_or(""),
        v["details"].as_str().unwrap_or("")
    );
    for c in &want.contains {
        if !text.contains(c.as_str()) {
            bad.push(format!("the error {text:?} does not say {c:?}"));
        }
    }
    bad
}

/// Whether CIDR `cidr` (`a/len`) holds address `ip`.
pub fn cidr_contains(cidr: &str, ip: &str) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return cidr == ip;
    };
    let (Ok(net), Ok(ip), Ok(len)) = (
        net.parse::<IpAddr>(),
        ip.parse::<IpAddr>(),
        len.parse::<u32>(),
    ) else {
        return false;
    };
    let (n, a, bits) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => (u128::from(u32::from(n)), u128::from(u32::from(a)), 32),
        (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
        _ => return false,
    };
    if len > bits {
        return false;
    }
    let shift = bits - len;
    len == 0 || (n >> shift) == (a >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_containment() {
        assert!(cidr_contains("10.70.0.0/16", "10.70.3.4"));
        assert!(!cidr_contains("10.70.0.0/16", "10.71.0.1"));
        assert!(cidr_contains("10.75.0.5/32", "10.75.0.5"));
        assert!(!cidr_contains("10.75.0.5/32", "10.75.0.6"));
        assert!(cidr_contains("fd00::/64", "fd00::2"));
        assert!(!cidr_contains("fd00::/64", "10.0.0.1"));
        assert!(cidr_contains("0.0.0.0/0", "1.2.3.4"));
        assert!(!cidr_contains("10.0.0.0/33", "10.0.0.1"));
        assert!(!cidr_contains("nonsense/8", "10.0.0.1"));
    }

    #[test]
    fn the_demo_shows_every_example_pod() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let demo = load(&repo.join("conformance/scenarios/demo.yaml")).unwrap();
        let shown: Vec<&str> = demo.pods.iter().map(|p| p.name.as_str()).collect();
        for f in files(&repo.join("examples/pods")) {
            let text = std::fs::read_to_string(&f).unwrap();
            let pod: Value = serde_yaml::from_str(&text).unwrap();
            let name = pod["metadata"]["name"].as_str().unwrap();
            assert!(
                shown.contains(&name),
                "{}: pod {name} is not in the demo",
                f.display()
            );
            let rel = f.strip_prefix(&repo).unwrap().display().to_string();
            assert!(demo.objects.contains(&rel), "the demo does not load {rel}");
        }
    }

    #[test]
    fn every_scenario_file_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let files = files(&dir);
        assert!(!files.is_empty(), "no scenarios in {}", dir.display());
        for f in files {
            let sc = load(&f).unwrap_or_else(|e| panic!("{e}"));
            assert!(!sc.pods.is_empty(), "{}: no pods", f.display());
            for p in &sc.pods {
                assert!(
                    p.expect.is_none() || p.error.is_none(),
                    "{}: pod {} expects both success and failure",
                    f.display(),
                    p.name
                );
            }
        }
    }
}
