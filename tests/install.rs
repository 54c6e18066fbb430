//! `plexus install` as a DaemonSet pod runs it: the real binary against a fake host (temp
//! directories standing in for `/opt/cni/bin`, `/etc/cni/net.d` and the service-account
//! volume). Covers the choice of the default config among the shapes Calico, Cilium, Flannel,
//! Weave and kube-router install, regeneration on change, atomicity (a writer SIGKILLed in the
//! middle of a write), refusal of malformed configs, the kubeconfig (checked end to end against
//! the API stand-in) and the binary copy. No root needed; every wait is bounded.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plexus::k8s::api::KubeApi;
use plexus::k8s::client::{Client, ClientOptions};
use plexus::k8s::pod::RUNTIME_ANNOTATIONS as POD_ANNOTATIONS;
use plexus_conformance::apiserver::ApiServer;
use plexus_conformance::{output_with_timeout, wait_until};
use serde_json::{Value, json};

const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(20);
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
const OUTPUT: &str = "00-plexus.conflist";

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/install")
        .join(name);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fake node: bin/, net.d/, the service-account volume and a small stand-in binary.
struct Host {
    root: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let root = tempfile::tempdir().unwrap();
        for d in ["bin", "net.d", "sa"] {
            fs::create_dir(root.path().join(d)).unwrap();
        }
        fs::write(root.path().join("sa/token"), "token-1").unwrap();
        fs::write(root.path().join("sa/ca.crt"), CA).unwrap();
        fs::write(
            root.path().join("plexus-image-binary"),
            "#!/bin/sh\nexit 0\n",
        )
        .unwrap();
        Host { root }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn net_d(&self) -> PathBuf {
        self.p("net.d")
    }

    fn put(&self, name: &str, content: &str) {
        fs::write(self.net_d().join(name), content).unwrap();
    }

    /// Replaces a file the way careful installers do (rename), so one event carries it.
    fn put_atomically(&self, name: &str, content: &str) {
        let tmp = self.net_d().join(format!(".{name}.editing"));
        fs::write(&tmp, content).unwrap();
        fs::rename(tmp, self.net_d().join(name)).unwrap();
    }

    /// The flags of a DaemonSet pod whose host dirs are these; the host sees net.d as
    /// /etc/cni/net.d (the default).
    fn args(&self) -> Vec<String> {
        vec![
            format!("--cni-bin-dir={}", self.p("bin").display()),
            format!("--cni-conf-dir={}", self.net_d().display()),
            format!("--service-account-dir={}", self.p("sa").display()),
            format!("--binary={}", self.p("plexus-image-binary").display()),
            "--kubernetes-server=https://10.96.0.1:443".into(),
        ]
    }

    fn command(&self, extra: &[&str]) -> Command {
        // A flag in `extra` replaces the default one; --no-kubeconfig drops the server.
        let flag = |a: &str| a.split('=').next().unwrap_or("").to_owned();
        let mut args = self.args();
        let no_server = extra.contains(&"--no-kubeconfig");
        args.retain(|a| {
            let replaced = extra.iter().any(|e| flag(e) == flag(a));
            let dropped = no_server && a.starts_with("--kubernetes-server");
            !replaced && !dropped
        });
        let mut c = Command::new(env!("CARGO_BIN_EXE_plexus"));
        c.arg("install")
            .args(args)
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        c
    }

    fn once(&self, extra: &[&str]) -> Output {
        let mut args = vec!["--once"];
        args.extend_from_slice(extra);
        output_with_timeout(&mut self.command(&args), b"", RUN_TIMEOUT).unwrap()
    }

    fn once_ok(&self, extra: &[&str]) -> Value {
        let out = self.once(extra);
        assert!(
            out.status.success(),
            "plexus install failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
        self.output().expect("no node config written")
    }

    fn output_bytes(&self) -> Option<Vec<u8>> {
        fs::read(self.net_d().join(OUTPUT)).ok()
    }

    fn output(&self) -> Option<Value> {
        self.output_bytes()
            .map(|b| serde_json::from_slice(&b).expect("the node config is complete JSON"))
    }

    fn cluster_network(&self) -> Option<String> {
        self.output().and_then(|v| {
            v["plugins"][0]["clusterNetwork"]
                .as_str()
                .map(str::to_owned)
        })
    }

    fn entries(&self, dir: &str) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.p(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The one line a failed run ends with.
fn last_line(out: &Output) -> String {
    stderr_of(out).lines().last().unwrap_or("").to_owned()
}

#[test]
fn help_and_usage_errors() {
    let out = output_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_plexus")).args(["install", "--help"]),
        b"",
        RUN_TIMEOUT,
    )
    .unwrap();
    assert!(out.status.success());
    let usage = String::from_utf8(out.stdout).unwrap();
    assert!(
        usage.starts_with("Usage: plexus install [flags]"),
        "{usage}"
    );
    for flag in [
        "--cni-bin-dir",
        "--cni-conf-dir",
        "--once",
        "--kubernetes-server",
    ] {
        assert!(usage.contains(flag), "{flag} missing from the usage");
    }
    let out = output_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_plexus")).args(["install", "--frobnicate"]),
        b"",
        RUN_TIMEOUT,
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr_of(&out),
        "plexus install: unknown flag --frobnicate (see plexus install --help)\n"
    );
    // Outside a pod, without a server: one clear line.
    let out = output_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_plexus"))
            .args(["install", "--once"])
            .env_remove("KUBERNETES_SERVICE_HOST"),
        b"",
        RUN_TIMEOUT,
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_of(&out).lines().count(), 1, "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("KUBERNETES_SERVICE_HOST is not set"));
}

#[test]
fn each_cluster_network_shape_becomes_the_cluster_network() {
    // The default's own, then the pod annotations' (a kubeconfig is written).
    for (file, version, caps) in [
        (
            "10-calico.conflist",
            "0.3.1",
            json!({"bandwidth": true, "portMappings": true, POD_ANNOTATIONS: true}),
        ),
        (
            "05-cilium.conflist",
            "0.3.1",
            json!({ POD_ANNOTATIONS: true }),
        ),
        (
            "10-flannel.conflist",
            "0.3.1",
            json!({"portMappings": true, POD_ANNOTATIONS: true}),
        ),
        (
            "10-weave.conflist",
            "0.3.0",
            json!({"portMappings": true, POD_ANNOTATIONS: true}),
        ),
        (
            "10-kuberouter.conflist",
            "0.3.0",
            json!({"snat": true, "portMappings": true, POD_ANNOTATIONS: true}),
        ),
    ] {
        let h = Host::new();
        h.put(file, &fixture(file));
        h.put("calico-kubeconfig", &fixture("calico-kubeconfig"));
        h.put("README", "not a config");
        let v = h.once_ok(&[]);
        assert_eq!(
            v,
            json!({
                "cniVersion": version,
                "name": "plexus-cni-network",
                "plugins": [{
                    "type": "plexus",
                    "kubeconfig": "/etc/cni/net.d/plexus.d/plexus.kubeconfig",
                    "clusterNetwork": format!("/etc/cni/net.d/{file}"),
                    "capabilities": caps
                }]
            }),
            "{file}"
        );
        // The capabilities keep the order the default declares them in.
        let keys: Vec<&String> = v["plugins"][0]["capabilities"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let want: Vec<&String> = caps.as_object().unwrap().keys().collect();
        assert_eq!(keys, want, "{file}");
        assert_eq!(mode(&h.net_d().join(OUTPUT)), 0o644);
        // The other files are untouched.
        assert_eq!(
            fs::read_to_string(h.net_d().join(file)).unwrap(),
            fixture(file)
        );
    }
}

#[test]
fn the_first_real_config_wins_among_many() {
    let h = Host::new();
    for f in [
        "05-cilium.conflist",
        "10-calico.conflist",
        "10-flannel.conflist",
        "10-weave.conflist",
        "10-kuberouter.conflist",
        "calico-kubeconfig",
    ] {
        h.put(f, &fixture(f));
    }
    h.put("README", "# notes");
    h.put("01-notes.txt", "not a config");
    h.put("02-disabled.conflist.bak", "{");
    h.put(".01-hidden.conflist", "{ broken");
    h.put(
        ".00-plexus.conflist.plexus-tmp-4242-0",
        "{\"cniVersion\": \"1.0.",
    );
    h.put(
        "03-old-plexus.conf",
        r#"{"cniVersion":"1.0.0","name":"multus-era","type":"plexus","kubeconfig":"/x"}"#,
    );
    h.put(
        "04-plexus-chain.conflist",
        r#"{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"tuning"},{"type":"plexus"}]}"#,
    );
    fs::create_dir(h.net_d().join("02-a-directory.conf")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/x.conf", h.net_d().join("02-dangling.conf")).unwrap();
    assert_eq!(
        h.once_ok(&[])["plugins"][0]["clusterNetwork"],
        "/etc/cni/net.d/05-cilium.conflist"
    );
    // Its own output is never the default, even when it sorts first.
    assert!(h.net_d().join(OUTPUT).exists());
    assert_eq!(
        h.once_ok(&[])["plugins"][0]["clusterNetwork"],
        "/etc/cni/net.d/05-cilium.conflist"
    );
    // A .json file before it.
    h.put(
        "04-macvlan.json",
        r#"{"cniVersion":"1.0.0","name":"json-net","type":"macvlan","master":"eth0"}"#,
    );
    let v = h.once_ok(&[]);
    assert_eq!(
        v["plugins"][0]["clusterNetwork"],
        "/etc/cni/net.d/04-macvlan.json"
    );
    assert_eq!(v["cniVersion"], "1.0.0");
    // A .conf before that.
    h.put(
        "01-bridge.conf",
        r#"{"cniVersion":"0.4.0","name":"br","type":"bridge","capabilities":{"ips":true}}"#,
    );
    let v = h.once_ok(&[]);
    assert_eq!(
        v["plugins"][0]["clusterNetwork"],
        "/etc/cni/net.d/01-bridge.conf"
    );
    assert_eq!(v["cniVersion"], "0.4.0");
    assert_eq!(
        v["plugins"][0]["capabilities"],
        json!({"ips": true, POD_ANNOTATIONS: true})
    );
    // The stale temp file of a killed writer was cleaned up; nothing else was.
    assert!(
        !h.net_d()
            .join(".00-plexus.conflist.plexus-tmp-4242-0")
            .exists()
    );
    assert!(h.net_d().join(".01-hidden.conflist").exists());
}

#[test]
fn only_plexus_configs_means_no_default() {
    let h = Host::new();
    h.put(
        "10-plexus-by-hand.conflist",
        r#"{"cniVersion":"1.0.0","name":"p","plugins":[{"type":"plexus"}]}"#,
    );
    let out = h.once(&[]);
    assert_eq!(out.status.code(), Some(1));
    let line = last_line(&out);
    assert!(
        line.starts_with("plexus install: no CNI config in "),
        "{line}"
    );
    assert!(line.contains("install the cluster network first"), "{line}");
    assert!(h.output_bytes().is_none());
}

#[test]
fn a_malformed_default_is_refused_and_the_old_config_kept() {
    let h = Host::new();
    h.put("10-flannel.conflist", &fixture("10-flannel.conflist"));
    h.once_ok(&[]);
    let before = h.output_bytes().unwrap();
    let inode = fs::metadata(h.net_d().join(OUTPUT)).unwrap().ino();
    for (content, problem) in [
        (
            "{\"cniVersion\": \"0.3.1\", \"name\": ",
            "error decoding network config",
        ),
        (
            r#"{"cniVersion":"0.3.1","plugins":[{"type":"bridge"}]}"#,
            "no \"name\"",
        ),
        (
            r#"{"cniVersion":"9.9.9","name":"x","type":"bridge"}"#,
            "incompatible CNI versions",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#,
            "conflist has no plugins",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"},{"mtu":1400}]}"#,
            "plugins[1] has no \"type\"",
        ),
    ] {
        h.put("01-broken.conflist", content);
        let out = h.once(&[]);
        assert_eq!(out.status.code(), Some(1), "{content}");
        let line = last_line(&out);
        assert!(
            line.starts_with(&format!(
                "plexus install: default CNI config {} refused: ",
                h.net_d().join("01-broken.conflist").display()
            )),
            "{line}"
        );
        assert!(line.contains(problem), "{content}: {line}");
        assert!(
            line.ends_with("the plexus config was left as it was"),
            "{line}"
        );
        assert_eq!(h.output_bytes().unwrap(), before, "{content}");
        assert_eq!(fs::metadata(h.net_d().join(OUTPUT)).unwrap().ino(), inode);
    }
    fs::remove_file(h.net_d().join("01-broken.conflist")).unwrap();
    h.once_ok(&[]);
    assert_eq!(h.output_bytes().unwrap(), before);
}

#[test]
fn node_config_keys_from_flags() {
    let h = Host::new();
    h.put("10-calico.conflist", &fixture("10-calico.conflist"));
    let v = h.once_ok(&[
        "--no-kubeconfig",
        "--cni-dir=/var/lib/cni/plexus",
        "--bin-dir=/opt/cni/bin",
        "--log-level=verbose",
        "--readiness-indicator-file=/var/run/calico/ready",
        "--namespace-isolation",
        "--global-namespaces=default,shared",
        "--host-cni-conf-dir=/var/lib/rancher/cni/net.d",
    ]);
    assert_eq!(
        v["plugins"][0],
        json!({
            "type": "plexus",
            "clusterNetwork": "/var/lib/rancher/cni/net.d/10-calico.conflist",
            "capabilities": {"bandwidth": true, "portMappings": true},
            "cniDir": "/var/lib/cni/plexus",
            "binDir": "/opt/cni/bin",
            "logLevel": "verbose",
            "readinessindicatorfile": "/var/run/calico/ready",
            "namespaceIsolation": true,
            "globalNamespaces": ["default", "shared"]
        })
    );
    // Without a kubeconfig nothing is written for it.
    assert!(!h.net_d().join("plexus.d").exists());
}

#[test]
fn kubeconfig_works_against_an_api_server_and_follows_token_rotation() {
    let api = ApiServer::start();
    api.put(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"namespace": "default", "name": "web", "uid": "u-web",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "macvlan-a"}},
        "spec": {"containers": [{"name": "c", "image": "pause"}]}
    }));
    let h = Host::new();
    fs::write(h.p("sa/token"), api.token()).unwrap();
    fs::write(h.p("sa/ca.crt"), api.ca_pem()).unwrap();
    h.put("10-flannel.conflist", &fixture("10-flannel.conflist"));
    // Here the "host" sees net.d where the test does, so the kubeconfig's paths are usable.
    let host_view = format!("--host-cni-conf-dir={}", h.net_d().display());
    let server = format!("--kubernetes-server={}", api.url());
    let v = h.once_ok(&[&host_view, &server]);
    let dir = h.net_d().join("plexus.d");
    let kubeconfig = dir.join("plexus.kubeconfig");
    assert_eq!(
        v["plugins"][0]["kubeconfig"],
        kubeconfig.display().to_string()
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&kubeconfig), 0o600);
    assert_eq!(mode(&dir.join("token")), 0o600);
    assert_eq!(h.entries("net.d/plexus.d"), ["plexus.kubeconfig", "token"]);
    assert_eq!(fs::read_to_string(dir.join("token")).unwrap(), api.token());

    // Content: tokenFile by path, the CA embedded, no token inline.
    let text = fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        !text.contains(api.token()),
        "the token itself must not be in the kubeconfig"
    );
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some(api.url().as_str()));
    let ca = decode_base64(cluster.certificate_authority_data.as_deref().unwrap());
    assert_eq!(ca, api.ca_pem().as_bytes());
    let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
    assert_eq!(
        user.token_file.as_deref(),
        Some(dir.join("token").to_str().unwrap())
    );

    // plexus's own client reads a pod with it.
    let read_pod = || {
        let client = Client::new(&ClientOptions {
            kubeconfig: Some(kubeconfig.clone()),
            ..ClientOptions::default()
        })
        .unwrap()
        .unwrap();
        client.pod("default", "web")
    };
    assert_eq!(read_pod().unwrap().uid, "u-web");

    // The kubelet rotates the token: the next pass copies it, and plexus uses the new one.
    let old = api.token().to_owned();
    api.add_token("rotated-token-2");
    api.remove_token(&old);
    assert!(read_pod().is_err(), "the old token must be refused now");
    fs::write(h.p("sa/token"), "rotated-token-2").unwrap();
    h.once_ok(&[&host_view, &server]);
    assert_eq!(
        fs::read_to_string(dir.join("token")).unwrap(),
        "rotated-token-2"
    );
    assert_eq!(read_pod().unwrap().uid, "u-web");

    // The token never reaches the log.
    let out = h.once(&[&host_view, &server]);
    assert!(!stderr_of(&out).contains("rotated-token-2"));
}

/// Standard base64 with padding (the test's own decoder).
fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|&c| c != b'=').collect();
        let mut n = 0u32;
        for (i, &c) in data.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        for i in 0..data.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn a_missing_service_account_fails_before_the_node_config() {
    let h = Host::new();
    h.put("10-flannel.conflist", &fixture("10-flannel.conflist"));
    fs::remove_file(h.p("sa/ca.crt")).unwrap();
    let out = h.once(&[]);
    assert_eq!(out.status.code(), Some(1));
    let line = last_line(&out);
    assert!(
        line.contains(&h.p("sa/ca.crt").display().to_string()),
        "{line}"
    );
    assert!(
        h.output_bytes().is_none(),
        "no node config without its kubeconfig"
    );
}

#[test]
fn the_running_binary_is_copied_0755_atomically_and_only_when_different() {
    let h = Host::new();
    h.put("10-flannel.conflist", &fixture("10-flannel.conflist"));
    // No --binary: the running executable itself (/proc/self/exe).
    let run = || {
        let mut c = h.command(&["--once"]);
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_str().unwrap().to_owned())
            .filter(|a| !a.starts_with("--binary="))
            .collect();
        c = Command::new(env!("CARGO_BIN_EXE_plexus"));
        c.args(args).env_clear();
        let out = output_with_timeout(&mut c, b"", RUN_TIMEOUT).unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
    };
    run();
    let target = h.p("bin/plexus");
    let same_as_built =
        || fs::read(&target).unwrap() == fs::read(env!("CARGO_BIN_EXE_plexus")).unwrap();
    assert!(same_as_built());
    assert_eq!(mode(&target), 0o755);
    assert_eq!(h.entries("bin"), ["plexus"], "no temp file left");
    // Identical: not rewritten (same inode, so a runtime exec'ing it is never disturbed).
    let inode = fs::metadata(&target).unwrap().ino();
    run();
    assert_eq!(fs::metadata(&target).unwrap().ino(), inode);
    // Different (an older version): replaced by a rename, never written in place.
    fs::write(&target, "old plexus").unwrap();
    let old_inode = fs::metadata(&target).unwrap().ino();
    run();
    assert!(same_as_built());
    assert_ne!(fs::metadata(&target).unwrap().ino(), old_inode);
    // The copied binary is plexus: it answers VERSION.
    let out = output_with_timeout(
        Command::new(&target)
            .env_clear()
            .env("CNI_COMMAND", "VERSION"),
        b"",
        RUN_TIMEOUT,
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("supportedVersions"));
}

/// Starts a writer that stalls half-way through writing `target` (debug builds only, see
/// `install::atomic`), waits until it says so, and SIGKILLs it.
fn kill_mid_write(h: &Host, target: &str) {
    let mut child = h
        .command(&["--once"])
        .env("PLEXUS_DEBUG_STALL_WRITE", target)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = ChildGuard(Some(child.id()));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("PLEXUS_DEBUG_STALL_WRITE: stalled") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    let line = rx
        .recv_timeout(RUN_TIMEOUT)
        .expect("the writer never reached the stall point");
    assert!(line.contains(&format!(".{target}.plexus-tmp-")), "{line}");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    drop(guard);
    assert!(!status.success());
}

#[test]
fn a_writer_killed_mid_write_leaves_the_old_config_whole() {
    let h = Host::new();
    h.put("10-flannel.conflist", &fixture("10-flannel.conflist"));
    h.once_ok(&[]);
    let before = h.output_bytes().unwrap();

    // A new default needs a new node config; its writer dies half-way.
    h.put("05-cilium.conflist", &fixture("05-cilium.conflist"));
    kill_mid_write(&h, OUTPUT);
    assert_eq!(
        h.output_bytes().unwrap(),
        before,
        "the runtime still sees the old, whole file"
    );
    let temps: Vec<String> = h
        .entries("net.d")
        .into_iter()
        .filter(|n| n.starts_with(".00-plexus.conflist.plexus-tmp-"))
        .collect();
    assert_eq!(temps.len(), 1, "{:?}", h.entries("net.d"));
    let partial = fs::read(h.net_d().join(&temps[0])).unwrap();
    assert!(!partial.is_empty());
    assert!(
        serde_json::from_slice::<Value>(&partial).is_err(),
        "the temp file is the half"
    );

    // The next run removes the leftover and writes the whole new file.
    let v = h.once_ok(&[]);
    assert_eq!(
        v["plugins"][0]["clusterNetwork"],
        "/etc/cni/net.d/05-cilium.conflist"
    );
    assert!(!h.net_d().join(&temps[0]).exists());

    // The same for the kubeconfig and the binary.
    fs::write(h.p("sa/token"), "token-2").unwrap();
    kill_mid_write(&h, "token");
    assert_eq!(
        fs::read_to_string(h.p("net.d/plexus.d/token")).unwrap(),
        "token-1"
    );
    fs::write(h.p("plexus-image-binary"), "#!/bin/sh\nexit 3\n").unwrap();
    kill_mid_write(&h, "plexus");
    assert_eq!(
        fs::read_to_string(h.p("bin/plexus")).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );
    h.once_ok(&[]);
    assert_eq!(
        fs::read_to_string(h.p("net.d/plexus.d/token")).unwrap(),
        "token-2"
    );
    assert_eq!(
        fs::read_to_string(h.p("bin/plexus")).unwrap(),
        "#!/bin/sh\nexit 3\n"
    );
    assert_eq!(h.entries("bin"), ["plexus"]);
    assert_eq!(h.entries("net.d/plexus.d"), ["plexus.kubeconfig", "token"]);
}

/// Kills a still-running child on drop (a failed assertion must not leave it behind).
struct ChildGuard(Option<u32>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // SAFETY: kill(2) with a pid we spawned; it may already be gone (ESRCH).
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// A long-running installer with its stderr collected line by line.
struct Running {
    child: Child,
    guard: ChildGuard,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(h: &Host, extra: &[&str]) -> Running {
        let mut child = h
            .command(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let guard = ChildGuard(Some(child.id()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Running { child, guard, log }
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

#[test]
fn the_watch_follows_the_default_config_and_stops_on_sigterm() {
    let h = Host::new();
    h.put("10-flannel.conflist", &fixture("10-flannel.conflist"));
    // A long poll interval: only inotify can make these changes visible within the waits.
    let mut r = Running::start(&h, &["--poll-interval=300"]);
    let hr = &h;
    let is = |file: &str| {
        let want = format!("/etc/cni/net.d/{file}");
        move || hr.cluster_network().as_deref() == Some(want.as_str())
    };
    wait_until("the first node config", WAIT, is("10-flannel.conflist"));
    wait_until("the watch to start", WAIT, || {
        r.logged("watching for changes")
    });

    // A new, lexically earlier default takes over.
    h.put_atomically("05-cilium.conflist", &fixture("05-cilium.conflist"));
    wait_until("the switch to cilium", WAIT, is("05-cilium.conflist"));
    assert_eq!(
        h.output().unwrap()["plugins"][0]["capabilities"],
        json!({ POD_ANNOTATIONS: true })
    );

    // Modified in place: the capabilities follow.
    let mut cilium: Value = serde_json::from_str(&fixture("05-cilium.conflist")).unwrap();
    cilium["plugins"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "portmap", "capabilities": {"portMappings": true}}));
    h.put("05-cilium.conflist", &cilium.to_string());
    wait_until("the new capabilities", WAIT, || {
        h.output().is_some_and(|v| {
            v["plugins"][0]["capabilities"] == json!({"portMappings": true, POD_ANNOTATIONS: true})
        })
    });

    // Broken: refused, logged, the last good config stays.
    let good = h.output_bytes().unwrap();
    h.put_atomically(
        "05-cilium.conflist",
        r#"{"cniVersion": "0.3.1", "name": "cilium", "plugins": []}"#,
    );
    wait_until("the refusal", WAIT, || {
        r.logged("05-cilium.conflist refused")
    });
    assert_eq!(h.output_bytes().unwrap(), good);

    // The kubelet rotates the token meanwhile: the copy follows, the same refusal is not
    // logged again and the node config stays.
    let tmp = h.p("sa/.token.new");
    fs::write(&tmp, "token-rotated").unwrap();
    fs::rename(&tmp, h.p("sa/token")).unwrap();
    wait_until("the token copy", WAIT, || {
        fs::read_to_string(h.p("net.d/plexus.d/token")).is_ok_and(|t| t == "token-rotated")
    });
    assert_eq!(h.output_bytes().unwrap(), good);

    // Removed: back to flannel.
    fs::remove_file(h.net_d().join("05-cilium.conflist")).unwrap();
    wait_until(
        "the switch back to flannel",
        WAIT,
        is("10-flannel.conflist"),
    );
    wait_until("the recovery in the log", WAIT, || r.logged("recovered"));

    // Someone deletes plexus's own config: it comes back.
    fs::remove_file(h.net_d().join(OUTPUT)).unwrap();
    wait_until(
        "the node config to come back",
        WAIT,
        is("10-flannel.conflist"),
    );

    // SIGTERM: a clean exit, the config stays.
    // SAFETY: kill(2) on the child we spawned, still running.
    assert_eq!(unsafe { libc::kill(r.child.id() as i32, libc::SIGTERM) }, 0);
    let mut status = None;
    wait_until("the installer to exit", WAIT, || {
        status = r.child.try_wait().unwrap();
        status.is_some()
    });
    r.guard.0 = None;
    assert_eq!(status.unwrap().code(), Some(0), "{}", r.log_text());
    wait_until("the stop in the log", WAIT, || r.logged("stopping"));
    assert_eq!(
        h.cluster_network().as_deref(),
        Some("/etc/cni/net.d/10-flannel.conflist")
    );
    assert!(!r.log_text().contains("token-rotated"));
    // Each distinct problem was logged once, as an error.
    let refusals = r
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("ERROR") && l.contains("conflist has no plugins"))
        .count();
    assert_eq!(refusals, 1, "{}", r.log_text());
}

#[test]
fn the_watch_polls_what_inotify_cannot_see() {
    // The default config is a symlink to a file elsewhere: editing the target makes no
    // event in net.d, the poll interval picks it up.
    let h = Host::new();
    let elsewhere = h.p("vendor.conflist");
    fs::write(&elsewhere, fixture("10-flannel.conflist")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, h.net_d().join("10-vendor.conflist")).unwrap();
    let r = Running::start(&h, &["--poll-interval=0.2"]);
    wait_until("the first node config", WAIT, || {
        h.output().is_some_and(|v| {
            v["plugins"][0]["capabilities"] == json!({"portMappings": true, POD_ANNOTATIONS: true})
        })
    });
    fs::write(&elsewhere, fixture("05-cilium.conflist")).unwrap();
    wait_until("the poll to see the change", WAIT, || {
        h.output()
            .is_some_and(|v| v["plugins"][0]["capabilities"] == json!({ POD_ANNOTATIONS: true }))
    });
    drop(r);
}
