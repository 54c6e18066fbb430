//! Delegate failure modes through the plexus binary, with the fake plugins of
//! `conformance/fixtures/plugins`. Each case asserts the exact error document a runtime
//! receives, and what the fake recorded (env, stdin) or left behind (processes).
//!
//! Each test runs in its own sandbox (private network and mount namespaces): the pod
//! namespace `fake-pod` and plexus's journal directory (`/run/cni/plexus`) live there.

mod common;

use std::path::Path;
use std::time::Duration;

use plexus_conformance::plugins::{self, fixtures_dir, recorded};
use plexus_conformance::sandbox;
use serde_json::{Value, json};

use common::{Run, attach_env, plexus};

/// A node config whose cluster network is one plugin of type `plugin`.
fn node(plugin: &str, extra: Value) -> String {
    let mut n = json!({
        "cniVersion": "1.1.0", "name": "plexus", "type": "plexus",
        "binDir": fixtures_dir().display().to_string(),
        "logLevel": "debug",
        "cniDir": "/run/cni/plexus",
        "delegates": [{"cniVersion": "1.0.0", "name": "fakenet", "type": plugin}]
    });
    if let (Some(n), Some(extra)) = (n.as_object_mut(), extra.as_object()) {
        n.extend(extra.clone());
    }
    n.to_string()
}

/// A fresh bin directory holding one plugin, the shell script `name` running `body`, for
/// delegates the fixtures do not have.
fn script_plugin(name: &str, body: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().unwrap();
    let script = bin.path().join(name);
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// The [`node`] extra that runs plugins from `bin` instead of the fixtures.
fn bin_dir(bin: &tempfile::TempDir) -> Value {
    json!({"binDir": bin.path().display().to_string()})
}

/// The pod namespace of this sandbox (created on first use).
const POD: &str = "/run/netns/fake-pod";

fn ensure_pod() {
    if !Path::new(POD).exists() {
        plexus_conformance::netns::ip(&["netns", "add", "fake-pod"]);
    }
}

/// Runs `command` through plexus with the fakes recording into `dir`.
fn call(command: &str, dir: &Path, stdin: &str) -> Run {
    ensure_pod();
    let dir = dir.display().to_string();
    let mut env = attach_env(command, POD, "eth0", "/nonexistent/bin");
    env.push(("FAKE_RECORD_DIR", &dir));
    env.push(("FAKE_CODE", "11"));
    plexus(&env, stdin)
}

fn assert_error(r: &Run, expected: Value) {
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json(), expected, "stderr: {}", r.stderr);
}

#[test]
fn delegate_gets_its_env_and_exact_config_and_the_result_comes_back() {
    sandbox::run(
        "delegate_gets_its_env_and_exact_config_and_the_result_comes_back",
        || {
            let d = tempfile::tempdir().unwrap();
            let r = call("ADD", d.path(), &node("fake-record", json!({})));
            assert_eq!(r.code, 0, "{r:?}");
            assert_eq!(
                r.json(),
                json!({"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/fake-pod"}],
               "ips":[{"interface":0,"address":"10.99.0.2/24"}],"dns":{}}),
                "1.0.0 -> 1.1.0 only relabels the version: the delegate's keys stay as they were"
            );
            let calls = recorded(d.path());
            assert_eq!(calls.len(), 1);
            let c = &calls[0];
            assert_eq!(c.command, "ADD");
            assert_eq!(c.var("CNI_IFNAME"), Some("eth0"));
            assert_eq!(c.var("CNI_NETNS"), Some("/run/netns/fake-pod"));
            assert_eq!(c.var("CNI_CONTAINERID"), Some("c0ffee"));
            assert_eq!(
                c.var("CNI_ARGS"),
                Some(
                    "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=u-1"
                )
            );
            let path = format!("{}:/nonexistent/bin", fixtures_dir().display());
            assert_eq!(c.var("CNI_PATH"), Some(path.as_str()));
            // The delegate config is passed through as it is in the node config.
            assert_eq!(
                String::from_utf8_lossy(&c.stdin),
                r#"{"cniVersion":"1.0.0","name":"fakenet","type":"fake-record"}"#
            );
        },
    );
}

#[test]
fn del_without_netns_reaches_the_delegate_without_cni_netns() {
    sandbox::run(
        "del_without_netns_reaches_the_delegate_without_cni_netns",
        || {
            let d = tempfile::tempdir().unwrap();
            let dir = d.path().display().to_string();
            let mut env: Vec<(&str, &str)> = attach_env("DEL", "", "eth0", "/x")
                .into_iter()
                .filter(|(k, _)| *k != "CNI_NETNS")
                .collect();
            env.push(("FAKE_RECORD_DIR", &dir));
            let r = plexus(&env, &node("fake-record", json!({})));
            assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
            let calls = recorded(d.path());
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0].command, "DEL");
            assert_eq!(calls[0].var("CNI_NETNS"), None);
        },
    );
}

#[test]
fn reported_error_keeps_the_delegates_code_and_names_plugin_and_network() {
    sandbox::run(
        "reported_error_keeps_the_delegates_code_and_names_plugin_and_network",
        || {
            let d = tempfile::tempdir().unwrap();
            let r = call("ADD", d.path(), &node("fake-fail-add", json!({})));
            assert_error(
                &r,
                json!({"cniVersion":"1.1.0","code":11,
               "msg":"delegate plugin \"fake-fail-add\" for network \"fakenet\" (ADD) failed: fake failure",
               "details":"asked to fail"}),
            );
        },
    );
}

#[test]
fn failing_del_is_reported_not_swallowed() {
    sandbox::run("failing_del_is_reported_not_swallowed", || {
        let d = tempfile::tempdir().unwrap();
        let conf = node("fake-fail-del", json!({}));
        assert_eq!(call("ADD", d.path(), &conf).code, 0);
        // The ADD succeeded, so a failing DEL is strict: reported, journal kept for the retry.
        for _ in 0..2 {
            let r = call("DEL", d.path(), &conf);
            assert_eq!(r.code, 1, "{r:?}");
            let doc = r.json();
            assert_eq!(doc["code"], 5);
            assert_eq!(
                doc["msg"],
                "delegate plugin \"fake-fail-del\" for network \"fakenet\" (DEL) failed: fake del failure"
            );
            assert!(
                Path::new("/run/cni/plexus/c0ffee:eth0.json").exists(),
                "{:?}",
                std::fs::read_dir("/run/cni/plexus").map(|d| d
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name())
                    .collect::<Vec<_>>())
            );
        }
    });
}

#[test]
fn hanging_delegate_is_killed_at_the_timeout_with_its_process_group() {
    sandbox::run(
        "hanging_delegate_is_killed_at_the_timeout_with_its_process_group",
        || {
            let d = tempfile::tempdir().unwrap();
            let r = call(
                "ADD",
                d.path(),
                &node("fake-hang", json!({"delegateTimeoutSeconds": 0.5})),
            );
            assert_error(
                &r,
                json!({"cniVersion":"1.1.0","code":11,
               "msg":"delegate plugin \"fake-hang\" for network \"fakenet\" (ADD) did not finish within 0.5s and was killed with its process group"}),
            );
            // Both pid files exist by now: the script wrote them before it was killed.
            let (script, child) = plugins::wait_for_hang_pids(d.path(), Duration::from_secs(1));
            for pid in [script, child] {
                plexus_conformance::wait_until(
                    &format!("fake-hang process {pid} to be gone"),
                    Duration::from_secs(5),
                    || !plugins::process_alive(pid),
                );
            }
        },
    );
}

#[test]
fn garbage_on_stdout_is_a_decode_error_showing_the_output() {
    sandbox::run(
        "garbage_on_stdout_is_a_decode_error_showing_the_output",
        || {
            let d = tempfile::tempdir().unwrap();
            let r = call("ADD", d.path(), &node("fake-garbage", json!({})));
            assert_eq!(r.code, 1);
            let doc = r.json();
            assert_eq!(doc["code"], 6);
            assert_eq!(
                doc["msg"],
                "delegate plugin \"fake-garbage\" for network \"fakenet\" (ADD) printed output that is neither a CNI result nor a CNI error"
            );
            let details = doc["details"].as_str().unwrap();
            assert!(
                details.starts_with("exit status 0; stdout is not JSON"),
                "{details}"
            );
            assert!(
                details.ends_with("stdout was: \"this is not JSON\""),
                "{details}"
            );
        },
    );
}

#[test]
fn silent_non_zero_exit_is_reported_with_its_status() {
    sandbox::run("silent_non_zero_exit_is_reported_with_its_status", || {
        let d = tempfile::tempdir().unwrap();
        let r = call("ADD", d.path(), &node("fake-silent", json!({})));
        assert_error(
            &r,
            json!({"cniVersion":"1.1.0","code":999,
               "msg":"delegate plugin \"fake-silent\" for network \"fakenet\" (ADD) exited with status 3 and printed no error",
               "details":"the plugin wrote nothing on stderr"}),
        );
    });
}

#[test]
fn signal_death_is_reported_with_the_signal() {
    sandbox::run("signal_death_is_reported_with_the_signal", || {
        let d = tempfile::tempdir().unwrap();
        let r = call("ADD", d.path(), &node("fake-signal", json!({})));
        assert_eq!(r.code, 1);
        let doc = r.json();
        assert_eq!(doc["code"], 999);
        assert_eq!(
            doc["msg"],
            "delegate plugin \"fake-signal\" for network \"fakenet\" (ADD) was killed by signal 9 (SIGKILL)"
        );
    });
}

#[test]
fn delegate_stderr_goes_to_the_log_never_to_stdout() {
    sandbox::run("delegate_stderr_goes_to_the_log_never_to_stdout", || {
        let d = tempfile::tempdir().unwrap();
        let r = call("ADD", d.path(), &node("fake-stderr", json!({})));
        assert_eq!(r.code, 0, "{r:?}");
        r.json(); // stdout is exactly one JSON document
        assert!(
            r.stderr.contains("fake-stderr: line one"),
            "stderr: {}",
            r.stderr
        );
        assert!(
            r.stderr.contains("fake-stderr: line two"),
            "stderr: {}",
            r.stderr
        );
        assert!(!r.stdout.contains("line one"));
    });
}

#[test]
fn log_file_receives_the_logs_and_stderr_stays_quiet() {
    sandbox::run("log_file_receives_the_logs_and_stderr_stays_quiet", || {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("plexus.log");
        let rec = d.path().join("rec");
        let r = call(
            "ADD",
            &rec,
            &node(
                "fake-stderr",
                json!({"logFile": log.display().to_string(), "logToStderr": false}),
            ),
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.stderr, "");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("fake-stderr: line two"), "{text}");
    });
}

#[test]
fn path_like_types_are_refused_and_nothing_runs() {
    sandbox::run("path_like_types_are_refused_and_nothing_runs", || {
        let d = tempfile::tempdir().unwrap();
        let fake = plugins::fixture("fake-record").display().to_string();
        // Relative to binDir (the fixtures dir), this one would reach fake-record if it were run.
        let relative = format!("../plugins/{}", "fake-record");
        for t in [
            "../../bin/sh",
            "/bin/sh",
            fake.as_str(),
            relative.as_str(),
            "",
            ".",
            "..",
        ] {
            let r = call("ADD", d.path(), &node(t, json!({})));
            assert_eq!(r.code, 1, "{t:?}: {r:?}");
            let doc = r.json();
            assert_eq!(doc["code"], 7, "{t:?}: {doc}");
            if !t.is_empty() {
                assert_eq!(
                    doc["msg"],
                    format!(
                        "delegate plugin {t:?} for network \"fakenet\" (ADD) refused: a plugin type must be a bare file name (not empty, no '/', no NUL, not '.' or '..')"
                    ),
                    "{t:?}"
                );
            }
        }
        assert!(recorded(d.path()).is_empty(), "a refused type was executed");
    });
}

#[test]
fn unknown_plugin_names_the_directories_searched() {
    sandbox::run("unknown_plugin_names_the_directories_searched", || {
        let d = tempfile::tempdir().unwrap();
        let r = call("ADD", d.path(), &node("no-such-plugin", json!({})));
        assert_error(
            &r,
            json!({"cniVersion":"1.1.0","code":7,
               "msg":"delegate plugin \"no-such-plugin\" for network \"fakenet\" (ADD) not found: no executable named \"no-such-plugin\" in the plugin directories",
               "details": format!("searched: {}:/nonexistent/bin", fixtures_dir().display())}),
        );
    });
}

#[test]
fn text_file_busy_is_retried_then_reported() {
    sandbox::run("text_file_busy_is_retried_then_reported", || {
        use std::os::unix::fs::PermissionsExt;
        let bin = tempfile::tempdir().unwrap();
        let p = bin.path().join("busy-plugin");
        std::fs::copy(plugins::fixture("fake-record"), &p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Held open for writing for the whole run: every exec attempt gets ETXTBSY.
        let _writer = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let d = tempfile::tempdir().unwrap();
        let r = call("ADD", d.path(), &node("busy-plugin", bin_dir(&bin)));
        assert_eq!(r.code, 1, "{r:?}");
        let doc = r.json();
        assert_eq!(doc["code"], 5);
        let msg = doc["msg"].as_str().unwrap();
        assert!(msg.contains("could not be started"), "{msg}");
        assert!(msg.contains("still busy after 10 retries"), "{msg}");
        assert!(recorded(d.path()).is_empty());
    });
}

#[test]
fn status_and_gc_are_forwarded_to_1_1_delegates() {
    sandbox::run("status_and_gc_are_forwarded_to_1_1_delegates", || {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().display().to_string();
        let mut n: Value = serde_json::from_str(&node("fake-record", json!({}))).unwrap();
        n["delegates"][0]["cniVersion"] = json!("1.1.0");
        n["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
        for cmd in ["STATUS", "GC"] {
            let r = plexus(
                &[
                    ("CNI_COMMAND", cmd),
                    ("CNI_PATH", "/x"),
                    ("FAKE_RECORD_DIR", &dir),
                ],
                &n.to_string(),
            );
            assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{cmd}: {r:?}");
        }
        let calls = recorded(d.path());
        let cmds: Vec<&str> = calls.iter().map(|c| c.command.as_str()).collect();
        assert_eq!(cmds, vec!["STATUS", "GC"]);
        assert_eq!(
            calls[1].stdin_json()["cni.dev/valid-attachments"],
            json!([{"containerID": "keep", "ifname": "eth0"}])
        );
        assert_eq!(calls[0].var("CNI_CONTAINERID"), None);
    });
}

#[test]
fn failed_add_in_a_conflist_is_undone_with_del_in_reverse() {
    sandbox::run(
        "failed_add_in_a_conflist_is_undone_with_del_in_reverse",
        || {
            let d = tempfile::tempdir().unwrap();
            let mut n: Value = serde_json::from_str(&node("unused", json!({}))).unwrap();
            n["delegates"][0] = json!({"cniVersion": "1.0.0", "name": "fakelist",
        "plugins": [{"type": "fake-record"}, {"type": "fake-fail-add"}]});
            let r = call("ADD", d.path(), &n.to_string());
            assert_error(
                &r,
                json!({"cniVersion":"1.1.0","code":11,
               "msg":"delegate plugin \"fake-fail-add\" for network \"fakelist\" (ADD) failed: fake failure",
               "details":"asked to fail"}),
            );
            let calls = recorded(d.path());
            let seen: Vec<(&str, &str)> = calls
                .iter()
                .map(|c| {
                    (
                        c.command.as_str(),
                        c.stdin_json()["type"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .map(|(c, t)| {
                    (
                        c,
                        if t == "fake-record" {
                            "fake-record"
                        } else {
                            "fake-fail-add"
                        },
                    )
                })
                .collect();
            assert_eq!(
                seen,
                vec![
                    ("ADD", "fake-record"),
                    ("ADD", "fake-fail-add"),
                    ("DEL", "fake-fail-add"),
                    ("DEL", "fake-record"),
                ]
            );
        },
    );
}

#[test]
fn unknown_node_config_keys_are_logged_not_fatal() {
    sandbox::run("unknown_node_config_keys_are_logged_not_fatal", || {
        let d = tempfile::tempdir().unwrap();
        let r = call(
            "ADD",
            d.path(),
            &node(
                "fake-record",
                json!({"someMultusKey": true, "logLevel": "verbose"}),
            ),
        );
        assert_eq!(r.code, 0, "{r:?}");
        assert!(
            r.stderr.contains("node config keys plexus does not use")
                && r.stderr.contains("someMultusKey"),
            "{}",
            r.stderr
        );
    });
}

/// A delegate that exits without reading its config: plexus's write of the rest of the config
/// fails with EPIPE. plexus must take that as the plugin's business (SIGPIPE is ignored: it
/// defines its own C `main`, see src/main.rs) and report the exit, not die of the signal with
/// nothing on stdout.
#[test]
fn delegate_that_never_reads_its_config_is_reported_not_fatal() {
    sandbox::run(
        "delegate_that_never_reads_its_config_is_reported_not_fatal",
        || {
            let bin = script_plugin("nostdin", "exit 3");
            let mut node: Value = serde_json::from_str(&node("nostdin", bin_dir(&bin))).unwrap();
            // Four times a pipe's buffer: the writes cannot all land before the plugin exits.
            node["delegates"][0]["pad"] = json!("x".repeat(256 * 1024));
            let d = tempfile::tempdir().unwrap();
            let r = call("ADD", d.path(), &node.to_string());
            assert_error(
                &r,
                json!({"cniVersion":"1.1.0","code":999,
                   "msg":"delegate plugin \"nostdin\" for network \"fakenet\" (ADD) exited with status 3 and printed no error",
                   "details":"the plugin wrote nothing on stderr"}),
            );
        },
    );
}

/// ADD fsyncs its plan while the first delegate starts up (src/txn/add.rs, `Plan`): the
/// delegate is spawned first, but it gets its config only once the journal is on disk. This
/// delegate reads its config, then copies the journal directory's `.json` files to the
/// record directory: the plan must be there, every attachment still `planned`.
#[test]
fn first_delegate_gets_its_config_only_once_the_plan_is_saved() {
    sandbox::run(
        "first_delegate_gets_its_config_only_once_the_plan_is_saved",
        || {
            let d = tempfile::tempdir().unwrap();
            let seen = d.path().join("journal-seen");
            let bin = script_plugin(
                "planreader",
                &format!(
                    "cat > /dev/null\ncat /run/cni/plexus/*.json > {}\n\
                     printf '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.9.0.2/24\"}}]}}'",
                    seen.display()
                ),
            );
            let r = call("ADD", d.path(), &node("planreader", bin_dir(&bin)));
            assert_eq!(r.code, 0, "{r:?}");
            let journal: Value = serde_json::from_slice(&std::fs::read(&seen).unwrap())
                .unwrap_or_else(|e| panic!("the plan, as the delegate saw it: {e}"));
            assert_eq!(journal["phase"], "adding", "{journal}");
            assert_eq!(journal["attachments"][0]["network"], "fakenet", "{journal}");
            assert_eq!(journal["attachments"][0]["state"], "planned", "{journal}");
        },
    );
}

/// The next plugins are started while one runs (src/delegate/ahead.rs), and given their
/// configs only at their turn. Conflist `ok, fails, late`: `fails` waits (bounded, 2 s) for
/// `late` to have started before it fails, so `late`'s ADD process exists, was never given its
/// config, and is gone when plexus answers; the rollback then runs every DEL, `late`'s first.
/// With `startDelegatesAhead: false` nothing starts before its turn: `late`'s ADD never runs.
#[test]
fn plugins_started_ahead_get_nothing_before_their_turn_and_are_killed_when_it_never_comes() {
    sandbox::run(
        "plugins_started_ahead_get_nothing_before_their_turn_and_are_killed_when_it_never_comes",
        || {
            for ahead in [true, false] {
                let d = tempfile::tempdir().unwrap();
                let bin = tempfile::tempdir().unwrap();
                let rec = d.path().display().to_string();
                let plugin = |name: &str, body: &str| {
                    use std::os::unix::fs::PermissionsExt;
                    let p = bin.path().join(name);
                    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
                };
                // Each records its pid when it starts and its config once read, per command.
                let record = |name: &str| {
                    format!(
                        "echo $$ > {rec}/{name}.$CNI_COMMAND.pid.tmp && mv {rec}/{name}.$CNI_COMMAND.pid.tmp {rec}/{name}.$CNI_COMMAND.pid\n\
                         cat > {rec}/{name}.$CNI_COMMAND.seen.tmp && mv {rec}/{name}.$CNI_COMMAND.seen.tmp {rec}/{name}.$CNI_COMMAND.seen"
                    )
                };
                let result = r#"printf '{"cniVersion":"1.0.0","ips":[{"address":"10.9.0.2/24"}]}'"#;
                plugin(
                    "ok",
                    &format!(
                        "{}\n[ \"$CNI_COMMAND\" = ADD ] && {result}\nexit 0",
                        record("ok")
                    ),
                );
                plugin(
                    "fails",
                    &format!(
                        "{}\nif [ \"$CNI_COMMAND\" = ADD ]; then\n\
                         i=0; while [ ! -s {rec}/late.ADD.pid ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done\n\
                         printf '{{\"code\":11,\"msg\":\"no\"}}'; exit 1\nfi",
                        record("fails")
                    ),
                );
                plugin(
                    "late",
                    &format!(
                        "{}\n[ \"$CNI_COMMAND\" = ADD ] && {result}\nexit 0",
                        record("late")
                    ),
                );
                let mut n: Value = serde_json::from_str(&node("unused", bin_dir(&bin))).unwrap();
                n["startDelegatesAhead"] = json!(ahead);
                n["delegates"][0] = json!({"cniVersion": "1.0.0", "name": "list",
                    "plugins": [{"type": "ok"}, {"type": "fails"}, {"type": "late"}]});
                let r = call("ADD", d.path(), &n.to_string());
                assert_eq!(
                    r.json()["msg"],
                    "delegate plugin \"fails\" for network \"list\" (ADD) failed: no",
                    "{r:?}"
                );
                let file = |f: &str| std::fs::read_to_string(d.path().join(f)).ok();
                for name in ["ok", "fails"] {
                    assert!(file(&format!("{name}.ADD.seen")).is_some_and(|c| c.contains(name)));
                }
                assert_eq!(
                    file("late.ADD.seen"),
                    None,
                    "ahead={ahead}: late got an ADD config"
                );
                match file("late.ADD.pid") {
                    Some(pid) => {
                        assert!(ahead, "late started with startDelegatesAhead off");
                        let pid: i32 = pid.trim().parse().unwrap();
                        assert!(
                            !plugins::process_alive(pid),
                            "late's ADD process outlived plexus"
                        );
                    }
                    None => assert!(!ahead, "late was not started ahead"),
                }
                // The rollback: every plugin's DEL, with its config.
                for name in ["late", "fails", "ok"] {
                    assert!(
                        file(&format!("{name}.DEL.seen")).is_some_and(|c| c.contains(name)),
                        "ahead={ahead}: no DEL of {name}"
                    );
                }
            }
        },
    );
}
