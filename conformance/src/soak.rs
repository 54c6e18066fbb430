//! The soak: many pod ADD/DEL cycles through plexus with a failure injected at a random
//! position in many of them, counting everything that could leak.
//!
//! Inside the sandbox ([`crate::sandbox`]), a node like the integration tests' one: the API
//! stand-in over HTTPS, a cluster network (bridge + host-local, from a conflist file) and two
//! NADs (macvlan on a veth, bridge), so a healthy pod has three attachments made by Debian's
//! real plugins. Each cycle creates a pod (its own network namespace and container ID), picks
//! a fault with a seeded generator, runs ADD and the DEL a runtime sends (again when plexus was
//! killed), and then checks that nothing is left:
//!
//! - interfaces: the pod holds only `lo`, and the sandbox's root namespace holds exactly the
//!   links it held after the first cycle (the bridges stay by design; a leaked veth end would
//!   show);
//! - host-local leases: none, for any network;
//! - plexus's state directory: no file at all (journal, progress, lock, rollback marker, temp);
//! - processes: none left that runs plexus or a fake plugin;
//! - descriptors: those of this process (which hosts the API stand-in), at the end against
//!   after the first cycle;
//! - memory: plexus's own peak RSS (`VmHWM`) of every ADD, sampled as [`crate::bench::proc`]
//!   does, first tenth against last tenth.
//!
//! The faults (weights in `Fault::pick`): none; a NAD whose conflist fails after its bridge
//! and lease exist, at a random position among the pod's networks (rollback); SIGKILL of
//! plexus at a random stop point of ADD (its rollback included) or of DEL
//! (`PLEXUS_DEBUG_STOP_AT`, so the plexus binary must be a debug build); the API answering
//! 500, 429, 401 or 403 to the next one to three requests; the network-status write failing
//! (rollback after every attachment). An outcome other than the contract (ADD succeeding or
//! failing with a CNI error, killed exactly when asked, every DEL after the kill succeeding)
//! is recorded as unexpected.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::apiserver::ApiServer;
use crate::bench::proc;
use crate::netns::{Netns, host_links, ip, veth_pair};
use crate::plugins::{SYSTEM_PLUGINS_DIR, fixtures_dir};

/// The stop point variable of plexus's debug builds.
const STOP_ENV: &str = "PLEXUS_DEBUG_STOP_AT";
/// host-local's lease directory (a tmpfs inside the sandbox).
const LEASES: &str = "/var/lib/cni/networks";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many ADD/DEL cycles.
    pub cycles: usize,
    /// Seed of the fault generator: the same seed gives the same faults.
    pub seed: u64,
    /// The plexus binary (a debug build: the SIGKILL faults need its stop points).
    pub plexus: PathBuf,
    /// Print one line per cycle.
    pub verbose: bool,
}

/// What was found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Cycles run.
    pub cycles: usize,
    /// How many cycles got each fault.
    pub faults: BTreeMap<String, usize>,
    /// ADDs that succeeded, failed with a CNI error, were killed.
    pub adds_ok: usize,
    /// See [`Report::adds_ok`].
    pub adds_failed: usize,
    /// See [`Report::adds_ok`].
    pub adds_killed: usize,
    /// Interfaces left in pods or the root namespace, one entry per cycle and place.
    pub leaked_interfaces: Vec<String>,
    /// Leases left, `cycle: network/ip`.
    pub leaked_leases: Vec<String>,
    /// Files left in the state directory, `cycle: name`.
    pub leaked_files: Vec<String>,
    /// Processes of plexus or a fake plugin still running at the end.
    pub stray_processes: Vec<String>,
    /// Open descriptors of this process after the first cycle and at the end.
    pub fds: (usize, usize),
    /// plexus's peak RSS of every completed ADD, KiB, in order.
    pub add_rss_kib: Vec<u64>,
    /// Outcomes other than the contract.
    pub unexpected: Vec<String>,
    /// Wall time of the whole soak.
    pub elapsed: Duration,
}

impl Report {
    /// Median of the first and of the last tenth of [`Report::add_rss_kib`], and the maximum.
    pub fn rss_first_last_max(&self) -> (u64, u64, u64) {
        let v = &self.add_rss_kib;
        if v.is_empty() {
            return (0, 0, 0);
        }
        let tenth = (v.len() / 10).max(1);
        let median = |s: &[u64]| {
            let mut s = s.to_vec();
            s.sort_unstable();
            s[s.len() / 2]
        };
        (
            median(&v[..tenth]),
            median(&v[v.len() - tenth..]),
            v.iter().copied().max().unwrap_or(0),
        )
    }

    /// Zero leaks of every kind, no stray process, no unexpected outcome, descriptors flat.
    pub fn clean(&self) -> bool {
        self.leaked_interfaces.is_empty()
            && self.leaked_leases.is_empty()
            && self.leaked_files.is_empty()
            && self.stray_processes.is_empty()
            && self.unexpected.is_empty()
            && self.fds.1 <= self.fds.0
    }

    /// The report as text (what the `plexus-soak` command prints).
    pub fn text(&self) -> String {
        let (first, last, max) = self.rss_first_last_max();
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let list = |v: &[String]| {
            if v.is_empty() {
                "0".to_owned()
            } else {
                format!("{}: {}", v.len(), v.join("; "))
            }
        };
        format!(
            "cycles: {}\nfaults: {}\nADD: {} succeeded, {} failed cleanly, {} killed\n\
             leaked interfaces: {}\nleaked leases: {}\nleaked state files: {}\n\
             stray processes: {}\nopen descriptors: {} after the first cycle, {} at the end\n\
             plexus ADD peak RSS: median {} KiB in the first tenth, {} KiB in the last, max {} KiB\n\
             unexpected outcomes: {}\nelapsed: {:.1}s",
            self.cycles,
            faults.join(", "),
            self.adds_ok,
            self.adds_failed,
            self.adds_killed,
            list(&self.leaked_interfaces),
            list(&self.leaked_leases),
            list(&self.leaked_files),
            list(&self.stray_processes),
            self.fds.0,
            self.fds.1,
            first,
            last,
            max,
            list(&self.unexpected),
            self.elapsed.as_secs_f64()
        )
    }
}

/// xorshift64*: small, seeded, good enough to spread faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One cycle's fault.
#[derive(Debug, Clone)]
enum Fault {
    None,
    /// The failing NAD at this position of the annotation.
    Delegate(usize),
    /// SIGKILL of ADD at this stop point (the failing NAD is selected for rollback points).
    KillAdd(String),
    /// SIGKILL of DEL at this stop point.
    KillDel(String),
    /// The next `n` API requests answer `code`.
    Api(u32, u16),
    /// Every network-status write fails.
    StatusWrite,
}

impl Fault {
    fn pick(rng: &mut Rng) -> Fault {
        const ADD: &[&str] = &[
            "journal-save:tmp-written",
            "add:planned",
            "add:0:delegate-done",
            "add:0:recorded",
            "add:1:delegate-done",
            "add:1:recorded",
            "add:2:delegate-done",
            "add:2:recorded",
            "add:status-written",
            "add:done",
            "add:teardown:3",
            "add:teardown:1",
            "add:rolled-back",
            "add:marked",
        ];
        const DEL: &[&str] = &[
            "del:teardown:2",
            "del:teardown:1",
            "del:teardown:0",
            "del:torn-down",
            "journal-remove:progress-gone",
        ];
        match rng.below(20) {
            0..=5 => Fault::None,
            6..=8 => Fault::Delegate(rng.below(3)),
            9..=12 => Fault::KillAdd((*rng.pick(ADD)).to_owned()),
            13..=15 => Fault::KillDel((*rng.pick(DEL)).to_owned()),
            16..=18 => Fault::Api(1 + rng.below(3) as u32, *rng.pick(&[500, 429, 401, 403])),
            _ => Fault::StatusWrite,
        }
    }

    fn name(&self) -> String {
        match self {
            Fault::None => "none".into(),
            Fault::Delegate(_) => "failing delegate".into(),
            Fault::KillAdd(_) => "SIGKILL in ADD".into(),
            Fault::KillDel(_) => "SIGKILL in DEL".into(),
            Fault::Api(_, code) => format!("API {code}"),
            Fault::StatusWrite => "status write".into(),
        }
    }
}

/// The node: API stand-in, configs, directories.
struct Node {
    api: ApiServer,
    config: Value,
    state_dir: PathBuf,
    _work: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        veth_pair("plxsoak0", "plxsoak0p");
        // The bridges the plugins would create on first use (and keep, by design): made now, so
        // the root namespace's links are the same after every cycle.
        for bridge in ["plxs0", "plxs1", "plxs2"] {
            ip(&["link", "add", "name", bridge, "type", "bridge"]);
        }
        let work = tempfile::tempdir_in("/run/cni").expect("temp dir in /run/cni");
        let api = ApiServer::start();
        let kubeconfig = work.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig);
        let cluster = work.path().join("cluster.conflist");
        let cluster_conf = json!({"cniVersion": "1.0.0", "name": "soak-cluster", "plugins": [{
            "type": "bridge", "bridge": "plxs0", "isGateway": true,
            "ipam": {"type": "host-local", "subnet": "10.150.0.0/16",
                     "routes": [{"dst": "0.0.0.0/0"}]}}]});
        std::fs::write(&cluster, cluster_conf.to_string()).expect("cluster conflist");
        let nads = [
            json!({"cniVersion": "1.0.0", "name": "mv", "type": "macvlan", "master": "plxsoak0",
                   "mode": "bridge", "ipam": {"type": "host-local", "subnet": "10.151.0.0/16"}}),
            json!({"cniVersion": "1.0.0", "name": "br", "type": "bridge", "bridge": "plxs1",
                   "ipam": {"type": "host-local", "subnet": "10.152.0.0/16"}}),
            json!({"cniVersion": "1.0.0", "name": "bad", "plugins": [
                {"type": "bridge", "bridge": "plxs2",
                 "ipam": {"type": "host-local", "subnet": "10.153.0.0/16"}},
                {"type": "fake-fail-add"}]}),
        ];
        for conf in nads {
            api.put(json!({"apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"namespace": "default", "name": conf["name"]},
                "spec": {"config": conf.to_string()}}));
        }
        let state_dir = work.path().join("state");
        let config = json!({"cniVersion": "1.0.0", "name": "plexus", "type": "plexus",
            "kubeconfig": kubeconfig, "clusterNetwork": cluster, "cniDir": state_dir,
            "binDir": fixtures_dir(), "confDir": work.path(), "apiTimeoutSeconds": 1,
            "delegateTimeoutSeconds": 20, "logLevel": "error"});
        Node {
            api,
            config,
            state_dir,
            _work: work,
        }
    }
}

/// One plexus run: what it printed, whether it exited 0, the signal that ended it.
struct Ran {
    ok: bool,
    signal: Option<i32>,
    stdout: Vec<u8>,
    rss: Option<u64>,
}

fn plexus(
    opts: &Options,
    node: &Node,
    env: &[(&str, &str)],
    prev: Option<&Value>,
    rss: bool,
) -> Ran {
    let mut config = node.config.clone();
    if let Some(p) = prev {
        config["prevResult"] = p.clone();
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let mut vars: Vec<(&str, &str)> = vec![("PATH", &path)];
    vars.extend_from_slice(env);
    let out = proc::run(&opts.plexus, &vars, config.to_string().as_bytes(), rss);
    Ran {
        ok: out.success,
        signal: out.status.signal(),
        stdout: out.stdout,
        rss: out.peak_rss_kib,
    }
}

fn leases() -> Vec<String> {
    let mut found = Vec::new();
    for net in std::fs::read_dir(LEASES).into_iter().flatten().flatten() {
        for lease in std::fs::read_dir(net.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = lease.file_name().to_string_lossy().into_owned();
            if name.parse::<std::net::IpAddr>().is_ok() {
                found.push(format!("{}/{name}", net.file_name().to_string_lossy()));
            }
        }
    }
    found.sort();
    found
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Processes whose command line names the plexus binary or a fake plugin.
fn strays(plexus: &Path) -> Vec<String> {
    let fakes = fixtures_dir().display().to_string();
    let bin = plexus.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&fakes) || cmd.split(' ').next() == Some(bin.as_str()) {
            found.push(format!("{pid} {}", cmd.trim()));
        }
    }
    found
}

/// Runs the soak (inside the sandbox: it creates interfaces).
pub fn run(opts: &Options) -> Report {
    assert!(
        crate::sandbox::inside(),
        "the soak creates interfaces: run it in the sandbox"
    );
    let started = Instant::now();
    let node = Node::start();
    let mut rng = Rng(opts.seed.max(1));
    let mut report = Report::default();
    let mut baseline_links: Option<BTreeSet<String>> = None;
    for cycle in 0..opts.cycles {
        let fault = Fault::pick(&mut rng);
        *report.faults.entry(fault.name()).or_default() += 1;
        one_cycle(opts, &node, cycle, &fault, &mut rng, &mut report);
        let links: BTreeSet<String> = host_links().into_iter().map(|l| l.name).collect();
        match &baseline_links {
            None => {
                baseline_links = Some(links);
                report.fds.0 = open_fds();
            }
            Some(base) => {
                for extra in links.difference(base) {
                    let entry = format!(": root namespace {extra}");
                    if !report.leaked_interfaces.iter().any(|x| x.ends_with(&entry)) {
                        report
                            .leaked_interfaces
                            .push(format!("cycle {cycle}{entry}"));
                    }
                }
            }
        }
        report.cycles += 1;
    }
    report.fds.1 = open_fds();
    report.stray_processes = strays(&opts.plexus);
    report.elapsed = started.elapsed();
    report
}

fn one_cycle(
    opts: &Options,
    node: &Node,
    cycle: usize,
    fault: &Fault,
    rng: &mut Rng,
    report: &mut Report,
) {
    let pod_name = format!("soak-{cycle}");
    let container_id = format!("soak{cycle:05}c0ffee");
    let uid = format!("uid-{cycle}");
    let mut nets = vec!["mv", "br"];
    match fault {
        Fault::Delegate(at) => nets.insert(*at, "bad"),
        Fault::KillAdd(point)
            if point.contains("teardown")
                || point.contains("rolled")
                || point.contains("marked") =>
        {
            nets.push("bad")
        }
        _ => {}
    }
    node.api.put(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": "default", "name": pod_name, "uid": uid,
                     "annotations": {"k8s.v1.cni.cncf.io/networks": nets.join(",")}}}));
    let netns = Netns::new("soak");
    let netns_path = netns.path().display().to_string();
    let args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod_name};\
         K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={uid}"
    );
    let run = |command: &str, stop: Option<&str>, prev: Option<&Value>| {
        let mut env = vec![
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container_id.as_str()),
            ("CNI_NETNS", netns_path.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", SYSTEM_PLUGINS_DIR),
            ("CNI_ARGS", args.as_str()),
        ];
        if let Some(s) = stop {
            env.push((STOP_ENV, s));
        }
        plexus(opts, node, &env, prev, command == "ADD")
    };
    let mut unexpected = Vec::new();

    match fault {
        Fault::Api(n, code) => node.api.fail_next(*n, *code),
        Fault::StatusWrite => node.api.fail_next_matching("PATCH pods/status", 1000, 500),
        _ => {}
    }
    let add_stop = match fault {
        Fault::KillAdd(p) => Some(p.as_str()),
        _ => None,
    };
    let add = run("ADD", add_stop, None);
    node.api.fail_next(0, 500);
    node.api.fail_next_matching("PATCH pods/status", 0, 500);
    let mut prev = None;
    let mut killed = false;
    let outcome;
    if add.signal == Some(libc::SIGKILL) {
        outcome = "killed";
        report.adds_killed += 1;
        killed = true;
        if add_stop.is_none() {
            unexpected.push("ADD was killed without a stop point".to_owned());
        }
    } else if add.ok {
        outcome = "ok";
        report.adds_ok += 1;
        if let Some(kib) = add.rss {
            report.add_rss_kib.push(kib);
        }
        match serde_json::from_slice::<Value>(&add.stdout) {
            Ok(v) => prev = Some(v),
            Err(e) => unexpected.push(format!("ADD succeeded but printed no result: {e}")),
        }
        if add_stop.is_some() {
            unexpected.push("ADD did not stop at its stop point: is plexus a debug build?".into());
        }
    } else {
        outcome = "failed";
        report.adds_failed += 1;
        let doc: Value = serde_json::from_slice(&add.stdout).unwrap_or(Value::Null);
        if !doc["code"].is_u64() || !doc["msg"].is_string() {
            unexpected.push(format!(
                "ADD failed without a CNI error: {:?}",
                String::from_utf8_lossy(&add.stdout)
            ));
        }
        if matches!(fault, Fault::None) {
            unexpected.push(format!("ADD failed without a fault: {doc}"));
        }
    }
    if let Fault::KillDel(point) = fault {
        let del = run("DEL", Some(point), prev.as_ref());
        if del.signal == Some(libc::SIGKILL) {
            killed = true;
        } else {
            unexpected.push(format!(
                "DEL did not stop at {point}: is plexus a debug build?"
            ));
        }
    }
    // The runtime's DEL; after a kill (and now and then anyway) its retry.
    for attempt in 0..(1 + usize::from(killed || rng.below(4) == 0)) {
        let del = run("DEL", None, prev.as_ref());
        if !del.ok {
            unexpected.push(format!(
                "DEL {attempt} failed: {}",
                String::from_utf8_lossy(&del.stdout)
            ));
        }
    }
    let left: Vec<String> = netns
        .links()
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n != "lo")
        .collect();
    if !left.is_empty() {
        report
            .leaked_interfaces
            .push(format!("cycle {cycle}: pod {left:?}"));
    }
    // Each leftover is reported once, in the cycle that left it.
    for l in leases() {
        if !report
            .leaked_leases
            .iter()
            .any(|x| x.ends_with(&format!(": {l}")))
        {
            report.leaked_leases.push(format!("cycle {cycle}: {l}"));
        }
    }
    for f in crate::runtime::state_leftovers(&node.state_dir) {
        if !report
            .leaked_files
            .iter()
            .any(|x| x.ends_with(&format!(": {f}")))
        {
            report.leaked_files.push(format!("cycle {cycle}: {f}"));
        }
    }
    if opts.verbose {
        eprintln!("cycle {cycle}: {fault:?}: ADD {outcome}");
    }
    report.unexpected.extend(
        unexpected
            .into_iter()
            .map(|u| format!("cycle {cycle} ({}): {u}", fault.name())),
    );
    node.api.delete("pods", "default", &pod_name);
}
