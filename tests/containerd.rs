//! The containerd tier: plexus installed by its own image and called by a real containerd
//! (Debian's 1.6, CRI plugin, runc) for pods made through the CRI, as a kubelet makes them.
//!
//! Each test runs in the sandbox (private network and mount namespaces,
//! `plexus_conformance::sandbox`) with the API stand-in, containerd started by the rig
//! (`plexus_conformance::containerd`: own config, dirs and socket, the local pause image) and
//! Debian's real plugins. The node's CNI config comes from the plexus image itself: a
//! hostNetwork pod runs `plexus install` with the node's CNI directories mounted, as the
//! DaemonSet does, and containerd then picks up its `00-plexus.conflist`.
//!
//! Everything asserted is observable: interfaces and addresses in the pod's netns (`ip -j`),
//! the network-status annotation in the stand-in, its request log, the CRI's answers
//! (RunPodSandbox's error, PodSandboxStatus's IP), containerd's own log, and the files plexus,
//! host-local and libcni leave on disk (journal, leases, cached results).
//!
//! A test is skipped (a visible `SKIPPED` line) only when containerd, runc, ctr, buildah or cc
//! are missing and `PLEXUS_REQUIRE_CONTAINERD` is unset; `conformance/test.sh` sets it. The
//! images are built from the test build of plexus (`deploy/build-image.sh --binary`), so
//! `cargo build --release` is not needed first.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::node::{NETWORK_STATUS, NETWORKS, all_leases};
use plexus_conformance::apiserver::ApiServer;
use plexus_conformance::containerd::{self, Containerd, Images};
use plexus_conformance::cri::api;
use plexus_conformance::netns::{Link, Netns, host_links};
use plexus_conformance::{sandbox, wait_until};
use serde_json::{Value, json};

/// The pods' namespace.
const NS: &str = "default";
/// The cluster network's name (in its conflist) and subnet.
const CLUSTER: &str = "cluster-net";
const CLUSTER_SUBNET: &str = "10.88.0.0/16";
/// The name `plexus install` gives its conflist's network.
const PLEXUS_NETWORK: &str = "plexus-cni-network";
/// libcni's cache of results (containerd keeps the default `/var/lib/cni`, a sandbox tmpfs).
const RESULTS: &str = "/var/lib/cni/results";

/// The simulated node: API stand-in, containerd, plexus installed from its image.
struct Rig {
    api: ApiServer,
    ctd: Containerd,
    images: Images,
    /// plexus's journal (`--cni-dir`).
    journal: PathBuf,
    /// plexus's log (`--log-file`).
    plexus_log: PathBuf,
    /// The installer's sandbox and container, once started.
    installer: Option<(String, String)>,
}

fn cache_dir() -> PathBuf {
    // target/<profile>/plexus-images, next to the plexus binary the images are built from.
    Path::new(env!("CARGO_BIN_EXE_plexus"))
        .parent()
        .expect("the binary's directory")
        .join("plexus-images")
}

impl Rig {
    /// API stand-in with NADs `net1`..`net3` (bridges with host-local), containerd with the
    /// images and the cluster network's conflist; plexus not installed yet.
    fn start() -> Rig {
        let images =
            containerd::build_images(Path::new(env!("CARGO_BIN_EXE_plexus")), &cache_dir())
                .unwrap_or_else(|e| panic!("building the images: {e}"));
        let api = ApiServer::start();
        let ctd = Containerd::start(&[&images.pause, &images.plexus]);
        let cluster = json!({
            "cniVersion": "1.0.0", "name": CLUSTER,
            "plugins": [{
                "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
                "ipam": {"type": "host-local", "subnet": CLUSTER_SUBNET,
                         "routes": [{"dst": "0.0.0.0/0"}]}
            }, {"type": "portmap", "capabilities": {"portMappings": true}}]
        });
        fs::write(
            ctd.conf_dir.join("10-cluster.conflist"),
            cluster.to_string(),
        )
        .expect("write the cluster conflist");
        for i in 1..=3 {
            nad(
                &api,
                &format!("net{i}"),
                &json!({
                    "cniVersion": "1.0.0", "name": format!("net{i}"), "type": "bridge",
                    "bridge": format!("br-net{i}"), "isGateway": true, "ipMasq": false,
                    "ipam": {"type": "host-local", "subnet": format!("10.7{i}.0.0/24")}
                }),
            );
        }
        // A network whose delegate fails: macvlan on a master that does not exist.
        nad(
            &api,
            "broken",
            &json!({"cniVersion": "1.0.0", "name": "broken", "type": "macvlan",
                    "master": "nosuch0", "ipam": {"type": "host-local", "subnet": "10.79.0.0/24"}}),
        );
        ctd.wait_for_network(CLUSTER, Duration::from_secs(30));
        let journal = ctd.dir().join("plexus-journal");
        let plexus_log = ctd.dir().join("plexus.log");
        Rig {
            api,
            ctd,
            images,
            journal,
            plexus_log,
            installer: None,
        }
    }

    /// [`Rig::start`], then [`Rig::install`].
    fn installed() -> Rig {
        let mut rig = Rig::start();
        rig.install();
        rig
    }

    /// Runs the installer as the DaemonSet does (hostNetwork pod, `plexus install` from the
    /// image, the node's CNI dirs under /host, a service account) and waits until its config
    /// is written and containerd has loaded it.
    fn install(&mut self) {
        let cri = self.ctd.cri();
        let sa = self.ctd.dir().join("serviceaccount");
        fs::create_dir_all(&sa).expect("mkdir serviceaccount");
        fs::write(sa.join("token"), self.api.token()).expect("token");
        fs::write(sa.join("ca.crt"), self.api.ca_pem()).expect("ca.crt");
        fs::write(sa.join("namespace"), "kube-system").expect("namespace");
        let sandbox = containerd::pod_config(
            &self.ctd.log_dir,
            "kube-system",
            "plexus-node1",
            "uid-plexus-node1",
            &[],
            true,
        );
        let sid = cri.run_pod_sandbox(&sandbox).unwrap_or_else(|e| {
            panic!(
                "the installer's sandbox: {e}\ncontainerd's log (tail):\n{}",
                tail(&self.ctd.log_text(), 30)
            )
        });
        let mount = |host: &Path, container: &str, readonly: bool| api::Mount {
            container_path: container.into(),
            host_path: host.display().to_string(),
            readonly,
        };
        let container = api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: "install".into(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: self.images.plexus_name.clone(),
            }),
            // examples/deploy/daemonset.yaml's command and args, with this node's paths.
            command: vec!["/usr/local/bin/plexus".into(), "install".into()],
            args: vec![
                "--cni-bin-dir=/host/opt/cni/bin".into(),
                "--cni-conf-dir=/host/etc/cni/net.d".into(),
                format!("--host-cni-conf-dir={}", self.ctd.conf_dir.display()),
                format!("--cni-dir={}", self.journal.display()),
                format!("--log-file={}", self.plexus_log.display()),
                "--log-level=debug".into(),
            ],
            envs: vec![
                kv("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
                kv("KUBERNETES_SERVICE_PORT", &self.api.port().to_string()),
            ],
            mounts: vec![
                mount(&self.ctd.bin_dir, "/host/opt/cni/bin", false),
                mount(&self.ctd.conf_dir, "/host/etc/cni/net.d", false),
                mount(&sa, "/var/run/secrets/kubernetes.io/serviceaccount", true),
            ],
            log_path: "install/0.log".into(),
            linux: Some(api::LinuxContainerConfig {
                security_context: Some(api::LinuxContainerSecurityContext {
                    capabilities: Some(api::Capability {
                        add_capabilities: vec![],
                        drop_capabilities: vec!["ALL".into()],
                    }),
                    namespace_options: Some(api::NamespaceOption {
                        network: api::NAMESPACE_NODE,
                        pid: api::NAMESPACE_CONTAINER,
                        ipc: api::NAMESPACE_POD,
                    }),
                    run_as_user: Some(api::Int64Value { value: 0 }),
                    readonly_rootfs: true,
                    no_new_privs: true,
                }),
            }),
            ..Default::default()
        };
        let cid = cri
            .create_container(&sid, &container, &sandbox)
            .unwrap_or_else(|e| panic!("creating the installer container: {e}"));
        cri.start_container(&cid)
            .unwrap_or_else(|e| panic!("starting the installer container: {e}"));
        self.installer = Some((sid.clone(), cid.clone()));
        let conflist = self.ctd.conf_dir.join("00-plexus.conflist");
        let kubeconfig = self.ctd.conf_dir.join("plexus.d/plexus.kubeconfig");
        let log = Path::new(&sandbox.log_directory).join("install/0.log");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !(conflist.exists() && kubeconfig.exists()) {
            let status = cri.container_status(&cid).ok();
            let exited = status
                .as_ref()
                .is_some_and(|s| s.state == api::CONTAINER_EXITED);
            if exited || std::time::Instant::now() >= deadline {
                panic!(
                    "the installer wrote no {} and {} (status {status:?}); its log:\n{}",
                    conflist.display(),
                    kubeconfig.display(),
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.ctd
            .wait_for_network(PLEXUS_NETWORK, Duration::from_secs(30));
    }

    /// Pod `name` in the stand-in (UID `uid-<name>`) with `networks` as its networks
    /// annotation (none when empty), and its sandbox config carrying the same annotations, as
    /// the kubelet copies them.
    fn pod(&self, name: &str, networks: &str) -> api::PodSandboxConfig {
        let uid = format!("uid-{name}");
        let mut annotations = vec![("team", "blue")];
        if !networks.is_empty() {
            annotations.push((NETWORKS, networks));
        }
        let map: serde_json::Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        self.api.put(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": NS, "name": name, "uid": uid, "annotations": map},
            "spec": {"containers": [{"name": "app", "image": "app"}], "nodeName": "node1"}
        }));
        containerd::pod_config(&self.ctd.log_dir, NS, name, &uid, &annotations, false)
    }

    fn run(&self, config: &api::PodSandboxConfig) -> String {
        let name = &config.metadata.as_ref().expect("metadata").name;
        self.ctd.cri().run_pod_sandbox(config).unwrap_or_else(|e| {
            panic!(
                "RunPodSandbox {name}: {e}\nplexus's log (tail):\n{}",
                tail(
                    &fs::read_to_string(&self.plexus_log).unwrap_or_default(),
                    30
                )
            )
        })
    }

    /// StopPodSandbox and RemovePodSandbox, both must succeed.
    fn stop_remove(&self, id: &str) {
        let cri = self.ctd.cri();
        cri.stop_pod_sandbox(id)
            .unwrap_or_else(|e| panic!("StopPodSandbox {id}: {e}"));
        cri.remove_pod_sandbox(id)
            .unwrap_or_else(|e| panic!("RemovePodSandbox {id}: {e}"));
    }

    /// The pod's network-status entries in the stand-in.
    fn network_status(&self, name: &str) -> Vec<Value> {
        let pod = self.api.get("pods", NS, name).expect("the pod exists");
        let text = pod["metadata"]["annotations"][NETWORK_STATUS]
            .as_str()
            .unwrap_or_else(|| panic!("pod {name} has no {NETWORK_STATUS}: {pod}"));
        serde_json::from_str::<Vec<Value>>(text)
            .unwrap_or_else(|e| panic!("{NETWORK_STATUS} of {name} is not a list ({e}): {text}"))
    }

    /// Journal files (`*.json`, `*.progress`) left in plexus's cniDir.
    fn journal_files(&self) -> Vec<String> {
        let mut v = vec![];
        collect(&self.journal, &mut v);
        v.retain(|f| f.ends_with(".json") || f.ends_with(".progress"));
        v
    }

    /// What pod networks hold on the node now: containerd's pod netns, veths on the node,
    /// host-local leases, plexus's journal files, libcni's cached results.
    fn leftovers(&self) -> Leftovers {
        let netns: Vec<String> = fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("cni-"))
            .collect();
        let veths: Vec<String> = host_links()
            .into_iter()
            .filter(|l| l.kind.as_deref() == Some("veth"))
            .map(|l| l.name)
            .collect();
        let mut cached = vec![];
        collect(Path::new(RESULTS), &mut cached);
        Leftovers {
            netns,
            veths,
            leases: all_leases(),
            journal: self.journal_files(),
            cached,
        }
    }

    /// Panics unless nothing of any pod network is left (see [`Rig::leftovers`]).
    fn assert_no_pod_network_left(&self, when: &str) {
        let left = self.leftovers();
        assert_eq!(left, Leftovers::default(), "{when}: left on the node");
    }
}

/// See [`Rig::leftovers`].
#[derive(Debug, Default, PartialEq, Eq)]
struct Leftovers {
    netns: Vec<String>,
    veths: Vec<String>,
    leases: Vec<String>,
    journal: Vec<String>,
    cached: Vec<String>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the runtime and plexus said, for the failure's report.
            eprintln!(
                "----- containerd's log (tail) -----\n{}\n----- plexus's log (tail) -----\n{}",
                tail(&self.ctd.log_text(), 40),
                tail(
                    &fs::read_to_string(&self.plexus_log).unwrap_or_default(),
                    40
                )
            );
        }
        if let Some((sid, cid)) = self.installer.take() {
            let cri = self.ctd.cri();
            let _ = cri.stop_container(&cid, 5);
            let _ = cri.remove_container(&cid);
            let _ = cri.stop_pod_sandbox(&sid);
            let _ = cri.remove_pod_sandbox(&sid);
        }
    }
}

fn kv(k: &str, v: &str) -> api::KeyValue {
    api::KeyValue {
        key: k.into(),
        value: v.into(),
    }
}

fn nad(api: &ApiServer, name: &str, config: &Value) {
    api.put(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"namespace": NS, "name": name},
        "spec": {"config": config.to_string()}
    }));
}

fn collect(dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p.display().to_string());
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn bare(a: &str) -> &str {
    a.split('/').next().unwrap_or(a)
}

/// Checks a running pod: its netns holds eth0 (cluster network) and net1.. for `networks`,
/// each with an address of its subnet; network-status names the same interfaces and IPs as
/// the kernel; the CRI's pod IP is eth0's. Returns the netns's links.
fn assert_pod_network(rig: &Rig, id: &str, name: &str, networks: &[&str]) -> Vec<Link> {
    let netns = containerd::sandbox_netns(rig.ctd.cri(), id)
        .unwrap_or_else(|| panic!("no netns for sandbox {id} of {name}"));
    let links = Netns::existing(&netns).links();
    let mut names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    let mut want: Vec<String> = vec!["eth0".into(), "lo".into()];
    want.extend((1..=networks.len()).map(|i| format!("net{i}")));
    want.sort();
    assert_eq!(names, want, "{name}: the pod's interfaces");
    let ipv4 = |ifname: &str| -> String {
        let l = links.iter().find(|l| l.name == ifname).expect("listed");
        let v4 = l.ipv4();
        assert_eq!(v4.len(), 1, "{name}: {ifname} has one IPv4 address: {l:?}");
        bare(v4[0]).to_owned()
    };
    let eth0 = ipv4("eth0");
    assert!(
        eth0.starts_with("10.88."),
        "{name}: eth0 {eth0} in the cluster subnet"
    );
    for (i, net) in networks.iter().enumerate() {
        let ip = ipv4(&format!("net{}", i + 1));
        let subnet = format!("10.7{}.0.", &net[3..]);
        assert!(
            ip.starts_with(&subnet),
            "{name}: net{} {ip} in {subnet}0/24",
            i + 1
        );
    }
    let status = rig.network_status(name);
    assert_eq!(
        status.len(),
        1 + networks.len(),
        "{name}: network-status {status:?}"
    );
    assert_eq!(
        status[0]["name"], CLUSTER,
        "{name}: the first entry is the cluster network"
    );
    assert_eq!(status[0]["default"], true);
    for (i, entry) in status.iter().enumerate() {
        let ifname = entry["interface"].as_str().expect("interface");
        let want_if = if i == 0 {
            "eth0".to_owned()
        } else {
            format!("net{i}")
        };
        assert_eq!(ifname, want_if, "{name}: entry {i}: {entry}");
        if i > 0 {
            assert_eq!(entry["name"], format!("{NS}/{}", networks[i - 1]));
        }
        assert_eq!(
            entry["ips"],
            json!([ipv4(ifname)]),
            "{name}: {ifname}'s IPs"
        );
        let mac = &links.iter().find(|l| l.name == ifname).expect("link").mac;
        assert_eq!(entry["mac"], json!(mac), "{name}: {ifname}'s MAC");
    }
    let st = rig
        .ctd
        .cri()
        .pod_sandbox_status(id, false)
        .expect("PodSandboxStatus");
    let st = st.status.expect("a status");
    assert_eq!(st.state, api::SANDBOX_READY);
    assert_eq!(
        st.network.as_ref().map(|n| n.ip.as_str()),
        Some(eth0.as_str()),
        "{name}: the CRI's pod IP is the cluster network's"
    );
    links
}

/// The requests that read pod `name` from the API (GET of the pod itself).
fn pod_reads(api: &ApiServer, name: &str) -> usize {
    let path = format!("/api/v1/namespaces/{NS}/pods/{name}");
    api.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count()
}

#[test]
fn installer_then_pods_get_every_network() {
    const T: &str = "installer_then_pods_get_every_network";
    if containerd::skip(T) {
        return;
    }
    sandbox::run(T, || {
        let rig = Rig::installed();
        // What the installer wrote: the conflist delegating to the node's cluster network,
        // with the capability that makes containerd pass the pod's annotations.
        let conf: Value = serde_json::from_str(
            &fs::read_to_string(rig.ctd.conf_dir.join("00-plexus.conflist")).expect("conflist"),
        )
        .expect("the conflist is JSON");
        let plugin = &conf["plugins"][0];
        assert_eq!(plugin["type"], "plexus");
        assert_eq!(
            plugin["clusterNetwork"],
            rig.ctd
                .conf_dir
                .join("10-cluster.conflist")
                .display()
                .to_string()
        );
        assert_eq!(
            plugin["capabilities"]["io.kubernetes.cri.pod-annotations"],
            true
        );
        assert_eq!(plugin["capabilities"]["portMappings"], true);
        let kubeconfig =
            fs::read_to_string(rig.ctd.conf_dir.join("plexus.d/plexus.kubeconfig")).expect("kc");
        assert!(
            kubeconfig.contains(&format!("https://127.0.0.1:{}", rig.api.port())),
            "{kubeconfig}"
        );
        assert!(
            rig.ctd.bin_dir.join("plexus").is_file(),
            "the binary was copied"
        );
        let image = rig
            .ctd
            .cri()
            .image_status(&rig.images.plexus_name)
            .expect("ImageStatus");
        assert!(
            image.is_some_and(|i| i.repo_tags.contains(&rig.images.plexus_name)),
            "the CRI knows the imported image by its tag"
        );

        rig.api.reset_counters();
        let config = rig.pod("web", "net1, net2");
        let id = rig.run(&config);
        assert_pod_network(&rig, &id, "web", &["net1", "net2"]);

        // The finding: containerd 1.6 passes the pod's annotations in runtimeConfig
        // (io.kubernetes.cri.pod-annotations), so plexus never reads the pod: the API saw NAD
        // reads and the status write, and no GET of the pod.
        assert_eq!(
            pod_reads(&rig.api, "web"),
            0,
            "requests: {:?}",
            keys(&rig.api)
        );
        assert_eq!(
            rig.api.count("PATCH pods/status"),
            1,
            "{:?}",
            keys(&rig.api)
        );
        assert_eq!(rig.api.count("GET network-attachment-definitions"), 2);

        // A pod without the networks annotation gets the cluster network alone.
        let plain = rig.pod("plain", "");
        let plain_id = rig.run(&plain);
        assert_pod_network(&rig, &plain_id, "plain", &[]);

        rig.stop_remove(&id);
        rig.stop_remove(&plain_id);
        rig.assert_no_pod_network_left("after StopPodSandbox + RemovePodSandbox of both pods");
    });
}

fn keys(api: &ApiServer) -> Vec<String> {
    api.requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Without the capability in the node config, containerd passes no annotations and plexus
/// reads the pod: the contrast that makes the finding above meaningful.
#[test]
fn without_the_capability_plexus_reads_the_pod() {
    const T: &str = "without_the_capability_plexus_reads_the_pod";
    if containerd::skip(T) {
        return;
    }
    sandbox::run(T, || {
        let rig = Rig::installed();
        // Stop the installer (it would regenerate its config), then drop the capability.
        let mut rig = rig;
        if let Some((sid, cid)) = rig.installer.take() {
            let cri = rig.ctd.cri();
            cri.stop_container(&cid, 5).expect("stop the installer");
            cri.remove_container(&cid).expect("remove it");
            cri.stop_pod_sandbox(&sid).expect("stop its sandbox");
            cri.remove_pod_sandbox(&sid).expect("remove its sandbox");
        }
        let path = rig.ctd.conf_dir.join("00-plexus.conflist");
        let mut conf: Value =
            serde_json::from_str(&fs::read_to_string(&path).expect("conflist")).expect("JSON");
        conf["plugins"][0]["capabilities"]
            .as_object_mut()
            .expect("capabilities")
            .remove("io.kubernetes.cri.pod-annotations");
        conf["name"] = json!("plexus-no-annotations");
        fs::write(&path, conf.to_string()).expect("rewrite the conflist");
        rig.ctd
            .wait_for_network("plexus-no-annotations", Duration::from_secs(30));
        rig.api.reset_counters();
        let id = rig.run(&rig.pod("reader", "net1"));
        assert_pod_network(&rig, &id, "reader", &["net1"]);
        assert!(pod_reads(&rig.api, "reader") >= 1, "{:?}", keys(&rig.api));
        rig.stop_remove(&id);
        rig.assert_no_pod_network_left("after the pod's removal");
    });
}

#[test]
fn failed_add_fails_run_pod_sandbox_and_leaves_nothing() {
    const T: &str = "failed_add_fails_run_pod_sandbox_and_leaves_nothing";
    if containerd::skip(T) {
        return;
    }
    sandbox::run(T, || {
        let rig = Rig::installed();
        let cases = [
            (
                "missing",
                "net1, nosuch",
                "network default/nosuch: NetworkAttachmentDefinition not found",
            ),
            (
                "failing",
                "net1, broken",
                "delegate plugin \"macvlan\" for network \"default/broken\" (ADD) failed",
            ),
        ];
        for (name, networks, message) in cases {
            let config = rig.pod(name, networks);
            let err = rig
                .ctd
                .cri()
                .run_pod_sandbox(&config)
                .expect_err("RunPodSandbox must fail");
            assert!(
                err.message().contains(message),
                "{name}: RunPodSandbox's error must carry plexus's message {message:?}: {err}"
            );
            assert!(
                err.message()
                    .contains("failed to setup network for sandbox"),
                "{name}: {err}"
            );
            // containerd removed the failed sandbox; nothing of its network is left.
            let left: Vec<String> = rig
                .ctd
                .cri()
                .list_pod_sandbox()
                .expect("ListPodSandbox")
                .into_iter()
                .filter(|p| p.metadata.as_ref().is_some_and(|m| m.name == name))
                .map(|p| p.id)
                .collect();
            assert!(left.is_empty(), "{name}: sandboxes left: {left:?}");
            rig.assert_no_pod_network_left(&format!("after the failed ADD of {name}"));
            // The runtime's own cleanup DEL succeeded: containerd logs when it does not, and
            // plexus logged a DEL answered with success.
            let log = rig.ctd.log_text();
            assert!(
                !log.contains("Failed to destroy network"),
                "{name}: containerd's cleanup DEL failed:\n{}",
                tail(&log, 20)
            );
            // The sandbox ID is in containerd's message: `sandbox "<id>"`.
            let id = err
                .message()
                .split("sandbox \"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("{name}: no sandbox ID in {err}"));
            let plexus_log = fs::read_to_string(&rig.plexus_log).unwrap_or_default();
            let del = format!("command=DEL container={id}");
            let answers: Vec<&str> = plexus_log
                .lines()
                .filter(|l| l.contains(&del) && l.contains("answer ready"))
                .collect();
            assert!(
                !answers.is_empty() && answers.iter().all(|l| l.contains("exit_code=0")),
                "{name}: plexus must have answered containerd's DEL of {id} with success: \
                 {answers:?}\n{}",
                tail(&plexus_log, 30)
            );
        }
    });
}

#[test]
fn stop_and_remove_leave_nothing_and_stop_twice_succeeds() {
    const T: &str = "stop_and_remove_leave_nothing_and_stop_twice_succeeds";
    if containerd::skip(T) {
        return;
    }
    sandbox::run(T, || {
        let rig = Rig::installed();
        let config = rig.pod("twice", "net1, net2, net3");
        let id = rig.run(&config);
        assert_pod_network(&rig, &id, "twice", &["net1", "net2", "net3"]);
        // The empty-state check sees a running pod in every one of its parts, so its
        // passing below means something.
        let running = rig.leftovers();
        assert_eq!(running.netns.len(), 1, "{running:?}");
        assert_eq!(running.veths.len(), 4, "{running:?}");
        assert_eq!(running.leases.len(), 4, "{running:?}");
        let has = |v: &[String], end: &str| v.iter().any(|f| f.ends_with(end));
        assert!(
            has(&running.journal, &format!("/{id}:eth0.json")),
            "{running:?}"
        );
        assert!(
            has(&running.cached, &format!("/plexus-cni-network-{id}-eth0")),
            "{running:?}"
        );
        let cri = rig.ctd.cri();
        cri.stop_pod_sandbox(&id).expect("StopPodSandbox");
        rig.assert_no_pod_network_left("after StopPodSandbox");
        cri.stop_pod_sandbox(&id)
            .expect("a second StopPodSandbox succeeds");
        let st = cri
            .pod_sandbox_status(&id, false)
            .expect("status")
            .status
            .expect("status");
        assert_eq!(st.state, api::SANDBOX_NOTREADY);
        cri.remove_pod_sandbox(&id).expect("RemovePodSandbox");
        assert!(
            cri.pod_sandbox_status(&id, false).is_err(),
            "the sandbox is gone"
        );
        rig.assert_no_pod_network_left("after RemovePodSandbox");
    });
}

#[test]
fn containerd_restart_and_api_outage() {
    const T: &str = "containerd_restart_and_api_outage";
    if containerd::skip(T) {
        return;
    }
    sandbox::run(T, || {
        let mut rig = Rig::installed();
        let a = rig.run(&rig.pod("before-a", "net1"));
        let b = rig.run(&rig.pod("before-b", "net1, net2"));
        assert_pod_network(&rig, &b, "before-b", &["net1", "net2"]);
        // containerd dies (SIGKILL) while the pods run, and comes back.
        rig.ctd.restart();
        assert_pod_network(&rig, &a, "before-a", &["net1"]);
        assert_pod_network(&rig, &b, "before-b", &["net1", "net2"]);
        rig.stop_remove(&a);
        rig.stop_remove(&b);
        rig.assert_no_pod_network_left("after the restart, stop and removal");

        // The API stand-in refuses connections: the pod fails cleanly...
        rig.api.refuse_connections(true);
        let config = rig.pod("outage", "net1");
        let err = rig
            .ctd
            .cri()
            .run_pod_sandbox(&config)
            .expect_err("RunPodSandbox must fail while the API is away");
        assert!(err.message().contains("failed to setup network"), "{err}");
        rig.assert_no_pod_network_left("after the ADD that failed on the API");
        // ...and the next attempt, as the kubelet's, succeeds.
        rig.api.refuse_connections(false);
        let mut retry = config.clone();
        if let Some(m) = retry.metadata.as_mut() {
            m.attempt = 1;
        }
        let id = rig.run(&retry);
        assert_pod_network(&rig, &id, "outage", &["net1"]);
        rig.stop_remove(&id);
        rig.assert_no_pod_network_left("after the retried pod's removal");
    });
}

#[test]
fn twenty_pods_at_once_each_with_three_networks() {
    const T: &str = "twenty_pods_at_once_each_with_three_networks";
    if containerd::skip(T) {
        return;
    }
    sandbox::run(T, || {
        let rig = Arc::new(Rig::installed());
        let configs: Vec<_> = (0..20)
            .map(|i| rig.pod(&format!("many-{i}"), "net1, net2, net3"))
            .collect();
        let handles: Vec<_> = configs
            .into_iter()
            .map(|c| {
                let rig = Arc::clone(&rig);
                std::thread::spawn(move || {
                    let name = c.metadata.as_ref().expect("metadata").name.clone();
                    (name, rig.ctd.cri().run_pod_sandbox(&c))
                })
            })
            .collect();
        let mut ids = vec![];
        let mut failed = vec![];
        for h in handles {
            match h.join().expect("a RunPodSandbox thread") {
                (name, Ok(id)) => ids.push((name, id)),
                (name, Err(e)) => failed.push(format!("{name}: {e}")),
            }
        }
        assert!(failed.is_empty(), "RunPodSandbox failed: {failed:#?}");
        for (name, id) in &ids {
            assert_pod_network(&rig, id, name, &["net1", "net2", "net3"]);
        }
        assert_eq!(common::node::leases("net1").len(), 20);
        let handles: Vec<_> = ids
            .into_iter()
            .map(|(_, id)| {
                let rig = Arc::clone(&rig);
                std::thread::spawn(move || rig.stop_remove(&id))
            })
            .collect();
        for h in handles {
            h.join().expect("a stop/remove thread");
        }
        rig.assert_no_pod_network_left("after 20 concurrent pods were stopped and removed");
        wait_until("no sandbox left", Duration::from_secs(10), || {
            rig.ctd.cri().list_pod_sandbox().is_ok_and(|l| {
                l.iter()
                    .all(|p| p.metadata.as_ref().is_some_and(|m| m.namespace != NS))
            })
        });
    });
}
