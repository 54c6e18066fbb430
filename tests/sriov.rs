//! SR-IOV and device information (issue 8) through the binary's CNI contract: NADs naming a
//! device-plugin resource (`k8s.v1.cni.cncf.io/resourceName`), device IDs from the kubelet's
//! PodResources API (the gRPC stand-in on a unix socket), device-information files, and a
//! delegate that behaves like sriov-cni for a VF (`fake-sriov`: veths stand in for VFs, the
//! VF of device `0000:af:00.1` is the host netdev `vf0000af001`, host-device moves it).
//! Needs root: every test runs in its own network and mount namespaces.
//!
//! Observed: the exit code and CNI error, the interfaces in the pod and on the host (`ip -j`,
//! MAC addresses tell which VF went where), what each delegate received on stdin, the
//! network-status annotation in the API stand-in, the calls the kubelet stand-in received,
//! and the device-information files on disk.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use plexus_conformance::plugins::recorded;
use plexus_conformance::podresources::Container;
use plexus_conformance::sandbox;
use serde_json::{Value, json};

use common::devices::{DeviceNode, host_mac, make_vfs, sriov_adds, sriov_config, vf_name};
use common::node::{NS, conflist};

const RESOURCE: &str = "example.com/sriov_vf";
const VF1: &str = "0000:af:00.1";
const VF2: &str = "0000:af:00.2";

// ---------------------------------------------------------------------------------------------

#[test]
fn two_attachments_of_one_resource_get_both_devices() {
    sandbox::run("two_attachments_of_one_resource_get_both_devices", || {
        let s = DeviceNode::start("cl-sr", "plxs0", "10.140.0.0/24");
        let macs = make_vfs(&[VF1, VF2]);
        let kubelet = s.kubelet();
        kubelet.set_pod(
            NS,
            "dpdk",
            vec![
                Container::new("sidecar"),
                Container::new("app").device(RESOURCE, &[VF1, VF2]),
            ],
        );
        let info1 = s.dp_file(RESOURCE, VF1, None);
        let info2 = s.dp_file(RESOURCE, VF2, None);
        s.resource_nad("sriov-a", RESOURCE, &sriov_config("sriov-a"));
        let pod = s.node.pod("dpdk", "sriov-a,sriov-a@fast1");

        let run = s.node.add(&pod);
        run.assert_ok("ADD of a pod with two SR-IOV attachments");
        let result = run.json();

        // One lookup for both attachments, the per-pod Get.
        assert_eq!(kubelet.calls(), [format!("Get {NS}/dpdk")]);

        // Each VF is in the pod under its attachment's name, and gone from the host.
        assert_eq!(pod.link_names(), ["eth0", "fast1", "lo", "net1"]);
        let ns = pod.ns();
        assert_eq!(ns.link("net1").unwrap().mac, macs[0], "net1 is VF1");
        assert_eq!(ns.link("fast1").unwrap().mac, macs[1], "fast1 is VF2");
        assert_eq!(host_mac(&vf_name(VF1)), None);
        assert_eq!(host_mac(&vf_name(VF2)), None);

        // Each delegate saw its own device ID, where SR-IOV delegates read it.
        let copy1 = s.copy_path("sriov-a", &pod, "net1");
        let copy2 = s.copy_path("sriov-a", &pod, "fast1");
        let adds = sriov_adds(&pod);
        assert_eq!(adds.len(), 2, "{adds:?}");
        for (conf, (vf, copy)) in adds.iter().zip([(VF1, &copy1), (VF2, &copy2)]) {
            assert_eq!(conf["deviceID"], vf, "{conf}");
            assert_eq!(conf["pciBusID"], vf, "{conf}");
            assert_eq!(
                conf["runtimeConfig"],
                json!({"deviceID": vf, "CNIDeviceInfoFile": copy}),
                "{conf}"
            );
            // The NAD's own keys are kept.
            assert_eq!(conf["type"], "fake-sriov");
            assert_eq!(conf["name"], "sriov-a");
        }

        // The device-information copies, byte for byte.
        assert_eq!(fs::read(&copy1).unwrap(), info1);
        assert_eq!(fs::read(&copy2).unwrap(), info2);
        assert_eq!(s.copies().len(), 2);

        // network-status carries each attachment's device-info.
        let status = s.node.network_status(&pod);
        assert_eq!(status.len(), 3, "{status:?}");
        assert!(status[0].get("device-info").is_none(), "{:?}", status[0]);
        for (entry, (ifname, info)) in status[1..]
            .iter()
            .zip([("net1", &info1), ("fast1", &info2)])
        {
            assert_eq!(entry["name"], "default/sriov-a", "{entry}");
            assert_eq!(entry["interface"], ifname, "{entry}");
            let want: Value = serde_json::from_slice(info).unwrap();
            assert_eq!(entry["device-info"], want, "{entry}");
        }

        // A pod without an SR-IOV network costs the kubelet nothing.
        let plain = s.node.pod("plain", "");
        let plain_result = s.node.add(&plain);
        plain_result.assert_ok("ADD of a pod without devices");
        assert_eq!(kubelet.calls().len(), 1, "{:?}", kubelet.calls());
        s.node
            .del(&plain, Some(&plain_result.json()))
            .assert_ok("DEL");

        // DEL needs no kubelet: stop it, socket gone.
        drop(kubelet);
        assert!(!s.socket.exists());
        s.node
            .del(&pod, Some(&result))
            .assert_ok("DEL without the kubelet");
        s.node.assert_clean(&pod, "after DEL");
        assert!(
            s.copies().is_empty(),
            "DEL removes the copies: {:?}",
            s.copies()
        );
        assert_eq!(host_mac(&vf_name(VF1)).as_ref(), Some(&macs[0]), "VF1 back");
        assert_eq!(host_mac(&vf_name(VF2)).as_ref(), Some(&macs[1]), "VF2 back");
        // The device plugin's files are not plexus's to remove.
        assert_eq!(fs::read_dir(s.devinfo.join("dp")).unwrap().count(), 2);
    });
}

#[test]
fn kubelet_socket_missing_fails_add_cleanly() {
    sandbox::run("kubelet_socket_missing_fails_add_cleanly", || {
        let s = DeviceNode::start("cl-nosock", "plxs1", "10.141.0.0/24");
        make_vfs(&[VF1]);
        s.resource_nad("sriov-a", RESOURCE, &sriov_config("sriov-a"));
        let pod = s.node.pod("p", "sriov-a");
        let run = s.node.add(&pod);
        let (code, msg, details) = run.error();
        assert_eq!(code, 11, "try again later: {msg}");
        assert_eq!(
            msg,
            format!(
                "pod default/p: network default/sriov-a needs a device of resource \"{RESOURCE}\", but the kubelet PodResources API at {} is not reachable",
                s.socket.display()
            )
        );
        assert!(details.contains("No such file or directory"), "{details}");
        s.assert_nothing_attached(&pod, "after the failed ADD");
        assert!(host_mac(&vf_name(VF1)).is_some());
        s.node.del(&pod, None).assert_ok("the runtime's DEL");
        s.node.assert_clean(&pod, "after DEL");
    });
}

#[test]
fn no_allocation_fails_add_cleanly() {
    sandbox::run("no_allocation_fails_add_cleanly", || {
        let s = DeviceNode::start("cl-noalloc", "plxs2", "10.142.0.0/24");
        make_vfs(&[VF1]);
        let kubelet = s.kubelet();
        s.resource_nad("sriov-a", RESOURCE, &sriov_config("sriov-a"));
        s.resource_nad("sriov-b", RESOURCE, &sriov_config("sriov-b"));

        // The pod got no device of the resource at all.
        kubelet.set_pod(
            NS,
            "none",
            vec![Container::new("app").device("other/res", &["x"])],
        );
        let pod = s.node.pod("none", "sriov-a");
        let (code, msg, _) = s.node.add(&pod).error();
        assert_eq!(code, 7);
        assert_eq!(
            msg,
            format!(
                "pod default/none: network default/sriov-a needs a device of resource \"{RESOURCE}\", but the kubelet allocated none to the pod"
            )
        );
        s.assert_nothing_attached(&pod, "no device at all");

        // One device for two attachments: the second has none.
        kubelet.set_pod(
            NS,
            "one",
            vec![Container::new("app").device(RESOURCE, &[VF1])],
        );
        let pod = s.node.pod("one", "sriov-a,sriov-b");
        let (code, msg, details) = s.node.add(&pod).error();
        assert_eq!(code, 7);
        assert_eq!(
            msg,
            format!(
                "pod default/one: network default/sriov-b needs a device of resource \"{RESOURCE}\", but the kubelet allocated only 1 to the pod, all used by earlier attachments (default/sriov-a)"
            )
        );
        assert!(details.contains("request one"), "{details}");
        s.assert_nothing_attached(&pod, "one device for two");
        assert!(host_mac(&vf_name(VF1)).is_some(), "VF1 never left the host");
        s.node.del(&pod, None).assert_ok("the runtime's DEL");
    });
}

#[test]
fn malformed_device_info_fails_add_cleanly() {
    sandbox::run("malformed_device_info_fails_add_cleanly", || {
        let s = DeviceNode::start("cl-badinfo", "plxs3", "10.143.0.0/24");
        make_vfs(&[VF1]);
        let kubelet = s.kubelet();
        kubelet.set_pod(
            NS,
            "p",
            vec![Container::new("app").device(RESOURCE, &[VF1])],
        );
        s.dp_file(RESOURCE, VF1, Some("{\"type\":\"pci\","));
        s.resource_nad("sriov-a", RESOURCE, &sriov_config("sriov-a"));
        let pod = s.node.pod("p", "sriov-a");
        let (code, msg, _) = s.node.add(&pod).error();
        assert_eq!(code, 6);
        let file = s
            .devinfo
            .join("dp")
            .join(format!("example.com-sriov_vf-{VF1}-device.json"));
        let want = format!(
            "pod default/p: network default/sriov-a: the device information of device \"{VF1}\" of resource \"{RESOURCE}\" is not usable: {}: not JSON: ",
            file.display()
        );
        assert!(msg.starts_with(&want), "{msg}");
        s.assert_nothing_attached(&pod, "after the failed ADD");
    });
}

#[test]
fn slow_kubelet_fails_add_within_the_bound() {
    sandbox::run("slow_kubelet_fails_add_within_the_bound", || {
        let mut s = DeviceNode::start("cl-slow", "plxs4", "10.144.0.0/24");
        s.node.set("podResourcesTimeoutSeconds", json!(0.5));
        make_vfs(&[VF1]);
        let kubelet = s.kubelet();
        kubelet.set_pod(
            NS,
            "p",
            vec![Container::new("app").device(RESOURCE, &[VF1])],
        );
        kubelet.set_delay(Duration::from_secs(3600));
        s.resource_nad("sriov-a", RESOURCE, &sriov_config("sriov-a"));
        let pod = s.node.pod("p", "sriov-a");
        let started = Instant::now();
        let (code, msg, _) = s.node.add(&pod).error();
        let took = started.elapsed();
        assert_eq!(code, 11);
        assert_eq!(
            msg,
            format!(
                "pod default/p: network default/sriov-a needs a device of resource \"{RESOURCE}\", but the kubelet PodResources API at {} did not answer within 0.5s",
                s.socket.display()
            )
        );
        assert!(took < Duration::from_secs(10), "bounded: took {took:?}");
        s.assert_nothing_attached(&pod, "after the failed ADD");
    });
}

#[test]
fn list_serves_a_kubelet_without_get() {
    sandbox::run("list_serves_a_kubelet_without_get", || {
        let s = DeviceNode::start("cl-list", "plxs5", "10.145.0.0/24");
        let macs = make_vfs(&[VF2]);
        let kubelet = s.kubelet();
        kubelet.serve_get(false);
        kubelet.set_pod(
            NS,
            "other",
            vec![Container::new("app").device(RESOURCE, &[VF1])],
        );
        kubelet.set_pod(
            NS,
            "p",
            vec![Container::new("app").device(RESOURCE, &[VF2])],
        );
        s.resource_nad("sriov-a", RESOURCE, &sriov_config("sriov-a"));
        let pod = s.node.pod("p", "sriov-a");
        let run = s.node.add(&pod);
        run.assert_ok("ADD through List");
        assert_eq!(kubelet.calls(), [format!("Get {NS}/p"), "List".to_owned()]);
        assert_eq!(pod.ns().link("net1").unwrap().mac, macs[0]);
        // No device-information file from the device plugin: none in the status, no copy,
        // no CNIDeviceInfoFile.
        let status = s.node.network_status(&pod);
        assert!(status[1].get("device-info").is_none(), "{:?}", status[1]);
        assert!(s.copies().is_empty());
        assert_eq!(
            sriov_adds(&pod)[0]["runtimeConfig"],
            json!({"deviceID": VF2})
        );
        s.node.del(&pod, Some(&run.json())).assert_ok("DEL");
        s.node.assert_clean(&pod, "after DEL");
    });
}

#[test]
fn rollback_removes_device_info_copies_and_returns_the_vf() {
    sandbox::run(
        "rollback_removes_device_info_copies_and_returns_the_vf",
        || {
            let s = DeviceNode::start("cl-rbsr", "plxs6", "10.146.0.0/24");
            let macs = make_vfs(&[VF1]);
            let kubelet = s.kubelet();
            kubelet.set_pod(
                NS,
                "p",
                vec![Container::new("app").device(RESOURCE, &[VF1])],
            );
            s.dp_file(RESOURCE, VF1, None);
            // The VF is attached by the list's first plugin, then the second one fails.
            s.resource_nad(
                "sriov-f",
                RESOURCE,
                &conflist(
                    "sriov-f",
                    vec![
                        json!({"type": "fake-sriov", "capabilities": {"CNIDeviceInfoFile": true}}),
                        json!({"type": "fake-fail-add"}),
                    ],
                ),
            );
            let pod = s.node.pod("p", "sriov-f");
            let (code, msg, _) = s.node.add(&pod).error();
            assert_eq!(code, 11, "the delegate's own code: {msg}");
            assert!(msg.contains("default/sriov-f"), "{msg}");
            // The VF went into the pod and came back; the copy was made and is gone.
            let calls: Vec<String> = recorded(&pod.record_dir)
                .into_iter()
                .map(|i| i.command)
                .collect();
            assert_eq!(calls, ["ADD", "ADD", "DEL", "DEL"]);
            let first: Value = serde_json::from_slice(&recorded(&pod.record_dir)[0].stdin).unwrap();
            assert_eq!(first["deviceID"], VF1);
            assert_eq!(
                first["runtimeConfig"]["CNIDeviceInfoFile"],
                json!(s.copy_path("sriov-f", &pod, "net1"))
            );
            s.node.assert_clean(&pod, "after the rollback");
            assert!(s.copies().is_empty(), "{:?}", s.copies());
            assert_eq!(host_mac(&vf_name(VF1)).as_ref(), Some(&macs[0]));
            s.node.del(&pod, None).assert_ok("the runtime's DEL");
            s.node.assert_clean(&pod, "after DEL");
        },
    );
}
