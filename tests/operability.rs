//! The operator's view (issue 24): `plexus explain` and `plexus ls` on the simulated node, and
//! the Events ADD records. (`plexus doctor` has `tests/doctor.rs`; `explain` against every
//! example pod, compared with what the following ADD did, runs in every scenario, see
//! `conformance/src/scenario.rs`.) Needs root.
//!
//! Each test asserts what an operator sees: the exit status, the text and the JSON document,
//! and that the read-only commands wrote nothing (the journal directory, the stand-in's request
//! log, its Events).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use plexus_conformance::netns::veth_pair;
use plexus_conformance::{sandbox, wait_until};
use serde_json::{Value, json};

use common::node::{NS, Node, bridge, cluster_bridge, macvlan};

/// What a subcommand printed.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "not one JSON document ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// `plexus <args>` with only PATH in the environment.
fn plexus(args: &[&str]) -> Out {
    let out = plexus_conformance::output_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_plexus"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(args),
        b"",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The node config as a file, as `--conf` takes it.
fn conf_file(node: &Node) -> PathBuf {
    node.write_file("plexus.conf", &node.config_with(&json!({})))
}

/// Every file under `dir` with its length and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.metadata().expect("stat");
            if m.is_dir() {
                stack.push(e.path());
            }
            v.push((e.path(), m.len(), m.modified().expect("mtime")));
        }
    }
    v.sort();
    v
}

/// The requests the stand-in answered that were not reads.
fn writes(node: &Node) -> Vec<String> {
    node.api
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// The Events of `pod` in the stand-in: (reason, type, message), oldest first.
fn events(node: &Node, pod: &str) -> Vec<(String, String, String)> {
    node.api
        .list("events", NS)
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == pod)
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("reason"), s("type"), s("message"))
        })
        .collect()
}

/// A node whose cluster network is `cl-<name>` (bridge `plxo<n>`, `10.<net>.0.0/24`), with the
/// NADs `mv` (macvlan on the veth `plxoup<n>`, `10.<net>.1.0/24`) and `fails` (a delegate whose
/// ADD fails).
fn node_with_mv_and_fails(name: &str, n: u8, net: u8) -> Node {
    let uplink = format!("plxoup{n}");
    veth_pair(&uplink, &format!("{uplink}p"));
    let node = Node::start(cluster_bridge(
        &format!("cl-{name}"),
        &format!("plxo{}", n + 1),
        &format!("10.{net}.0.0/24"),
    ));
    node.nad("mv", &macvlan("mv", &uplink, &format!("10.{net}.1.0/24")));
    node.nad(
        "fails",
        &json!({"cniVersion": "1.0.0", "name": "fails", "type": "fake-fail-add"}),
    );
    node
}

#[test]
fn explain_lists_every_problem_at_once_and_changes_nothing() {
    sandbox::run(
        "explain_lists_every_problem_at_once_and_changes_nothing",
        || {
            veth_pair("plxoup0", "plxoup0p");
            let mut node = Node::start(cluster_bridge("cl-ex", "plxo0", "10.160.0.0/24"));
            node.set("namespaceIsolation", json!(true));
            node.nad("mv", &macvlan("mv", "plxoup0", "10.160.1.0/24"));
            node.nad(
                "absent-plugin",
                &json!({"cniVersion": "1.0.0", "name": "absent-plugin", "type": "no-such-plugin"}),
            );
            node.api.put(json!({
                "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"namespace": "team-b", "name": "theirs"},
                "spec": {"config": bridge("theirs", "plxo9", "10.160.9.0/24").to_string()}
            }));
            // Five problems: a missing NAD, a NAD of another namespace (isolation), an address
            // for a network without the ips capability, a plugin absent from the node, and an
            // interface name that another network gets (mv is net1, its position once the
            // two networks before it are left out).
            let annotation = json!([
                {"name": "no-such-nad"},
                {"name": "theirs", "namespace": "team-b"},
                {"name": "mv", "ips": ["10.160.1.5/24"]},
                {"name": "absent-plugin", "interface": "net1"},
            ])
            .to_string();
            let pod = node.pod("busy", &annotation);
            let conf = conf_file(&node);
            let conf = conf.to_str().expect("utf-8");
            let out = plexus(&[
                "explain",
                "default/busy",
                "--conf",
                conf,
                "--cni-path",
                "/usr/lib/cni",
                "-o",
                "json",
            ]);
            assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
            let doc = out.json();
            let problems: Vec<&str> = doc["problems"]
                .as_array()
                .expect("problems")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let wants = [
                "network default/no-such-nad",
                "team-b/theirs",
                "the pod asks for \"ips\" but no plugin of the network declares the \"ips\" capability",
                "delegate plugin \"no-such-plugin\" for network \"default/absent-plugin\" (ADD) not found",
                "networks default/mv and default/absent-plugin would both be interface \"net1\"",
            ];
            for want in wants {
                assert!(
                    problems.iter().any(|p| p.contains(want)),
                    "{want:?} missing from {problems:#?}"
                );
            }
            assert_eq!(problems.len(), wants.len(), "{problems:#?}");
            // ADD fails with the first of them, word for word.
            let add = node.add(&pod);
            let (_, msg, _) = add.error();
            assert!(
                problems.contains(&msg.as_str()),
                "{msg:?} not in {problems:#?}"
            );
            node.del(&pod, None).assert_ok("DEL");

            // The plan of what resolves: the cluster network, then mv and absent-plugin.
            let atts = doc["attachments"].as_array().expect("attachments");
            let names: Vec<(&str, &str)> = atts
                .iter()
                .map(|a| {
                    (
                        a["network"].as_str().unwrap_or(""),
                        a["interface"].as_str().unwrap_or(""),
                    )
                })
                .collect();
            assert_eq!(
                names,
                [
                    ("cl-ex", "eth0"),
                    ("default/mv", "net1"),
                    ("default/absent-plugin", "net1")
                ]
            );
            assert_eq!(atts[0]["plugins"][0]["path"], "/usr/lib/cni/bridge");
            assert_eq!(
                atts[0]["plugins"][0]["ipam"]["path"],
                "/usr/lib/cni/host-local"
            );
            assert_eq!(atts[1]["runtimeConfig"], json!({"ips": ["10.160.1.5/24"]}));

            // Text: the same, for people.
            let text = plexus(&[
                "explain",
                "default/busy",
                "--conf",
                conf,
                "--cni-path",
                "/usr/lib/cni",
            ]);
            assert_eq!(text.code, 1);
            assert!(text.stdout.contains("5 problem(s):"), "{}", text.stdout);
            assert!(
                text.stdout.contains("plugin no-such-plugin  NOT FOUND"),
                "{}",
                text.stdout
            );

            assert!(node.journal_files().is_empty(), "the DEL left nothing");
        },
    );
}

#[test]
fn explain_shows_the_plan_and_configs_and_writes_nothing() {
    sandbox::run(
        "explain_shows_the_plan_and_configs_and_writes_nothing",
        || {
            veth_pair("plxoup1", "plxoup1p");
            let node = Node::start(cluster_bridge("cl-ok", "plxo1", "10.161.0.0/24"));
            node.nad("mv", &macvlan("mv", "plxoup1", "10.161.1.0/24"));
            node.nad("br", &bridge("br", "plxo2", "10.161.2.0/24"));
            let annotation = json!([
                {"name": "mv", "cni-args": {"team": "blue"}},
                {"name": "br", "interface": "br9", "default-route": ["10.161.2.1"]},
            ])
            .to_string();
            let _pod = node.pod("ok", &annotation);
            let conf = conf_file(&node);
            let conf = conf.to_str().expect("utf-8");
            let before = snapshot(node.dir.path());
            node.api.reset_counters();
            let requests_before = node.api.requests().len();
            let out = plexus(&[
                "explain",
                "default/ok",
                "--conf",
                conf,
                "--cni-path",
                "/usr/lib/cni",
                "--config",
            ]);
            assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
            let t = &out.stdout;
            for want in [
                "pod default/ok (uid uid-ok-",
                "ADD would make 3 attachment(s), in this order:",
                "0  eth0  cl-ok  (",
                "[cluster network]",
                "plugin bridge  /usr/lib/cni/bridge",
                "ipam host-local  /usr/lib/cni/host-local",
                "1  net1  default/mv  (NetworkAttachmentDefinition default/mv)",
                "plugin macvlan  /usr/lib/cni/macvlan",
                "cni-args (in args.cni): {\"team\":\"blue\"}",
                "2  br9  default/br  (NetworkAttachmentDefinition default/br)",
                "default route: via 10.161.2.1",
                "config: {\"cniVersion\":\"1.0.0\",\"name\":\"mv\",\"type\":\"macvlan\"",
            ] {
                assert!(t.contains(want), "{want:?} missing from:\n{t}");
            }
            assert!(!t.contains("problem"), "{t}");
            assert_eq!(snapshot(node.dir.path()), before, "explain wrote no file");
            assert_eq!(
                writes(&node),
                Vec::<String>::new(),
                "explain wrote nothing to the API"
            );
            assert!(
                node.api.requests().len() > requests_before,
                "it did read the pod"
            );
            assert!(events(&node, "ok").is_empty(), "explain sent no Event");
            assert!(node.journal_files().is_empty());
        },
    );
}

#[test]
fn ls_shows_exactly_what_the_journal_holds() {
    sandbox::run("ls_shows_exactly_what_the_journal_holds", || {
        let node = node_with_mv_and_fails("ls", 2, 162);
        let conf = conf_file(&node);
        let conf = conf.to_str().expect("utf-8");
        let ls = |format: &[&str]| {
            let mut a = vec!["ls", "--conf", conf];
            a.extend_from_slice(format);
            plexus(&a)
        };
        let empty = ls(&["-o", "json"]);
        assert_eq!(empty.code, 0, "{}", empty.stderr);
        assert_eq!(empty.json()["attachments"], json!([]));

        let a = node.pod("a", "mv");
        let b = node.pod("b", "");
        let c = node.pod("c", "fails");
        let ra = node.add(&a);
        ra.assert_ok("ADD a");
        node.add(&b).assert_ok("ADD b");
        node.add(&c).error(); // rolled back: a marker stays until the runtime's DEL
        node.del(&b, None).assert_ok("DEL b");

        let before = snapshot(&node.cni_dir);
        let out = ls(&["-o", "json"]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        let rows: Vec<Value> = out.json()["attachments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let brief: Vec<(String, String, String, String, String)> = rows
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                (
                    s("pod"),
                    s("containerID"),
                    s("network"),
                    s("interface"),
                    s("state"),
                )
            })
            .collect();
        assert_eq!(
            brief,
            [
                (
                    "default/a".into(),
                    a.container_id.clone(),
                    "cl-ls".into(),
                    "eth0".into(),
                    "added".into()
                ),
                (
                    "default/a".into(),
                    a.container_id.clone(),
                    "default/mv".into(),
                    "net1".into(),
                    "added".into()
                ),
                (
                    String::new(),
                    c.container_id.clone(),
                    String::new(),
                    String::new(),
                    "rolled back".into()
                ),
            ]
        );
        let ip = ra.json()["ips"][0]["address"]
            .as_str()
            .expect("an address")
            .to_owned();
        assert_eq!(rows[0]["ips"], json!([ip]));
        assert_eq!(snapshot(&node.cni_dir), before, "ls wrote nothing");

        let text = ls(&[]);
        assert_eq!(text.code, 0);
        let lines: Vec<&str> = text.stdout.lines().collect();
        assert!(
            lines[0].starts_with("3 attachment(s) in "),
            "{}",
            text.stdout
        );
        assert!(lines[1].starts_with("POD"), "{}", text.stdout);
        assert!(
            lines[2].contains("default/a")
                && lines[2].contains("eth0")
                && lines[2].ends_with("added")
        );
        assert!(lines[4].ends_with("rolled back"), "{}", text.stdout);

        // A journal of an ADD that did not finish, nobody at work on it: a problem.
        let d = node.pod("d", "");
        let run = node.call(
            "ADD",
            &d,
            &[("PLEXUS_DEBUG_STOP_AT", "add:0:recorded")],
            None,
            &json!({}),
        );
        assert_eq!(run.signal, Some(libc::SIGKILL), "{run:?}");
        let out = ls(&["-o", "json"]);
        assert_eq!(out.code, 1);
        let doc = out.json();
        assert!(
            doc["problems"][0]
                .as_str()
                .is_some_and(|p| p.contains(&d.container_id) && p.contains("did not finish")),
            "{doc}"
        );
        let interrupted: Vec<&Value> = doc["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["containerID"] == d.container_id.as_str())
            .collect();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(interrupted[0]["state"], "interrupted");
        assert_eq!(interrupted[0]["attachmentState"], "added");
        for p in [&a, &c, &d] {
            node.del(p, None).assert_ok("DEL");
        }
        assert_eq!(ls(&["-o", "json"]).json()["attachments"], json!([]));
    });
}

#[test]
fn events_tell_only_what_was_kept() {
    sandbox::run("events_tell_only_what_was_kept", || {
        let node = node_with_mv_and_fails("ev", 3, 163);
        let wait_events = |pod: &str, n: usize| {
            wait_until(
                &format!("{n} Events of pod {pod}"),
                Duration::from_secs(10),
                || events(&node, pod).len() >= n,
            );
            events(&node, pod)
        };

        // Committed: one AddedInterface per interface, nothing else.
        let ok = node.pod("ok", "mv");
        node.add(&ok).assert_ok("ADD");
        let ev = wait_events("ok", 2);
        let reasons: Vec<(&str, &str)> = ev
            .iter()
            .map(|(r, t, _)| (r.as_str(), t.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [("AddedInterface", "Normal"), ("AddedInterface", "Normal")]
        );
        // Sent concurrently (HTTP/2): in either order.
        assert!(
            ev.iter().any(|e| e.2.starts_with("Add eth0 [10.163.0.")),
            "{ev:?}"
        );
        assert!(
            ev.iter().any(|e| e.2.starts_with("Add net1 [10.163.1.")),
            "{ev:?}"
        );

        // The status write is refused (a missing RBAC rule): everything is rolled back, and the
        // pod shows no interface it did not keep, but one warning saying so.
        let denied = node.pod("denied", "mv");
        node.api.fail_next_matching("PATCH pods/status", 100, 403);
        node.add(&denied).error();
        node.api.fail_next_matching("PATCH pods/status", 0, 403);
        let ev = wait_events("denied", 1);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let (reason, kind, msg) = &ev[0];
        assert_eq!((reason.as_str(), kind.as_str()), ("AddFailed", "Warning"));
        assert!(
            msg.starts_with("writing network-status of pod default/denied failed: ")
                && msg.ends_with("; every attachment was rolled back"),
            "{msg}"
        );

        // A delegate fails: the warning names it, its network and the cause.
        let failing = node.pod("failing", "mv,fails");
        node.add(&failing).error();
        let ev = wait_events("failing", 1);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(
            ev[0].2,
            "delegate plugin \"fake-fail-add\" for network \"default/fails\" (ADD) failed: fake \
             failure; every attachment was rolled back"
        );

        // Nothing ran at all.
        let missing = node.pod("missing", "no-such-nad");
        node.add(&missing).error();
        let ev = wait_events("missing", 1);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(ev[0].2.ends_with("; nothing was attached"), "{ev:?}");
        assert!(ev[0].2.contains("no-such-nad"), "{ev:?}");
        for p in [&ok, &denied, &failing, &missing] {
            node.del(p, None).assert_ok("DEL");
        }
    });
}

#[test]
fn added_interface_events_are_sent_after_plexus_answered() {
    sandbox::run(
        "added_interface_events_are_sent_after_plexus_answered",
        || {
            let node = node_with_mv_and_fails("late", 5, 166);
            // Event writes take 1.5 s here (a slow API server), every other request none.
            let slow = Duration::from_millis(1500);
            node.api.set_latency_matching("POST events", Some(slow));
            let pod = node.pod("late", "mv");
            let started = Instant::now();
            node.add(&pod).assert_ok("ADD");
            let took = started.elapsed();
            assert!(took < slow, "ADD waited for its Events: {took:?}");
            assert!(
                events(&node, "late").is_empty(),
                "not written before ADD answered"
            );
            // The detached sender records them anyway, after plexus has answered.
            wait_until("the AddedInterface Events", Duration::from_secs(10), || {
                events(&node, "late").len() >= 2
            });
            let ev = events(&node, "late");
            assert_eq!(ev.len(), 2, "{ev:?}");
            assert!(
                ev.iter()
                    .all(|(r, t, _)| r == "AddedInterface" && t == "Normal")
            );
            assert!(
                ev.iter().any(|e| e.2.starts_with("Add net1 [10.166.1.")),
                "{ev:?}"
            );
            node.del(&pod, None).assert_ok("DEL");
        },
    );
}
