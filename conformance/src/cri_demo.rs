//! The demo through containerd: a scenario's pods made through the CRI, as a kubelet makes
//! them (`plexus-demo --containerd`, `conformance/demo.sh --containerd`).
//!
//! The node is the scenario's (uplinks, API stand-in with its NADs and pods, the kubelet's
//! PodResources stand-in, fake plugins, confDir), with containerd ([`crate::containerd`]) in
//! place of the rig's libcni stand-in: its `conf_dir` holds the cluster conflist and plexus's
//! conflist in front of it (as `plexus install` writes it, with the pod-annotations
//! capability), its `bin_dir` the Debian plugins, the scenario's fakes and plexus. Each pod
//! is a RunPodSandbox with the pod's metadata and annotations from the stand-in; the demo
//! prints the interfaces containerd's pod netns holds and the network-status annotation,
//! checks them against the scenario's expectations (failing pods must fail RunPodSandbox with
//! the texts the scenario expects in the error),
//! then stops and removes every sandbox and checks that nothing is left (interfaces,
//! host-local leases, plexus's journal, libcni's cached results).
//!
//! Kept simple: no `plexus explain` and no CHECK step (containerd 1.6 never calls CHECK).

use std::path::Path;

use serde_json::{Value, json};

use crate::containerd::{self, Containerd};
use crate::netns::Netns;
use crate::runtime::{leftover_leases, list_dir};
use crate::scenario::{self, Mode, Run};

/// plexus's journal directory (its default, a tmpfs in the sandbox).
const STATE_DIR: &str = scenario::STATE_DIR;
/// libcni's result cache (containerd keeps the default `/var/lib/cni`, a tmpfs here).
const RESULTS: &str = "/var/lib/cni/results";

/// Runs scenario `path` through containerd with the plexus binary `plexus` (inside the
/// sandbox). Returns every failure.
pub fn run(path: &Path, repo: &Path, plexus: &Path) -> Result<(), Vec<String>> {
    let sc = scenario::load(path).map_err(|e| vec![e])?;
    let mut r = Run {
        mode: Mode::Demo,
        step: 0,
        steps: 4 + sc.pods.len(),
        failures: vec![],
    };
    r.say(&format!(
        "Scenario {} through containerd: {}",
        path.display(),
        sc.description
    ));
    r.step("images (plexus, pause) built offline with buildah; containerd started");
    let cache = plexus
        .parent()
        .unwrap_or(Path::new("."))
        .join("plexus-images");
    let images = containerd::build_images(plexus, &cache).map_err(|e| vec![e])?;
    let ctd = Containerd::start(&[&images.pause]);
    let version = ctd
        .cri()
        .version()
        .map(|v| {
            format!(
                "{} {} (CRI {})",
                v.runtime_name, v.runtime_version, v.runtime_api_version
            )
        })
        .unwrap_or_default();
    r.say(&format!(
        "    {version}, socket {}, CNI conf_dir {}, bin_dir {}",
        ctd.socket.display(),
        ctd.conf_dir.display(),
        ctd.bin_dir.display()
    ));
    scenario::make_uplinks(&sc);

    r.step("Kubernetes API stand-in over HTTPS, with the scenario's NADs and pods");
    let work = ctd.dir().to_path_buf();
    let kubeconfig = work.join("plexus.kubeconfig");
    let api = scenario::start_api(&sc, repo, &kubeconfig)?;

    r.step("the node's CNI config: the cluster network, plexus's conflist in front of it");
    let cluster_file = ctd.conf_dir.join("10-cluster.conflist");
    let write = |p: &Path, v: &Value| {
        std::fs::write(p, serde_json::to_string_pretty(v).unwrap_or_default())
            .map_err(|e| vec![format!("{}: {e}", p.display())])
    };
    write(&cluster_file, &sc.cluster)?;
    let conf_dir = work.join("multus.d");
    std::fs::create_dir_all(&conf_dir).map_err(|e| vec![e.to_string()])?;
    if let Some(d) = &sc.conf_dir {
        for f in std::fs::read_dir(repo.join(d)).map_err(|e| vec![format!("{d}: {e}")])? {
            let f = f.map_err(|e| vec![e.to_string()])?;
            std::fs::copy(f.path(), conf_dir.join(f.file_name()))
                .map_err(|e| vec![e.to_string()])?;
        }
    }
    std::fs::copy(plexus, ctd.bin_dir.join("plexus")).map_err(|e| vec![e.to_string()])?;
    for (name, fake) in &sc.plugins {
        let fixtures = crate::plugins::fixtures_dir();
        for (link, target) in [(name.as_str(), fake.as_str()), ("common.sh", "common.sh")] {
            let at = ctd.bin_dir.join(link);
            let _ = std::fs::remove_file(&at);
            std::fs::copy(fixtures.join(target), &at)
                .map_err(|e| vec![format!("plugin {name}: {e}")])?;
        }
    }
    let mut plugin = json!({
        "type": "plexus",
        "kubeconfig": kubeconfig,
        "clusterNetwork": cluster_file,
        "confDir": conf_dir,
        "cniDir": STATE_DIR,
        "capabilities": {"io.kubernetes.cri.pod-annotations": true},
    });
    let kubelet = match &sc.kubelet {
        Some(k) => Some(scenario::start_kubelet(k, &work, &mut plugin).map_err(|e| vec![e])?),
        None => None,
    };
    for (k, v) in &sc.node {
        plugin[k] = v.clone();
    }
    let conflist = json!({"cniVersion": "1.0.0", "name": "plexus-net", "plugins": [plugin]});
    write(&ctd.conf_dir.join("00-plexus.conflist"), &conflist)?;
    ctd.wait_for_network("plexus-net", std::time::Duration::from_secs(30));
    r.say(&scenario::indent(
        &serde_json::to_string_pretty(&conflist).unwrap_or_default(),
    ));

    let mut sandboxes = vec![];
    for case in &sc.pods {
        let key = format!("{}/{}", case.namespace, case.name);
        let Some(obj) = api.get("pods", &case.namespace, &case.name) else {
            return Err(vec![format!(
                "pod {key} is not among the scenario's objects"
            )]);
        };
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let annotations: Vec<(String, String)> = obj["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        let pairs: Vec<(&str, &str)> = annotations
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        r.step(&format!("RunPodSandbox {key}"));
        let config = containerd::pod_config(
            &ctd.log_dir,
            &case.namespace,
            &case.name,
            &uid,
            &pairs,
            false,
        );
        match (ctd.cri().run_pod_sandbox(&config), &case.error) {
            (Ok(id), None) => {
                let Some(netns) = containerd::sandbox_netns(ctd.cri(), &id) else {
                    r.fail(format!("pod {key}: containerd names no netns"));
                    continue;
                };
                let ns = Netns::existing(&netns);
                r.say(&format!(
                    "    sandbox {}, netns {netns}",
                    id.get(..12).unwrap_or(&id)
                ));
                scenario::show_pod(&r, &ns);
                println!(
                    "{}",
                    scenario::indent(&scenario::annotations_yaml(
                        &api,
                        &kubeconfig,
                        &case.namespace,
                        &case.name
                    ))
                );
                if let Some(e) = &case.expect {
                    for f in scenario::check_pod(&ns, e, &api, &case.namespace, &case.name) {
                        r.fail(format!("pod {key}: {f}"));
                    }
                }
                sandboxes.push((key, id));
            }
            (Err(e), Some(want)) => {
                r.say(&format!("    failed as expected: {}", e.message()));
                // containerd's message carries plexus's `msg` and `details` (its CNI error
                // code does not reach the CRI).
                for c in &want.contains {
                    if !e.message().contains(c.as_str()) {
                        r.fail(format!("pod {key}: the error does not say {c:?}"));
                    }
                }
            }
            (Ok(id), Some(_)) => {
                r.fail(format!("RunPodSandbox {key} succeeded but must fail"));
                sandboxes.push((key, id));
            }
            (Err(e), None) => r.fail(format!("RunPodSandbox {key}: {}", e.message())),
        }
    }

    r.step("StopPodSandbox + RemovePodSandbox of every pod; nothing may be left");
    for (key, id) in sandboxes.iter().rev() {
        if let Err(e) = ctd.cri().stop_pod_sandbox(id) {
            r.fail(format!("StopPodSandbox {key}: {}", e.message()));
        }
        if let Err(e) = ctd.cri().remove_pod_sandbox(id) {
            r.fail(format!("RemovePodSandbox {key}: {}", e.message()));
        }
    }
    let netns: Vec<String> = list_dir(Path::new("/run/netns"))
        .into_iter()
        .filter(|n| n.starts_with("cni-"))
        .collect();
    let leases = leftover_leases();
    let journal: Vec<String> = list_dir(Path::new(STATE_DIR))
        .into_iter()
        .filter(|f| f.ends_with(".json") || f.ends_with(".progress"))
        .collect();
    let cache = list_dir(Path::new(RESULTS));
    r.say(&format!(
        "    pod netns: {}; host-local leases: {}; plexus journal files: {}; cached results: {}",
        netns.len(),
        leases.len(),
        journal.len(),
        cache.len()
    ));
    for (what, left) in [
        ("pod netns", netns),
        ("host-local leases", leases),
        ("plexus journal files", journal),
        ("cached results", cache),
    ] {
        if !left.is_empty() {
            r.fail(format!("{what} left: {left:?}"));
        }
    }
    drop(kubelet);
    drop(ctd);
    if r.failures.is_empty() {
        r.say("Done: every pod is as the scenario expects, and nothing is left.");
        Ok(())
    } else {
        Err(r.failures)
    }
}
