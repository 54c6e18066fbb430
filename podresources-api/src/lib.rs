//! The kubelet's PodResources API, version `v1`: the messages of its `List` and `Get` calls.
//!
//! The kubelet serves the gRPC service `v1.PodResourcesLister` on a unix socket
//! (`/var/lib/kubelet/pod-resources/kubelet.sock` by default). It tells which devices of which
//! device-plugin resource are allocated to each container of each pod on the node. plexus uses
//! it to find the device (an SR-IOV VF's PCI address, for example) that a pod's attachment of a
//! NetworkAttachmentDefinition with `k8s.v1.cni.cncf.io/resourceName` must use.
//!
//! This crate holds only the message types, written by hand with `prost`'s derive from the
//! kubelet's `api.proto` (package `v1`): same field names, numbers and types, so the encoding
//! is the kubelet's. There is no generated code and no `protoc` at build time. Both sides use
//! this crate: plexus's client (`src/devices/podresources.rs`) and the test stand-in of the
//! kubelet (`conformance/src/podresources.rs`), so the two can never disagree on the wire.
//!
//! Messages of the service's other calls (`GetAllocatableResources`, the `v1alpha1` API) are
//! not here: plexus never calls them. Fields added to the kubelet's messages later are skipped
//! on decoding, as protobuf requires.
//!
//! | call | path | request | response |
//! |---|---|---|---|
//! | `List` | [`LIST_PATH`] | [`ListPodResourcesRequest`] | [`ListPodResourcesResponse`] |
//! | `Get` | [`GET_PATH`] | [`GetPodResourcesRequest`] | [`GetPodResourcesResponse`] |
//!
//! `Get` answers for one pod; kubelets before 1.27, and later ones with the
//! `KubeletPodResourcesGet` feature gate off, do not serve it (an `Unimplemented` status, or
//! `Unknown` with "PodResources API Get method disabled").

#![warn(missing_docs)]

/// The gRPC service name (`package v1; service PodResourcesLister`).
pub const SERVICE: &str = "v1.PodResourcesLister";
/// The HTTP/2 path of `List`.
pub const LIST_PATH: &str = "/v1.PodResourcesLister/List";
/// The HTTP/2 path of `Get`.
pub const GET_PATH: &str = "/v1.PodResourcesLister/Get";
/// Where the kubelet serves the API.
pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

/// `List`'s request: no fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodResourcesRequest {}

/// `List`'s response: every pod the kubelet runs, with its resources.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodResourcesResponse {
    /// One entry per pod.
    #[prost(message, repeated, tag = "1")]
    pub pod_resources: Vec<PodResources>,
}

/// `Get`'s request: one pod, by name and namespace.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetPodResourcesRequest {
    /// The pod's name.
    #[prost(string, tag = "1")]
    pub pod_name: String,
    /// The pod's namespace.
    #[prost(string, tag = "2")]
    pub pod_namespace: String,
}

/// `Get`'s response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetPodResourcesResponse {
    /// The pod's resources.
    #[prost(message, optional, tag = "1")]
    pub pod_resources: Option<PodResources>,
}

/// The resources of one pod.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodResources {
    /// The pod's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The pod's namespace.
    #[prost(string, tag = "2")]
    pub namespace: String,
    /// Its containers, in the order the kubelet lists them (the pod spec's).
    #[prost(message, repeated, tag = "3")]
    pub containers: Vec<ContainerResources>,
}

/// The resources of one container.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerResources {
    /// The container's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Device-plugin devices, per resource.
    #[prost(message, repeated, tag = "2")]
    pub devices: Vec<ContainerDevices>,
    /// Exclusive CPUs.
    #[prost(int64, repeated, tag = "3")]
    pub cpu_ids: Vec<i64>,
    /// Memory and hugepages.
    #[prost(message, repeated, tag = "4")]
    pub memory: Vec<ContainerMemory>,
    /// Devices from Dynamic Resource Allocation.
    #[prost(message, repeated, tag = "5")]
    pub dynamic_resources: Vec<DynamicResource>,
}

/// The devices of one resource allocated to a container.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerDevices {
    /// The extended resource name, e.g. `intel.com/sriov_netdevice`.
    #[prost(string, tag = "1")]
    pub resource_name: String,
    /// The device IDs, as the device plugin named them (a PCI address for SR-IOV VFs).
    #[prost(string, repeated, tag = "2")]
    pub device_ids: Vec<String>,
    /// NUMA affinity.
    #[prost(message, optional, tag = "3")]
    pub topology: Option<TopologyInfo>,
}

/// Memory of one type allocated to a container.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerMemory {
    /// `memory` or `hugepages-<size>`.
    #[prost(string, tag = "1")]
    pub memory_type: String,
    /// Bytes.
    #[prost(uint64, tag = "2")]
    pub size: u64,
    /// NUMA affinity.
    #[prost(message, optional, tag = "3")]
    pub topology: Option<TopologyInfo>,
}

/// NUMA nodes a resource is affine to.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TopologyInfo {
    /// The nodes.
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<NumaNode>,
}

/// One NUMA node (`NUMANode` in the proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NumaNode {
    /// The node's ID (`ID` in the proto).
    #[prost(int64, tag = "1")]
    pub id: i64,
}

/// A claim of Dynamic Resource Allocation used by a container.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DynamicResource {
    /// The claim's device class.
    #[prost(string, tag = "1")]
    pub class_name: String,
    /// The claim's name.
    #[prost(string, tag = "2")]
    pub claim_name: String,
    /// The claim's namespace.
    #[prost(string, tag = "3")]
    pub claim_namespace: String,
    /// Per-plugin resources of the claim.
    #[prost(message, repeated, tag = "4")]
    pub claim_resources: Vec<ClaimResource>,
}

/// Per-plugin resources of a claim.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClaimResource {
    /// CDI devices (`cdi_devices` in the proto).
    #[prost(message, repeated, tag = "1")]
    pub cdi_devices: Vec<CdiDevice>,
    /// The DRA driver of the device (Kubernetes 1.31+).
    #[prost(string, tag = "2")]
    pub driver_name: String,
    /// Its pool.
    #[prost(string, tag = "3")]
    pub pool_name: String,
    /// The device's name in the pool.
    #[prost(string, tag = "4")]
    pub device_name: String,
}

/// A CDI device (`CDIDevice` in the proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CdiDevice {
    /// The fully qualified CDI device name (`vendor.com/class=name`).
    #[prost(string, tag = "1")]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// The bytes are what protobuf's rules give for the kubelet's field numbers and types,
    /// written out by hand: a wrong tag or wire type here would be a silent misread there.
    #[test]
    fn wire_format_matches_the_kubelet_proto() {
        let get = GetPodResourcesRequest {
            pod_name: "p".into(),
            pod_namespace: "ns".into(),
        };
        // field 1, length-delimited (0x0a) "p"; field 2 (0x12) "ns".
        assert_eq!(get.encode_to_vec(), b"\x0a\x01p\x12\x02ns");

        let pod = PodResources {
            name: "p".into(),
            namespace: "n".into(),
            containers: vec![ContainerResources {
                name: "c".into(),
                devices: vec![ContainerDevices {
                    resource_name: "r".into(),
                    device_ids: vec!["a".into(), "b".into()],
                    topology: Some(TopologyInfo {
                        nodes: vec![NumaNode { id: 1 }],
                    }),
                }],
                cpu_ids: vec![2, 3],
                memory: vec![],
                dynamic_resources: vec![],
            }],
        };
        let list = ListPodResourcesResponse {
            pod_resources: vec![pod.clone()],
        };
        let devices: &[u8] = b"\x0a\x01r\x12\x01a\x12\x01b\x1a\x04\x0a\x02\x08\x01";
        let mut container = b"\x0a\x01c\x12".to_vec();
        container.push(devices.len() as u8);
        container.extend_from_slice(devices);
        // cpu_ids: packed repeated int64, field 3 (0x1a).
        container.extend_from_slice(b"\x1a\x02\x02\x03");
        let mut pod_bytes = b"\x0a\x01p\x12\x01n\x1a".to_vec();
        pod_bytes.push(container.len() as u8);
        pod_bytes.extend_from_slice(&container);
        let mut want = vec![0x0a, pod_bytes.len() as u8];
        want.extend_from_slice(&pod_bytes);
        assert_eq!(list.encode_to_vec(), want);
        assert_eq!(
            ListPodResourcesResponse::decode(want.as_slice()).unwrap(),
            list
        );

        let got = GetPodResourcesResponse {
            pod_resources: Some(pod),
        };
        assert_eq!(got.encode_to_vec()[0], 0x0a);
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // A ContainerDevices with an extra field 9 (varint 7) a newer kubelet might send.
        let bytes = b"\x0a\x01r\x12\x01a\x48\x07";
        let d = ContainerDevices::decode(&bytes[..]).unwrap();
        assert_eq!(d.resource_name, "r");
        assert_eq!(d.device_ids, ["a"]);
    }
}
