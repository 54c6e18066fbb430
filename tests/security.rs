//! The security review (issue 26), one section per finding, each reproduced on the simulated
//! node and shown fixed: the API stand-in, Debian's real plugins in pod network namespaces
//! inside a private sandbox, and the plexus binary called as a runtime calls it. Needs root.
//!
//! 1. A NAD naming a meta-plugin (plexus by name, a copy of plexus, Multus, either as the
//!    plugin or as its IPAM) runs nothing of its author's choosing: a canary file the payload
//!    would create stays absent, and nothing is left. The node's plugin-type policy limits
//!    what the networks a pod selects may run.
//! 2. A delegate still running when plexus is SIGKILLed is killed by the DEL that follows,
//!    before it tears down, so nothing appears after DEL.
//! 3. Concurrent ADDs of one container never remove each other's interfaces.
//! 4. A delegate result with an invalid interface name, MAC or size is refused and rolled back.
//! 5. A log file that another user prepared (or a symlink) is left untouched.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use plexus_conformance::plugins::process_alive;
use plexus_conformance::sandbox;
use serde_json::{Value, json};

use common::node::{Node, Pod, cluster_bridge, macvlan, run_plexus};

/// A node whose `binDir` holds a copy of the plexus binary named `plexus` and another named
/// `innocent` (as an installer could have put there), and a fake `multus` that would create
/// the canary; `namespaceIsolation` on, as in the review.
fn node_with_meta_plugins() -> (Node, PathBuf) {
    let mut node = Node::start(cluster_bridge("cl-sec", "plxs0", "10.150.0.0/24"));
    let bin = node.dir.path().join("bin");
    fs::create_dir(&bin).expect("mkdir bin");
    for name in ["plexus", "innocent"] {
        fs::copy(env!("CARGO_BIN_EXE_plexus"), bin.join(name)).expect("copy plexus");
    }
    let canary = node.dir.path().join("PWNED");
    let multus = bin.join("multus");
    fs::write(
        &multus,
        format!("#!/bin/sh\nid > {}\nexit 1\n", canary.display()),
    )
    .expect("write the fake multus");
    fs::set_permissions(&multus, fs::Permissions::from_mode(0o755)).expect("chmod");
    node.set("binDir", json!(bin));
    node.set("namespaceIsolation", json!(true));
    (node, canary)
}

/// The review's payload: a config that, read as a node config by a nested meta-plugin, makes
/// it run `/bin/sh` with a command in a JSON key, which writes `canary`.
fn payload(canary: &Path) -> serde_json::Map<String, Value> {
    let mut delegate = serde_json::Map::new();
    delegate.insert("cniVersion".into(), json!("1.0.0"));
    delegate.insert("name".into(), json!("x"));
    delegate.insert("type".into(), json!("sh"));
    delegate.insert(format!("$(id>{})", canary.display()), json!(1));
    let mut keys = serde_json::Map::new();
    keys.insert("binDir".into(), json!("/bin"));
    keys.insert("delegates".into(), json!([delegate]));
    keys
}

/// A NAD config of `plugin_type` carrying the payload.
fn evil_plugin(name: &str, plugin_type: &str, canary: &Path) -> Value {
    let mut c = serde_json::Map::new();
    c.insert("cniVersion".into(), json!("1.0.0"));
    c.insert("name".into(), json!(name));
    c.insert("type".into(), json!(plugin_type));
    c.extend(payload(canary));
    Value::Object(c)
}

/// A bridge NAD whose IPAM plugin is `ipam_type`, carrying the payload at the top level
/// (an IPAM plugin gets the whole config on stdin).
fn evil_ipam(name: &str, ipam_type: &str, canary: &Path) -> Value {
    let mut c = serde_json::Map::new();
    c.insert("cniVersion".into(), json!("1.0.0"));
    c.insert("name".into(), json!(name));
    c.insert("type".into(), json!("bridge"));
    c.insert("bridge".into(), json!("plxsev0"));
    c.insert("ipam".into(), json!({"type": ipam_type}));
    c.extend(payload(canary));
    Value::Object(c)
}

/// ADD of `pod` fails with a message containing every one of `want`; then the canary is
/// absent and nothing is left, after the ADD and after the runtime's DEL.
fn refused(node: &Node, pod: &Pod, canary: &Path, want: &[&str]) {
    let run = node.add(pod);
    let (code, msg, details) = run.error();
    assert_eq!(code, 7, "{msg}");
    for w in want {
        assert!(msg.contains(w), "the error must say {w:?}: {msg:?}");
    }
    if msg.contains("is a meta-plugin") {
        assert_eq!(
            details,
            "nothing was run; see docs/security.md for the plugin-type rules"
        );
    }
    assert!(
        !canary.exists(),
        "the payload ran: {}",
        fs::read_to_string(canary).unwrap_or_default()
    );
    node.assert_clean(pod, "after the refused ADD");
    node.del(pod, None).assert_ok("the runtime's DEL");
    node.assert_spotless(pod, "after the DEL");
    assert!(!canary.exists(), "the payload ran during DEL");
}

#[test]
fn nads_naming_a_meta_plugin_run_nothing() {
    sandbox::run("nads_naming_a_meta_plugin_run_nothing", || {
        let (node, canary) = node_with_meta_plugins();
        // Refused by name while the networks are resolved: nothing runs, not even the
        // cluster network.
        let by_name = [
            ("evil-plexus", evil_plugin("evil-plexus", "plexus", &canary)),
            ("evil-multus", evil_plugin("evil-multus", "multus", &canary)),
            (
                "evil-shim",
                evil_plugin("evil-shim", "multus-shim", &canary),
            ),
            ("evil-ipam", evil_ipam("evil-ipam", "plexus", &canary)),
        ];
        for (nad, config) in &by_name {
            node.nad(nad, config);
            let pod = node.pod(&format!("p-{nad}"), nad);
            refused(
                &node,
                &pod,
                &canary,
                &[
                    &format!("pod default/p-{nad}"),
                    &format!("network default/{nad}"),
                    "is a meta-plugin",
                ],
            );
            assert!(
                !node.state_files().iter().any(|f| f.ends_with(".json")),
                "no journal was ever needed"
            );
        }
        // A copy of plexus under another name passes the name check, is run, and refuses
        // to act because it runs below plexus; ADD rolls back the cluster network.
        node.nad("evil-copy", &evil_plugin("evil-copy", "innocent", &canary));
        let pod = node.pod("p-copy", "evil-copy");
        refused(
            &node,
            &pod,
            &canary,
            &[
                "delegate plugin \"innocent\" for network \"default/evil-copy\"",
                "plexus refuses to run as a delegate of another plexus",
            ],
        );
        // The same copy as the IPAM plugin the bridge runs: the guard reaches it through the
        // bridge's environment.
        node.nad(
            "evil-copy-ipam",
            &evil_ipam("evil-copy-ipam", "innocent", &canary),
        );
        let pod = node.pod("p-copy-ipam", "evil-copy-ipam");
        refused(
            &node,
            &pod,
            &canary,
            &[
                "delegate plugin \"bridge\" for network \"default/evil-copy-ipam\"",
                "plexus refuses to run as a delegate of another plexus",
            ],
        );
    });
}

#[test]
fn node_networks_naming_a_meta_plugin_are_refused_too() {
    sandbox::run("node_networks_naming_a_meta_plugin_are_refused_too", || {
        let (mut node, canary) = node_with_meta_plugins();
        let file = node.write_file("evil.conf", &evil_plugin("evil-default", "plexus", &canary));
        node.set("defaultNetworks", json!([file]));
        let pod = node.pod("p", "");
        refused(
            &node,
            &pod,
            &canary,
            &["network evil-default", "is a meta-plugin"],
        );
    });
}

#[test]
fn the_node_policy_limits_what_pod_networks_may_run() {
    sandbox::run("the_node_policy_limits_what_pod_networks_may_run", || {
        plexus_conformance::netns::veth_pair("plxsup0", "plxsup0p");
        let mut node = Node::start(cluster_bridge("cl-pol", "plxp0", "10.151.0.0/24"));
        node.nad("mv", &macvlan("mv", "plxsup0", "10.151.1.0/24"));
        node.nad("br", &common::node::bridge("br", "plxp1", "10.151.2.0/24"));
        // The cluster network (bridge + host-local) is the operator's: never restricted.
        node.set("allowedPluginTypes", json!(["bridge", "host-local"]));
        node.set("deniedPluginTypes", json!(["macvlan"]));
        let pod = node.pod("allowed", "br");
        node.add(&pod)
            .assert_ok("ADD of a pod selecting an allowed network");
        assert_eq!(pod.link_names(), ["eth0", "lo", "net1"]);
        node.del(&pod, None).assert_ok("DEL");
        node.assert_spotless(&pod, "after DEL");

        let pod = node.pod("denied", "br,mv");
        let (code, msg, _) = node.add(&pod).error();
        assert_eq!(code, 7, "{msg}");
        assert!(
            msg.contains(
                "network default/mv (NetworkAttachmentDefinition default/mv): plugin type \
                 \"macvlan\" is not in the node's allowedPluginTypes [bridge, host-local]"
            ),
            "{msg}"
        );
        node.assert_clean(&pod, "after the refused ADD");
        node.del(&pod, None).assert_ok("DEL");

        node.set("allowedPluginTypes", Value::Null);
        let (_, msg, _) = node.add(&pod).error();
        assert!(
            msg.contains("\"macvlan\" is in the node's deniedPluginTypes"),
            "{msg}"
        );
        node.assert_clean(&pod, "after the refused ADD");
        node.del(&pod, None).assert_ok("DEL");
        node.assert_spotless(&pod, "after DEL");
    });
}

// ---------------------------------------------------------------------------------------------
// 2. A delegate that outlives plexus.

/// The pid a fake wrote to `file` in `dir`, once it is there (bounded).
fn pid_file(dir: &Path, file: &str) -> i32 {
    let path = dir.join(file);
    let mut pid = 0;
    plexus_conformance::wait_until(
        &format!("{} to be written", path.display()),
        std::time::Duration::from_secs(20),
        || {
            pid = fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            pid > 0
        },
    );
    pid
}

#[test]
fn a_delegate_left_running_by_a_killed_plexus_is_stopped_before_del_tears_down() {
    sandbox::run(
        "a_delegate_left_running_by_a_killed_plexus_is_stopped_before_del_tears_down",
        || {
            // The review's case: a cluster plugin whose ADD takes 1.5 s (a wait, then the real
            // bridge with host-local), plexus SIGKILLed while it waits, DEL at once.
            let node = Node::start(json!({
                "cniVersion": "1.0.0", "name": "cl-slow",
                "plugins": [{
                    "type": "fake-slow", "bridge": "plxsl0", "isGateway": true, "ipMasq": false,
                    "ipam": {"type": "host-local", "subnet": "10.154.0.0/24",
                             "routes": [{"dst": "0.0.0.0/0"}]}
                }]
            }));
            let pod = node.pod("p", "");
            let stderr = node.dir.path().join("add.stderr");
            let mut add = node.spawn_add(&pod, &stderr);
            // The delegate has its config and is in the middle of its ADD.
            let sleeper = pid_file(&pod.record_dir, "slow-child.pid");
            let delegate = pid_file(&pod.record_dir, "slow.pid");
            add.kill().expect("SIGKILL plexus");
            add.wait().expect("reap plexus");
            assert!(process_alive(delegate), "the delegate outlived plexus");
            node.del(&pod, None)
                .assert_ok("the runtime's DEL right after the kill");
            // Both processes of the delegate's group are gone when DEL returns: the bridge
            // ADD it would have run once its sleep ended can never happen.
            assert!(
                !process_alive(delegate),
                "the orphaned delegate was stopped"
            );
            assert!(!process_alive(sleeper), "what it started was stopped too");
            node.assert_spotless(&pod, "after the DEL");
            let calls: Vec<String> = pod.fake_calls().into_iter().map(|(c, _)| c).collect();
            assert_eq!(
                calls,
                ["ADD", "DEL"],
                "the orphan's ADD and the DEL's teardown"
            );
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Concurrent ADDs of one container.

#[test]
fn concurrent_adds_of_one_container_never_undo_each_other() {
    sandbox::run(
        "concurrent_adds_of_one_container_never_undo_each_other",
        || {
            let node = Node::start(cluster_bridge("cl-cc", "plxcc0", "10.153.0.0/24"));
            node.nad(
                "br-cc",
                &common::node::bridge("br-cc", "plxcc1", "10.153.1.0/24"),
            );
            let pod = node.pod("p", "br-cc");
            let stdin = node.config_with(&json!({})).to_string();
            let env_of = |command: &str, ifname: &str| {
                let mut env = node.env(command, &pod);
                for (k, v) in &mut env {
                    if k == "CNI_IFNAME" {
                        *v = ifname.to_owned();
                    }
                }
                env
            };
            let ifnames: Vec<String> = (0..6).map(|i| format!("eth{i}")).collect();
            // Six ADDs of one container ID, each with its own CNI_IFNAME and the same networks,
            // all started at once.
            let runs: Vec<(String, common::Run)> = std::thread::scope(|scope| {
                let handles: Vec<_> = ifnames
                    .iter()
                    .map(|ifname| {
                        let env = env_of("ADD", ifname);
                        let stdin = &stdin;
                        let ifname = ifname.clone();
                        scope.spawn(move || {
                            (ifname, run_plexus(&env, stdin, common::node::CALL_TIMEOUT))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a caller thread"))
                    .collect()
            });
            let winners: Vec<&String> = runs
                .iter()
                .filter(|(_, r)| r.code == 0)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(winners.len(), 1, "exactly one ADD can own net1: {runs:#?}");
            let winner = winners[0].clone();
            for (ifname, run) in runs.iter().filter(|(i, _)| *i != winner) {
                let (code, msg, _) = run.error();
                assert_eq!(code, 7, "{ifname}: {msg}");
                assert!(
                    msg.contains("net1"),
                    "{ifname}: the loser names the taken interface: {msg}"
                );
            }
            let mut want = vec![winner.clone(), "lo".to_owned(), "net1".to_owned()];
            want.sort();
            assert_eq!(
                pod.link_names(),
                want,
                "the winner's interfaces, nothing else"
            );
            let leases_now = common::node::all_leases();
            assert_eq!(leases_now.len(), 2, "{leases_now:?}");
            // Every loser's DEL (the runtime sends one after each failed ADD) leaves the winner's
            // interfaces and leases alone, though it rebuilds a plan naming net1 too.
            for ifname in ifnames.iter().filter(|i| **i != winner) {
                run_plexus(&env_of("DEL", ifname), &stdin, common::node::CALL_TIMEOUT)
                    .assert_ok(&format!("DEL of the losing {ifname}"));
            }
            assert_eq!(pod.link_names(), want, "after the losers' DELs");
            assert_eq!(
                common::node::all_leases(),
                leases_now,
                "after the losers' DELs"
            );
            run_plexus(&env_of("DEL", &winner), &stdin, common::node::CALL_TIMEOUT)
                .assert_ok("DEL of the winner");
            pod.assert_only_lo("after every DEL");
            common::node::assert_no_leases("after every DEL");
            assert_eq!(node.state_files(), Vec::<String>::new());
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Delegate results.

#[test]
fn a_result_with_a_bad_name_mac_or_size_is_refused_and_rolled_back() {
    sandbox::run(
        "a_result_with_a_bad_name_mac_or_size_is_refused_and_rolled_back",
        || {
            let node = Node::start(cluster_bridge("cl-res", "plxr0", "10.155.0.0/24"));
            node.nad(
                "odd",
                &json!({"cniVersion": "1.0.0", "name": "odd", "type": "fake-bad-result"}),
            );
            for (bad, want) in [
                ("name", r#"interfaces[0].name "../../x\n\"evil""#),
                ("mac", r#""not-a-mac""#),
                ("ips", "10000"),
                ("ifname", "net1"),
            ] {
                let pod = node.pod(&format!("p-{bad}"), "odd");
                let run = node.call("ADD", &pod, &[("FAKE_BAD", bad)], None, &json!({}));
                let (code, msg, _) = run.error();
                assert_eq!(code, 6, "{bad}: {msg}");
                assert!(
                    msg.starts_with(
                        "delegate plugin \"fake-bad-result\" for network \"default/odd\" (ADD) \
                         returned a result plexus does not accept: "
                    ) && msg.contains(want),
                    "{bad}: the error names the delegate, the network and {want:?}: {msg}"
                );
                assert!(msg.len() < 600, "{bad}: the message stays short: {msg}");
                assert_eq!(
                    node.status_text(&pod),
                    None,
                    "{bad}: no network-status written"
                );
                // The cluster network was rolled back; the delegate got its DEL.
                node.assert_clean(&pod, &format!("after the refused {bad} result"));
                let calls: Vec<String> = pod.fake_calls().into_iter().map(|(c, _)| c).collect();
                assert_eq!(calls, ["ADD", "DEL"], "{bad}");
                node.del(&pod, None).assert_ok("the runtime's DEL");
                node.assert_spotless(&pod, &format!("after the DEL ({bad})"));
            }
            // The same plugin with a sound result works, status and all.
            let pod = node.pod("p-good", "odd");
            node.add(&pod).assert_ok("ADD with a sound result");
            let status = node.network_status(&pod);
            assert_eq!(status[1]["interface"], "net1");
            node.del(&pod, None).assert_ok("DEL");
            node.assert_spotless(&pod, "after the DEL");
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 5. The log file.

#[test]
fn a_foreign_or_linked_log_file_is_left_untouched() {
    sandbox::run("a_foreign_or_linked_log_file_is_left_untouched", || {
        let mut node = Node::start(cluster_bridge("cl-log", "plxl0", "10.152.0.0/24"));
        let foreign = node.dir.path().join("foreign.log");
        fs::write(&foreign, "theirs\n").expect("write");
        fs::set_permissions(&foreign, fs::Permissions::from_mode(0o666)).expect("chmod");
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).expect("chown");
        let target = node.dir.path().join("target.log");
        fs::write(&target, "root's\n").expect("write");
        let link = node.dir.path().join("link.log");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        for (log, file, what) in [
            (&foreign, &foreign, "owned by uid 65534"),
            (&link, &target, "symlink"),
        ] {
            node.set("logFile", json!(log));
            node.set("logToStderr", json!(false));
            let before = fs::read(file).expect("read");
            let meta = fs::metadata(file).expect("stat");
            let pod = node.pod("p", "");
            let run = node.add(&pod);
            run.assert_ok("ADD with a refused logFile");
            assert!(
                run.stderr.contains(&format!("logFile {}", log.display()))
                    && run.stderr.contains(what)
                    && run.stderr.contains("logging to stderr"),
                "the fallback is announced on stderr: {}",
                run.stderr
            );
            node.del(&pod, None).assert_ok("DEL");
            let after = fs::metadata(file).expect("stat");
            assert_eq!(
                fs::read(file).expect("read"),
                before,
                "{} untouched",
                file.display()
            );
            assert_eq!(
                (after.mode(), after.uid(), after.gid()),
                (meta.mode(), meta.uid(), meta.gid())
            );
        }
    });
}
