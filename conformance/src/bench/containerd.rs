//! A pod's sandbox through containerd: RunPodSandbox + StopPodSandbox + RemovePodSandbox,
//! with plexus wrapping the cluster network against containerd running the cluster network's
//! conflist itself.
//!
//! Two containerd instances run side by side in the benchmark's sandbox
//! ([`crate::containerd`]), each with its own socket and directories and the same cluster
//! conflist (bridge + host-local, the same network name and bridge, so both sides do the same
//! kernel work): one's `conf_dir` holds plexus's conflist in front of it, as `plexus install`
//! writes it (with `io.kubernetes.cri.pod-annotations`, so containerd passes the pod's
//! annotations and plexus reads no pod), the other's only the cluster conflist. The API
//! stand-in holds the pods (for the network-status write) and NADs `net1`..`net3`.
//!
//! A round is: a pod without networks annotation on each side (the sides' order alternates,
//! A B then B A, see [`super::cycle::turn`]), then a 3-network pod (cluster network +
//! `net1`..`net3` from its annotation) through plexus. Pods run one at a time; each cycle is
//! timed from the CRI client (one connection per call, as for both sides alike). The paired
//! figure is, per round, plexus's cycle minus the direct one; medians come with their 95%
//! interval ([`super::median_ci95_ranks`]).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Stats, header, median_with_ci, row};
use crate::apiserver::ApiServer;
use crate::containerd::{self, Containerd};
use crate::cri::api::PodSandboxConfig;

/// Rounds not counted (first pods: containerd's caches, the stand-in's first connection).
const WARMUP: usize = 3;

/// One side's timed cycles.
#[derive(Debug, Default)]
pub struct Side {
    /// RunPodSandbox + StopPodSandbox + RemovePodSandbox, ms.
    pub cycle: Vec<f64>,
    /// RunPodSandbox alone, ms.
    pub run: Vec<f64>,
    /// StopPodSandbox + RemovePodSandbox, ms.
    pub teardown: Vec<f64>,
}

impl Side {
    fn stats(v: &[f64]) -> Stats {
        Stats::of(v.to_vec())
    }
}

/// What [`measure`] measured.
#[derive(Debug)]
pub struct Measured {
    /// The pod on the cluster network alone, through plexus.
    pub plexus: Side,
    /// The same pod, containerd running the cluster conflist itself.
    pub direct: Side,
    /// Per round, plexus's cycle − the direct one.
    pub paired: Vec<f64>,
    /// The 3-network pod through plexus.
    pub three: Side,
    /// Rounds timed.
    pub rounds: usize,
    /// containerd's version.
    pub version: String,
}

/// Measures `rounds` rounds (after a warm-up) with the plexus binary `binary`. Must run inside
/// the sandbox (`plexus-bench` enters it); panics when anything fails.
pub fn measure(binary: &Path, rounds: usize) -> Measured {
    let cache = binary
        .parent()
        .unwrap_or(Path::new("."))
        .join("plexus-images");
    let images = containerd::build_images(binary, &cache)
        .unwrap_or_else(|e| panic!("building the pause image: {e}"));
    let api = ApiServer::start();
    api.set_latencies(super::api_latencies());
    let cluster = json!({
        "cniVersion": "1.0.0", "name": "cluster-net",
        "plugins": [{
            "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
            "ipam": {"type": "host-local", "subnet": "10.88.0.0/16",
                     "routes": [{"dst": "0.0.0.0/0"}]}
        }, {"type": "portmap", "capabilities": {"portMappings": true}}]
    });
    for i in 1..=3 {
        api.put(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"namespace": "default", "name": format!("net{i}")},
            "spec": {"config": json!({
                "cniVersion": "1.0.0", "name": format!("net{i}"), "type": "bridge",
                "bridge": format!("br-net{i}"), "isGateway": true, "ipMasq": false,
                "ipam": {"type": "host-local", "subnet": format!("10.7{i}.0.0/24")}
            }).to_string()}
        }));
    }
    let with = Containerd::start(&[&images.pause]);
    let without = Containerd::start(&[&images.pause]);
    for c in [&with, &without] {
        fs::write(c.conf_dir.join("10-cluster.conflist"), cluster.to_string())
            .expect("the cluster conflist");
    }
    // plexus's side: the binary in bin_dir and the conflist `plexus install` would write.
    fs::copy(binary, with.bin_dir.join("plexus")).expect("copy plexus to bin_dir");
    let kubeconfig = with.dir().join("plexus.kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    let plexus_conf = json!({
        "cniVersion": "1.0.0", "name": "plexus-cni-network",
        "plugins": [{
            "type": "plexus",
            "kubeconfig": kubeconfig,
            "clusterNetwork": with.conf_dir.join("10-cluster.conflist"),
            "cniDir": with.dir().join("plexus-journal"),
            "capabilities": {"portMappings": true, "io.kubernetes.cri.pod-annotations": true}
        }]
    });
    fs::write(
        with.conf_dir.join("00-plexus.conflist"),
        plexus_conf.to_string(),
    )
    .expect("the plexus conflist");
    with.wait_for_network("plexus-cni-network", Duration::from_secs(30));
    without.wait_for_network("cluster-net", Duration::from_secs(30));
    let version = with
        .cri()
        .version()
        .map(|v| format!("{} {}", v.runtime_name, v.runtime_version))
        .unwrap_or_default();

    let pod = |c: &Containerd, name: &str, networks: &str| -> PodSandboxConfig {
        let uid = format!("uid-{name}");
        let mut annotations = vec![];
        if !networks.is_empty() {
            annotations.push(("k8s.v1.cni.cncf.io/networks", networks));
        }
        let map: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        api.put(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "default", "name": name, "uid": uid, "annotations": map},
            "spec": {"containers": [{"name": "app", "image": "app"}]}
        }));
        containerd::pod_config(&c.log_dir, "default", name, &uid, &annotations, false)
    };
    let plain_plexus = pod(&with, "bench-plexus", "");
    let plain_direct = pod(&without, "bench-direct", "");
    let three = pod(&with, "bench-three", "net1, net2, net3");

    let mut m = Measured {
        plexus: Side::default(),
        direct: Side::default(),
        paired: vec![],
        three: Side::default(),
        rounds,
        version,
    };
    for i in 0..WARMUP + rounds {
        let timed = i >= WARMUP;
        let mut plain = [0.0; 2];
        for side in super::cycle::turn(i) {
            let (c, config, into) = if side == 0 {
                (&with, &plain_plexus, &mut m.plexus)
            } else {
                (&without, &plain_direct, &mut m.direct)
            };
            plain[side] = cycle(c, config, timed.then_some(into));
        }
        cycle(&with, &three, timed.then_some(&mut m.three));
        if timed {
            m.paired.push(plain[0] - plain[1]);
        }
    }
    m
}

/// One RunPodSandbox + StopPodSandbox + RemovePodSandbox; its total in ms, recorded in `into`.
fn cycle(c: &Containerd, config: &PodSandboxConfig, into: Option<&mut Side>) -> f64 {
    let cri = c.cri();
    let t0 = Instant::now();
    let id = cri
        .run_pod_sandbox(config)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
    let t1 = Instant::now();
    cri.stop_pod_sandbox(&id)
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
    cri.remove_pod_sandbox(&id)
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));
    let t2 = Instant::now();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let total = ms(t2 - t0);
    if let Some(s) = into {
        s.cycle.push(total);
        s.run.push(ms(t1 - t0));
        s.teardown.push(ms(t2 - t1));
    }
    total
}

/// Prints the figures as markdown tables.
pub fn report(m: &Measured) {
    println!(
        "containerd ({}), runc, pause image; pods one at a time; {} rounds (+{WARMUP} warm-up)\n",
        m.version, m.rounds
    );
    header("RunPodSandbox + StopPodSandbox + RemovePodSandbox");
    row(
        "cluster network, plexus wrapping it",
        &Side::stats(&m.plexus.cycle),
    );
    row(
        "cluster network, containerd alone",
        &Side::stats(&m.direct.cycle),
    );
    row("3 networks + cluster, plexus", &Side::stats(&m.three.cycle));
    println!();
    header("of which RunPodSandbox");
    row(
        "cluster network, plexus wrapping it",
        &Side::stats(&m.plexus.run),
    );
    row(
        "cluster network, containerd alone",
        &Side::stats(&m.direct.run),
    );
    row("3 networks + cluster, plexus", &Side::stats(&m.three.run));
    println!();
    let p = Side::stats(&m.plexus.cycle);
    let d = Side::stats(&m.direct.cycle);
    let t = Side::stats(&m.three.cycle);
    println!("| pod cycle (median, 95% CI) | |\n|---|---|");
    println!("| plexus, cluster network | {} |", median_with_ci(&p));
    println!("| containerd alone | {} |", median_with_ci(&d));
    println!(
        "| plexus's overhead (median of paired rounds) | {} |",
        median_with_ci(&Stats::of(m.paired.clone()))
    );
    println!("| plexus, 3 networks + cluster | {} |", median_with_ci(&t));
}
