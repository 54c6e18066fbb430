//! The delegate invoker with Debian's real CNI plugins, in pod network namespaces inside a
//! private sandbox (see `plexus_conformance::sandbox`). Needs root.
//!
//! Each test asserts what is in the kernel (`ip -j`) and on disk (host-local's leases), not
//! only that the plugins returned success.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use plexus::cni::{NetworkConfig, result::CniResult};
use plexus::delegate::{Ahead, Chain, Invocation, ProcessExec};
use plexus_conformance::netns::{Netns, host_links, veth_pair};
use plexus_conformance::sandbox;
use serde_json::{Map, Value, json};

use common::node::leases;
use common::{DEBIAN_PLUGINS, attach_env, plexus};

fn invocation(ns: &Netns, ifname: &str, network: &str, runtime: Value) -> Invocation {
    let runtime_config: Map<String, Value> = runtime.as_object().cloned().unwrap_or_default();
    Invocation {
        network: network.into(),
        container_id: "c0ffee".into(),
        netns: Some(ns.path().display().to_string()),
        ifname: ifname.into(),
        cni_args: "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1".into(),
        plugin_dirs: vec![PathBuf::from(DEBIAN_PLUGINS)],
        runtime_config,
        timeout: Duration::from_secs(60),
    }
}

fn only_lo(ns: &Netns) {
    let names: Vec<String> = ns.links().into_iter().map(|l| l.name).collect();
    assert_eq!(
        names,
        vec!["lo".to_string()],
        "pod namespace must hold only lo"
    );
}

fn parse(conf: &Value) -> NetworkConfig {
    NetworkConfig::parse(conf.to_string().as_bytes()).expect("config parses")
}

/// The address of the result's first IP, and the interface it points at.
fn first_ip(res: &Value) -> (String, String) {
    let (_, r) = CniResult::from_value(res).expect("valid result");
    let ip = &r.ips[0];
    let iface = ip
        .interface
        .map(|i| r.interfaces[i].name.clone())
        .unwrap_or_default();
    (ip.address.clone(), iface)
}

#[test]
fn bridge_host_local_add_check_del() {
    sandbox::run("bridge_host_local_add_check_del", || {
        let ns = Netns::new("pod");
        let conf = json!({
            "cniVersion": "1.0.0", "name": "brnet", "type": "bridge", "bridge": "plxbr0",
            "isGateway": true, "ipMasq": false,
            "ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}
        });
        let net = parse(&conf);
        let exec = Ahead::new(ProcessExec::default());
        let chain = Chain::new(&exec);
        let inv = invocation(&ns, "eth0", "brnet", json!({}));

        let res = chain.add(&net, &inv).expect("ADD");
        assert_eq!(res["cniVersion"], "1.0.0");
        let (addr, iface) = first_ip(&res);
        assert_eq!(iface, "eth0");
        let eth0 = ns.link("eth0").expect("eth0 in the pod");
        assert_eq!(eth0.ipv4(), vec![addr.as_str()]);
        let routes = ns.routes(4);
        assert!(
            routes
                .iter()
                .any(|r| r["dst"] == "default" && r["gateway"] == "10.77.0.1"),
            "default route via the bridge gateway: {routes:?}"
        );
        assert!(
            host_links()
                .iter()
                .any(|l| l.name == "plxbr0" && l.kind.as_deref() == Some("bridge"))
        );
        let ip = addr.split('/').next().unwrap().to_string();
        assert_eq!(leases("brnet"), vec![ip]);

        chain.check(&net, &inv, &res).expect("CHECK");

        chain.del(&net, &inv, Some(&res)).expect("DEL");
        only_lo(&ns);
        assert_eq!(
            leases("brnet"),
            Vec::<String>::new(),
            "host-local must hold no lease after DEL"
        );
        // DEL is idempotent.
        chain.del(&net, &inv, Some(&res)).expect("second DEL");
    });
}

#[test]
fn macvlan_on_a_veth_master() {
    sandbox::run("macvlan_on_a_veth_master", || {
        veth_pair("plxup0", "plxup0p");
        let ns = Netns::new("pod");
        let conf = json!({
            "cniVersion": "1.0.0", "name": "mvnet", "type": "macvlan", "master": "plxup0", "mode": "bridge",
            "ipam": {"type": "host-local", "subnet": "10.78.0.0/24"}
        });
        let net = parse(&conf);
        let exec = Ahead::new(ProcessExec::default());
        let chain = Chain::new(&exec);
        let inv = invocation(&ns, "net1", "ns1/mvnet", json!({}));
        let res = chain.add(&net, &inv).expect("ADD");
        let (addr, _) = first_ip(&res);
        let l = ns.link("net1").expect("net1");
        assert_eq!(l.kind.as_deref(), Some("macvlan"));
        assert_eq!(l.ipv4(), vec![addr.as_str()]);
        chain.del(&net, &inv, Some(&res)).expect("DEL");
        only_lo(&ns);
        assert!(leases("mvnet").is_empty());
    });
}

#[test]
fn ptp_creates_and_removes_both_ends() {
    sandbox::run("ptp_creates_and_removes_both_ends", || {
        let ns = Netns::new("pod");
        let before = host_links().len();
        let conf = json!({
            "cniVersion": "0.4.0", "name": "ptpnet", "type": "ptp", "ipMasq": false,
            "ipam": {"type": "host-local", "subnet": "10.79.0.0/24"}
        });
        let net = parse(&conf);
        let exec = Ahead::new(ProcessExec::default());
        let chain = Chain::new(&exec);
        let inv = invocation(&ns, "eth0", "ptpnet", json!({}));
        let res = chain.add(&net, &inv).expect("ADD");
        // A 0.4.0 config gets a 0.4.0 result (ips carry "version").
        assert_eq!(res["cniVersion"], "0.4.0");
        assert_eq!(res["ips"][0]["version"], "4");
        let (addr, _) = first_ip(&res);
        assert_eq!(ns.link("eth0").expect("eth0").kind.as_deref(), Some("veth"));
        assert_eq!(ns.link("eth0").unwrap().ipv4(), vec![addr.as_str()]);
        assert_eq!(
            host_links().len(),
            before + 1,
            "the host end of the veth exists"
        );
        chain.del(&net, &inv, Some(&res)).expect("DEL");
        only_lo(&ns);
        plexus_conformance::wait_until(
            "host end of the ptp veth to go",
            Duration::from_secs(10),
            || host_links().len() == before,
        );
        assert!(leases("ptpnet").is_empty());
    });
}

#[test]
fn conflist_bridge_then_tuning_applies_runtime_mac() {
    sandbox::run("conflist_bridge_then_tuning_applies_runtime_mac", || {
        let ns = Netns::new("pod");
        let conf = json!({
            "cniVersion": "1.0.0", "name": "tuned",
            "plugins": [
                {"type": "bridge", "bridge": "plxbr1", "ipam": {"type": "host-local", "subnet": "10.81.0.0/24"}},
                {"type": "tuning", "capabilities": {"mac": true}}
            ]
        });
        let net = parse(&conf);
        let exec = Ahead::new(ProcessExec::default());
        let chain = Chain::new(&exec);
        let mac = "0a:58:0a:51:00:99";
        // `ips` is offered too but no plugin declares it: it must not reach anyone.
        let inv = invocation(
            &ns,
            "eth0",
            "tuned",
            json!({"mac": mac, "ips": ["10.81.0.50/24"]}),
        );
        let res = chain.add(&net, &inv).expect("ADD");
        assert_eq!(
            ns.link("eth0").expect("eth0").mac,
            mac,
            "tuning set the requested MAC"
        );
        let (addr, _) = first_ip(&res);
        assert_ne!(addr, "10.81.0.50/24");
        let sandbox_if = res["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["sandbox"].is_string())
            .expect("a sandbox interface");
        assert_eq!(
            sandbox_if["mac"], mac,
            "the final result reports the new MAC"
        );
        chain.del(&net, &inv, Some(&res)).expect("DEL");
        only_lo(&ns);
        assert!(leases("tuned").is_empty());
    });
}

#[test]
fn static_ipam_on_macvlan() {
    sandbox::run("static_ipam_on_macvlan", || {
        veth_pair("plxup1", "plxup1p");
        let ns = Netns::new("pod");
        let conf = json!({
            "cniVersion": "1.0.0", "name": "staticnet", "type": "macvlan", "master": "plxup1",
            "ipam": {"type": "static", "addresses": [{"address": "10.80.0.5/24", "gateway": "10.80.0.1"}],
                     "routes": [{"dst": "192.0.2.0/24"}]}
        });
        let net = parse(&conf);
        let exec = Ahead::new(ProcessExec::default());
        let chain = Chain::new(&exec);
        let inv = invocation(&ns, "net1", "staticnet", json!({}));
        let res = chain.add(&net, &inv).expect("ADD");
        assert_eq!(first_ip(&res).0, "10.80.0.5/24");
        assert_eq!(ns.link("net1").expect("net1").ipv4(), vec!["10.80.0.5/24"]);
        let routes = ns.routes(4);
        assert!(
            routes
                .iter()
                .any(|r| r["dst"] == "192.0.2.0/24" && r["gateway"] == "10.80.0.1"),
            "{routes:?}"
        );
        chain.del(&net, &inv, Some(&res)).expect("DEL");
        only_lo(&ns);
    });
}

/// The binary end to end: a runtime calls plexus whose node config names a bridge conflist as
/// the cluster network; the result comes back in the node config's version.
#[test]
fn plexus_binary_runs_the_cluster_network() {
    sandbox::run("plexus_binary_runs_the_cluster_network", || {
        let ns = Netns::new("pod");
        let netns = ns.path().display().to_string();
        let node = json!({
            "cniVersion": "0.4.0", "name": "plexus-net", "type": "plexus", "binDir": "/nonexistent",
            "delegates": [{
                "cniVersion": "1.0.0", "name": "cluster",
                "plugins": [{"type": "bridge", "bridge": "plxbr2", "isGateway": true,
                             "ipam": {"type": "host-local", "subnet": "10.82.0.0/24"}}]
            }]
        });
        let add = plexus(
            &attach_env("ADD", &netns, "eth0", DEBIAN_PLUGINS),
            &node.to_string(),
        );
        assert_eq!(add.code, 0, "{add:?}");
        let res = add.json();
        assert_eq!(
            res["cniVersion"], "0.4.0",
            "the result is in the node config's version"
        );
        assert_eq!(res["ips"][0]["version"], "4");
        let (addr, iface) = first_ip(&res);
        assert_eq!(iface, "eth0");
        assert_eq!(ns.link("eth0").expect("eth0").ipv4(), vec![addr.as_str()]);
        assert_eq!(leases("cluster").len(), 1);

        // CHECK and DEL as libcni sends them: with the cached result as prevResult.
        let mut with_prev = node.clone();
        with_prev["prevResult"] = res.clone();
        let check = plexus(
            &attach_env("CHECK", &netns, "eth0", DEBIAN_PLUGINS),
            &with_prev.to_string(),
        );
        assert_eq!((check.code, check.stdout.as_str()), (0, ""), "{check:?}");
        let del = plexus(
            &attach_env("DEL", &netns, "eth0", DEBIAN_PLUGINS),
            &with_prev.to_string(),
        );
        assert_eq!((del.code, del.stdout.as_str()), (0, ""), "{del:?}");
        only_lo(&ns);
        assert!(leases("cluster").is_empty());
        // CHECK after DEL must fail: nothing is attached any more (code 3, container unknown).
        let check = plexus(
            &attach_env("CHECK", &netns, "eth0", DEBIAN_PLUGINS),
            &with_prev.to_string(),
        );
        assert_eq!(check.code, 1, "{check:?}");
        assert_eq!(check.json()["code"], 3, "{check:?}");
        assert_eq!(
            check.json()["msg"],
            "no completed ADD recorded for container c0ffee interface eth0"
        );
    });
}

/// A conflist whose second plugin fails ADD: plexus undoes the bridge's work at once, so the
/// pod holds only `lo` and host-local holds no lease, before any runtime retries.
#[test]
fn failed_add_leaves_no_interface_and_no_lease() {
    sandbox::run("failed_add_leaves_no_interface_and_no_lease", || {
        let ns = Netns::new("pod");
        let netns = ns.path().display().to_string();
        let node = json!({
            "cniVersion": "1.0.0", "name": "plexus-net", "type": "plexus",
            "binDir": plexus_conformance::plugins::fixtures_dir().display().to_string(),
            "delegates": [{
                "cniVersion": "1.0.0", "name": "halfway",
                "plugins": [
                    {"type": "bridge", "bridge": "plxbr3", "ipam": {"type": "host-local", "subnet": "10.83.0.0/24"}},
                    {"type": "fake-fail-add"}
                ]
            }]
        });
        let add = plexus(
            &attach_env("ADD", &netns, "eth0", DEBIAN_PLUGINS),
            &node.to_string(),
        );
        assert_eq!(add.code, 1, "{add:?}");
        assert_eq!(add.json()["code"], 11);
        only_lo(&ns);
        assert!(
            leases("halfway").is_empty(),
            "the bridge's lease was released"
        );
    });
}
