//! Self-tests of the rig: the sandbox, `Netns` and the fake plugins.
//!
//! Every test runs in `sandbox::run`, so these need root (or
//! `PLEXUS_SKIP_PRIVILEGED=1` to skip them visibly).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use plexus_conformance::netns::{Netns, host_links, ip, veth_pair};
use plexus_conformance::plugins::{self, Invocation};
use plexus_conformance::{sandbox, wait_until};

const WAIT: Duration = Duration::from_secs(10);

fn link_names(links: &[plexus_conformance::netns::Link]) -> Vec<&str> {
    links.iter().map(|l| l.name.as_str()).collect()
}

#[test]
fn sandbox_root_has_only_lo() {
    sandbox::run("sandbox_root_has_only_lo", || {
        assert!(sandbox::inside());
        let links = host_links();
        assert_eq!(link_names(&links), ["lo"]);
        assert!(links[0].up, "sandbox setup brings lo up");
        assert!(
            links[0].addrs.contains(&"127.0.0.1/8".to_owned()),
            "{links:?}"
        );

        // Not the namespaces of the outer test process that started us.
        let parent = std::os::unix::process::parent_id();
        for ns in ["net", "mnt"] {
            let ours = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
            let outer = fs::read_link(format!("/proc/{parent}/ns/{ns}")).unwrap();
            assert_ne!(ours, outer, "{ns} namespace is shared with the parent");
        }

        // Fresh, empty tmpfs mounts; sysfs shows the sandbox's links.
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        for dir in sandbox::TMPFS_DIRS {
            let fstype = mounts
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.get(1) == Some(&dir)).then(|| f[2])
                })
                .next_back();
            assert_eq!(fstype, Some("tmpfs"), "{dir} in\n{mounts}");
            assert_eq!(fs::read_dir(dir).unwrap().count(), 0, "{dir} is not empty");
        }
        let sys: Vec<String> = fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(sys, ["lo"]);
    });
}

#[test]
fn netns_lifecycle_and_veth_move() {
    sandbox::run("netns_lifecycle_and_veth_move", || {
        let ns = Netns::new("rig");
        let other = Netns::new("rig");
        assert_ne!(ns.name(), other.name());
        assert!(
            ns.name()
                .starts_with(&format!("rig-{}-", std::process::id()))
        );
        assert_eq!(ns.path(), Path::new("/run/netns").join(ns.name()));
        assert!(ns.path().exists());
        assert_eq!(link_names(&ns.links()), ["lo"]);

        veth_pair("rig-host0", "rig-pod0");
        let before = host_links();
        let pod_end = before
            .iter()
            .find(|l| l.name == "rig-pod0")
            .expect("veth end");
        assert_eq!(pod_end.kind.as_deref(), Some("veth"));
        assert!(pod_end.up);
        let mac = pod_end.mac.clone();
        assert_eq!(mac.len(), 17, "{mac}");

        ip(&["link", "set", "dev", "rig-pod0", "netns", ns.name()]);
        let link = ns
            .link("rig-pod0")
            .expect("moved veth is visible in the netns");
        assert_eq!(link.mac, mac);
        assert_eq!(link.kind.as_deref(), Some("veth"));
        assert_eq!(link.mtu, 1500);
        assert_eq!(link_names(&host_links()), ["lo", "rig-host0"]);
        assert_eq!(link_names(&other.links()), ["lo"]);

        ns.ip(&["addr", "add", "10.1.2.3/24", "dev", "rig-pod0"]);
        ns.ip(&["link", "set", "dev", "rig-pod0", "up"]);
        let link = ns.link("rig-pod0").unwrap();
        assert_eq!(link.ipv4(), ["10.1.2.3/24"]);
        let routes = ns.routes(4);
        assert!(
            routes
                .iter()
                .any(|r| r["dst"] == "10.1.2.0/24" && r["dev"] == "rig-pod0"),
            "{routes:?}"
        );
        assert!(
            ns.routes(6)
                .iter()
                .all(|r| r["dev"] != "lo" || r["dst"] != "10.1.2.0/24")
        );
        let missing = ns.exec(&["link", "show", "dev", "no-such-link"]);
        assert!(!missing.status.success());
        assert!(ns.link("no-such-link").is_none());

        let path = ns.path().to_owned();
        drop(ns);
        assert!(!path.exists(), "{} still exists after drop", path.display());
        // Deleting the netns destroys the veth; the kernel does it asynchronously.
        wait_until("the veth peer to vanish with its netns", WAIT, || {
            link_names(&host_links()) == ["lo"]
        });
        assert!(other.path().exists());
    });
}

#[test]
fn wrong_test_path_is_an_error() {
    sandbox::run("wrong_test_path_is_an_error", || {
        let err = sandbox::run_named_in_child("no_such_test_anywhere").unwrap_err();
        assert!(err.contains("did not run exactly one test"), "{err}");
        // --exact: a prefix of real names matches nothing.
        let err = sandbox::run_named_in_child("helper_").unwrap_err();
        assert!(err.contains("did not run exactly one test"), "{err}");
        // Positive control, nested one sandbox deeper.
        sandbox::run_named_in_child("helper_passes_when_sandboxed").unwrap();
        let err = sandbox::run_named_in_child("helper_fails_when_sandboxed").unwrap_err();
        assert!(err.contains("failed: child exited with"), "{err}");
        assert!(
            err.contains("deliberate failure inside the sandbox"),
            "{err}"
        );
    });
}

/// Target of `wrong_test_path_is_an_error`: passes, in a (nested) sandbox.
#[test]
#[ignore = "helper run by wrong_test_path_is_an_error"]
fn helper_passes_when_sandboxed() {
    sandbox::run("helper_passes_when_sandboxed", || {
        assert_eq!(link_names(&host_links()), ["lo"]);
    });
}

/// Target of `wrong_test_path_is_an_error`: fails when sandboxed.
#[test]
#[ignore = "helper run by wrong_test_path_is_an_error"]
fn helper_fails_when_sandboxed() {
    if sandbox::inside() {
        panic!("deliberate failure inside the sandbox");
    }
}

#[test]
fn non_root_fails_or_skips_visibly() {
    sandbox::run("non_root_fails_or_skips_visibly", || {
        let exe = std::env::current_exe().unwrap();
        let as_nobody = |skip: bool| -> Output {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&exe)
                .args(["sandbox_root_has_only_lo", "--exact", "--nocapture"])
                .env_remove(sandbox::SANDBOXED_ENV)
                .env_remove(sandbox::SKIP_PRIVILEGED_ENV)
                .stdin(Stdio::null());
            if skip {
                cmd.env(sandbox::SKIP_PRIVILEGED_ENV, "1");
            }
            cmd.output().expect("run setpriv")
        };
        let probe = as_nobody(true);
        let stderr = String::from_utf8_lossy(&probe.stderr);
        if stderr.contains("Permission denied") {
            eprintln!(
                "NOTE: user nobody cannot execute {}; not checked",
                exe.display()
            );
            return;
        }
        let stdout = String::from_utf8_lossy(&probe.stdout);
        assert!(probe.status.success(), "{stdout}\n{stderr}");
        assert!(
            stderr.contains("SKIPPED sandbox_root_has_only_lo: needs root (network namespaces)"),
            "{stdout}\n{stderr}"
        );
        let refused = as_nobody(false);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&refused.stdout),
            String::from_utf8_lossy(&refused.stderr)
        );
        assert!(!refused.status.success(), "{all}");
        assert!(
            all.contains("needs root") && all.contains("PLEXUS_SKIP_PRIVILEGED=1"),
            "{all}"
        );
    });
}

// ---- fake plugins ----

const CONF_1_0: &str = r#"{"cniVersion":"1.0.0","name":"net","type":"fake-record"}"#;

fn record_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Runs fake `name` for `command` with `stdin`, recording into `dir`.
fn call(name: &str, command: &str, dir: &Path, extra: &[(&str, &str)], stdin: &str) -> Output {
    let dir = dir.to_str().unwrap();
    let mut env = vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", "/run/netns/pod-1"),
        ("CNI_IFNAME", "net1"),
        ("CNI_PATH", "/nonexistent"),
        (plugins::RECORD_DIR_ENV, dir),
    ];
    env.extend_from_slice(extra);
    plugins::run_plugin(&plugins::fixture(name), &env, stdin.as_bytes())
}

fn stdout(o: &Output) -> &str {
    std::str::from_utf8(&o.stdout).unwrap()
}

fn result_1_0() -> String {
    r#"{"cniVersion":"1.0.0","interfaces":[{"name":"net1","sandbox":"/run/netns/pod-1"}],"ips":[{"interface":0,"address":"10.99.0.2/24"}],"dns":{}}"#.to_owned()
}

fn assert_recorded(dir: &Path, commands: &[&str]) -> Vec<Invocation> {
    let rec = plugins::recorded(dir);
    let got: Vec<(usize, &str)> = rec.iter().map(|i| (i.index, i.command.as_str())).collect();
    let want: Vec<(usize, &str)> = commands.iter().copied().enumerate().collect();
    assert_eq!(got, want);
    rec
}

#[test]
fn fixtures_are_posix_sh_executables() {
    sandbox::run("fixtures_are_posix_sh_executables", || {
        let dir = plugins::fixtures_dir();
        assert!(dir.is_absolute());
        let readme = fs::read_to_string(dir.join("README.md")).unwrap();
        for name in plugins::ALL_FAKES {
            let path = plugins::fixture(name);
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "{name} is not executable: {mode:o}");
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("#!/bin/sh\n"), "{name}");
            assert_posix(name, &text);
            assert!(
                readme.contains(&format!("`{name}`")),
                "README misses {name}"
            );
            assert!(
                text.contains(". \"$(dirname \"$0\")/common.sh\"\n"),
                "{name} does not source common.sh"
            );
        }
        assert_posix(
            "common.sh",
            &fs::read_to_string(dir.join("common.sh")).unwrap(),
        );
        let listed = fs::read_dir(&dir).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("fake-")
        });
        assert_eq!(listed.count(), plugins::ALL_FAKES.len());
    });
}

#[test]
fn fake_record_behaves() {
    sandbox::run("fake_record_behaves", || {
        let rec = record_dir();
        let d = rec.path();
        let add = call("fake-record", "ADD", d, &[], CONF_1_0);
        assert_eq!(add.status.code(), Some(0));
        assert_eq!(stdout(&add), result_1_0());
        assert!(add.stderr.is_empty());

        // cniVersion with whitespace and newlines; trailing newline kept on record.
        let conf_04 = "{\n  \"cniVersion\" : \"0.4.0\",\n  \"name\": \"net\"\n}\n";
        let add04 = call("fake-record", "ADD", d, &[], conf_04);
        assert_eq!(
            stdout(&add04),
            r#"{"cniVersion":"0.4.0","interfaces":[{"name":"net1","sandbox":"/run/netns/pod-1"}],"ips":[{"version":"4","interface":0,"address":"10.99.0.2/24"}],"dns":{}}"#
        );
        let add031 = call("fake-record", "ADD", d, &[], r#"{"cniVersion":"0.3.1"}"#);
        assert!(stdout(&add031).starts_with(r#"{"cniVersion":"0.3.1","interfaces""#));
        assert!(stdout(&add031).contains(r#""ips":[{"version":"4","#));
        let add_default = call("fake-record", "ADD", d, &[], r#"{"name":"net"}"#);
        assert_eq!(stdout(&add_default), result_1_0());

        for cmd in ["DEL", "CHECK", "STATUS", "GC"] {
            let out = call("fake-record", cmd, d, &[], CONF_1_0);
            assert_eq!(out.status.code(), Some(0), "{cmd}");
            assert!(
                out.stdout.is_empty() && out.stderr.is_empty(),
                "{cmd}: {out:?}"
            );
        }
        let version = call(
            "fake-record",
            "VERSION",
            d,
            &[],
            r#"{"cniVersion":"1.0.0"}"#,
        );
        assert_eq!(version.status.code(), Some(0));
        let v: serde_json::Value = serde_json::from_slice(&version.stdout).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        let supported = v["supportedVersions"].as_array().unwrap();
        for want in ["0.3.1", "0.4.0", "1.0.0"] {
            assert!(supported.iter().any(|s| s == want), "{v}");
        }

        let rec = assert_recorded(
            d,
            &[
                "ADD", "ADD", "ADD", "ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION",
            ],
        );
        assert_eq!(rec[0].stdin, CONF_1_0.as_bytes());
        assert_eq!(
            rec[1].stdin,
            conf_04.as_bytes(),
            "stdin is recorded byte for byte"
        );
        assert_eq!(rec[0].stdin_json()["name"], "net");
        assert_eq!(rec[0].var("CNI_COMMAND"), Some("ADD"));
        assert_eq!(rec[0].var("CNI_IFNAME"), Some("net1"));
        assert_eq!(rec[0].var("CNI_NETNS"), Some("/run/netns/pod-1"));
        assert_eq!(rec[4].var("CNI_COMMAND"), Some("DEL"));
        let env_text = fs::read_to_string(d.join("0-ADD.env")).unwrap();
        let mut sorted: Vec<&str> = env_text.lines().collect();
        sorted.sort_unstable();
        assert_eq!(
            env_text.lines().collect::<Vec<_>>(),
            sorted,
            "env is sorted"
        );
        assert!(d.join("8-VERSION.stdin").is_file());

        // Without FAKE_RECORD_DIR: same answer, nothing recorded anywhere.
        let out = plugins::run_plugin(
            &plugins::fixture("fake-record"),
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_IFNAME", "net1"),
                ("CNI_NETNS", "/run/netns/pod-1"),
            ],
            CONF_1_0.as_bytes(),
        );
        assert_eq!(stdout(&out), result_1_0());
        assert_eq!(plugins::recorded(d).len(), 9);
    });
}

#[test]
fn fake_record_numbers_concurrent_calls_uniquely() {
    sandbox::run("fake_record_numbers_concurrent_calls_uniquely", || {
        let rec = record_dir();
        let d = rec.path().to_owned();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let d = d.clone();
                std::thread::spawn(move || call("fake-record", "ADD", &d, &[], CONF_1_0))
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap().status.success());
        }
        assert_recorded(&d, &["ADD"; 8]);
    });
}

#[test]
fn fake_fail_add_behaves() {
    sandbox::run("fake_fail_add_behaves", || {
        let rec = record_dir();
        let d = rec.path();
        let add = call("fake-fail-add", "ADD", d, &[], CONF_1_0);
        assert_eq!(add.status.code(), Some(1));
        assert_eq!(
            stdout(&add),
            r#"{"cniVersion":"1.0.0","code":11,"msg":"fake failure","details":"asked to fail"}"#
        );
        let add7 = call("fake-fail-add", "ADD", d, &[("FAKE_CODE", "7")], CONF_1_0);
        assert_eq!(add7.status.code(), Some(1));
        assert_eq!(
            stdout(&add7),
            r#"{"cniVersion":"1.0.0","code":7,"msg":"fake failure","details":"asked to fail"}"#
        );
        let del = call("fake-fail-add", "DEL", d, &[], CONF_1_0);
        assert_eq!(del.status.code(), Some(0));
        assert!(del.stdout.is_empty());
        let rec = assert_recorded(d, &["ADD", "ADD", "DEL"]);
        assert_eq!(rec[1].var("FAKE_CODE"), Some("7"));
    });
}

#[test]
fn fake_fail_del_behaves() {
    sandbox::run("fake_fail_del_behaves", || {
        let rec = record_dir();
        let d = rec.path();
        let add = call("fake-fail-del", "ADD", d, &[], CONF_1_0);
        assert_eq!(add.status.code(), Some(0));
        assert_eq!(stdout(&add), result_1_0());
        let del = call("fake-fail-del", "DEL", d, &[], CONF_1_0);
        assert_eq!(del.status.code(), Some(1));
        assert_eq!(
            stdout(&del),
            r#"{"cniVersion":"1.0.0","code":5,"msg":"fake del failure","details":"asked to fail"}"#
        );
        assert_recorded(d, &["ADD", "DEL"]);
    });
}

#[test]
fn fake_hang_behaves() {
    sandbox::run("fake_hang_behaves", || {
        let rec = record_dir();
        let d = rec.path();
        let mut child = Command::new(plugins::fixture("fake-hang"))
            .env("CNI_COMMAND", "ADD")
            .env(plugins::RECORD_DIR_ENV, d)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(CONF_1_0.as_bytes()).unwrap();
        }
        let (pid, sleep_pid) = plugins::wait_for_hang_pids(d, WAIT);
        assert_eq!(pid, child.id() as i32);
        assert_ne!(pid, sleep_pid);
        assert!(plugins::process_alive(pid) && plugins::process_alive(sleep_pid));
        assert!(child.try_wait().unwrap().is_none(), "fake-hang exited");
        let leftovers: Vec<PathBuf> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".pid."))
            .collect();
        assert!(leftovers.is_empty(), "temp pid files left: {leftovers:?}");
        assert_recorded(d, &["ADD"]);

        // Killing the process group takes the script and its sleep child down.
        // SAFETY: kill(2) with a negative pid signals the group we created.
        assert_eq!(unsafe { libc::kill(-pid, libc::SIGKILL) }, 0);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        wait_until("fake-hang and its sleep child to be gone", WAIT, || {
            !plugins::process_alive(pid) && !plugins::process_alive(sleep_pid)
        });
    });
}

#[test]
fn fake_garbage_silent_stderr_signal_behave() {
    sandbox::run("fake_garbage_silent_stderr_signal_behave", || {
        let rec = record_dir();
        let d = rec.path();
        let garbage = call("fake-garbage", "ADD", d, &[], CONF_1_0);
        assert_eq!(garbage.status.code(), Some(0));
        assert_eq!(stdout(&garbage), "this is not JSON\n");

        let silent = call("fake-silent", "ADD", d, &[], CONF_1_0);
        assert_eq!(silent.status.code(), Some(3));
        assert!(silent.stdout.is_empty() && silent.stderr.is_empty());

        let noisy = call("fake-stderr", "ADD", d, &[], CONF_1_0);
        assert_eq!(noisy.status.code(), Some(0));
        assert_eq!(stdout(&noisy), result_1_0());
        assert_eq!(
            std::str::from_utf8(&noisy.stderr).unwrap(),
            "fake-stderr: line one\nfake-stderr: line two\n"
        );

        let killed = call("fake-signal", "ADD", d, &[], CONF_1_0);
        assert_eq!(killed.status.code(), None);
        assert_eq!(killed.status.signal(), Some(libc::SIGKILL));
        assert!(killed.stdout.is_empty());

        assert_recorded(d, &["ADD"; 4]);
    });
}

/// No bash-isms and no tools beyond coreutils, sed and grep.
fn assert_posix(name: &str, text: &str) {
    for bashism in [
        "[[ ",
        "local ",
        "function ",
        "$'",
        "<<<",
        "jq",
        "python",
        "${!",
    ] {
        assert!(!text.contains(bashism), "{name} contains `{bashism}`");
    }
}
