//! A simulated node with a kubelet PodResources socket and a device-information directory of
//! its own, for the tests of device lookups (SR-IOV through device plugins, DRA).

use std::fs;
use std::path::PathBuf;

use plexus_conformance::netns::{host_links, veth_pair};
use plexus_conformance::plugins::recorded;
use plexus_conformance::podresources::PodResourcesServer;
use serde_json::{Value, json};

use super::node::{NS, Node, Pod, cluster_bridge};

/// A [`Node`] whose node config points `podResourcesSocket` and `deviceInfoDir` into its own
/// directory.
pub struct DeviceNode {
    pub node: Node,
    /// Where [`DeviceNode::kubelet`] serves the PodResources API.
    pub socket: PathBuf,
    /// The node config's `deviceInfoDir`.
    pub devinfo: PathBuf,
}

impl DeviceNode {
    /// The node, its cluster network a bridge `bridge` on `subnet`.
    pub fn start(cluster: &str, bridge: &str, subnet: &str) -> DeviceNode {
        let mut node = Node::start(cluster_bridge(cluster, bridge, subnet));
        let socket = node.dir.path().join("pod-resources").join("kubelet.sock");
        fs::create_dir_all(socket.parent().expect("a parent")).expect("mkdir pod-resources");
        let devinfo = node.dir.path().join("devinfo");
        node.set("podResourcesSocket", json!(socket));
        node.set("podResourcesTimeoutSeconds", json!(2));
        node.set("deviceInfoDir", json!(devinfo));
        DeviceNode {
            node,
            socket,
            devinfo,
        }
    }

    /// The kubelet's PodResources stand-in on [`DeviceNode::socket`].
    pub fn kubelet(&self) -> PodResourcesServer {
        PodResourcesServer::start(&self.socket)
    }

    /// Stores NAD `name` in [`NS`] with `config`, annotated with the device resource
    /// `resource` (`k8s.v1.cni.cncf.io/resourceName`).
    pub fn resource_nad(&self, name: &str, resource: &str, config: &Value) {
        self.node.api.put(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"namespace": NS, "name": name,
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": resource}},
            "spec": {"config": config.to_string()}
        }));
    }

    /// The device plugin's device-information file for device `id` of `resource` (`body`, or
    /// a PCI description of `id`); returns its exact bytes.
    pub fn dp_file(&self, resource: &str, id: &str, body: Option<&str>) -> Vec<u8> {
        let dir = self.devinfo.join("dp");
        fs::create_dir_all(&dir).expect("mkdir dp");
        let text = body.map(str::to_owned).unwrap_or_else(|| {
            format!(r#"{{"type":"pci","version":"1.1.0","pci":{{"pci-address":"{id}"}}}}"#)
        });
        let name = format!("{}-{id}-device.json", resource.replace('/', "-"));
        fs::write(dir.join(name), &text).expect("write the device-information file");
        text.into_bytes()
    }

    /// The files in `<deviceInfoDir>/cni` (plexus's copies), sorted.
    pub fn copies(&self) -> Vec<String> {
        let Ok(dir) = fs::read_dir(self.devinfo.join("cni")) else {
            return vec![];
        };
        let mut v: Vec<String> = dir
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        v.sort();
        v
    }

    /// The copy's path for `pod`'s attachment `ifname` of NAD `nad`.
    pub fn copy_path(&self, nad: &str, pod: &Pod, ifname: &str) -> PathBuf {
        self.devinfo.join("cni").join(format!(
            "{NS}-{nad}-{}_{ifname}-device.json",
            pod.container_id
        ))
    }

    /// Asserts that nothing of `pod`'s ADD is left and no delegate of it ran.
    pub fn assert_nothing_attached(&self, pod: &Pod, when: &str) {
        self.node.assert_clean(pod, when);
        assert!(
            recorded(&pod.record_dir).is_empty(),
            "{when}: no delegate may have run"
        );
        assert!(self.copies().is_empty(), "{when}: no device-info copy");
    }
}

/// The host netdev standing in for the VF of device `id`.
pub fn vf_name(id: &str) -> String {
    format!("vf{}", id.replace([':', '.'], ""))
}

/// Creates the VF stand-ins for `ids` (veths on the host); returns their MACs.
pub fn make_vfs(ids: &[&str]) -> Vec<String> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let vf = vf_name(id);
            veth_pair(&vf, &format!("pf{i}{}", &vf[2..]));
            host_mac(&vf).expect("the VF exists on the host")
        })
        .collect()
}

/// The MAC of host link `name`.
pub fn host_mac(name: &str) -> Option<String> {
    host_links()
        .into_iter()
        .find(|l| l.name == name)
        .map(|l| l.mac)
}

/// The single-plugin SR-IOV network: the fake delegate, capable of both device keys.
pub fn sriov_config(name: &str) -> Value {
    json!({
        "cniVersion": "1.0.0", "name": name, "type": "fake-sriov",
        "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true}
    })
}

/// What fake-sriov received on ADD, in call order.
pub fn sriov_adds(pod: &Pod) -> Vec<Value> {
    recorded(&pod.record_dir)
        .into_iter()
        .filter(|i| i.command == "ADD")
        .map(|i| serde_json::from_slice(&i.stdin).expect("JSON stdin"))
        .collect()
}
