//! The CRI `runtime.v1` messages the rig uses, derived by hand with prost (no protoc, no build
//! script), as `plexus-podresources-api` does for the kubelet's PodResources API.
//!
//! Only the fields the rig sets or reads are declared: proto3 decoders skip fields they do not
//! know, so a message with fewer fields decodes the runtime's answer, and the runtime reads
//! absent fields as their defaults. Every tag is the one of `api.proto` in `k8s.io/cri-api`
//! (`pkg/apis/runtime/v1`), checked field by field against it; a wrong tag would not fail to
//! compile, it would put a value in another field, so the tests assert what containerd
//! answers back (metadata, annotations, IPs), which a wrong tag would garble.

use std::collections::HashMap;

/// The gRPC path of a `runtime.v1.RuntimeService` method.
macro_rules! runtime_path {
    ($m:literal) => {
        concat!("/runtime.v1.RuntimeService/", $m)
    };
}
/// The gRPC path of a `runtime.v1.ImageService` method.
macro_rules! image_path {
    ($m:literal) => {
        concat!("/runtime.v1.ImageService/", $m)
    };
}

/// `RuntimeService/Version`.
pub const VERSION: &str = runtime_path!("Version");
/// `RuntimeService/RunPodSandbox`.
pub const RUN_POD_SANDBOX: &str = runtime_path!("RunPodSandbox");
/// `RuntimeService/StopPodSandbox`.
pub const STOP_POD_SANDBOX: &str = runtime_path!("StopPodSandbox");
/// `RuntimeService/RemovePodSandbox`.
pub const REMOVE_POD_SANDBOX: &str = runtime_path!("RemovePodSandbox");
/// `RuntimeService/PodSandboxStatus`.
pub const POD_SANDBOX_STATUS: &str = runtime_path!("PodSandboxStatus");
/// `RuntimeService/ListPodSandbox`.
pub const LIST_POD_SANDBOX: &str = runtime_path!("ListPodSandbox");
/// `RuntimeService/CreateContainer`.
pub const CREATE_CONTAINER: &str = runtime_path!("CreateContainer");
/// `RuntimeService/StartContainer`.
pub const START_CONTAINER: &str = runtime_path!("StartContainer");
/// `RuntimeService/StopContainer`.
pub const STOP_CONTAINER: &str = runtime_path!("StopContainer");
/// `RuntimeService/RemoveContainer`.
pub const REMOVE_CONTAINER: &str = runtime_path!("RemoveContainer");
/// `RuntimeService/ContainerStatus`.
pub const CONTAINER_STATUS: &str = runtime_path!("ContainerStatus");
/// `RuntimeService/Status`.
pub const STATUS: &str = runtime_path!("Status");
/// `ImageService/ImageStatus`.
pub const IMAGE_STATUS: &str = image_path!("ImageStatus");

/// `NamespaceMode`: POD.
pub const NAMESPACE_POD: i32 = 0;
/// `NamespaceMode`: CONTAINER.
pub const NAMESPACE_CONTAINER: i32 = 1;
/// `NamespaceMode`: NODE (hostNetwork, hostPID, hostIPC).
pub const NAMESPACE_NODE: i32 = 2;

/// `PodSandboxState`: SANDBOX_READY.
pub const SANDBOX_READY: i32 = 0;
/// `PodSandboxState`: SANDBOX_NOTREADY.
pub const SANDBOX_NOTREADY: i32 = 1;

/// `ContainerState`: CONTAINER_CREATED.
pub const CONTAINER_CREATED: i32 = 0;
/// `ContainerState`: CONTAINER_RUNNING.
pub const CONTAINER_RUNNING: i32 = 1;
/// `ContainerState`: CONTAINER_EXITED.
pub const CONTAINER_EXITED: i32 = 2;

/// `VersionRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionRequest {
    /// The kubelet's runtime API version.
    #[prost(string, tag = "1")]
    pub version: String,
}

/// `VersionResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionResponse {
    /// The kubelet runtime API version.
    #[prost(string, tag = "1")]
    pub version: String,
    /// The runtime's name (`containerd`).
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    /// The runtime's version.
    #[prost(string, tag = "3")]
    pub runtime_version: String,
    /// The runtime's CRI version (`v1`).
    #[prost(string, tag = "4")]
    pub runtime_api_version: String,
}

/// `PodSandboxMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxMetadata {
    /// The pod's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The pod's UID.
    #[prost(string, tag = "2")]
    pub uid: String,
    /// The pod's namespace.
    #[prost(string, tag = "3")]
    pub namespace: String,
    /// The attempt number.
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
}

/// `NamespaceOption`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceOption {
    /// The network namespace's mode ([`NAMESPACE_POD`], [`NAMESPACE_NODE`]).
    #[prost(int32, tag = "1")]
    pub network: i32,
    /// The PID namespace's mode.
    #[prost(int32, tag = "2")]
    pub pid: i32,
    /// The IPC namespace's mode.
    #[prost(int32, tag = "3")]
    pub ipc: i32,
}

/// `LinuxSandboxSecurityContext`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxSandboxSecurityContext {
    /// The sandbox's namespaces.
    #[prost(message, optional, tag = "1")]
    pub namespace_options: Option<NamespaceOption>,
}

/// `LinuxPodSandboxConfig`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxPodSandboxConfig {
    /// The parent cgroup (cgroupfs syntax).
    #[prost(string, tag = "1")]
    pub cgroup_parent: String,
    /// The sandbox's security context.
    #[prost(message, optional, tag = "2")]
    pub security_context: Option<LinuxSandboxSecurityContext>,
}

/// `PodSandboxConfig`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxConfig {
    /// The pod's identity.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<PodSandboxMetadata>,
    /// The sandbox's hostname.
    #[prost(string, tag = "2")]
    pub hostname: String,
    /// The directory of the containers' logs.
    #[prost(string, tag = "3")]
    pub log_directory: String,
    /// The pod's labels.
    #[prost(map = "string, string", tag = "6")]
    pub labels: HashMap<String, String>,
    /// The pod's annotations (the kubelet copies all of them here).
    #[prost(map = "string, string", tag = "7")]
    pub annotations: HashMap<String, String>,
    /// Linux settings.
    #[prost(message, optional, tag = "8")]
    pub linux: Option<LinuxPodSandboxConfig>,
}

/// `RunPodSandboxRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunPodSandboxRequest {
    /// The sandbox.
    #[prost(message, optional, tag = "1")]
    pub config: Option<PodSandboxConfig>,
    /// The runtime handler (empty: the default).
    #[prost(string, tag = "2")]
    pub runtime_handler: String,
}

/// `RunPodSandboxResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunPodSandboxResponse {
    /// The new sandbox's ID.
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
}

/// `StopPodSandboxRequest` and `RemovePodSandboxRequest` (one field, the same tag).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxIdRequest {
    /// The sandbox's ID.
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
}

/// Every empty response (`StopPodSandboxResponse`, `StartContainerResponse`...).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// `PodSandboxStatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatusRequest {
    /// The sandbox's ID.
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
    /// Whether to add the runtime's `info`.
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

/// `PodIP`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodIp {
    /// An IP address.
    #[prost(string, tag = "1")]
    pub ip: String,
}

/// `PodSandboxNetworkStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxNetworkStatus {
    /// The pod's IP.
    #[prost(string, tag = "1")]
    pub ip: String,
    /// Its other IPs (the other family).
    #[prost(message, repeated, tag = "2")]
    pub additional_ips: Vec<PodIp>,
}

/// `PodSandboxStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatus {
    /// The sandbox's ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The pod's identity.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    /// [`SANDBOX_READY`] or [`SANDBOX_NOTREADY`].
    #[prost(int32, tag = "3")]
    pub state: i32,
    /// Creation time, ns.
    #[prost(int64, tag = "4")]
    pub created_at: i64,
    /// The pod's network as the runtime knows it.
    #[prost(message, optional, tag = "5")]
    pub network: Option<PodSandboxNetworkStatus>,
    /// The labels.
    #[prost(map = "string, string", tag = "7")]
    pub labels: HashMap<String, String>,
    /// The annotations, as given.
    #[prost(map = "string, string", tag = "8")]
    pub annotations: HashMap<String, String>,
}

/// `PodSandboxStatusResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatusResponse {
    /// The status.
    #[prost(message, optional, tag = "1")]
    pub status: Option<PodSandboxStatus>,
    /// With `verbose`: the runtime's own details (JSON values).
    #[prost(map = "string, string", tag = "2")]
    pub info: HashMap<String, String>,
}

/// `ListPodSandboxRequest` (no filter: every sandbox).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodSandboxRequest {}

/// `PodSandbox`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandbox {
    /// The sandbox's ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The pod's identity.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    /// [`SANDBOX_READY`] or [`SANDBOX_NOTREADY`].
    #[prost(int32, tag = "3")]
    pub state: i32,
}

/// `ListPodSandboxResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodSandboxResponse {
    /// Every sandbox.
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<PodSandbox>,
}

/// `ContainerMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerMetadata {
    /// The container's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The attempt number.
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
}

/// `ImageSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageSpec {
    /// The image reference.
    #[prost(string, tag = "1")]
    pub image: String,
}

/// `KeyValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `Mount`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Mount {
    /// Where in the container.
    #[prost(string, tag = "1")]
    pub container_path: String,
    /// What on the host.
    #[prost(string, tag = "2")]
    pub host_path: String,
    /// Read-only.
    #[prost(bool, tag = "3")]
    pub readonly: bool,
}

/// `Capability`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Capability {
    /// Capabilities to add.
    #[prost(string, repeated, tag = "1")]
    pub add_capabilities: Vec<String>,
    /// Capabilities to drop (`ALL`).
    #[prost(string, repeated, tag = "2")]
    pub drop_capabilities: Vec<String>,
}

/// `Int64Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int64Value {
    /// The value.
    #[prost(int64, tag = "1")]
    pub value: i64,
}

/// `LinuxContainerSecurityContext`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerSecurityContext {
    /// Capabilities.
    #[prost(message, optional, tag = "1")]
    pub capabilities: Option<Capability>,
    /// The container's namespaces.
    #[prost(message, optional, tag = "3")]
    pub namespace_options: Option<NamespaceOption>,
    /// The UID to run as.
    #[prost(message, optional, tag = "5")]
    pub run_as_user: Option<Int64Value>,
    /// A read-only root file system.
    #[prost(bool, tag = "7")]
    pub readonly_rootfs: bool,
    /// no_new_privs (`allowPrivilegeEscalation: false`).
    #[prost(bool, tag = "11")]
    pub no_new_privs: bool,
}

/// `LinuxContainerConfig`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxContainerConfig {
    /// The security context.
    #[prost(message, optional, tag = "2")]
    pub security_context: Option<LinuxContainerSecurityContext>,
}

/// `ContainerConfig`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerConfig {
    /// The container's identity.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ContainerMetadata>,
    /// The image.
    #[prost(message, optional, tag = "2")]
    pub image: Option<ImageSpec>,
    /// The entrypoint (`command:`).
    #[prost(string, repeated, tag = "3")]
    pub command: Vec<String>,
    /// Its arguments (`args:`).
    #[prost(string, repeated, tag = "4")]
    pub args: Vec<String>,
    /// The environment.
    #[prost(message, repeated, tag = "6")]
    pub envs: Vec<KeyValue>,
    /// Mounts.
    #[prost(message, repeated, tag = "7")]
    pub mounts: Vec<Mount>,
    /// Labels.
    #[prost(map = "string, string", tag = "9")]
    pub labels: HashMap<String, String>,
    /// Annotations.
    #[prost(map = "string, string", tag = "10")]
    pub annotations: HashMap<String, String>,
    /// The log file, relative to the sandbox's log directory.
    #[prost(string, tag = "11")]
    pub log_path: String,
    /// Linux settings.
    #[prost(message, optional, tag = "15")]
    pub linux: Option<LinuxContainerConfig>,
}

/// `CreateContainerRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerRequest {
    /// The sandbox it goes in.
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
    /// The container.
    #[prost(message, optional, tag = "2")]
    pub config: Option<ContainerConfig>,
    /// The sandbox's config, again.
    #[prost(message, optional, tag = "3")]
    pub sandbox_config: Option<PodSandboxConfig>,
}

/// `CreateContainerResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerResponse {
    /// The new container's ID.
    #[prost(string, tag = "1")]
    pub container_id: String,
}

/// `StartContainerRequest`, `RemoveContainerRequest` (one field, the same tag).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerIdRequest {
    /// The container's ID.
    #[prost(string, tag = "1")]
    pub container_id: String,
}

/// `StopContainerRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StopContainerRequest {
    /// The container's ID.
    #[prost(string, tag = "1")]
    pub container_id: String,
    /// Grace period, s, before SIGKILL.
    #[prost(int64, tag = "2")]
    pub timeout: i64,
}

/// `ContainerStatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusRequest {
    /// The container's ID.
    #[prost(string, tag = "1")]
    pub container_id: String,
    /// Whether to add the runtime's `info`.
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

/// `ContainerStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatus {
    /// The container's ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Its identity.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<ContainerMetadata>,
    /// [`CONTAINER_CREATED`], [`CONTAINER_RUNNING`], [`CONTAINER_EXITED`]...
    #[prost(int32, tag = "3")]
    pub state: i32,
    /// The exit code, once exited.
    #[prost(int32, tag = "7")]
    pub exit_code: i32,
    /// Why it is in this state.
    #[prost(string, tag = "10")]
    pub reason: String,
    /// More about it.
    #[prost(string, tag = "11")]
    pub message: String,
}

/// `ContainerStatusResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatusResponse {
    /// The status.
    #[prost(message, optional, tag = "1")]
    pub status: Option<ContainerStatus>,
}

/// `StatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {
    /// Whether to add the runtime's `info` (containerd: its loaded CNI config, `cniconfig`).
    #[prost(bool, tag = "1")]
    pub verbose: bool,
}

/// `StatusResponse` (the conditions left out: the rig reads `info`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    /// With `verbose`: the runtime's own details (JSON values).
    #[prost(map = "string, string", tag = "2")]
    pub info: HashMap<String, String>,
}

/// `ImageStatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageStatusRequest {
    /// The image.
    #[prost(message, optional, tag = "1")]
    pub image: Option<ImageSpec>,
}

/// `Image`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    /// The image's ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Its tags.
    #[prost(string, repeated, tag = "2")]
    pub repo_tags: Vec<String>,
}

/// `ImageStatusResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageStatusResponse {
    /// The image; `None` when the runtime does not have it.
    #[prost(message, optional, tag = "1")]
    pub image: Option<Image>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// A few encodings written out from `api.proto`'s tags, byte by byte, so that a changed
    /// tag in this file fails here rather than only against a runtime.
    #[test]
    fn tags_are_those_of_the_cri_proto() {
        let m = PodSandboxMetadata {
            name: "a".into(),
            uid: "u".into(),
            namespace: "n".into(),
            attempt: 2,
        };
        assert_eq!(
            m.encode_to_vec(),
            [0x0a, 1, b'a', 0x12, 1, b'u', 0x1a, 1, b'n', 0x20, 2]
        );
        let c = PodSandboxConfig {
            log_directory: "l".into(),
            annotations: [("k".to_owned(), "v".to_owned())].into(),
            ..Default::default()
        };
        // log_directory = 3; annotations = 7 (an entry: key 1, value 2).
        assert_eq!(
            c.encode_to_vec(),
            [0x1a, 1, b'l', 0x3a, 6, 0x0a, 1, b'k', 0x12, 1, b'v']
        );
        let s = LinuxContainerSecurityContext {
            namespace_options: Some(NamespaceOption {
                network: NAMESPACE_NODE,
                ..Default::default()
            }),
            no_new_privs: true,
            ..Default::default()
        };
        // namespace_options = 3 { network = 1 }; no_new_privs = 11.
        assert_eq!(s.encode_to_vec(), [0x1a, 2, 0x08, 2, 0x58, 1]);
        let n =
            PodSandboxNetworkStatus::decode(&[0x0a, 1, b'x', 0x12, 3, 0x0a, 1, b'y'][..]).unwrap();
        assert_eq!((n.ip.as_str(), n.additional_ips[0].ip.as_str()), ("x", "y"));
        let cfg = ContainerConfig {
            log_path: "p".into(),
            linux: Some(LinuxContainerConfig::default()),
            ..Default::default()
        };
        // log_path = 11, linux = 15.
        assert_eq!(cfg.encode_to_vec(), [0x5a, 1, b'p', 0x7a, 0]);
    }
}
