//! The meta-plugin transaction (issue 4) through the binary's CNI contract: ADD, CHECK, DEL,
//! GC and STATUS for pods whose secondary networks come from NADs in the API stand-in, with
//! Debian's real plugins (bridge, macvlan, host-local) in pod network namespaces inside a
//! private sandbox, and the fake plugins for failures and hangs. Needs root.
//!
//! Every test asserts what is observable: the exit code and the CNI error on stdout, the
//! `k8s.v1.cni.cncf.io/network-status` annotation, the interfaces, addresses and routes in the
//! pod (`ip -j`), host-local's leases and the journal files in `cniDir`.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use plexus_conformance::netns::veth_pair;
use plexus_conformance::plugins::{process_alive, wait_for_hang_pids};
use plexus_conformance::{sandbox, wait_until};
use serde_json::{Value, json};

use common::node::{
    Node, Pod, all_leases, assert_no_leases, bare, bridge, cluster_bridge, conflist, journal_name,
    lease_owners, leases, macvlan, result_ips,
};

/// The interface of the result's first sandbox interface, and every address of the result.
fn sandbox_ifaces(result: &Value) -> Vec<String> {
    result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["sandbox"].is_string())
        .filter_map(|i| i["name"].as_str().map(str::to_owned))
        .collect()
}

/// Whether `ip` (bare) lies in the /24 `subnet` (`10.1.2.0/24`).
fn in_24(addr: &str, subnet: &str) -> bool {
    let prefix = subnet.rsplit_once('.').map(|(p, _)| p).unwrap_or(subnet);
    bare(addr).starts_with(&format!("{prefix}."))
}

/// A successful ADD's result; panics with plexus's output otherwise.
fn added(node: &Node, pod: &Pod) -> Value {
    let run = node.add(pod);
    run.assert_ok(&format!("ADD of pod {}", pod.name));
    run.json()
}

/// Asserts the failed ADD's error names `network`, then the clean end state, then that the
/// runtime's DEL (which always follows a failed ADD) succeeds and leaves it clean.
fn assert_rolled_back(node: &Node, pod: &Pod, run: &common::Run, network: &str) -> String {
    let (code, msg, details) = run.error();
    assert_eq!(run.code, 1, "a failed ADD exits 1: {run:?}");
    assert!(
        msg.contains(network),
        "the error must name the failing network {network:?}: code {code}, msg {msg:?}, \
         details {details:?}"
    );
    node.assert_clean(pod, "after the failed ADD");
    node.del(pod, None)
        .assert_ok("the runtime's DEL after a failed ADD");
    node.assert_clean(pod, "after the runtime's DEL");
    msg
}

// ---------------------------------------------------------------------------------------------
// The main scenario.

#[test]
fn three_networks_add_check_del() {
    sandbox::run("three_networks_add_check_del", || {
        veth_pair("plxmup0", "plxmup0p");
        let node = Node::start(cluster_bridge("cl-main", "plxm0", "10.110.0.0/24"));
        node.nad("mv-main", &macvlan("mv-main", "plxmup0", "10.110.1.0/24"));
        node.nad("br-main", &bridge("br-main", "plxm1", "10.110.2.0/24"));
        let pod = node.pod("web", "mv-main,br-main");

        let result = added(&node, &pod);

        // The result is the cluster network's, in the node config's version.
        assert_eq!(result["cniVersion"], "1.0.0", "{result}");
        assert_eq!(sandbox_ifaces(&result), ["eth0"], "{result}");
        let ips = result_ips(&result);
        assert_eq!(ips.len(), 1, "{result}");
        assert!(in_24(&ips[0], "10.110.0.0/24"), "{result}");

        // The interfaces and addresses in the kernel.
        assert_eq!(pod.link_names(), ["eth0", "lo", "net1", "net2"]);
        assert_eq!(pod.ipv4("eth0"), ips, "eth0 has the result's address");
        let ns = pod.ns();
        assert_eq!(ns.link("net1").unwrap().kind.as_deref(), Some("macvlan"));
        assert_eq!(ns.link("net2").unwrap().kind.as_deref(), Some("veth"));
        let net1 = pod.ipv4("net1");
        let net2 = pod.ipv4("net2");
        assert!(
            net1.len() == 1 && in_24(&net1[0], "10.110.1.0/24"),
            "{net1:?}"
        );
        assert!(
            net2.len() == 1 && in_24(&net2[0], "10.110.2.0/24"),
            "{net2:?}"
        );
        assert_eq!(leases("cl-main"), [bare(&ips[0])]);
        assert_eq!(leases("mv-main"), [bare(&net1[0])]);
        assert_eq!(leases("br-main"), [bare(&net2[0])]);

        // network-status: three entries in order, bare IPs, kernel MACs, default only on eth0.
        let status = node.network_status(&pod);
        assert_eq!(status.len(), 3, "{status:?}");
        let want = [
            ("cl-main", "eth0", &ips[0]),
            ("default/mv-main", "net1", &net1[0]),
            ("default/br-main", "net2", &net2[0]),
        ];
        for (entry, (name, ifname, addr)) in status.iter().zip(want) {
            assert_eq!(entry["name"], name, "{entry}");
            assert_eq!(entry["interface"], ifname, "{entry}");
            assert_eq!(entry["ips"], json!([bare(addr)]), "{entry}");
            assert_eq!(entry["mac"], ns.link(ifname).unwrap().mac, "{entry}");
            assert_eq!(entry["dns"], json!({}), "{entry}");
        }
        assert_eq!(status[0]["default"], true);
        assert!(status[1].get("default").is_none(), "{:?}", status[1]);
        assert!(status[2].get("default").is_none(), "{:?}", status[2]);
        let text = node.status_text(&pod).unwrap();
        assert_eq!(
            text,
            serde_json::to_string(&status).unwrap(),
            "compact JSON"
        );
        // The other annotations are left alone.
        let obj = node.api.get("pods", "default", "web").unwrap();
        assert_eq!(obj["metadata"]["annotations"]["team"], "blue");

        // The journal exists while the pod is up (its exact name is checked last).
        let journal_while_up = node.journal_files();
        assert_eq!(node.journal_files_of(&pod).len(), 1, "{journal_while_up:?}");

        let check = node.check(&pod, &result);
        check.assert_ok("CHECK");
        assert_eq!(check.stdout, "", "a successful CHECK prints nothing");

        let del = node.del(&pod, Some(&result));
        del.assert_ok("DEL");
        assert_eq!(del.stdout, "", "a successful DEL prints nothing");
        node.assert_clean(&pod, "after DEL");
        assert_eq!(
            journal_while_up,
            [
                journal_name(&pod.container_id),
                journal_name(&pod.container_id).replace(".json", ".progress")
            ],
            "the journal's file name"
        );
    });
}

#[test]
fn requested_interface_names_and_no_annotation() {
    sandbox::run("requested_interface_names_and_no_annotation", || {
        let node = Node::start(cluster_bridge("cl-names", "plxn0", "10.127.0.0/24"));
        node.nad("br-names", &bridge("br-names", "plxn1", "10.127.1.0/24"));
        // The same network twice: two attachments; one with a requested name.
        let pod = node.pod(
            "named",
            r#"[{"name":"br-names","interface":"data0"},{"name":"br-names"}]"#,
        );
        let result = added(&node, &pod);
        assert_eq!(pod.link_names(), ["data0", "eth0", "lo", "net2"]);
        let status = node.network_status(&pod);
        let ifaces: Vec<&Value> = status.iter().map(|e| &e["interface"]).collect();
        assert_eq!(ifaces, ["eth0", "data0", "net2"], "{status:?}");
        assert_eq!(leases("br-names").len(), 2);

        // A pod without the annotation gets the cluster network only.
        let plain = node.pod("plain", "");
        let plain_result = added(&node, &plain);
        assert_eq!(plain.link_names(), ["eth0", "lo"]);
        let status = node.network_status(&plain);
        assert_eq!(status.len(), 1, "{status:?}");
        assert_eq!(status[0]["name"], "cl-names");
        assert_eq!(status[0]["default"], true);

        node.del(&pod, Some(&result)).assert_ok("DEL");
        node.del(&plain, Some(&plain_result)).assert_ok("DEL");
        pod.assert_only_lo("after DEL");
        node.assert_clean(&plain, "after both DELs");
    });
}

// ---------------------------------------------------------------------------------------------
// Rollback.

#[test]
fn failure_at_each_of_four_attachments_rolls_back() {
    sandbox::run("failure_at_each_of_four_attachments_rolls_back", || {
        veth_pair("plxrup0", "plxrup0p");
        let mut node = Node::start(cluster_bridge("cl-rb", "plxr0", "10.111.0.0/24"));
        node.nad("mv-rb", &macvlan("mv-rb", "plxrup0", "10.111.1.0/24"));
        node.nad("br-rb", &bridge("br-rb", "plxr1", "10.111.2.0/24"));
        // The last attachment ends with fake-record: it shows whether it was attempted.
        node.nad(
            "last-rb",
            &conflist(
                "last-rb",
                vec![
                    json!({"type": "bridge", "bridge": "plxr2", "ipam": {"type": "host-local", "subnet": "10.111.3.0/24"}}),
                    json!({"type": "fake-record"}),
                ],
            ),
        );
        let cluster = node.config_with(&json!({}))["clusterNetwork"].clone();
        for k in 1..=4u8 {
            // The failing network holds an interface and a lease of its own (bridge +
            // host-local) before its last plugin fails.
            let failing = format!("fail-rb{k}");
            let fail_conf = conflist(
                &failing,
                vec![
                    json!({"type": "bridge", "bridge": format!("plxf{k}"),
                           "ipam": {"type": "host-local", "subnet": format!("10.111.{}.0/24", 10 + k)}}),
                    json!({"type": "fake-fail-add"}),
                ],
            );
            let mut secondaries = ["mv-rb", "br-rb", "last-rb"];
            if k == 1 {
                let path = node.write_file("cluster-fail.conflist", &fail_conf);
                node.set("clusterNetwork", json!(path));
            } else {
                node.set("clusterNetwork", cluster.clone());
                node.nad(&failing, &fail_conf);
                secondaries[usize::from(k) - 2] = &failing;
            }
            let pod = node.pod(&format!("rb{k}"), &secondaries.join(","));
            let run = node.add(&pod);
            assert_rolled_back(&node, &pod, &run, &failing);
            assert!(
                node.status_text(&pod).is_none(),
                "k={k}: no network-status for a failed ADD"
            );
            let calls = pod.fake_calls();
            let ran = |cmd: &str, net: &str| calls.iter().any(|(c, n)| c == cmd && n == net);
            assert!(
                ran("DEL", &failing),
                "k={k}: the failing network gets its DEL too: {calls:?}"
            );
            if k < 4 {
                assert!(
                    !ran("ADD", "last-rb"),
                    "k={k}: attachments after the failure are not attempted: {calls:?}"
                );
            }
        }
    });
}

#[test]
fn macvlan_with_missing_master_rolls_back_and_del_succeeds() {
    sandbox::run(
        "macvlan_with_missing_master_rolls_back_and_del_succeeds",
        || {
            let node = Node::start(cluster_bridge("cl-mm", "plxmm0", "10.112.0.0/24"));
            node.nad(
                "mv-missing",
                &macvlan("mv-missing", "doesnotexist", "10.112.1.0/24"),
            );
            node.nad("br-mm", &bridge("br-mm", "plxmm1", "10.112.2.0/24"));
            let pod = node.pod("mm", "mv-missing,br-mm");
            let run = node.add(&pod);
            assert_rolled_back(&node, &pod, &run, "mv-missing");
            // DEL again (runtimes retry): still fine.
            node.del(&pod, None).assert_ok("a second DEL");
            node.assert_clean(&pod, "after the second DEL");
        },
    );
}

#[test]
fn failing_status_write_rolls_back() {
    sandbox::run("failing_status_write_rolls_back", || {
        veth_pair("plxsup0", "plxsup0p");
        let mut node = Node::start(cluster_bridge("cl-sw", "plxs0", "10.113.0.0/24"));
        // Every attempt fails, whatever plexus's retries: a short API budget keeps it quick.
        node.set("apiTimeoutSeconds", json!(2));
        node.nad("mv-sw", &macvlan("mv-sw", "plxsup0", "10.113.1.0/24"));
        node.nad("br-sw", &bridge("br-sw", "plxs1", "10.113.2.0/24"));
        let pod = node.pod("sw", "mv-sw,br-sw");
        node.api.fail_next_matching("PATCH pods/status", 1000, 500);
        let run = node.add(&pod);
        let (_, msg, details) = run.error();
        assert!(
            node.api.count("PATCH pods/status") >= 1,
            "the status write was attempted"
        );
        let text = format!("{msg} {details}").to_lowercase();
        assert!(
            text.contains("network-status") || text.contains("status"),
            "the error is about the status write: {msg:?} {details:?}"
        );
        node.assert_clean(&pod, "after the failed status write");
        node.api.fail_next_matching("PATCH pods/status", 0, 500);
        node.del(&pod, None).assert_ok("the runtime's DEL");
        node.assert_clean(&pod, "after the runtime's DEL");
    });
}

// ---------------------------------------------------------------------------------------------
// Default route, capabilities.

#[test]
fn default_route_on_a_secondary() {
    sandbox::run("default_route_on_a_secondary", || {
        let node = Node::start(cluster_bridge("cl-dr", "plxd0", "10.114.0.0/24"));
        node.nad("br-dr", &bridge("br-dr", "plxd1", "10.92.0.0/24"));
        let pod = node.pod("dr", r#"[{"name":"br-dr","default-route":["10.92.0.1"]}]"#);
        let result = added(&node, &pod);
        assert_eq!(pod.link_names(), ["eth0", "lo", "net1"]);

        let defaults = pod.default_routes();
        assert_eq!(defaults.len(), 1, "exactly one IPv4 default: {defaults:?}");
        assert_eq!(defaults[0]["gateway"], "10.92.0.1", "{defaults:?}");
        assert_eq!(defaults[0]["dev"], "net1", "{defaults:?}");
        assert!(
            pod.ns()
                .routes(4)
                .iter()
                .all(|r| r["dst"] != "default" || r["dev"] != "eth0"),
            "no default via eth0"
        );

        let status = node.network_status(&pod);
        assert_eq!(status.len(), 2, "{status:?}");
        assert_eq!(status[1]["name"], "default/br-dr");
        assert_eq!(status[1]["gateway"], json!(["10.92.0.1"]), "{status:?}");
        // The status agrees with the kernel: eth0 no longer carries a default route.
        let eth0_gw = status[0].get("gateway").cloned().unwrap_or(json!([]));
        assert_eq!(
            eth0_gw,
            json!([]),
            "eth0's entry has no default gateway: {status:?}"
        );

        node.del(&pod, Some(&result)).assert_ok("DEL");
        node.assert_clean(&pod, "after DEL");
    });
}

#[test]
fn failing_default_route_change_rolls_back() {
    sandbox::run("failing_default_route_change_rolls_back", || {
        let node = Node::start(cluster_bridge("cl-drf", "plxe0", "10.115.0.0/24"));
        node.nad("br-drf", &bridge("br-drf", "plxe1", "10.115.1.0/24"));
        // 10.250.0.1 is not reachable on net1: the kernel refuses the route.
        let pod = node.pod(
            "drf",
            r#"[{"name":"br-drf","default-route":["10.250.0.1"]}]"#,
        );
        let run = node.add(&pod);
        let msg = assert_rolled_back(&node, &pod, &run, "br-drf");
        assert!(
            msg.contains("10.250.0.1") || msg.contains("route"),
            "the error is about the route change: {msg:?}"
        );
    });
}

#[test]
fn ips_without_the_capability_fails_before_anything_is_attached() {
    sandbox::run(
        "ips_without_the_capability_fails_before_anything_is_attached",
        || {
            let node = Node::start(cluster_bridge("cl-cap", "plxk0", "10.116.0.0/24"));
            node.nad(
                "rec-cap",
                &json!({"cniVersion": "1.0.0", "name": "rec-cap", "type": "fake-record"}),
            );
            node.nad("br-plain", &bridge("br-plain", "plxk1", "10.116.1.0/24"));
            let pod = node.pod(
                "cap",
                r#"[{"name":"rec-cap"},{"name":"br-plain","ips":["10.116.1.50/24"]}]"#,
            );
            let run = node.add(&pod);
            let (code, msg, details) = run.error();
            assert_eq!(code, 7, "invalid network config: {msg:?} {details:?}");
            assert!(msg.contains("br-plain"), "names the network: {msg:?}");
            assert!(msg.contains("ips"), "names the capability: {msg:?}");
            assert!(
                pod.fake_calls().is_empty(),
                "nothing ran, not even the first NAD's fake: {:?}",
                pod.fake_calls()
            );
            node.assert_clean(&pod, "after the refused ADD");
            assert!(node.status_text(&pod).is_none());
            node.del(&pod, None).assert_ok("the runtime's DEL");
            node.assert_clean(&pod, "after the runtime's DEL");
        },
    );
}

#[test]
fn ips_and_mac_reach_a_capable_plugin() {
    sandbox::run("ips_and_mac_reach_a_capable_plugin", || {
        veth_pair("plxiup0", "plxiup0p");
        let node = Node::start(cluster_bridge("cl-ips", "plxi0", "10.126.0.0/24"));
        node.nad(
            "mv-static",
            &conflist(
                "mv-static",
                vec![
                    json!({"type": "macvlan", "master": "plxiup0", "mode": "bridge",
                           "capabilities": {"ips": true}, "ipam": {"type": "static"}}),
                    json!({"type": "tuning", "capabilities": {"mac": true}}),
                ],
            ),
        );
        let pod = node.pod(
            "ips",
            r#"[{"name":"mv-static","ips":["10.126.1.50/24"],"mac":"0a:58:0a:7e:01:32"}]"#,
        );
        let result = added(&node, &pod);
        assert_eq!(pod.ipv4("net1"), ["10.126.1.50/24"]);
        assert_eq!(pod.ns().link("net1").unwrap().mac, "0a:58:0a:7e:01:32");
        let status = node.network_status(&pod);
        assert_eq!(status[1]["ips"], json!(["10.126.1.50"]), "{status:?}");
        assert_eq!(status[1]["mac"], "0a:58:0a:7e:01:32", "{status:?}");
        node.del(&pod, Some(&result)).assert_ok("DEL");
        node.assert_clean(&pod, "after DEL");
    });
}

// ---------------------------------------------------------------------------------------------
// DEL.

/// The capability under which containerd and CRI-O pass the pod's annotations.
const POD_ANNOTATIONS: &str = "io.kubernetes.cri.pod-annotations";

/// The node config keys of a runtime that passes the pod's annotations, `annotations` being
/// what the kubelet has for the pod.
fn runtime_annotations(annotations: Value) -> Value {
    json!({"runtimeConfig": {POD_ANNOTATIONS: annotations}})
}

/// A node whose config declares the capability, its cluster network `cl-<tag>` on bridge
/// `cluster_br` (`<net>.0.0/24`) and NAD `br-<tag>` on bridge `nad_br` (`<net>.1.0/24`).
fn annotations_node(tag: &str, cluster_br: &str, nad_br: &str, net: &str) -> Node {
    let mut node = Node::start(cluster_bridge(
        &format!("cl-{tag}"),
        cluster_br,
        &format!("{net}.0.0/24"),
    ));
    node.set("capabilities", json!({ POD_ANNOTATIONS: true }));
    let nad = format!("br-{tag}");
    node.nad(&nad, &bridge(&nad, nad_br, &format!("{net}.1.0/24")));
    node
}

/// With the capability declared, the pod's annotations come from the runtime: the pod is not
/// read (the API's copy, here without the networks annotation, is not what ADD follows), the
/// network-status write carries the runtime's UID, and the annotations stay out of the
/// journal of a cluster network that does not declare the capability. DEL without a journal
/// follows them too.
#[test]
fn pod_annotations_from_the_runtime_replace_the_pod_read() {
    sandbox::run(
        "pod_annotations_from_the_runtime_replace_the_pod_read",
        || {
            let node = annotations_node("rt", "plxq0", "plxq1", "10.131");
            let pod = node.pod("rt", "");
            node.api.reset_counters();
            let given = runtime_annotations(json!({
                "k8s.v1.cni.cncf.io/networks": "br-rt",
                "kubernetes.io/config.source": "api",
            }));
            let run = node.add_with(&pod, &given);
            run.assert_ok("ADD with the pod's annotations from the runtime");
            let result = run.json();
            assert_eq!(pod.link_names(), ["eth0", "lo", "net1"]);
            assert_eq!(node.api.count("GET pods"), 0, "{:?}", node.api.counters());
            assert_eq!(node.api.count("GET network-attachment-definitions"), 1);
            let status = node.network_status(&pod);
            let names: Vec<&Value> = status.iter().map(|e| &e["name"]).collect();
            assert_eq!(names, ["cl-rt", "default/br-rt"], "{status:?}");
            let patch = node
                .api
                .requests()
                .into_iter()
                .find(|r| r.key == "PATCH pods/status")
                .expect("the status write");
            let body: Value = serde_json::from_slice(&patch.body).expect("a JSON patch");
            assert_eq!(body["metadata"]["uid"], pod.uid.as_str());
            for f in node.journal_files_of(&pod) {
                let text = fs::read_to_string(&f).expect("journal readable");
                assert!(
                    !text.contains(POD_ANNOTATIONS),
                    "{} keeps the pod's annotations: {text}",
                    f.display()
                );
            }
            // A DEL without the journal (a wiped state directory) rebuilds the pod's networks
            // from the runtime's annotations too: net1's lease is released, no pod read.
            for f in node.journal_files_of(&pod) {
                fs::remove_file(&f).expect("remove the journal");
            }
            assert_eq!(leases("br-rt").len(), 1);
            node.del_with(&pod, Some(&result), &given)
                .assert_ok("DEL without a journal");
            assert_eq!(node.api.count("GET pods"), 0, "{:?}", node.api.counters());
            node.assert_clean(&pod, "after DEL");
        },
    );
}

/// A pod deleted and recreated under the same name while the runtime set up the old one's
/// sandbox: with the annotations from the runtime nothing read the pod, so the status write
/// (carrying the old UID) is what the API server refuses; ADD rolls back and says why.
#[test]
fn status_write_for_a_recreated_pod_is_refused_and_rolls_back() {
    sandbox::run(
        "status_write_for_a_recreated_pod_is_refused_and_rolls_back",
        || {
            let node = annotations_node("rc", "plxq2", "plxq3", "10.132");
            let pod = node.pod("rc", "br-rc");
            let mut again = node.api.get("pods", "default", "rc").expect("the pod");
            again["metadata"]["uid"] = json!("uid-of-the-new-pod");
            node.api.put(again);
            let given = runtime_annotations(json!({"k8s.v1.cni.cncf.io/networks": "br-rc"}));
            let run = node.add_with(&pod, &given);
            let (code, msg, details) = run.error();
            assert_eq!(run.code, 1, "{run:?}");
            assert_eq!(
                code, 5,
                "the code of the UID rule's failure on the read path"
            );
            assert_eq!(
                msg,
                format!(
                    "writing network-status of pod default/rc failed: the Kubernetes API refused \
                     writing annotation k8s.v1.cni.cncf.io/network-status of pod default/rc: the \
                     pod was deleted and recreated under the same name (422 Invalid: Pod \"rc\" \
                     is invalid: metadata.uid: Invalid value: \"{}\": field is immutable)",
                    pod.uid
                )
            );
            assert_eq!(
                details,
                "the runtime will tear this sandbox down and create a new one for the new pod"
            );
            assert_eq!(
                node.status_text(&pod),
                None,
                "nothing written to the new pod"
            );
            node.assert_clean(&pod, "after the refused status write");
            node.del_with(&pod, None, &given)
                .assert_ok("the runtime's DEL");
            node.assert_clean(&pod, "after the runtime's DEL");
        },
    );
}

#[test]
fn del_needs_no_api_server() {
    sandbox::run("del_needs_no_api_server", || {
        veth_pair("plxaup0", "plxaup0p");
        let node = Node::start(cluster_bridge("cl-noapi", "plxa0", "10.117.0.0/24"));
        node.nad("mv-noapi", &macvlan("mv-noapi", "plxaup0", "10.117.1.0/24"));
        node.nad("br-noapi", &bridge("br-noapi", "plxa1", "10.117.2.0/24"));
        let pod = node.pod("noapi", "mv-noapi,br-noapi");
        let result = added(&node, &pod);
        assert_eq!(all_leases().len(), 3);

        node.api.refuse_connections(true);
        let started = Instant::now();
        let del = node.del(&pod, Some(&result));
        del.assert_ok("DEL with the API server away");
        eprintln!("DEL without the API took {:?}", started.elapsed());
        node.assert_clean(&pod, "after DEL without the API");
    });
}

#[test]
fn truncated_journal_is_reported_and_cleaned_up_through_the_api() {
    sandbox::run(
        "truncated_journal_is_reported_and_cleaned_up_through_the_api",
        || {
            veth_pair("plxtup0", "plxtup0p");
            let node = Node::start(cluster_bridge("cl-trunc", "plxt0", "10.118.0.0/24"));
            node.nad("mv-trunc", &macvlan("mv-trunc", "plxtup0", "10.118.1.0/24"));
            node.nad("br-trunc", &bridge("br-trunc", "plxt1", "10.118.2.0/24"));
            let pod = node.pod("trunc", "mv-trunc,br-trunc");
            let result = added(&node, &pod);
            let journals = node.journal_files_of(&pod);
            assert_eq!(journals.len(), 1, "one journal: {:?}", node.journal_files());
            let journal = &journals[0];
            // Cut in the middle of the journal itself (the file ADD made ahead for it holds
            // spaces after it).
            let bytes =
                fs::read(journal).unwrap_or_else(|e| panic!("journal {}: {e}", journal.display()));
            let len = bytes.trim_ascii_end().len() as u64;
            assert!(len > 2, "journal of {len} bytes");
            fs::OpenOptions::new()
                .write(true)
                .open(journal)
                .and_then(|f| f.set_len(len / 2))
                .expect("truncate the journal");

            node.api.reset_counters();
            let del = node.del(&pod, Some(&result));
            let said = format!("{}\n{}", del.stdout, del.stderr).to_lowercase();
            assert!(
                said.contains("journal")
                    && [
                        "corrupt",
                        "truncat",
                        "invalid",
                        "unreadable",
                        "damaged",
                        "parse"
                    ]
                    .iter()
                    .any(|w| said.contains(w)),
                "DEL reports the corrupt journal (exit {}); stdout: {}\nstderr: {}",
                del.code,
                del.stdout,
                del.stderr
            );
            assert!(
                del.code == 0 || del.code == 1,
                "DEL exits 0 or reports an error: {del:?}"
            );
            assert!(
                node.api.count("GET pods") >= 1,
                "the fallback read the pod from the API"
            );
            pod.assert_only_lo("after DEL with a corrupt journal");
            assert_no_leases("after DEL with a corrupt journal");
            // Whatever the first DEL answered, a retry succeeds and nothing is left.
            node.del(&pod, Some(&result)).assert_ok("DEL retried");
            node.assert_clean(&pod, "after DEL retried");
        },
    );
}

#[test]
fn del_twice_succeeds() {
    sandbox::run("del_twice_succeeds", || {
        let node = Node::start(cluster_bridge("cl-twice", "plxw0", "10.119.0.0/24"));
        node.nad("br-twice", &bridge("br-twice", "plxw1", "10.119.1.0/24"));
        let pod = node.pod("twice", "br-twice");
        let result = added(&node, &pod);
        node.del(&pod, Some(&result)).assert_ok("first DEL");
        node.assert_clean(&pod, "after the first DEL");
        node.del(&pod, Some(&result)).assert_ok("second DEL");
        node.assert_clean(&pod, "after the second DEL");
        // And once more after the pod object is gone from the API too.
        node.api.delete("pods", "default", "twice");
        node.del(&pod, Some(&result))
            .assert_ok("DEL with neither journal nor pod");
        node.assert_clean(&pod, "after the third DEL");
    });
}

/// The requests the stand-in answered and the connections it accepted so far.
fn api_traffic(node: &Node) -> (usize, u64) {
    (
        node.api.requests().len(),
        node.api.connections().values().sum(),
    )
}

#[test]
fn repeated_dels_after_a_finished_del_cost_nothing_and_gc_removes_their_markers() {
    sandbox::run(
        "repeated_dels_after_a_finished_del_cost_nothing_and_gc_removes_their_markers",
        || {
            let mut node = Node::start(cluster_bridge("cl-rep", "plxq0", "10.127.0.0/24"));
            node.set("cniVersion", json!("1.1.0"));
            node.nad("br-rep", &bridge("br-rep", "plxq1", "10.127.1.0/24"));
            node.nad(
                "rec-rep",
                &json!({"cniVersion": "1.0.0", "name": "rec-rep", "type": "fake-record"}),
            );
            node.nad(
                "fail-rep",
                &json!({"cniVersion": "1.0.0", "name": "fail-rep", "type": "fake-fail-add"}),
            );
            let pod = node.pod("rep", "br-rep,rec-rep");
            let result = added(&node, &pod);
            node.del(&pod, Some(&result)).assert_ok("the pod's DEL");
            node.assert_spotless(&pod, "after the pod's DEL");
            let marker = format!("{}:eth0", pod.container_id);
            assert_eq!(node.deleted_markers(), std::slice::from_ref(&marker));
            let calls = pod.fake_calls();
            assert_eq!(
                calls.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
                ["ADD", "DEL"]
            );

            // The runtime's StopPodSandbox, RemovePodSandbox and the kubelet's clean-up.
            let traffic = api_traffic(&node);
            for n in 1..=3 {
                node.del(&pod, Some(&result))
                    .assert_ok(&format!("repeated DEL {n}"));
            }
            assert_eq!(api_traffic(&node), traffic, "no API request, no connection");
            assert_eq!(pod.fake_calls(), calls, "no delegate ran");
            node.assert_spotless(&pod, "after the repeated DELs");

            // A failed ADD, rolled back: its DEL leaves a marker too.
            let failed = node.pod("rep-fail", "br-rep,fail-rep");
            let run = node.add(&failed);
            assert_rolled_back(&node, &failed, &run, "fail-rep");
            let traffic = api_traffic(&node);
            node.del(&failed, None)
                .assert_ok("DEL after the runtime's DEL");
            assert_eq!(
                api_traffic(&node),
                traffic,
                "no API request for a rolled-back ADD"
            );

            // A DEL for a container plexus never saw is best-effort as before: it reads the
            // API (this is what the assertions above would see without markers).
            let unknown = node.pod("rep-unknown", "br-rep");
            node.del(&unknown, None)
                .assert_ok("DEL of an unknown container");
            assert!(
                api_traffic(&node).0 > traffic.0,
                "a best-effort DEL reads the API"
            );
            let mut expected = vec![marker.clone(), format!("{}:eth0", failed.container_id)];
            expected.sort();
            assert_eq!(
                node.deleted_markers(),
                expected,
                "no marker for the unknown one"
            );

            // The container ID reused: ADD drops the marker, and its DEL undoes that ADD.
            let again = added(&node, &pod);
            assert!(!node.deleted_markers().contains(&marker));
            assert_eq!(
                pod.link_names(),
                ["eth0", "lo", "net1"],
                "fake-record makes no link"
            );
            node.del(&pod, Some(&again))
                .assert_ok("DEL of the second ADD");
            node.assert_spotless(&pod, "after the second DEL");
            assert!(node.deleted_markers().contains(&marker));

            // GC keeps the markers of valid attachments and removes the others.
            node.gc(&[(&pod.container_id, "eth0")]).assert_ok("GC");
            assert_eq!(node.deleted_markers(), std::slice::from_ref(&marker));
            node.gc(&[]).assert_ok("GC of everything");
            assert!(node.deleted_markers().is_empty());
            // Without its marker, a DEL is best-effort again and still succeeds.
            let traffic = api_traffic(&node);
            node.del(&pod, Some(&again)).assert_ok("DEL after GC");
            assert!(api_traffic(&node).0 > traffic.0);
            node.assert_spotless(&pod, "after the DEL after GC");
        },
    );
}

#[test]
fn del_after_the_netns_is_gone_releases_the_leases() {
    sandbox::run("del_after_the_netns_is_gone_releases_the_leases", || {
        veth_pair("plxgup0", "plxgup0p");
        let node = Node::start(cluster_bridge("cl-gone", "plxg0", "10.120.0.0/24"));
        node.nad("mv-gone", &macvlan("mv-gone", "plxgup0", "10.120.1.0/24"));
        node.nad("br-gone", &bridge("br-gone", "plxg1", "10.120.2.0/24"));
        let mut pod = node.pod("gone", "mv-gone,br-gone");
        let result = added(&node, &pod);
        assert_eq!(all_leases().len(), 3);
        pod.delete_netns();
        node.del(&pod, Some(&result))
            .assert_ok("DEL after the netns was deleted");
        assert_no_leases("after DEL without the netns");
        node.assert_no_journal("after DEL without the netns");
        node.del(&pod, Some(&result))
            .assert_ok("second DEL without the netns");
    });
}

// ---------------------------------------------------------------------------------------------
// GC and STATUS (1.1.0 node configs; the delegates stay at 1.0.0).

#[test]
fn gc_removes_only_attachments_not_listed() {
    sandbox::run("gc_removes_only_attachments_not_listed", || {
        let mut node = Node::start(cluster_bridge("cl-gc", "plxc0", "10.121.0.0/24"));
        node.set("cniVersion", json!("1.1.0"));
        node.nad("br-gc", &bridge("br-gc", "plxc1", "10.121.1.0/24"));
        let a = node.pod("gc-a", "br-gc");
        let mut b = node.pod("gc-b", "br-gc");
        let result_a = added(&node, &a);
        assert_eq!(result_a["cniVersion"], "1.1.0");
        added(&node, &b);
        let mut both = vec![a.container_id.clone(), b.container_id.clone()];
        both.sort();
        assert_eq!(lease_owners("cl-gc"), both);
        assert_eq!(lease_owners("br-gc"), both);
        assert_eq!(node.journal_files().len(), 4, "{:?}", node.journal_files());

        // The runtime garbage-collects containers it lost track of: b's netns is gone too.
        b.delete_netns();
        let gc = node.gc(&[(&a.container_id, "eth0")]);
        gc.assert_ok("GC");

        assert_eq!(lease_owners("cl-gc"), [a.container_id.as_str()]);
        assert_eq!(lease_owners("br-gc"), [a.container_id.as_str()]);
        let journal_after_gc = node.journal_files();
        assert_eq!(node.journal_files_of(&a).len(), 1, "{journal_after_gc:?}");
        assert!(node.journal_files_of(&b).is_empty(), "{journal_after_gc:?}");
        assert_eq!(a.link_names(), ["eth0", "lo", "net1"], "pod a is intact");

        // Pod a still deletes normally.
        node.del(&a, Some(&result_a)).assert_ok("DEL of pod a");
        node.assert_clean(&a, "after DEL of pod a");
        assert_eq!(
            journal_after_gc,
            [
                journal_name(&a.container_id),
                journal_name(&a.container_id).replace(".json", ".progress")
            ],
            "the journal's file name"
        );
    });
}

#[test]
fn status_follows_the_readiness_indicator() {
    sandbox::run("status_follows_the_readiness_indicator", || {
        let mut node = Node::start(cluster_bridge("cl-st", "plxst0", "10.128.0.0/24"));
        node.set("cniVersion", json!("1.1.0"));
        let run = node.status();
        run.assert_ok("STATUS");
        assert_eq!(run.stdout, "");
        let indicator = node.dir.path().join("ready");
        node.set("readinessindicatorfile", json!(indicator));
        let run = node.status();
        let (code, msg, _) = run.error();
        assert_eq!(code, 50, "not ready without the indicator file: {msg:?}");
        fs::write(&indicator, "").unwrap();
        node.status().assert_ok("STATUS once the indicator exists");
    });
}

// ---------------------------------------------------------------------------------------------
// Crash safety.

/// plexus is SIGKILLed while the `k`-th secondary (a fake-hang NAD) runs; the runtime's DEL
/// must undo every attachment made before it.
fn sigkill_during_attachment(k: usize) {
    let octet = 122 + k;
    let up = format!("plxk{k}up0");
    veth_pair(&up, &format!("plxk{k}up0p"));
    let mut node = Node::start(cluster_bridge(
        &format!("cl-kill{k}"),
        &format!("plxk{k}c"),
        &format!("10.{octet}.0.0/24"),
    ));
    let real = [
        macvlan(&format!("mv-kill{k}"), &up, &format!("10.{octet}.1.0/24")),
        bridge(
            &format!("br-kill{k}"),
            &format!("plxk{k}b"),
            &format!("10.{octet}.2.0/24"),
        ),
        bridge(
            &format!("br2-kill{k}"),
            &format!("plxk{k}d"),
            &format!("10.{octet}.3.0/24"),
        ),
    ];
    let mut names = Vec::new();
    for (i, conf) in real.iter().enumerate() {
        let name = if i + 1 == k {
            let name = format!("hang-kill{k}");
            node.nad(
                &name,
                &json!({"cniVersion": "1.0.0", "name": name, "type": "fake-hang"}),
            );
            name
        } else {
            let name = conf["name"].as_str().unwrap().to_owned();
            node.nad(&name, conf);
            name
        };
        names.push(name);
    }
    let pod = node.pod(&format!("kill{k}"), &names.join(","));
    let log = node.dir.path().join("add.stderr");
    let mut child = node.spawn_add(&pod, &log);
    // Bounded, and cut short with plexus's stderr when it exits instead of reaching the fake.
    let mut exited = None;
    wait_until(
        "fake-hang to start (or plexus to exit)",
        Duration::from_secs(30),
        || {
            exited = child.try_wait().expect("wait for plexus");
            exited.is_some() || pod.record_dir.join("hang-child.pid").exists()
        },
    );
    if let Some(status) = exited {
        panic!(
            "plexus ADD exited ({status}) before reaching the fake-hang attachment; stderr:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let (hang, hang_child) = wait_for_hang_pids(&pod.record_dir, Duration::from_secs(10));
    // The attachments before the k-th are in place (the test's premise).
    let mut expected = vec!["eth0".to_owned(), "lo".to_owned()];
    expected.extend((1..k).map(|i| format!("net{i}")));
    expected.sort();
    assert_eq!(pod.link_names(), expected, "before the kill");
    assert_eq!(all_leases().len(), k, "{:?}", all_leases());

    child.kill().expect("SIGKILL plexus");
    child.wait().expect("reap plexus");
    // The fake is its own process group's leader (plexus starts delegates that way).
    // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
    unsafe { libc::kill(-hang, libc::SIGKILL) };
    wait_until("the hung delegate to die", Duration::from_secs(10), || {
        !process_alive(hang) && !process_alive(hang_child)
    });
    let add_log = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        pod.link_names(),
        expected,
        "nothing undone by a killed plexus; its stderr:\n{add_log}"
    );
    fs::remove_file(pod.record_dir.join("hang.pid")).unwrap();
    fs::remove_file(pod.record_dir.join("hang-child.pid")).unwrap();

    // The runtime's DEL. The fake-hang attachment's DEL hangs too: a short delegate deadline.
    node.set("delegateTimeoutSeconds", json!(1));
    let del = node.del(&pod, None);
    del.assert_ok("DEL after plexus was killed");
    node.assert_clean(&pod, "after DEL");
    let calls = pod.fake_calls();
    assert!(
        calls.iter().any(|(c, n)| c == "DEL" && *n == names[k - 1]),
        "the interrupted attachment gets its DEL too: {calls:?}"
    );
    // The DEL's own fake-hang was killed with its group at the deadline.
    let pid_file = pod.record_dir.join("hang.pid");
    if let Ok(pid) = fs::read_to_string(&pid_file) {
        let pid: i32 = pid.trim().parse().unwrap();
        wait_until(
            "DEL's fake-hang to be killed",
            Duration::from_secs(10),
            || !process_alive(pid),
        );
    }
    if let Ok(pid) = fs::read_to_string(pod.record_dir.join("hang-child.pid")) {
        let pid: i32 = pid.trim().parse().unwrap();
        wait_until(
            "DEL's fake-hang child to be killed",
            Duration::from_secs(10),
            || !process_alive(pid),
        );
    }
}

#[test]
fn sigkill_during_attachment_1() {
    sandbox::run("sigkill_during_attachment_1", || {
        sigkill_during_attachment(1)
    });
}

#[test]
fn sigkill_during_attachment_2() {
    sandbox::run("sigkill_during_attachment_2", || {
        sigkill_during_attachment(2)
    });
}

#[test]
fn sigkill_during_attachment_3() {
    sandbox::run("sigkill_during_attachment_3", || {
        sigkill_during_attachment(3)
    });
}

// ---------------------------------------------------------------------------------------------
// Concurrency.

#[test]
fn twenty_pods_from_two_threads() {
    sandbox::run("twenty_pods_from_two_threads", || {
        let node = Node::start(cluster_bridge("cl-many", "plxy0", "10.125.0.0/24"));
        node.nad("br-many", &bridge("br-many", "plxy1", "10.125.1.0/24"));
        let pods: Vec<Pod> = (0..20)
            .map(|i| node.pod(&format!("many{i}"), "br-many"))
            .collect();
        let started = Instant::now();
        let results: Vec<Value> = std::thread::scope(|s| {
            let workers: Vec<_> = pods
                .chunks(10)
                .map(|chunk| {
                    let node = &node;
                    s.spawn(move || chunk.iter().map(|p| added(node, p)).collect::<Vec<_>>())
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("an ADD worker panicked"))
                .collect()
        });
        eprintln!("20 ADDs from 2 threads took {:?}", started.elapsed());
        for (pod, result) in pods.iter().zip(&results) {
            assert_eq!(pod.link_names(), ["eth0", "lo", "net1"], "pod {}", pod.name);
            assert_eq!(pod.ipv4("eth0"), result_ips(result), "pod {}", pod.name);
            assert_eq!(node.network_status(pod).len(), 2, "pod {}", pod.name);
        }
        assert_eq!(leases("cl-many").len(), 20);
        assert_eq!(leases("br-many").len(), 20);
        assert_eq!(node.journal_files().len(), 40);

        std::thread::scope(|s| {
            for (chunk, results) in pods.chunks(10).zip(results.chunks(10)) {
                let node = &node;
                s.spawn(move || {
                    for (pod, result) in chunk.iter().zip(results) {
                        node.del(pod, Some(result))
                            .assert_ok(&format!("DEL of {}", pod.name));
                    }
                });
            }
        });
        for pod in &pods {
            pod.assert_only_lo(&format!("pod {} after DEL", pod.name));
        }
        assert_no_leases("after all DELs");
        node.assert_no_journal("after all DELs");
    });
}

#[test]
fn harness_node_config_and_stand_in_objects() {
    // The scaffolding itself, no root needed: the node config is what the brief says and the
    // stand-in serves the objects the tests put.
    let node = Node::start(cluster_bridge("cl-h", "plxh0", "10.129.0.0/24"));
    node.nad("br-h", &bridge("br-h", "plxh1", "10.129.1.0/24"));
    let config = node.config_with(&json!({"delegateTimeoutSeconds": 3}));
    for key in [
        "kubeconfig",
        "clusterNetwork",
        "cniDir",
        "binDir",
        "confDir",
    ] {
        let path = config[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} in {config}"));
        assert!(Path::new(path).is_absolute(), "{key}: {path}");
    }
    assert_eq!(config["delegateTimeoutSeconds"], 3);
    assert_eq!(config["type"], "plexus");
    let cluster: Value =
        serde_json::from_slice(&fs::read(config["clusterNetwork"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(cluster["name"], "cl-h");
    assert!(
        Path::new(config["binDir"].as_str().unwrap())
            .join("fake-hang")
            .is_file()
    );
    let nad = node
        .api
        .get("network-attachment-definitions", "default", "br-h")
        .unwrap();
    let conf: Value = serde_json::from_str(nad["spec"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(conf["bridge"], "plxh1");
    // VERSION through the same runner: the binary is reachable and answers.
    let env = [("CNI_COMMAND".to_owned(), "VERSION".to_owned())];
    let run = common::node::run_plexus(&env, &config.to_string(), Duration::from_secs(30));
    run.assert_ok("VERSION");
    assert_eq!(run.json()["cniVersion"], "1.1.0");
}

/// A kubeconfig may name the API server by host name. plexus is a static binary (build.rs),
/// whose glibc resolves names with its built-in `files` and `dns` sources: `localhost` comes
/// from the sandbox's `/etc/hosts` (the stand-in's certificate is valid for it).
#[test]
fn api_server_named_by_host_name() {
    sandbox::run("api_server_named_by_host_name", || {
        let node = Node::start(cluster_bridge("cl-named", "plxnm0", "10.130.0.0/24"));
        let kubeconfig = node.dir.path().join("kubeconfig");
        let by_address = fs::read_to_string(&kubeconfig).unwrap();
        let by_name = by_address.replace("https://127.0.0.1:", "https://localhost:");
        assert_ne!(
            by_address, by_name,
            "the stand-in's kubeconfig names 127.0.0.1"
        );
        fs::write(&kubeconfig, by_name).unwrap();
        node.nad("br-named", &bridge("br-named", "plxnm1", "10.130.1.0/24"));
        let pod = node.pod("named", "br-named");

        let result = added(&node, &pod);

        let names: Vec<Value> = node
            .network_status(&pod)
            .iter()
            .map(|entry| entry["name"].clone())
            .collect();
        assert_eq!(names, [json!("cl-named"), json!("default/br-named")]);
        assert_eq!(pod.link_names(), ["eth0", "lo", "net1"]);
        node.del(&pod, Some(&result)).assert_ok("DEL");
        node.assert_clean(&pod, "after DEL");
    });
}
