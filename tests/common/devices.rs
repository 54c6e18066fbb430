//! A simulated node with a kubelet PodResources socket and a device-information directory of
//! its own, for the tests of device lookups (SR-IOV through device plugins, DRA).

use std::fs;
use std::path::PathBuf;

use plexus_conformance::podresources::PodResourcesServer;
use serde_json::json;

use super::node::{Node, cluster_bridge};

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
}
