//! Every manifest under `examples/` and `crd/` is well-formed and means what the README says:
//! objects with apiVersion/kind/metadata.name, NAD configs that plexus can run, pod
//! annotations that plexus's own selection parser accepts (naming example NADs), the node
//! config example that plexus's node config parser accepts, the exact least-privilege RBAC of
//! `examples/deploy/`, and a DaemonSet that runs `plexus install` with the mounts its defaults
//! expect.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use plexus::cni::NetworkConfig;
use plexus::install::{nodeconf, options};
use plexus::k8s::selection;
use serde::Deserialize;
use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.yaml`/`.yml` file under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// One parsed document and where it came from.
struct Doc {
    file: PathBuf,
    obj: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.obj["kind"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.obj["metadata"]["name"].as_str().unwrap_or("")
    }
    fn namespace(&self) -> &str {
        self.obj["metadata"]["namespace"].as_str().unwrap_or("")
    }
    fn at(&self) -> String {
        format!("{} ({} {})", self.file.display(), self.kind(), self.name())
    }
}

/// Every non-empty document of every manifest under examples/ and crd/.
fn all_docs() -> Vec<Doc> {
    let mut docs = Vec::new();
    for dir in ["examples", "crd"] {
        let files = yaml_files(&repo().join(dir));
        assert!(!files.is_empty(), "no manifests under {dir}/");
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            for (i, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
                let yaml = serde_yaml::Value::deserialize(de)
                    .unwrap_or_else(|e| panic!("{} document {}: {e}", file.display(), i + 1));
                if yaml.is_null() {
                    continue;
                }
                let obj: Value = serde_json::to_value(&yaml).unwrap_or_else(|e| {
                    panic!("{} document {}: not JSON-like: {e}", file.display(), i + 1)
                });
                docs.push(Doc {
                    file: file.clone(),
                    obj,
                });
            }
        }
    }
    docs
}

fn of_kind<'a>(docs: &'a [Doc], kind: &str) -> Vec<&'a Doc> {
    docs.iter().filter(|d| d.kind() == kind).collect()
}

#[test]
fn every_document_is_a_named_kubernetes_object() {
    let docs = all_docs();
    for d in &docs {
        for key in ["apiVersion", "kind"] {
            assert!(
                d.obj[key].as_str().is_some_and(|s| !s.is_empty()),
                "{}: no {key}",
                d.file.display()
            );
        }
        assert!(!d.name().is_empty(), "{}: no metadata.name", d.at());
    }
    let kinds: BTreeSet<&str> = docs.iter().map(Doc::kind).collect();
    for k in [
        "CustomResourceDefinition",
        "NetworkAttachmentDefinition",
        "Pod",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(kinds.contains(k), "no {k} among the examples: {kinds:?}");
    }
    // Namespace-free: the examples create no namespace.
    assert!(!kinds.contains("Namespace"));
}

#[test]
fn every_nad_config_is_a_runnable_cni_config() {
    let docs = all_docs();
    let nads = of_kind(&docs, "NetworkAttachmentDefinition");
    assert!(nads.len() >= 7, "{} NADs", nads.len());
    let mut types = BTreeSet::new();
    for nad in &nads {
        assert_eq!(nad.obj["apiVersion"], "k8s.cni.cncf.io/v1", "{}", nad.at());
        let Some(config) = nad.obj["spec"]["config"].as_str() else {
            // No spec.config: resolved by name from confDir; the example ships that file.
            let disk = repo()
                .join("examples/net.d")
                .join(format!("{}.conflist", nad.name()));
            assert!(
                disk.exists(),
                "{}: no spec.config and no {}",
                nad.at(),
                disk.display()
            );
            continue;
        };
        let json: Value = serde_json::from_str(config)
            .unwrap_or_else(|e| panic!("{}: spec.config is not JSON: {e}", nad.at()));
        assert!(
            json["cniVersion"].is_string(),
            "{}: no cniVersion",
            nad.at()
        );
        assert_eq!(json["name"], nad.name(), "{}", nad.at());
        let parsed = NetworkConfig::parse(config.as_bytes()).unwrap();
        parsed
            .validate(nad.name())
            .unwrap_or_else(|e| panic!("{}: {}", nad.at(), e.msg()));
        for p in parsed.plugins() {
            types.insert(p.plugin_type().to_owned());
            if let Some(ipam) = p.as_map().get("ipam").and_then(|i| i["type"].as_str()) {
                types.insert(ipam.to_owned());
            }
        }
    }
    for t in [
        "macvlan",
        "ipvlan",
        "bridge",
        "host-device",
        "tuning",
        "static",
    ] {
        assert!(types.contains(t), "no example NAD uses {t}: {types:?}");
    }
    // The on-disk config of the NAD without spec.config parses as well.
    let disk = fs::read(repo().join("examples/net.d/disk-net.conflist")).unwrap();
    NetworkConfig::parse(&disk)
        .unwrap()
        .validate("disk-net")
        .unwrap();
}

#[test]
fn pod_annotations_parse_with_plexus_and_name_example_nads() {
    let docs = all_docs();
    let nads: BTreeSet<(String, String)> = of_kind(&docs, "NetworkAttachmentDefinition")
        .iter()
        .map(|d| (d.namespace().to_owned(), d.name().to_owned()))
        .collect();
    let mut forms = BTreeSet::new();
    for pod in of_kind(&docs, "Pod") {
        let Some(text) = pod.obj["metadata"]["annotations"][selection::ANNOTATION].as_str() else {
            continue;
        };
        let selections = selection::parse(text, pod.namespace())
            .unwrap_or_else(|e| panic!("{}: {}", pod.at(), e.msg()));
        assert!(!selections.is_empty(), "{}", pod.at());
        forms.insert(if text.trim_start().starts_with('[') {
            "json"
        } else {
            "comma"
        });
        for s in selections {
            assert!(
                nads.contains(&(s.namespace.clone(), s.name.clone())),
                "{}: selects {}/{}, which no example defines",
                pod.at(),
                s.namespace,
                s.name
            );
        }
    }
    assert_eq!(
        forms,
        BTreeSet::from(["comma", "json"]),
        "both annotation forms"
    );
}

#[test]
fn the_node_config_example_is_what_plexus_install_writes() {
    let bytes = fs::read(repo().join("examples/node").join(nodeconf::OUTPUT_NAME)).unwrap();
    let node = nodeconf::validate_generated(&bytes).unwrap();
    assert_eq!(node.name, nodeconf::NETWORK_NAME);
    assert!(
        node.cluster_network
            .as_deref()
            .is_some_and(|c| c.starts_with("/etc/cni/net.d/"))
    );
    assert_eq!(
        node.kubeconfig.as_deref(),
        Some(Path::new("/etc/cni/net.d/plexus.d/plexus.kubeconfig"))
    );
}

/// (apiGroup, resource, verb) triples of a ClusterRole's rules; anything but plain groups,
/// resources and verbs (wildcards, resourceNames, nonResourceURLs) fails.
fn grants(role: &Doc) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role.obj["rules"].as_array().expect("rules") {
        let keys: BTreeSet<&str> = rule
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["apiGroups", "resources", "verbs"]),
            "{}: unexpected rule keys",
            role.at()
        );
        let list = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        for g in list("apiGroups") {
            for r in list("resources") {
                for v in list("verbs") {
                    assert!(
                        ![&g, &r, &v].iter().any(|s| s.contains('*')),
                        "{}: wildcard",
                        role.at()
                    );
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

#[test]
fn rbac_is_exactly_what_plexus_needs() {
    let docs = all_docs();
    let mut roles = of_kind(&docs, "ClusterRole");
    roles.sort_by_key(|r| r.name().to_owned());
    assert_eq!(
        roles.iter().map(|r| r.name()).collect::<Vec<_>>(),
        ["plexus", "plexus-dra"],
        "one ClusterRole, and the optional one for DRA (rbac-dra.yaml)"
    );
    assert!(of_kind(&docs, "Role").is_empty() && of_kind(&docs, "RoleBinding").is_empty());
    let role = roles[0];
    let want: BTreeSet<(String, String, String)> = [
        ("", "pods", "get"),
        // patch: the network-status merge patch; get and update as in Multus's role.
        ("", "pods/status", "get"),
        ("", "pods/status", "update"),
        ("", "pods/status", "patch"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "get"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "list"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "watch"),
        // Core-group Events only (plexus creates them with the core v1 API, never patches).
        ("", "events", "create"),
    ]
    .into_iter()
    .map(|(g, r, v)| (g.to_owned(), r.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(grants(role), want);
    // DRA (docs/dra.md): read the pod's claims, list their drivers' slices; nothing else.
    let dra: BTreeSet<(String, String, String)> = [
        ("resource.k8s.io", "resourceclaims", "get"),
        ("resource.k8s.io", "resourceslices", "list"),
    ]
    .into_iter()
    .map(|(g, r, v)| (g.to_owned(), r.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(grants(roles[1]), dra);
    assert!(roles[1].file.ends_with("examples/deploy/rbac-dra.yaml"));

    let mut bindings = of_kind(&docs, "ClusterRoleBinding");
    bindings.sort_by_key(|b| b.name().to_owned());
    assert_eq!(bindings.len(), 2);
    for (binding, role) in bindings.iter().zip(["plexus", "plexus-dra"]) {
        let b = &binding.obj;
        assert_eq!(b["metadata"]["name"], role);
        assert_eq!(b["roleRef"]["kind"], "ClusterRole");
        assert_eq!(b["roleRef"]["name"], role);
        assert_eq!(b["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(
            b["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": "plexus", "namespace": "kube-system"}])
        );
    }
    let accounts = of_kind(&docs, "ServiceAccount");
    assert_eq!(accounts.len(), 1);
    assert_eq!(
        (accounts[0].namespace(), accounts[0].name()),
        ("kube-system", "plexus")
    );
}

#[test]
fn the_daemonset_runs_plexus_install_on_every_node() {
    let docs = all_docs();
    let sets = of_kind(&docs, "DaemonSet");
    assert_eq!(sets.len(), 1);
    let ds = sets[0];
    assert_eq!(ds.namespace(), "kube-system");
    let spec = &ds.obj["spec"]["template"]["spec"];
    assert_eq!(spec["serviceAccountName"], "plexus");
    assert_eq!(
        spec["hostNetwork"], true,
        "the pod network is not there before plexus"
    );
    let tolerates_all =
        spec["tolerations"].as_array().unwrap().iter().any(|t| {
            t["operator"] == "Exists" && t.get("key").is_none() && t.get("effect").is_none()
        });
    assert!(tolerates_all, "must tolerate every taint");
    assert_eq!(
        ds.obj["spec"]["selector"]["matchLabels"],
        ds.obj["spec"]["template"]["metadata"]["labels"]
    );

    // The container (an init container would do too) that runs `plexus install`.
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten()
        .collect();
    let argv = |c: &Value| -> Vec<String> {
        ["command", "args"]
            .iter()
            .filter_map(|k| c[*k].as_array())
            .flatten()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let install: Vec<&&Value> = containers
        .iter()
        .filter(|c| {
            let a = argv(c);
            a.first().is_some_and(|b| b.ends_with("plexus"))
                && a.get(1).is_some_and(|s| s == "install")
        })
        .collect();
    assert_eq!(
        install.len(),
        1,
        "exactly one container runs plexus install"
    );
    let c = install[0];
    let args: Vec<String> = argv(c)[2..].to_vec();
    // Its flags are ones plexus install accepts.
    let parsed = options::parse(&args, |k| {
        (k == "KUBERNETES_SERVICE_HOST").then(|| "10.96.0.1".to_owned())
    })
    .unwrap_or_else(|e| panic!("the DaemonSet's flags: {e}"));
    let options::Parsed::Run(o) = parsed else {
        panic!("--help in the DaemonSet")
    };
    assert!(
        !o.once,
        "the token copy must be kept fresh: run as the long-running container"
    );

    // The host paths it writes are mounted where the flags say.
    let volumes = spec["volumes"].as_array().unwrap();
    let host_path = |mount_path: &Path| -> Option<String> {
        let m = c["volumeMounts"]
            .as_array()?
            .iter()
            .find(|m| Path::new(m["mountPath"].as_str().unwrap_or("")) == mount_path)?;
        let v = volumes.iter().find(|v| v["name"] == m["name"])?;
        v["hostPath"]["path"].as_str().map(str::to_owned)
    };
    assert_eq!(host_path(&o.cni_bin_dir).as_deref(), Some("/opt/cni/bin"));
    assert_eq!(
        host_path(&o.cni_conf_dir).as_deref(),
        Some("/etc/cni/net.d")
    );
    assert_eq!(o.host_cni_conf_dir, Path::new("/etc/cni/net.d"));
    // Nothing else from the host.
    let host_volumes = volumes
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .count();
    assert_eq!(host_volumes, 2);
}
