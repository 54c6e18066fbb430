//! The fault matrix (issue 7): every fault plexus must survive, one test each, with real
//! plugins (bridge, macvlan, host-local) in pod network namespaces inside a private sandbox,
//! the API stand-in over HTTPS, and the fake plugins for misbehaving delegates. Needs root.
//!
//! Every row asserts the same contract: ADD either succeeds or fails cleanly (nothing
//! attached, or everything rolled back) with an error that says what happened; the DEL that
//! follows, and a second DEL, succeed and leave nothing: no interface in the pod but `lo`, no
//! host-local lease, and no file at all in `cniDir` (journal, progress, lock file, rollback
//! marker or temp file).
//!
//! Crashes use plexus's debug-only stop points (`PLEXUS_DEBUG_STOP_AT`, see `src/fault.rs`):
//! the debug binary the tests run kills itself with SIGKILL at the named point.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use plexus_conformance::netns::veth_pair;
use plexus_conformance::sandbox;
use serde_json::{Value, json};

use common::Run;
use common::node::{
    Node, Pod, all_leases, assert_no_leases, bridge, cluster_bridge, conflist, macvlan,
};

const STOP: &str = "PLEXUS_DEBUG_STOP_AT";

/// A node with the cluster network (bridge) and two NADs (macvlan on a veth, bridge), and a
/// pod selecting both: attachments 0 (`eth0`), 1 (`net1`), 2 (`net2`).
fn three_networks(networks: &str) -> (Node, Pod) {
    veth_pair("plxup0", "plxup0p");
    let node = Node::start(cluster_bridge("cl", "plxc0", "10.140.0.0/24"));
    node.nad("mv", &macvlan("mv", "plxup0", "10.140.1.0/24"));
    node.nad("br", &bridge("br", "plxb1", "10.140.2.0/24"));
    let pod = node.pod("p", networks);
    (node, pod)
}

/// The runtime's DEL and its retry: both succeed and leave nothing.
fn del_twice_clean(node: &Node, pod: &Pod, prev: Option<&Value>, when: &str) {
    node.del(pod, prev)
        .assert_ok(&format!("the runtime's DEL {when}"));
    node.assert_spotless(pod, &format!("after the DEL {when}"));
    node.del(pod, prev)
        .assert_ok(&format!("the second DEL {when}"));
    node.assert_spotless(pod, &format!("after the second DEL {when}"));
}

fn assert_killed(run: &Run, point: &str) {
    assert_eq!(
        run.signal,
        Some(libc::SIGKILL),
        "plexus must have killed itself at {point}: {run:?}"
    );
    assert_eq!(run.stdout, "", "nothing printed before the kill at {point}");
}

// ---------------------------------------------------------------------------------------------
// SIGKILL at every journal state transition of ADD.

/// ADD stopped at `point`; then `check` looks at what is left; then DEL, DEL.
fn kill_add(point: &str, networks: &str, check: impl FnOnce(&Node, &Pod)) {
    let (node, pod) = three_networks(networks);
    let run = node.call("ADD", &pod, &[(STOP, point)], None, &json!({}));
    assert_killed(&run, point);
    check(&node, &pod);
    del_twice_clean(&node, &pod, None, &format!("after a kill at {point}"));
}

/// What a killed ADD leaves: these interfaces in the pod and this many leases.
fn left(links: &[&str], leases: usize) -> impl FnOnce(&Node, &Pod) {
    let mut want: Vec<String> = links.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    move |_, pod| {
        assert_eq!(pod.link_names(), want, "what the killed ADD left");
        assert_eq!(all_leases().len(), leases, "{:?}", all_leases());
    }
}

macro_rules! kill_add_at {
    ($name:ident, $point:expr, $links:expr, $leases:expr) => {
        #[test]
        fn $name() {
            sandbox::run(stringify!($name), || {
                kill_add($point, "mv,br", left(&$links, $leases))
            });
        }
    };
}

kill_add_at!(
    sigkill_add_with_its_journal_file_made_ahead,
    "journal-reserve:made",
    ["lo"],
    0
);
kill_add_at!(
    sigkill_add_before_the_plan_rename,
    "journal-save:tmp-written",
    ["lo"],
    0
);
kill_add_at!(sigkill_add_after_the_plan, "add:planned", ["lo"], 0);
kill_add_at!(
    sigkill_add_after_delegate_0,
    "add:0:delegate-done",
    ["eth0", "lo"],
    1
);
kill_add_at!(
    sigkill_add_after_record_0,
    "add:0:recorded",
    ["eth0", "lo"],
    1
);
kill_add_at!(
    sigkill_add_after_delegate_1,
    "add:1:delegate-done",
    ["eth0", "lo", "net1"],
    2
);
kill_add_at!(
    sigkill_add_after_record_1,
    "add:1:recorded",
    ["eth0", "lo", "net1"],
    2
);
kill_add_at!(
    sigkill_add_after_delegate_2,
    "add:2:delegate-done",
    ["eth0", "lo", "net1", "net2"],
    3
);
kill_add_at!(
    sigkill_add_after_record_2,
    "add:2:recorded",
    ["eth0", "lo", "net1", "net2"],
    3
);
kill_add_at!(
    sigkill_add_after_the_status_write,
    "add:status-written",
    ["eth0", "lo", "net1", "net2"],
    3
);
kill_add_at!(
    sigkill_add_after_the_last_record,
    "add:done",
    ["eth0", "lo", "net1", "net2"],
    3
);

#[test]
fn sigkill_add_after_the_default_route_moved() {
    sandbox::run("sigkill_add_after_the_default_route_moved", || {
        kill_add(
            "add:route-moved",
            r#"[{"name":"mv"},{"name":"br","default-route":["10.140.2.1"]}]"#,
            |_, pod| {
                let routes = pod.default_routes();
                assert_eq!(routes.len(), 1, "{routes:?}");
                assert_eq!(routes[0]["dev"], "net2", "the route had moved: {routes:?}");
            },
        )
    });
}

#[test]
fn sigkill_add_leaves_a_journal_the_del_finds() {
    // The premise of the rows above, checked once on disk: a kill after the plan leaves the
    // plan (and the progress lines written so far), a kill before it leaves only a temp file.
    sandbox::run("sigkill_add_leaves_a_journal_the_del_finds", || {
        kill_add("add:1:recorded", "mv,br", |node, pod| {
            let files = node.state_files();
            let key = format!("{}:eth0", pod.container_id);
            assert_eq!(
                files,
                [
                    format!("{}.lock", pod.container_id),
                    format!("{key}.json"),
                    format!("{key}.progress")
                ],
                "{files:?}"
            );
        });
    });
}

// SIGKILL during ADD's rollback: the pod selects a network whose last plugin fails after its
// bridge and lease exist (attachment 3).

fn failing_network(node: &Node) {
    node.nad(
        "bad",
        &conflist(
            "bad",
            vec![
                json!({"type": "bridge", "bridge": "plxf0",
                       "ipam": {"type": "host-local", "subnet": "10.140.3.0/24"}}),
                json!({"type": "fake-fail-add"}),
            ],
        ),
    );
}

fn kill_rollback(point: &str) {
    let (node, pod) = three_networks("mv,br,bad");
    failing_network(&node);
    let run = node.call("ADD", &pod, &[(STOP, point)], None, &json!({}));
    assert_killed(&run, point);
    assert!(
        node.status_text(&pod).is_none(),
        "no network-status for an ADD that failed"
    );
    del_twice_clean(&node, &pod, None, &format!("after a kill at {point}"));
}

#[test]
fn sigkill_rollback_after_the_failed_attachment_is_undone() {
    sandbox::run(
        "sigkill_rollback_after_the_failed_attachment_is_undone",
        || kill_rollback("add:teardown:3"),
    );
}

#[test]
fn sigkill_rollback_half_way() {
    sandbox::run("sigkill_rollback_half_way", || {
        kill_rollback("add:teardown:1")
    });
}

#[test]
fn sigkill_rollback_before_the_marker() {
    sandbox::run("sigkill_rollback_before_the_marker", || {
        kill_rollback("add:rolled-back")
    });
}

#[test]
fn sigkill_rollback_after_the_marker() {
    sandbox::run("sigkill_rollback_after_the_marker", || {
        kill_rollback("add:marked")
    });
}

// ---------------------------------------------------------------------------------------------
// SIGKILL at every journal state transition of DEL.

fn kill_del(point: &str, check: impl FnOnce(&Node, &Pod)) {
    let (node, pod) = three_networks("mv,br");
    let run = node.add(&pod);
    run.assert_ok("ADD");
    let result = run.json();
    let del = node.call("DEL", &pod, &[(STOP, point)], Some(&result), &json!({}));
    assert_killed(&del, point);
    check(&node, &pod);
    del_twice_clean(
        &node,
        &pod,
        Some(&result),
        &format!("after a kill at {point}"),
    );
}

#[test]
fn sigkill_del_after_the_last_attachment_is_undone() {
    sandbox::run("sigkill_del_after_the_last_attachment_is_undone", || {
        kill_del("del:teardown:2", left(&["eth0", "lo", "net1"], 2))
    });
}

#[test]
fn sigkill_del_after_every_attachment_is_undone() {
    sandbox::run("sigkill_del_after_every_attachment_is_undone", || {
        kill_del("del:teardown:0", left(&["lo"], 0))
    });
}

#[test]
fn sigkill_del_before_the_journal_is_removed() {
    sandbox::run("sigkill_del_before_the_journal_is_removed", || {
        kill_del("del:torn-down", |node, pod| {
            left(&["lo"], 0)(node, pod);
            assert_eq!(node.journal_files_of(pod).len(), 1, "the journal stays");
        })
    });
}

#[test]
fn sigkill_del_between_progress_and_journal_removal() {
    sandbox::run("sigkill_del_between_progress_and_journal_removal", || {
        kill_del("journal-remove:progress-gone", |node, pod| {
            left(&["lo"], 0)(node, pod);
            // The plan alone is left: read back in phase `adding`, DEL tears all down again.
            let files = node.journal_files();
            assert_eq!(files, [format!("{}:eth0.json", pod.container_id)]);
        })
    });
}

#[test]
fn sigkill_del_of_a_rolled_back_add() {
    sandbox::run("sigkill_del_of_a_rolled_back_add", || {
        let (node, pod) = three_networks("mv,br,bad");
        failing_network(&node);
        let (code, msg, _) = node.add(&pod).error();
        eprintln!("the error: code {code}: {msg}");
        assert!(msg.contains("bad"), "code {code}: {msg}");
        node.assert_clean(&pod, "after the rolled-back ADD");
        let del = node.call("DEL", &pod, &[(STOP, "del:marker-taken")], None, &json!({}));
        assert_killed(&del, "del:marker-taken");
        del_twice_clean(&node, &pod, None, "after a kill at del:marker-taken");
    });
}

// ---------------------------------------------------------------------------------------------
// The state directory: full, read-only.

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mounts a tmpfs of `kib` KiB (mode 0700) on `cniDir` and fills it with a file so that only
/// `free_pages` pages of 4 KiB stay free.
fn tiny_state_dir(node: &Node, kib: u64, free_pages: u64) {
    use std::io::Write;
    let dir = node.cni_dir.display().to_string();
    std::fs::create_dir_all(&dir).unwrap();
    sh(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        &format!("size={kib}k,mode=0700"),
        "tmpfs",
        &dir,
    ]);
    let mut filler = std::fs::File::create(node.cni_dir.join(".filler")).unwrap();
    let mut left = kib * 1024 - free_pages * 4096;
    while left > 0 || free_pages == 0 {
        let chunk = left.clamp(1, 4096) as usize;
        if filler.write_all(&vec![b'x'; chunk]).is_err() {
            break;
        }
        left = left.saturating_sub(chunk as u64);
    }
}

fn remove_filler(node: &Node) {
    std::fs::remove_file(node.cni_dir.join(".filler")).unwrap();
}

#[test]
fn state_dir_full_before_the_plan() {
    sandbox::run("state_dir_full_before_the_plan", || {
        let (node, pod) = three_networks("mv,br");
        tiny_state_dir(&node, 64, 0);
        let run = node.add(&pod);
        let (code, msg, _) = run.error();
        eprintln!("the error: code {code}: {msg}");
        assert_eq!(code, 5, "{msg}");
        assert!(
            msg.contains(&node.cni_dir.display().to_string())
                && msg.contains("No space left on device"),
            "the error names the journal directory and the cause: {msg}"
        );
        pod.assert_only_lo("nothing attached");
        assert_no_leases("nothing attached");
        assert!(pod.fake_calls().is_empty());
        // DEL of nothing on a full disk succeeds (and can still tidy up its lock file).
        node.del(&pod, None)
            .assert_ok("DEL on a full state directory");
        remove_filler(&node);
        node.assert_spotless(&pod, "after DEL on a full disk");
        del_twice_clean(&node, &pod, None, "after a full state directory");
    });
}

#[test]
fn state_dir_full_after_the_plan() {
    sandbox::run("state_dir_full_after_the_plan", || {
        let (node, pod) = three_networks("mv,br");
        // Room for the plan (one page), none for the progress line of attachment 0.
        tiny_state_dir(&node, 64, 1);
        let run = node.add(&pod);
        let (code, msg, _) = run.error();
        eprintln!("the error: code {code}: {msg}");
        assert_eq!(code, 5, "{msg}");
        assert!(
            msg.contains("journal progress") && msg.contains("No space left on device"),
            "the error names the progress write and the cause: {msg}"
        );
        node.assert_clean(&pod, "after the rolled-back ADD");
        remove_filler(&node);
        del_twice_clean(&node, &pod, None, "after a full state directory");
    });
}

fn read_only_state_dir(node: &Node) {
    let dir = node.cni_dir.display().to_string();
    std::fs::create_dir_all(&dir).unwrap();
    sh(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=1m,mode=0700",
        "tmpfs",
        &dir,
    ]);
}

fn remount(node: &Node, how: &str) {
    let dir = node.cni_dir.display().to_string();
    sh(&["mount", "-o", &format!("remount,{how}"), &dir]);
}

#[test]
fn state_dir_read_only() {
    sandbox::run("state_dir_read_only", || {
        let (node, pod) = three_networks("mv,br");
        read_only_state_dir(&node);
        remount(&node, "ro");
        let run = node.add(&pod);
        let (code, msg, _) = run.error();
        eprintln!("the error: code {code}: {msg}");
        assert_eq!(code, 5, "{msg}");
        assert!(
            msg.contains(&node.cni_dir.display().to_string())
                && msg.contains("read-only file system")
                && msg.contains("nothing was attached"),
            "{msg}"
        );
        node.assert_spotless(&pod, "after the refused ADD");
        node.del(&pod, None)
            .assert_ok("DEL on a read-only state directory");
        node.del(&pod, None)
            .assert_ok("second DEL on a read-only state directory");
        node.assert_spotless(&pod, "after DEL on a read-only state directory");
    });
}

#[test]
fn state_dir_turns_read_only_after_add() {
    sandbox::run("state_dir_turns_read_only_after_add", || {
        let (node, pod) = three_networks("mv,br");
        read_only_state_dir(&node);
        let run = node.add(&pod);
        run.assert_ok("ADD");
        let result = run.json();
        remount(&node, "ro");
        // Everything is undone although nothing can be removed from the directory.
        node.del(&pod, Some(&result))
            .assert_ok("DEL on a read-only state directory");
        pod.assert_only_lo("after DEL");
        assert_no_leases("after DEL");
        assert_eq!(
            node.journal_files_of(&pod).len(),
            1,
            "the journal stays until the directory is writable"
        );
        remount(&node, "rw");
        del_twice_clean(&node, &pod, Some(&result), "once writable again");
    });
}

// ---------------------------------------------------------------------------------------------
// The API stand-in misbehaving. ADD needs the pod and its NADs: it fails before anything is
// attached, with the pod and the API named. DEL needs no API.

fn api_fault(arm: impl FnOnce(&Node), want_code: i64, want: &[&str]) {
    let mut node = Node::start(cluster_bridge("cl", "plxc0", "10.140.0.0/24"));
    node.set("apiTimeoutSeconds", json!(1));
    node.nad("br", &bridge("br", "plxb1", "10.140.2.0/24"));
    let pod = node.pod("p", "br");
    arm(&node);
    let started = Instant::now();
    let (code, msg, details) = node.add(&pod).error();
    eprintln!("the error: code {code}: {msg}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "ADD is bounded: {:?}",
        started.elapsed()
    );
    assert_eq!(code, want_code, "{msg} / {details}");
    assert!(msg.contains("default/p"), "names the pod: {msg}");
    for w in want {
        assert!(
            msg.contains(w) || details.contains(w),
            "{w:?} in {msg:?} / {details:?}"
        );
    }
    node.assert_spotless(&pod, "after the failed ADD");
    // The API still misbehaves (armed for many requests): DEL does not need it.
    del_twice_clean(&node, &pod, None, "with the API failing");
}

#[test]
fn api_slower_than_the_timeout() {
    sandbox::run("api_slower_than_the_timeout", || {
        api_fault(
            |n| n.api.set_latency(Duration::from_secs(3)),
            11,
            &["did not answer reading pod default/p"],
        )
    });
}

#[test]
fn api_returns_invalid_json() {
    sandbox::run("api_returns_invalid_json", || {
        api_fault(
            |n| {
                n.api
                    .fail_next_with_body(1000, 200, "{\"kind\":\"Pod\",", "application/json")
            },
            5,
            &["unusable answer reading pod default/p"],
        )
    });
}

#[test]
fn api_returns_401() {
    sandbox::run("api_returns_401", || {
        api_fault(
            |n| n.api.fail_next(1000, 401),
            5,
            &["401 Unauthorized", "token"],
        )
    });
}

#[test]
fn api_returns_403() {
    sandbox::run("api_returns_403", || {
        api_fault(
            |n| n.api.fail_next(1000, 403),
            5,
            &["403 Forbidden", "RBAC"],
        )
    });
}

#[test]
fn api_returns_500() {
    sandbox::run("api_returns_500", || {
        api_fault(
            |n| n.api.fail_next(1000, 500),
            11,
            &["did not answer reading pod default/p", "attempts"],
        )
    });
}

#[test]
fn api_returns_429() {
    sandbox::run("api_returns_429", || {
        api_fault(
            |n| n.api.fail_next(1000, 429),
            11,
            &["did not answer reading pod default/p", "429"],
        )
    });
}

#[test]
fn api_fails_reading_the_nad() {
    sandbox::run("api_fails_reading_the_nad", || {
        api_fault(
            |n| {
                n.api
                    .fail_next_matching("GET network-attachment-definitions", 1000, 403)
            },
            5,
            &["NetworkAttachmentDefinition default/br", "403 Forbidden"],
        )
    });
}

// ---------------------------------------------------------------------------------------------
// Delegates misbehaving. Each misbehaving plugin ends a conflist whose bridge and host-local
// lease exist by then.

fn with_last_plugin(plugin: Value) -> (Node, Pod) {
    let (node, pod) = three_networks("mv,odd");
    node.nad(
        "odd",
        &conflist(
            "odd",
            vec![
                json!({"type": "bridge", "bridge": "plxo0",
                       "ipam": {"type": "host-local", "subnet": "10.140.4.0/24"}}),
                plugin,
            ],
        ),
    );
    (node, pod)
}

/// The misbehaving result is accepted: ADD succeeds, network-status has the network, DEL
/// cleans up.
fn accepted(plugin: Value, check: impl FnOnce(&Value)) {
    let (node, pod) = with_last_plugin(plugin);
    let run = node.add(&pod);
    run.assert_ok("ADD");
    let result = run.json();
    assert_eq!(pod.link_names(), ["eth0", "lo", "net1", "net2"]);
    let status = node.network_status(&pod);
    assert_eq!(status.len(), 3, "{status:?}");
    assert_eq!(status[2]["name"], "default/odd", "{status:?}");
    check(&status[2]);
    del_twice_clean(&node, &pod, Some(&result), "");
}

#[test]
fn delegate_returns_a_0_2_0_result() {
    sandbox::run("delegate_returns_a_0_2_0_result", || {
        accepted(json!({"type": "fake-old-result"}), |entry| {
            // Converted up: the address is there, no interface to name.
            assert_eq!(entry.get("ips"), None, "{entry}");
            assert_eq!(entry["dns"], json!({}), "{entry}");
        })
    });
}

#[test]
fn delegate_returns_a_0_3_1_result() {
    sandbox::run("delegate_returns_a_0_3_1_result", || {
        accepted(
            json!({"type": "fake-old-result", "fakeResultVersion": "0.3.1"}),
            |entry| {
                assert_eq!(entry["interface"], "net2", "{entry}");
                assert_eq!(entry["ips"], json!(["10.98.0.2"]), "{entry}");
            },
        )
    });
}

#[test]
fn delegate_returns_a_result_without_interfaces() {
    sandbox::run("delegate_returns_a_result_without_interfaces", || {
        accepted(json!({"type": "fake-no-interfaces"}), |entry| {
            assert_eq!(
                entry.as_object().unwrap().keys().collect::<Vec<_>>(),
                ["name", "dns"],
                "the minimal entry: {entry}"
            );
        })
    });
}

/// The misbehaving delegate fails ADD: everything is rolled back and the error says why.
fn refused(plugin: Value, env: &[(&str, &str)], want_code: i64, want: &[&str]) {
    let (node, pod) = with_last_plugin(plugin);
    let run = node.call("ADD", &pod, env, None, &json!({}));
    let (code, msg, details) = run.error();
    eprintln!("the error: code {code}: {msg}");
    assert_eq!(code, want_code, "{msg} / {details}");
    assert!(
        msg.contains("for network \"default/odd\" (ADD)"),
        "names the network: {msg}"
    );
    for w in want {
        assert!(msg.contains(w), "{w:?} in {msg:?}");
    }
    node.assert_clean(&pod, "after the rolled-back ADD");
    del_twice_clean(&node, &pod, None, "after the rolled-back ADD");
}

#[test]
fn delegate_error_with_an_unknown_code() {
    sandbox::run("delegate_error_with_an_unknown_code", || {
        refused(
            json!({"type": "fake-fail-add"}),
            &[("FAKE_CODE", "4242")],
            4242,
            &["delegate plugin \"fake-fail-add\"", "fake failure"],
        )
    });
}

#[test]
fn delegate_killed_by_a_signal() {
    sandbox::run("delegate_killed_by_a_signal", || {
        refused(
            json!({"type": "fake-signal"}),
            &[],
            999,
            &[
                "delegate plugin \"fake-signal\"",
                "killed by signal 9 (SIGKILL)",
            ],
        )
    });
}

// ---------------------------------------------------------------------------------------------
// Hardening.

#[test]
fn no_token_or_kubeconfig_content_in_the_logs() {
    sandbox::run("no_token_or_kubeconfig_content_in_the_logs", || {
        let (mut node, pod) = three_networks("mv,br");
        let log = node.dir.path().join("plexus.log");
        // The most verbose level: plexus's own logs and those of its HTTP and TLS libraries.
        node.set("logLevel", json!("trace"));
        node.set("logFile", json!(log));
        node.set("logToStderr", json!(true));
        let add = node.add(&pod);
        add.assert_ok("ADD");
        let result = add.json();
        node.del(&pod, Some(&result)).assert_ok("DEL");
        node.api.fail_next(1, 401);
        let failed = node.add(&pod);
        let mut said = std::fs::read_to_string(&log).expect("the log file");
        assert!(said.contains("DEBUG") || said.contains("TRACE"), "{said}");
        for run in [&add, &failed] {
            said.push_str(&run.stdout);
            said.push_str(&run.stderr);
        }
        let token = node.api.token().to_owned();
        assert!(token.len() >= 16, "a real token: {token}");
        assert!(!said.contains(&token), "the token was logged");
        let kubeconfig =
            std::fs::read_to_string(node.dir.path().join("kubeconfig")).expect("kubeconfig");
        for line in kubeconfig.lines().map(str::trim).filter(|l| l.len() > 40) {
            assert!(
                !said.contains(line),
                "kubeconfig content was logged: {line}"
            );
        }
        node.del(&pod, None).assert_ok("DEL");
        node.assert_spotless(&pod, "after DEL");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the log file is private");
    });
}

#[test]
fn kubeconfig_modes_are_fixed_or_refused() {
    sandbox::run("kubeconfig_modes_are_fixed_or_refused", || {
        use std::os::unix::fs::PermissionsExt;
        let (node, pod) = three_networks("br");
        let kc = node.dir.path().join("kubeconfig");
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        // Readable by others: fixed, and the ADD goes on.
        set(&kc, 0o644);
        let run = node.add(&pod);
        run.assert_ok("ADD with a 0644 kubeconfig");
        assert_eq!(mode(&kc), 0o600);
        assert!(
            run.stderr.contains("its mode is now 0600"),
            "{}",
            run.stderr
        );
        node.del(&pod, Some(&run.json())).assert_ok("DEL");
        // Writable by others: refused before anything runs.
        set(&kc, 0o666);
        let (code, msg, _) = node.add(&pod).error();
        eprintln!("the error: code {code}: {msg}");
        assert_eq!(code, 5, "{msg}");
        assert!(
            msg.contains(&kc.display().to_string()) && msg.contains("0666"),
            "{msg}"
        );
        node.assert_spotless(&pod, "after the refused ADD");
        set(&kc, 0o600);
        // Its directory writable by others: refused too.
        set(node.dir.path(), 0o777);
        let (code, msg, _) = node.add(&pod).error();
        eprintln!("the error: code {code}: {msg}");
        assert_eq!(code, 5, "{msg}");
        assert!(msg.contains("directory") && msg.contains("0777"), "{msg}");
        set(node.dir.path(), 0o700);
        del_twice_clean(&node, &pod, None, "after the refusals");
    });
}

#[test]
fn too_many_networks_or_too_long_an_annotation_is_refused() {
    sandbox::run(
        "too_many_networks_or_too_long_an_annotation_is_refused",
        || {
            let node = Node::start(cluster_bridge("cl", "plxc0", "10.140.0.0/24"));
            node.nad("br", &bridge("br", "plxb1", "10.140.2.0/24"));
            // 32 attachments with the cluster network: 31 selected is the most.
            let pod = node.pod("many", &vec!["br"; 32].join(","));
            let (code, msg, _) = node.add(&pod).error();
            eprintln!("the error: code {code}: {msg}");
            assert_eq!(code, 7, "{msg}");
            assert_eq!(
                msg,
                "pod default/many: the cluster network, 0 defaultNetworks and 32 selected \
                 networks make 33 attachments, more than plexus's limit of 32 attachments"
            );
            node.assert_spotless(&pod, "after the refused ADD");
            del_twice_clean(&node, &pod, None, "after too many networks");
            let long = format!("br,{}", " ".repeat(64 * 1024));
            let pod = node.pod("long", &long);
            let (code, msg, _) = node.add(&pod).error();
            eprintln!("the error: code {code}: {msg}");
            assert_eq!(code, 7, "{msg}");
            assert!(
                msg.starts_with("pod default/long: k8s.v1.cni.cncf.io/networks is 65539 bytes"),
                "{msg}"
            );
            del_twice_clean(&node, &pod, None, "after too long an annotation");
        },
    );
}

#[test]
fn delegate_links_out_of_the_plugin_directories_and_shell_syntax_run_nothing() {
    sandbox::run(
        "delegate_links_out_of_the_plugin_directories_and_shell_syntax_run_nothing",
        || {
            use std::os::unix::fs::PermissionsExt;
            let mut node = Node::start(cluster_bridge("cl", "plxc0", "10.140.0.0/24"));
            // A plugin directory of its own with a link to a script outside every plugin
            // directory; the script would leave a mark if it ran.
            let bin = node.dir.path().join("bin");
            let outside = node.dir.path().join("outside");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::create_dir_all(&outside).unwrap();
            let mark = node.dir.path().join("ran");
            let script = outside.join("evil");
            std::fs::write(
                &script,
                format!("#!/bin/sh\ntouch {}\necho '{{}}'\n", mark.display()),
            )
            .unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::os::unix::fs::symlink(&script, bin.join("evil")).unwrap();
            node.set("binDir", json!(bin));
            node.nad(
                "evil",
                &json!({"cniVersion": "1.0.0", "name": "evil", "type": "evil"}),
            );
            let pod = node.pod("evil", "evil");
            let (code, msg, _) = node.add(&pod).error();
            eprintln!("the error: code {code}: {msg}");
            assert_eq!(code, 7, "{msg}");
            assert!(
                msg.contains("outside every plugin directory")
                    && msg.contains(&bin.join("evil").display().to_string()),
                "{msg}"
            );
            assert!(!mark.exists(), "the linked script ran");
            node.assert_clean(&pod, "after the refused ADD");
            node.del(&pod, None).assert_ok("DEL");
            assert!(!mark.exists(), "the linked script ran on DEL");
            // A type with shell syntax is a file name like any other: nothing interprets it.
            let shelly = "fake-record;touch plexus-shell-mark";
            node.nad(
                "shelly",
                &json!({"cniVersion": "1.0.0", "name": "shelly", "type": shelly}),
            );
            let pod = node.pod("shelly", "shelly");
            let (code, msg, _) = node.add(&pod).error();
            eprintln!("the error: code {code}: {msg}");
            assert_eq!(code, 7, "{msg}");
            assert!(
                msg.contains(&format!("no executable named {shelly:?}")),
                "looked up as one literal file name: {msg}"
            );
            assert!(pod.fake_calls().is_empty(), "fake-record ran");
            assert!(
                !Path::new("plexus-shell-mark").exists(),
                "a shell ran the type"
            );
            node.del(&pod, None).assert_ok("DEL");
            node.assert_spotless(&pod, "after DEL");
        },
    );
}
