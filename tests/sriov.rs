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
use std::path::PathBuf;
use std::time::{Duration, Instant};

use plexus_conformance::netns::{host_links, veth_pair};
use plexus_conformance::plugins::recorded;
use plexus_conformance::podresources::Container;
use plexus_conformance::sandbox;
use serde_json::{Value, json};

use common::devices::DeviceNode;
use common::node::{NS, Pod, conflist};

const RESOURCE: &str = "example.com/sriov_vf";
const VF1: &str = "0000:af:00.1";
const VF2: &str = "0000:af:00.2";

/// A node whose kubelet socket and device-information directory are in its own directory.
struct SriovNode(DeviceNode);

impl std::ops::Deref for SriovNode {
    type Target = DeviceNode;
    fn deref(&self) -> &DeviceNode {
        &self.0
    }
}

impl std::ops::DerefMut for SriovNode {
    fn deref_mut(&mut self) -> &mut DeviceNode {
        &mut self.0
    }
}

impl SriovNode {
    /// NAD `name` in [`NS`] with `config`, annotated with [`RESOURCE`].
    fn nad(&self, name: &str, config: &Value) {
        self.node.api.put(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"namespace": NS, "name": name,
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": RESOURCE}},
            "spec": {"config": config.to_string()}
        }));
    }

    /// The device plugin's device-information file for `id`; returns its exact bytes.
    fn dp_file(&self, id: &str, body: Option<&str>) -> Vec<u8> {
        let dir = self.devinfo.join("dp");
        fs::create_dir_all(&dir).unwrap();
        let text = body.map(str::to_owned).unwrap_or_else(|| {
            format!(r#"{{"type":"pci","version":"1.1.0","pci":{{"pci-address":"{id}"}}}}"#)
        });
        let name = format!("{}-{id}-device.json", RESOURCE.replace('/', "-"));
        fs::write(dir.join(name), &text).unwrap();
        text.into_bytes()
    }

    /// The files in `<deviceInfoDir>/cni`, sorted.
    fn copies(&self) -> Vec<String> {
        let Ok(dir) = fs::read_dir(self.devinfo.join("cni")) else {
            return vec![];
        };
        let mut v: Vec<String> = dir
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// The copy's path for `pod`'s attachment `ifname` of NAD `nad`.
    fn copy_path(&self, nad: &str, pod: &Pod, ifname: &str) -> PathBuf {
        self.devinfo.join("cni").join(format!(
            "{NS}-{nad}-{}_{ifname}-device.json",
            pod.container_id
        ))
    }
}

/// The host netdev standing in for the VF of device `id`.
fn vf_name(id: &str) -> String {
    format!("vf{}", id.replace([':', '.'], ""))
}

/// Creates the VF stand-ins for `ids` (veths on the host); returns their MACs.
fn make_vfs(ids: &[&str]) -> Vec<String> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let vf = vf_name(id);
            veth_pair(&vf, &format!("pf{i}{}", &vf[2..]));
            host_mac(&vf).expect("the VF exists on the host")
        })
        .collect()
}

fn host_mac(name: &str) -> Option<String> {
    host_links()
        .into_iter()
        .find(|l| l.name == name)
        .map(|l| l.mac)
}

/// The single-plugin SR-IOV network: the fake delegate, capable of both device keys.
fn sriov_config(name: &str) -> Value {
    json!({
        "cniVersion": "1.0.0", "name": name, "type": "fake-sriov",
        "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true}
    })
}

/// What fake-sriov received on ADD, in call order.
fn sriov_adds(pod: &Pod) -> Vec<Value> {
    recorded(&pod.record_dir)
        .into_iter()
        .filter(|i| i.command == "ADD")
        .map(|i| serde_json::from_slice(&i.stdin).expect("JSON stdin"))
        .collect()
}

/// Asserts that nothing of `pod`'s ADD is left and no delegate of it ran.
fn assert_nothing_attached(s: &SriovNode, pod: &Pod, when: &str) {
    s.node.assert_clean(pod, when);
    assert!(
        recorded(&pod.record_dir).is_empty(),
        "{when}: no delegate may have run"
    );
    assert!(s.copies().is_empty(), "{when}: no device-info copy");
}

// ---------------------------------------------------------------------------------------------

#[test]
fn two_attachments_of_one_resource_get_both_devices() {
    sandbox::run("two_attachments_of_one_resource_get_both_devices", || {
        let s = SriovNode(DeviceNode::start("cl-sr", "plxs0", "10.140.0.0/24"));
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
        let info1 = s.dp_file(VF1, None);
        let info2 = s.dp_file(VF2, None);
        s.nad("sriov-a", &sriov_config("sriov-a"));
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
        let s = SriovNode(DeviceNode::start("cl-nosock", "plxs1", "10.141.0.0/24"));
        make_vfs(&[VF1]);
        s.nad("sriov-a", &sriov_config("sriov-a"));
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
        assert_nothing_attached(&s, &pod, "after the failed ADD");
        assert!(host_mac(&vf_name(VF1)).is_some());
        s.node.del(&pod, None).assert_ok("the runtime's DEL");
        s.node.assert_clean(&pod, "after DEL");
    });
}

#[test]
fn no_allocation_fails_add_cleanly() {
    sandbox::run("no_allocation_fails_add_cleanly", || {
        let s = SriovNode(DeviceNode::start("cl-noalloc", "plxs2", "10.142.0.0/24"));
        make_vfs(&[VF1]);
        let kubelet = s.kubelet();
        s.nad("sriov-a", &sriov_config("sriov-a"));
        s.nad("sriov-b", &sriov_config("sriov-b"));

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
        assert_nothing_attached(&s, &pod, "no device at all");

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
        assert_nothing_attached(&s, &pod, "one device for two");
        assert!(host_mac(&vf_name(VF1)).is_some(), "VF1 never left the host");
        s.node.del(&pod, None).assert_ok("the runtime's DEL");
    });
}

#[test]
fn malformed_device_info_fails_add_cleanly() {
    sandbox::run("malformed_device_info_fails_add_cleanly", || {
        let s = SriovNode(DeviceNode::start("cl-badinfo", "plxs3", "10.143.0.0/24"));
        make_vfs(&[VF1]);
        let kubelet = s.kubelet();
        kubelet.set_pod(
            NS,
            "p",
            vec![Container::new("app").device(RESOURCE, &[VF1])],
        );
        s.dp_file(VF1, Some("{\"type\":\"pci\","));
        s.nad("sriov-a", &sriov_config("sriov-a"));
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
        assert_nothing_attached(&s, &pod, "after the failed ADD");
    });
}

#[test]
fn slow_kubelet_fails_add_within_the_bound() {
    sandbox::run("slow_kubelet_fails_add_within_the_bound", || {
        let mut s = SriovNode(DeviceNode::start("cl-slow", "plxs4", "10.144.0.0/24"));
        s.node.set("podResourcesTimeoutSeconds", json!(0.5));
        make_vfs(&[VF1]);
        let kubelet = s.kubelet();
        kubelet.set_pod(
            NS,
            "p",
            vec![Container::new("app").device(RESOURCE, &[VF1])],
        );
        kubelet.set_delay(Duration::from_secs(3600));
        s.nad("sriov-a", &sriov_config("sriov-a"));
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
        assert_nothing_attached(&s, &pod, "after the failed ADD");
    });
}

#[test]
fn list_serves_a_kubelet_without_get() {
    sandbox::run("list_serves_a_kubelet_without_get", || {
        let s = SriovNode(DeviceNode::start("cl-list", "plxs5", "10.145.0.0/24"));
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
        s.nad("sriov-a", &sriov_config("sriov-a"));
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
            let s = SriovNode(DeviceNode::start("cl-rbsr", "plxs6", "10.146.0.0/24"));
            let macs = make_vfs(&[VF1]);
            let kubelet = s.kubelet();
            kubelet.set_pod(
                NS,
                "p",
                vec![Container::new("app").device(RESOURCE, &[VF1])],
            );
            s.dp_file(VF1, None);
            // The VF is attached by the list's first plugin, then the second one fails.
            s.nad(
                "sriov-f",
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
