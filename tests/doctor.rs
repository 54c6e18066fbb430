//! `plexus doctor` on a simulated node: the API stand-in (with plexus's ClusterRole from
//! `examples/deploy/rbac.yaml`), a node config in a CNI config directory as the runtime reads
//! it, a bound service-account token copied as `plexus install` copies it, the real plugins in
//! `/usr/lib/cni` and the fake ones in binDir, and a `CNI_PATH` holding plexus. A healthy node
//! exits 0 with every check ok; each break below exits 1 (a broader grant: 0, with a warning)
//! and names the break; and doctor writes nothing (files, modes, mtimes, the stand-in's
//! objects and request log).
//!
//! The tests that run a real ADD (a journal of an existing pod; a journal left by a deleted
//! pod, removed by the command doctor prints) run in the sandbox (`sandbox::run`: root,
//! network namespaces); the others need nothing.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::DEBIAN_PLUGINS;
use common::node::{NS, Node, assert_no_leases, cluster_bridge, macvlan};
use plexus_conformance::podresources::PodResourcesServer;
use plexus_conformance::sandbox;
use serde_json::{Value, json};

/// Bound of one doctor run.
const DOCTOR_TIMEOUT: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rbac_yaml() -> String {
    fs::read_to_string(repo_root().join("examples/deploy/rbac.yaml")).unwrap()
}

/// The rules of plexus's ClusterRole, as JSON.
fn plexus_rules() -> Value {
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&rbac_yaml())
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    docs.into_iter()
        .find(|d: &Value| d["kind"] == "ClusterRole")
        .expect("a ClusterRole in rbac.yaml")["rules"]
        .clone()
}

/// The rules of the optional DRA ClusterRole (`examples/deploy/rbac-dra.yaml`).
fn dra_rules() -> Value {
    let text = fs::read_to_string(repo_root().join("examples/deploy/rbac-dra.yaml")).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    docs.into_iter()
        .find(|d: &Value| d["kind"] == "ClusterRole")
        .expect("a ClusterRole in rbac-dra.yaml")["rules"]
        .clone()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64url(bytes: &[u8]) -> String {
    plexus::install::kubeconfig::base64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// A bound service-account token's shape (unsigned: the stand-in compares strings).
fn jwt(iat: i64, exp: i64) -> String {
    let claims = json!({
        "aud": ["https://kubernetes.default.svc"], "iat": iat, "nbf": iat, "exp": exp,
        "iss": "https://kubernetes.default.svc",
        "kubernetes.io": {"namespace": "kube-system",
                          "serviceaccount": {"name": "plexus", "uid": "u-sa"}},
        "sub": "system:serviceaccount:kube-system:plexus"
    });
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64url(br#"{"alg":"RS256","kid":"k"}"#),
        b64url(claims.to_string().as_bytes())
    )
}

/// A simulated node as doctor sees it.
struct Doctor {
    node: Node,
    /// The runtime's CNI config directory, holding `00-plexus.conflist`.
    net_d: PathBuf,
    /// The node config file.
    conf: PathBuf,
    /// A directory of the runtime's CNI_PATH holding (a link to) plexus.
    bin: PathBuf,
    /// `plexus.d/`: the kubeconfig and the token copy.
    kubeconfig: PathBuf,
    token: PathBuf,
}

impl Doctor {
    /// A healthy node: a bridge cluster network, a macvlan NAD, plexus's ClusterRole.
    fn start() -> Doctor {
        let node = Node::start(cluster_bridge("cluster", "plx-doc0", "10.77.0.0/24"));
        node.api.set_rbac_from_yaml(&rbac_yaml(), "plexus").unwrap();
        node.nad(
            "macvlan-conf",
            &macvlan("macvlan-conf", "plx-up0", "10.78.0.0/24"),
        );
        let dir = node.dir.path().to_path_buf();
        let sa = dir.join("plexus.d");
        fs::create_dir(&sa).unwrap();
        fs::set_permissions(&sa, fs::Permissions::from_mode(0o700)).unwrap();
        let token = sa.join("token");
        let kubeconfig = sa.join("plexus.kubeconfig");
        let d = Doctor {
            net_d: dir.join("net.d"),
            conf: dir.join("net.d/00-plexus.conflist"),
            bin: dir.join("cni-bin"),
            kubeconfig,
            token,
            node,
        };
        d.set_token(&jwt(now() - 60, now() + 3600));
        d.node
            .api
            .write_kubeconfig_with_token_file(&d.kubeconfig, &d.token);
        fs::create_dir(&d.net_d).unwrap();
        fs::create_dir(&d.bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_plexus"), d.bin.join("plexus")).unwrap();
        d.write_conf();
        d.set("kubeconfig", json!(d.kubeconfig));
        d
    }

    /// Writes `token` as the installer's copy (mode 0600) and lets the stand-in accept it.
    fn set_token(&self, token: &str) {
        fs::write(&self.token, token).unwrap();
        fs::set_permissions(&self.token, fs::Permissions::from_mode(0o600)).unwrap();
        self.node.api.add_token(token);
    }

    /// Sets a node config key in the file (what doctor reads, and what ADD below is given).
    fn set(&self, key: &str, value: Value) {
        let mut list: Value = serde_json::from_slice(&fs::read(&self.conf).unwrap()).unwrap();
        list["plugins"][0][key] = value;
        fs::write(&self.conf, serde_json::to_vec_pretty(&list).unwrap()).unwrap();
    }

    /// Writes the node's config as a conflist (libcni hands plexus its first plugin with the
    /// list's `name` and `cniVersion`).
    fn write_conf(&self) {
        let mut plugin = self.node.config_with(&json!({}));
        let obj = plugin.as_object_mut().unwrap();
        let name = obj.remove("name").unwrap();
        let version = obj.remove("cniVersion").unwrap();
        let list = json!({"cniVersion": version, "name": name, "plugins": [plugin]});
        fs::write(&self.conf, serde_json::to_vec_pretty(&list).unwrap()).unwrap();
    }

    /// The node config as plexus gets it on stdin.
    fn stdin(&self) -> Value {
        let list: Value = serde_json::from_slice(&fs::read(&self.conf).unwrap()).unwrap();
        let mut c = list["plugins"][0].clone();
        c["name"] = list["name"].clone();
        c["cniVersion"] = list["cniVersion"].clone();
        c
    }

    fn cni_path(&self) -> String {
        format!("{DEBIAN_PLUGINS}:{}", self.bin.display())
    }

    /// Runs `plexus doctor --conf … --conf-dir … --cni-path … -o json`.
    fn run(&self) -> Outcome {
        self.run_with(&self.conf)
    }

    fn run_with(&self, conf: &Path) -> Outcome {
        let out = plexus_conformance::output_with_timeout(
            Command::new(env!("CARGO_BIN_EXE_plexus"))
                .arg("doctor")
                .arg("--conf")
                .arg(conf)
                .arg("--conf-dir")
                .arg(&self.net_d)
                .args(["--cni-path", &self.cni_path(), "-o", "json"]),
            b"",
            DOCTOR_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let doc: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {stdout}\n{stderr}"));
        Outcome {
            code: out.status.code().unwrap_or(-1),
            doc,
            stderr,
        }
    }

    /// Runs ADD for `pod` with the node config of the file.
    fn add(&self, pod: &common::node::Pod) {
        let env = self.node.env("ADD", pod);
        let r = common::node::run_plexus(&env, &self.stdin().to_string(), DOCTOR_TIMEOUT);
        r.assert_ok("ADD");
    }
}

/// What one doctor run said.
struct Outcome {
    code: i32,
    doc: Value,
    stderr: String,
}

impl Outcome {
    fn checks(&self) -> Vec<(String, String, String, String)> {
        self.doc["checks"]
            .as_array()
            .unwrap_or_else(|| panic!("no checks in {}", self.doc))
            .iter()
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                (s("check"), s("status"), s("detail"), s("fix"))
            })
            .collect()
    }

    fn dump(&self) -> String {
        format!(
            "exit {}\n{}\nstderr: {}",
            self.code,
            serde_json::to_string_pretty(&self.doc).unwrap(),
            self.stderr
        )
    }

    /// Every `check` finding of `status`: (detail, fix).
    fn with(&self, check: &str, status: &str) -> Vec<(String, String)> {
        self.checks()
            .into_iter()
            .filter(|(c, s, _, _)| c == check && s == status)
            .map(|(_, _, d, f)| (d, f))
            .collect()
    }

    /// Exit 0, every finding ok.
    fn assert_healthy(&self) {
        let not_ok: Vec<_> = self
            .checks()
            .into_iter()
            .filter(|(_, s, _, _)| s != "ok")
            .collect();
        assert!(
            self.code == 0 && not_ok.is_empty(),
            "not healthy: {not_ok:?}\n{}",
            self.dump()
        );
        assert_eq!(self.doc["problems"], json!([]), "{}", self.dump());
    }

    /// Exit 1, and a FAIL of `check` whose detail contains every `needles`; returns its fix.
    fn assert_fails(&self, check: &str, needles: &[&str]) -> String {
        assert_eq!(self.code, 1, "{}", self.dump());
        let fails = self.with(check, "fail");
        let hit = fails
            .iter()
            .find(|(d, _)| needles.iter().all(|n| d.contains(n)))
            .unwrap_or_else(|| panic!("no FAIL {check} naming {needles:?} in:\n{}", self.dump()));
        // The problem list carries it, with its fix.
        let problems = self.doc["problems"].as_array().unwrap();
        assert!(
            problems.iter().any(|p| {
                let p = p.as_str().unwrap();
                p.starts_with(&format!("{check}: ")) && p.contains(&hit.1)
            }),
            "{}",
            self.dump()
        );
        hit.1.clone()
    }
}

/// Names, modes and mtimes of everything under `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, i64, i64, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            out.insert(p.clone(), (m.mode(), m.mtime(), m.mtime_nsec(), m.len()));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

/// The stand-in's stored objects.
fn objects(node: &Node) -> Vec<Value> {
    ["pods", "network-attachment-definitions", "events"]
        .iter()
        .flat_map(|r| node.api.list(r, ""))
        .collect()
}

#[test]
fn a_healthy_node_is_all_ok_and_doctor_writes_nothing() {
    sandbox::run("a_healthy_node_is_all_ok_and_doctor_writes_nothing", || {
        let d = Doctor::start();
        // A journal for a pod that exists.
        let pod = d.node.pod("web", "");
        d.add(&pod);
        assert_eq!(d.node.journal_files_of(&pod).len(), 1);
        // ADD's AddedInterface Event arrives from its detached sender, after ADD returned: wait
        // until its request is logged whole (the log records a request after storing it).
        plexus_conformance::wait_until("the ADD's Event", Duration::from_secs(10), || {
            d.node.api.requests().iter().any(|r| r.key == "POST events")
        });

        let files = snapshot(d.node.dir.path());
        let stored = objects(&d.node);
        d.node.api.reset_counters();
        let o = d.run();
        o.assert_healthy();
        let checks: Vec<String> = o.checks().into_iter().map(|c| c.0).collect();
        let mut order = checks.clone();
        order.dedup();
        assert_eq!(
            order,
            [
                "runtime config",
                "node config",
                "plugins",
                "kubeconfig",
                "token",
                "API",
                "permissions",
                "readiness indicator",
                "journal directory",
                "journal space",
                "journals",
                "PodResources"
            ]
        );
        let detail = |check: &str| {
            o.with(check, "ok")
                .into_iter()
                .map(|x| x.0)
                .collect::<Vec<_>>()
        };
        assert!(
            detail("plugins")[0].contains("bridge, host-local, macvlan"),
            "{}",
            o.dump()
        );
        assert!(
            detail("token")[0].contains("a bound token, expires in"),
            "{}",
            o.dump()
        );
        assert!(
            detail("journals")[0].contains("1 journal(s)"),
            "{}",
            o.dump()
        );
        assert!(
            detail("permissions")[1].contains("nothing broader"),
            "{}",
            o.dump()
        );

        // Nothing written: files, modes, mtimes; no object changed; only reads (and access
        // reviews, which store nothing) reached the API.
        assert_eq!(snapshot(d.node.dir.path()), files, "doctor changed files");
        assert_eq!(objects(&d.node), stored, "doctor changed API objects");
        let requests = d.node.api.requests();
        assert!(!requests.is_empty());
        for r in &requests {
            assert!(
                r.method == "GET" || r.key == "POST selfsubjectaccessreviews",
                "doctor wrote to the API: {} {} ({})",
                r.method,
                r.path,
                r.key
            );
        }
        assert_eq!(d.node.api.count("POST selfsubjectaccessreviews"), 13);
        assert_eq!(d.node.api.count("LIST network-attachment-definitions"), 1);

        // The text form says the same.
        let out = plexus_conformance::output_with_timeout(
            Command::new(env!("CARGO_BIN_EXE_plexus"))
                .arg("doctor")
                .arg("--conf")
                .arg(&d.conf)
                .arg("--conf-dir")
                .arg(&d.net_d)
                .args(["--cni-path", &d.cni_path()]),
            b"",
            DOCTOR_TIMEOUT,
        )
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(text.lines().all(|l| l.starts_with("ok ")), "{text}");
        assert!(
            text.contains("ok API: the API server answers (Kubernetes v1."),
            "{text}"
        );
    });
}

#[test]
fn another_config_that_sorts_first_is_named() {
    let d = Doctor::start();
    fs::write(
        d.net_d.join("00-aaa.conflist"),
        r#"{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel"}]}"#,
    )
    .unwrap();
    let o = d.run();
    let fix = o.assert_fails(
        "runtime config",
        &[
            "00-aaa.conflist first",
            "\"cbr0\"",
            "\"flannel\"",
            "not plexus's",
        ],
    );
    assert!(
        fix.contains("rename or remove") && fix.contains("00-plexus.conflist"),
        "{fix}"
    );
}

#[test]
fn a_node_config_that_does_not_parse_is_named() {
    let d = Doctor::start();
    d.set("cniDir", json!(5));
    let o = d.run();
    o.assert_fails("node config", &["\"cniDir\" must be a string"]);
    assert!(
        !o.with("journals", "warn").is_empty(),
        "the rest is skipped: {}",
        o.dump()
    );
    // Not JSON at all.
    fs::write(&d.conf, "{ not json").unwrap();
    d.run().assert_fails("node config", &["is not JSON"]);
}

#[test]
fn a_nad_naming_an_absent_plugin_is_named() {
    let d = Doctor::start();
    d.node.nad(
        "odd",
        &json!({"cniVersion": "1.0.0", "name": "odd", "type": "no-such-plugin",
                "ipam": {"type": "host-local", "subnet": "10.79.0.0/24"}}),
    );
    d.node.nad(
        "odd-ipam",
        &json!({"cniVersion": "1.0.0", "name": "odd-ipam", "type": "bridge",
                "ipam": {"type": "no-such-ipam"}}),
    );
    let o = d.run();
    o.assert_fails(
        "plugins",
        &["NAD default/odd:", "\"no-such-plugin\"", "not found in"],
    );
    o.assert_fails("plugins", &["NAD default/odd-ipam:", "\"no-such-ipam\""]);
    assert_eq!(o.with("plugins", "fail").len(), 2, "{}", o.dump());
}

#[test]
fn credentials_others_may_change_are_named() {
    // The kubeconfig writable by everyone.
    let d = Doctor::start();
    fs::set_permissions(&d.kubeconfig, fs::Permissions::from_mode(0o666)).unwrap();
    let o = d.run();
    let fix = o.assert_fails("kubeconfig", &["mode 0666", "refusing to use it"]);
    assert_eq!(fix, format!("chmod 0600 {}", d.kubeconfig.display()));
    o.assert_fails("API", &["cannot use its API credentials"]);
    assert_eq!(
        fs::metadata(&d.kubeconfig).unwrap().mode() & 0o777,
        0o666,
        "doctor changes no mode"
    );

    // The token file of another owner.
    let d = Doctor::start();
    std::os::unix::fs::chown(&d.token, Some(65534), Some(65534)).unwrap();
    let o = d.run();
    let fix = o.assert_fails("token", &["owned by uid 65534"]);
    assert!(fix.starts_with("chown "), "{fix}");

    // The token readable by others: a warning (the next plexus sets 0600), not a FAIL.
    let d = Doctor::start();
    fs::set_permissions(&d.token, fs::Permissions::from_mode(0o644)).unwrap();
    let o = d.run();
    assert_eq!(o.code, 0, "{}", o.dump());
    assert!(
        o.with("token", "warn")[0].0.contains("mode 0644"),
        "{}",
        o.dump()
    );
    assert_eq!(fs::metadata(&d.token).unwrap().mode() & 0o777, 0o644);
}

#[test]
fn an_expired_token_is_named() {
    let d = Doctor::start();
    // The API server refuses it, as a real one does (the stand-in never learns it).
    fs::write(&d.token, jwt(now() - 7200, now() - 120)).unwrap();
    let o = d.run();
    let fix = o.assert_fails("token", &["expired at", "ago"]);
    assert!(fix.contains("installer"), "{fix}");
    o.assert_fails("API", &["401 Unauthorized"]);
    assert_eq!(
        o.with("permissions", "warn")[0].0,
        "skipped (the API refuses plexus's credentials)",
        "{}",
        o.dump()
    );
}

#[test]
fn an_unreachable_api_is_named_and_what_needs_it_is_skipped() {
    let d = Doctor::start();
    d.set("apiTimeoutSeconds", json!(1));
    d.set("apiConnectTimeoutSeconds", json!(1));
    d.node.api.refuse_connections(true);
    let o = d.run();
    o.assert_fails("API", &["did not answer", &d.node.api.url()]);
    assert_eq!(
        o.with("permissions", "warn")[0].0,
        "skipped (API unreachable)",
        "{}",
        o.dump()
    );
    assert!(
        o.with("plugins", "warn")
            .iter()
            .any(|(w, _)| w.starts_with("skipped (API unreachable")),
        "{}",
        o.dump()
    );
    assert_eq!(
        o.doc["problems"].as_array().unwrap().len(),
        1,
        "{}",
        o.dump()
    );
}

#[test]
fn a_missing_permission_is_named() {
    let d = Doctor::start();
    let mut rules = plexus_rules();
    let status = rules
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["resources"] == json!(["pods/status"]))
        .unwrap();
    status["verbs"] = json!(["get", "update"]);
    d.node.api.set_rbac(&rules);
    let o = d.run();
    let fix = o.assert_fails("permissions", &["plexus may not patch pods/status"]);
    assert!(fix.contains("rbac.yaml"), "{fix}");
    assert_eq!(o.with("permissions", "fail").len(), 1, "{}", o.dump());
}

#[test]
fn a_broader_grant_is_a_warning() {
    let d = Doctor::start();
    let mut rules = plexus_rules();
    rules.as_array_mut().unwrap().push(
        json!({"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "delete"]}),
    );
    d.node.api.set_rbac(&rules);
    let o = d.run();
    assert_eq!(o.code, 0, "{}", o.dump());
    let warnings: Vec<String> = o
        .with("permissions", "warn")
        .into_iter()
        .map(|w| w.0)
        .collect();
    assert_eq!(warnings.len(), 2, "{}", o.dump());
    assert!(
        warnings[0].starts_with("plexus may also delete pods"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("plexus may also get secrets"),
        "{warnings:?}"
    );
    // And everything allowed (the stand-in's default, a cluster-admin binding): `*` on `*`.
    d.node.api.allow_all();
    let o = d.run();
    assert_eq!(o.code, 0, "{}", o.dump());
    assert_eq!(o.with("permissions", "warn").len(), 5, "{}", o.dump());
}

#[test]
fn a_journal_directory_others_may_read_is_named() {
    let d = Doctor::start();
    fs::create_dir(&d.node.cni_dir).unwrap();
    fs::set_permissions(&d.node.cni_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let fix = d
        .run()
        .assert_fails("journal directory", &["mode 0755, not 0700"]);
    assert_eq!(fix, format!("chmod 0700 {}", d.node.cni_dir.display()));
    assert_eq!(
        fs::metadata(&d.node.cni_dir).unwrap().mode() & 0o7777,
        0o755,
        "doctor changes no mode"
    );
}

#[test]
fn an_unfinished_add_nobody_holds_is_a_warning() {
    use plexus::state::{Attachment, Journal, PodKey, StateDir};
    let d = Doctor::start();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"namespace": NS, "name": "slow", "uid": "u-slow"}});
    d.node.api.put(pod);
    let state = StateDir::open(&d.node.cni_dir).unwrap();
    state
        .save(&Journal::new(
            "c-slow",
            "eth0",
            Some("/run/netns/x".into()),
            "K8S_POD_NAMESPACE=default;K8S_POD_NAME=slow;K8S_POD_UID=u-slow",
            Some(PodKey {
                namespace: NS.into(),
                name: "slow".into(),
                uid: Some("u-slow".into()),
            }),
            vec![Attachment::new(
                "cluster",
                "eth0",
                "{}",
                Default::default(),
                "",
                true,
            )],
        ))
        .unwrap();
    let o = d.run();
    assert_eq!(o.code, 0, "{}", o.dump());
    let w = o.with("journals", "warn");
    assert!(
        w[0].0
            .contains("c-slow:eth0 (pod default/slow): an ADD that did not finish"),
        "{}",
        o.dump()
    );
    assert!(w[0].1.contains("CNI_COMMAND=DEL"), "{}", o.dump());
}

/// Runs `command` with `sh -c`, as an operator pasting it would.
fn sh(command: &str) {
    let out = plexus_conformance::output_with_timeout(
        Command::new("sh").arg("-c").arg(command),
        b"",
        DOCTOR_TIMEOUT,
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{command}\nexit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn jq_installed() -> bool {
    Command::new("jq")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_journal_left_by_a_deleted_pod_is_named_with_the_command_that_cleans_it() {
    sandbox::run(
        "a_journal_left_by_a_deleted_pod_is_named_with_the_command_that_cleans_it",
        || {
            let d = Doctor::start();
            let gone = d.node.pod("gone", "");
            let renewed = d.node.pod("renewed", "");
            d.add(&gone);
            d.add(&renewed);
            // One pod deleted, one recreated under its name (another UID), both without the
            // runtime's DEL.
            d.node.api.delete("pods", NS, "gone").unwrap();
            let mut again = d.node.api.delete("pods", NS, "renewed").unwrap();
            again["metadata"]["uid"] = json!("uid-renewed-new");
            again["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("resourceVersion");
            d.node.api.put(again);

            let o = d.run();
            o.assert_fails(
                "journals",
                &[&gone.container_id, "pod default/gone no longer exists"],
            );
            o.assert_fails(
                "journals",
                &[&renewed.container_id, "was recreated", "uid-renewed-new"],
            );

            // The conflist form (jq), run as printed, when jq is there; then the form for a
            // single conf file (`< FILE`), which needs nothing.
            let conf = d.node.dir.path().join("00-plexus.conf");
            fs::write(&conf, serde_json::to_vec(&d.stdin()).unwrap()).unwrap();
            let single = d.run_with(&conf);
            let single_fix = single.assert_fails("journals", &[&gone.container_id]);
            assert!(
                single_fix.ends_with(&format!("< {}", conf.display())),
                "{single_fix}"
            );
            let fix = o.assert_fails("journals", &[&gone.container_id]);
            if jq_installed() {
                assert!(
                    fix.starts_with("jq '.plugins[0] + {name: .name, cniVersion: .cniVersion}'"),
                    "{fix}"
                );
                sh(&fix);
            } else {
                eprintln!("jq not installed: running the single-conf form only");
                sh(&single_fix);
            }
            assert!(
                d.node.journal_files_of(&gone).is_empty(),
                "the journal is gone"
            );
            gone.assert_only_lo("after the printed DEL");

            let o = d.run_with(&conf);
            let fix = o.assert_fails("journals", &[&renewed.container_id]);
            assert!(o.with("journals", "fail").len() == 1, "{}", o.dump());
            sh(&fix);
            renewed.assert_only_lo("after the printed DEL");
            assert_no_leases("after both DELs");
            let o = d.run();
            assert_eq!(o.code, 0, "{}", o.dump());
            assert!(
                o.with("journals", "ok")[0].0.starts_with("0 journal(s)"),
                "{}",
                o.dump()
            );
        },
    );
}

#[test]
fn a_resource_without_the_kubelet_socket_is_named() {
    let d = Doctor::start();
    d.node.api.put(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"namespace": NS, "name": "sriov-net",
                     "annotations": {"k8s.v1.cni.cncf.io/resourceName": "example.com/vf"}},
        "spec": {"config": json!({"cniVersion": "1.0.0", "name": "sriov-net",
                                  "type": "host-device"}).to_string()}
    }));
    let socket = d.node.dir.path().join("kubelet.sock");
    d.set("podResourcesSocket", json!(socket));
    d.set("podResourcesTimeoutSeconds", json!(2));
    let o = d.run();
    let fix = o.assert_fails(
        "PodResources",
        &["NAD default/sriov-net: example.com/vf", "cannot be reached"],
    );
    assert!(fix.contains("podResourcesSocket"), "{fix}");
    // Without rbac-dra.yaml's grants, DRA pods could not be served: a warning naming the fix.
    let warned = o.with("PodResources", "warn");
    assert_eq!(warned.len(), 1, "{}", o.dump());
    assert!(
        warned[0].0.contains(
            "plexus may not get resourceclaims.resource.k8s.io, list resourceslices.resource.k8s.io"
        ),
        "{}",
        o.dump()
    );
    // With the kubelet's socket answering and both roles granted, all is well.
    let _kubelet = PodResourcesServer::start(&socket);
    let mut rules = plexus_rules().as_array().unwrap().clone();
    rules.extend(dra_rules().as_array().unwrap().iter().cloned());
    d.node.api.set_rbac(&Value::Array(rules));
    let o = d.run();
    o.assert_healthy();
    assert!(
        o.with("PodResources", "ok")
            .iter()
            .any(|(detail, _)| detail.contains("may get resourceclaims")),
        "{}",
        o.dump()
    );
    assert!(
        o.with("PodResources", "ok")[0].0.contains("answers List"),
        "{}",
        o.dump()
    );
}
