//! `plexus::netns` against the kernel: pod network namespaces inside a private sandbox (see
//! `plexus_conformance::sandbox`). Needs root.
//!
//! Every call is checked twice: what it returns, and what `ip -j` then sees in the pod. Every
//! call is also made through [`keeps_thread_netns`], which fails the test if the calling
//! thread's network namespace changed.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use plexus::cni::result::IpFamily;
use plexus::netns::{DefaultRoute, default_routes, interface_names, set_default_route};
use plexus_conformance::netns::{Netns, ip, veth_pair};
use plexus_conformance::sandbox;
use serde_json::Value;

/// The inode of the calling thread's network namespace.
fn thread_netns() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net")
        .expect("stat /proc/thread-self/ns/net")
        .ino()
}

/// Runs `f` and asserts the calling thread is in the same network namespace afterwards.
fn keeps_thread_netns<T>(f: impl FnOnce() -> T) -> T {
    let before = thread_netns();
    let out = f();
    assert_eq!(
        thread_netns(),
        before,
        "the calling thread changed network namespace"
    );
    out
}

fn addr(s: &str) -> IpAddr {
    s.parse().expect("test address parses")
}

/// A pod with `eth0` (10.90.0.2/24, fd90::2/64) and `net1` (10.91.0.2/24, fd91::2/64), the
/// pod ends of veth pairs `h0`/`h1`, and default routes via 10.90.0.1 and fd90::1 dev eth0.
fn pod() -> Netns {
    let pod = Netns::new("pod");
    pod.ip(&["link", "set", "dev", "lo", "up"]);
    for (i, (v4, v6)) in [
        ("10.90.0.2/24", "fd90::2/64"),
        ("10.91.0.2/24", "fd91::2/64"),
    ]
    .into_iter()
    .enumerate()
    {
        let (host, peer) = (format!("h{i}"), format!("p{i}"));
        let name = if i == 0 { "eth0" } else { "net1" };
        veth_pair(&host, &peer);
        ip(&["link", "set", "dev", &peer, "netns", pod.name()]);
        pod.ip(&["link", "set", "dev", &peer, "name", name]);
        pod.ip(&["addr", "add", v4, "dev", name]);
        pod.ip(&["-6", "addr", "add", v6, "dev", name, "nodad"]);
        pod.ip(&["link", "set", "dev", name, "up"]);
    }
    pod.ip(&["route", "add", "default", "via", "10.90.0.1", "dev", "eth0"]);
    pod.ip(&[
        "-6", "route", "add", "default", "via", "fd90::1", "dev", "eth0",
    ]);
    pod
}

/// The default routes of `family` in the pod as `ip -j` shows them: `(gateway, dev, metric)`,
/// one per next hop of a multipath route.
fn ip_defaults(pod: &Netns, family: u8) -> Vec<(String, String, u64)> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let mut out = Vec::new();
    for r in pod.routes(family) {
        if r.get("dst").and_then(Value::as_str) != Some("default") {
            continue;
        }
        let metric = r.get("metric").and_then(Value::as_u64).unwrap_or(0);
        match r.get("nexthops").and_then(Value::as_array) {
            Some(hops) => {
                out.extend(hops.iter().map(|h| (s(h, "gateway"), s(h, "dev"), metric)));
            }
            None => out.push((s(&r, "gateway"), s(&r, "dev"), metric)),
        }
    }
    out
}

fn one(gateway: &str, dev: &str, metric: u64) -> Vec<(String, String, u64)> {
    vec![(gateway.to_owned(), dev.to_owned(), metric)]
}

#[test]
fn ipv4_default_moves_to_net1_and_ipv6_is_untouched() {
    sandbox::run("ipv4_default_moves_to_net1_and_ipv6_is_untouched", || {
        let pod = pod();
        // Every IPv4 default goes, whatever its interface and metric.
        pod.ip(&[
            "route",
            "add",
            "default",
            "via",
            "10.91.0.254",
            "dev",
            "net1",
            "metric",
            "100",
        ]);
        pod.ip(&[
            "route",
            "add",
            "default",
            "via",
            "10.90.0.254",
            "dev",
            "eth0",
            "metric",
            "7",
        ]);
        assert_eq!(ip_defaults(&pod, 4).len(), 3);
        let v6_before = ip_defaults(&pod, 6);

        keeps_thread_netns(|| set_default_route(pod.path(), "net1", addr("10.91.0.1")))
            .expect("set the IPv4 default route");

        assert_eq!(ip_defaults(&pod, 4), one("10.91.0.1", "net1", 0));
        assert_eq!(ip_defaults(&pod, 6), v6_before);
        assert_eq!(v6_before, one("fd90::1", "eth0", 1024));
        // Idempotent: moving it where it already is works and changes nothing.
        keeps_thread_netns(|| set_default_route(pod.path(), "net1", addr("10.91.0.1")))
            .expect("set the same IPv4 default route again");
        assert_eq!(ip_defaults(&pod, 4), one("10.91.0.1", "net1", 0));
    });
}

#[test]
fn ipv6_default_moves_to_net1_and_ipv4_is_untouched() {
    sandbox::run("ipv6_default_moves_to_net1_and_ipv4_is_untouched", || {
        let pod = pod();
        // An ECMP default (one route, two next hops) and one of another metric.
        pod.ip(&[
            "-6",
            "route",
            "append",
            "default",
            "via",
            "fd91::254",
            "dev",
            "net1",
        ]);
        pod.ip(&[
            "-6", "route", "add", "default", "via", "fe80::1", "dev", "net1", "metric", "5",
        ]);
        assert_eq!(ip_defaults(&pod, 6).len(), 3);

        keeps_thread_netns(|| set_default_route(pod.path(), "net1", addr("fd91::1")))
            .expect("set the IPv6 default route");

        assert_eq!(ip_defaults(&pod, 6), one("fd91::1", "net1", 1024));
        assert_eq!(ip_defaults(&pod, 4), one("10.90.0.1", "eth0", 0));
    });
}

#[test]
fn unreachable_ipv4_gateway_fails_and_restores_the_previous_defaults() {
    sandbox::run(
        "unreachable_ipv4_gateway_fails_and_restores_the_previous_defaults",
        || {
            let pod = pod();
            pod.ip(&[
                "route",
                "add",
                "default",
                "via",
                "10.91.0.254",
                "dev",
                "net1",
                "metric",
                "100",
            ]);
            // A route whose link lost its carrier is dumped flagged `linkdown`, which the kernel
            // refuses in a request: restoring it must still work.
            ip(&["link", "set", "dev", "h0", "down"]);
            let v4_before = ip_defaults(&pod, 4);
            let v6_before = ip_defaults(&pod, 6);
            assert_eq!(v4_before.len(), 2);

            let err =
                keeps_thread_netns(|| set_default_route(pod.path(), "net1", addr("192.0.2.1")))
                    .expect_err("192.0.2.1 is on no subnet of net1");
            let msg = err.to_string();
            let expected = format!(
                "cannot add default route via 192.0.2.1 dev net1 in {}: Network is unreachable",
                pod.path().display()
            );
            assert!(msg.starts_with(&expected), "{msg}");
            assert!(
                msg.contains("(no IPv4 address on net1 has 192.0.2.1"),
                "{msg}"
            );
            assert!(
                msg.ends_with("; the previous default routes were restored"),
                "{msg}"
            );
            assert_eq!(err.code(), plexus::cni::Code::IO);

            assert_eq!(ip_defaults(&pod, 4), v4_before);
            assert_eq!(ip_defaults(&pod, 6), v6_before);
        },
    );
}

#[test]
fn unreachable_ipv6_gateway_fails_and_restores_the_previous_defaults() {
    sandbox::run(
        "unreachable_ipv6_gateway_fails_and_restores_the_previous_defaults",
        || {
            let pod = pod();
            pod.ip(&[
                "-6",
                "route",
                "append",
                "default",
                "via",
                "fd91::254",
                "dev",
                "net1",
            ]);
            let v6_before = ip_defaults(&pod, 6);
            assert_eq!(v6_before.len(), 2, "an ECMP default with two next hops");

            let err = keeps_thread_netns(|| set_default_route(pod.path(), "net1", addr("fd99::1")))
                .expect_err("fd99::1 is on no subnet of net1");
            let msg = err.to_string();
            let expected = format!(
                "cannot add default route via fd99::1 dev net1 in {}: ",
                pod.path().display()
            );
            assert!(msg.starts_with(&expected), "{msg}");
            assert!(
                msg.contains("(no IPv6 address on net1 has fd99::1"),
                "{msg}"
            );
            assert!(msg.contains("restored"), "{msg}");

            assert_eq!(ip_defaults(&pod, 6), v6_before);
            assert_eq!(ip_defaults(&pod, 4), one("10.90.0.1", "eth0", 0));
        },
    );
}

#[test]
fn unknown_interface_changes_nothing() {
    sandbox::run("unknown_interface_changes_nothing", || {
        let pod = pod();
        let err = keeps_thread_netns(|| set_default_route(pod.path(), "net9", addr("10.91.0.1")))
            .expect_err("there is no net9");
        let msg = err.to_string();
        assert_eq!(
            msg,
            format!(
                "cannot set the default route via 10.91.0.1 dev net9 in {}: no interface named \
                 \"net9\" (the namespace has: lo, eth0, net1)",
                pod.path().display()
            )
        );
        assert_eq!(ip_defaults(&pod, 4), one("10.90.0.1", "eth0", 0));
    });
}

#[test]
fn interface_names_and_default_routes_agree_with_ip() {
    sandbox::run("interface_names_and_default_routes_agree_with_ip", || {
        let pod = pod();
        let names = keeps_thread_netns(|| interface_names(pod.path())).expect("list links");
        assert_eq!(names, ["lo", "eth0", "net1"]);

        let routes = keeps_thread_netns(|| default_routes(pod.path())).expect("read routes");
        assert_eq!(
            routes,
            [
                DefaultRoute {
                    family: IpFamily::V4,
                    gateway: Some(addr("10.90.0.1")),
                    ifname: "eth0".into(),
                    metric: 0,
                },
                DefaultRoute {
                    family: IpFamily::V6,
                    gateway: Some(addr("fd90::1")),
                    ifname: "eth0".into(),
                    metric: 1024,
                },
            ]
        );

        // An empty pod: only lo, and no default route.
        let empty = Netns::new("empty");
        assert_eq!(interface_names(empty.path()).expect("list links"), ["lo"]);
        assert_eq!(default_routes(empty.path()).expect("read routes"), []);
    });
}

#[test]
fn a_proc_pid_namespace_path_works() {
    sandbox::run("a_proc_pid_namespace_path_works", || {
        let pod = pod();
        let mut child = Command::new("ip")
            .args(["netns", "exec", pod.name(), "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .expect("start a process in the pod");
        let path = format!("/proc/{}/ns/net", child.id());
        // `ip netns exec` enters the namespace before exec'ing sleep: wait until it has.
        let pod_ino = std::fs::metadata(pod.path()).expect("stat pod").ino();
        plexus_conformance::wait_until(
            "the child to enter the pod",
            std::time::Duration::from_secs(10),
            || std::fs::metadata(&path).is_ok_and(|m| m.ino() == pod_ino),
        );
        let names = keeps_thread_netns(|| interface_names(Path::new(&path)));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(names.expect("list links"), ["lo", "eth0", "net1"]);
    });
}

#[test]
fn a_missing_namespace_is_a_clear_error() {
    // Needs no privilege: nothing is entered.
    let path = Path::new("/run/netns/plexus-test-no-such-pod");
    let expected = format!(
        "network namespace {} does not exist: no such file (was the pod sandbox already deleted?)",
        path.display()
    );
    let e = keeps_thread_netns(|| interface_names(path)).unwrap_err();
    assert_eq!(e.to_string(), expected);
    let e = keeps_thread_netns(|| default_routes(path)).unwrap_err();
    assert_eq!(e.to_string(), expected);
    let e = keeps_thread_netns(|| set_default_route(path, "net1", addr("10.0.0.1"))).unwrap_err();
    assert_eq!(e.to_string(), expected);
    let e = interface_names(Path::new("/proc/999999999/ns/net")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("network namespace /proc/999999999/ns/net does not exist"),
        "{e}"
    );
}
