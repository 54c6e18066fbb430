//! Devices for attachments: SR-IOV VFs and other device-plugin resources.
//!
//! A NetworkAttachmentDefinition annotated `k8s.v1.cni.cncf.io/resourceName: <resource>` (for
//! example `intel.com/sriov_netdevice`) serves pods that requested that resource in a
//! container's `resources`. The device plugin gave the pod one or more devices of it (their
//! IDs are PCI addresses for SR-IOV VFs); the delegate (sriov-cni, host-device...) must be told
//! which one each attachment uses. This room finds that out and describes it; it never
//! touches a delegate or the journal.
//!
//! - [`DeviceSource`] is the seam to the kubelet: the device IDs allocated to a pod, per
//!   resource ([`Allocations`]). [`Kubelet`] is the real source, the PodResources API over the
//!   kubelet's unix socket ([`podresources`], feature `sriov`); unit tests use fakes.
//! - [`assign`] gives each attachment that needs one its device ([`Device`]), with the
//!   attachment's device-information file ([`devinfo`]) read and checked.
//! - [`inject`] writes the device ID into a delegate config.
//!
//! # When the kubelet is asked
//!
//! Only during ADD, in the plan stage, before the journal is written and before anything is
//! attached, and only when at least one of the pod's networks (the cluster network, the
//! node's `defaultNetworks`, the selected networks) comes from a NAD with a resource name:
//! a pod without such a network costs nothing, not even a socket connect. Then exactly once,
//! whatever the number of networks needing a device: one connection, the per-pod `Get` call,
//! and `List` (filtered to the pod's namespace and name) only when the kubelet does not serve
//! `Get` (before 1.27, or with the `KubeletPodResourcesGet` feature gate off: any gRPC status
//! from `Get` means "ask `List`"). The whole lookup, connect included, is bounded by
//! `podResourcesTimeoutSeconds` (default 5 s). DEL, CHECK, STATUS and GC never ask the
//! kubelet: everything DEL needs is in the journal, so DEL works with the kubelet gone.
//!
//! # Devices from ResourceClaims (DRA)
//!
//! A pod may get its devices through Dynamic Resource Allocation instead ([`dra`]). **Decision**:
//! the kubelet is asked first, and the pod's claims are read (through the API seam, [`Lookup::api`])
//! only when its device-plugin devices leave some attachment of a resource without a device; a
//! pod without claims, or one its device plugins serve entirely, costs no API request. A
//! resource's devices are then the kubelet's followed by the claims' (as Multus appends DRA
//! devices to the kubelet's), each ID once, and attachments take them in attachment order as
//! below. A kubelet that cannot be reached still fails ADD (code 11: the runtime retries, and
//! the pairing stays the same on every ADD); a plexus without the PodResources client (no
//! feature `sriov`) serves pods from their claims alone.
//!
//! # Which attachment gets which device
//!
//! For each resource, the pod's device IDs are taken in the order the kubelet returns them:
//! containers in the kubelet's order (the pod spec's), within a container in the order of its
//! device entries and their IDs. An ID listed twice (the kubelet hands an init container's
//! devices on to later containers) counts once. Attachments are served in attachment order,
//! each taking the next unused ID of its resource, so two attachments of one resource get two
//! different devices and a pod sees the same pairing on every ADD.
//!
//! An element of the networks annotation may carry `deviceID`. **Decision**: it is used only
//! when the kubelet allocated no (more) device of the resource to the pod; an allocated ID
//! always wins. For a network without a resource name the element's `deviceID` keeps its
//! existing meaning: `runtimeConfig.deviceID` for the plugins that declare the capability,
//! nothing else.
//!
//! # What the delegate gets
//!
//! For an attachment with a device (see [`inject`] and the transaction's plan):
//! - `deviceID` and `pciBusID` set to the ID at the top level of a single plugin config, or
//!   in every plugin object of a conflist (as sriov-cni and host-device read them); the other
//!   bytes of the config are kept, re-serialised compactly;
//! - `runtimeConfig.deviceID` for plugins declaring the `deviceID` capability;
//! - when the device plugin left a device-information file, `runtimeConfig.CNIDeviceInfoFile`
//!   (the attachment's own copy, see below) for plugins declaring that capability.
//!
//! # Device information (Device Information Specification v1.1)
//!
//! A device plugin may describe a device in
//! `<deviceInfoDir>/dp/<resource with / as ->-<device ID with / as ->-device.json`
//! (`deviceInfoDir` defaults to `/var/run/k8s.cni.cncf.io/devinfo`). When that file exists,
//! plexus reads it in the plan stage (a file that is not a JSON object with a string `type`,
//! or larger than 64 KiB, fails ADD before anything is attached; a missing file is normal and
//! means no device information), and:
//! - copies it for the attachment to `<deviceInfoDir>/cni/<network with / as ->-<container
//!   ID>_<ifname>-device.json` (byte for byte, mode 0444, written atomically just before the
//!   attachment's delegate runs, after the journal that records its path);
//! - passes that path as `runtimeConfig.CNIDeviceInfoFile` to capable plugins;
//! - puts the parsed content into the attachment's `device-info` in network-status.
//!
//! The copy is removed when the attachment is torn down: by DEL, by the rollback of a failed
//! ADD, by GC. **Decision**: a copy that cannot be removed is logged, not returned as an error:
//! it holds no address or interface, and a DEL failing forever on it would be worse.
//!
//! # Errors
//!
//! Every failure here fails ADD before anything is attached, and its message names the pod,
//! the network and the resource:
//! - the kubelet socket absent or refusing, or no answer in time: code 11 (try again later);
//!   a kubelet answering garbage: code 5;
//! - no (more) device of the resource allocated to the pod: code 7 (with claims, the details list
//!   every claimed device and what it carries);
//! - a claim of the pod not allocated, or missing: code 11; a claimed device naming the resource
//!   without a `k8s.cni.cncf.io/deviceID`: code 7; an API failure reading them: its own code
//!   (see [`dra`]);
//! - a malformed device-information file: code 6;
//! - a NAD naming a resource in a plexus built without the `sriov` feature, for a pod without
//!   claims: code 7.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::cni::Error;
use crate::k8s::api::KubeApi;

pub mod devinfo;
pub mod dra;
pub mod inject;
#[cfg(feature = "sriov")]
pub mod podresources;

/// Default bound of one PodResources lookup.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The kubelet's PodResources socket.
pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

/// The device IDs allocated to one pod, per resource name, each list in the stable order
/// described in the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allocations {
    by_resource: BTreeMap<String, Vec<String>>,
}

impl Allocations {
    /// Builds the allocations from `(resource, device IDs)` entries in the kubelet's order
    /// (containers in order, then each container's entries); an ID seen before for the same
    /// resource is skipped, empty IDs and resource names are ignored.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Self {
        let mut by_resource: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (resource, ids) in entries {
            if resource.is_empty() {
                continue;
            }
            let list = by_resource.entry(resource.to_owned()).or_default();
            for id in ids {
                if !id.is_empty() && !list.contains(id) {
                    list.push(id.clone());
                }
            }
        }
        Allocations { by_resource }
    }

    /// The device IDs of `resource`, in order (empty when none).
    pub fn ids(&self, resource: &str) -> &[String] {
        self.by_resource.get(resource).map_or(&[], Vec::as_slice)
    }
}

/// Why the kubelet could not tell a pod's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupFailure {
    /// The socket could not be connected (absent, refused, not a socket, no permission).
    Unreachable { socket: PathBuf, cause: String },
    /// No complete answer within the bound.
    Timeout { socket: PathBuf, after: Duration },
    /// The kubelet answered, but not with the pod's resources.
    Failed { socket: PathBuf, cause: String },
    /// This plexus was built without the PodResources client (feature `sriov`).
    Unsupported,
}

/// The seam to the kubelet: which devices a pod was given.
pub trait DeviceSource {
    /// The devices allocated to pod `namespace/name`, bounded in time. A pod the kubelet does
    /// not know has no allocations (not an error).
    fn allocations(&self, namespace: &str, name: &str) -> Result<Allocations, LookupFailure>;
}

/// The real source: the kubelet's PodResources API on `socket`, every lookup bounded by
/// `timeout`. Building it connects to nothing.
#[derive(Debug, Clone)]
pub struct Kubelet {
    pub socket: PathBuf,
    pub timeout: Duration,
}

impl DeviceSource for Kubelet {
    #[cfg(feature = "sriov")]
    fn allocations(&self, namespace: &str, name: &str) -> Result<Allocations, LookupFailure> {
        podresources::allocations(&self.socket, self.timeout, namespace, name)
    }

    #[cfg(not(feature = "sriov"))]
    fn allocations(&self, _namespace: &str, _name: &str) -> Result<Allocations, LookupFailure> {
        Err(LookupFailure::Unsupported)
    }
}

/// One attachment as the device assignment sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need<'a> {
    /// The network's name in network-status (`namespace/name`).
    pub network: &'a str,
    /// The attachment's interface in the pod.
    pub ifname: &'a str,
    /// The NAD's `k8s.v1.cni.cncf.io/resourceName`.
    pub resource: Option<&'a str>,
    /// A `deviceID` the pod's networks annotation asks for.
    pub requested: Option<&'a str>,
}

/// The device an attachment uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// The resource it belongs to.
    pub resource: String,
    /// Its ID (a PCI address for SR-IOV VFs).
    pub id: String,
    /// The device-information file the device plugin left, with the attachment's copy.
    pub info: Option<devinfo::DeviceInfo>,
}

/// What [`assign`] needs besides the attachments.
pub struct Lookup<'a> {
    /// The kubelet.
    pub source: &'a dyn DeviceSource,
    /// The Kubernetes API, for the pod's ResourceClaims (DRA); `None` without a client.
    pub api: Option<&'a dyn KubeApi>,
    /// The pod (from CNI_ARGS); `None` when the runtime did not name one.
    pub pod: Option<(&'a str, &'a str)>,
    /// CNI_CONTAINERID, part of the copies' names.
    pub container_id: &'a str,
    /// `deviceInfoDir`.
    pub device_info_dir: &'a Path,
}

/// The device IDs each resource offers the pod: the kubelet's, then the claims'.
struct Offered {
    kubelet: Allocations,
    /// The kubelet could not be asked: this plexus has no PodResources client.
    kubelet_unsupported: bool,
    /// The pod's claims and their devices, when they were read and the pod has any.
    claimed: Option<dra::Claimed>,
}

impl Offered {
    /// The IDs of `resource`: device plugins' first, then DRA's, each once.
    fn ids(&self, resource: &str) -> Vec<String> {
        let mut out: Vec<String> = self.kubelet.ids(resource).to_vec();
        if let Some(c) = &self.claimed {
            for id in c.ids(resource) {
                if !out.iter().any(|o| o == id) {
                    out.push(id.to_owned());
                }
            }
        }
        out
    }
}

/// Gives every attachment of `needs` whose network names a resource its device (same
/// positions in the returned list; `None` for the others). Asks the kubelet once, and only
/// when some attachment names a resource; reads the pod's ResourceClaims only when the kubelet's
/// devices do not serve every such attachment. See the module docs for the rules and the errors.
pub fn assign(needs: &[Need<'_>], lookup: &Lookup<'_>) -> Result<Vec<Option<Device>>, Error> {
    let Some(first) = needs.iter().find(|n| n.resource.is_some()) else {
        return Ok(vec![None; needs.len()]);
    };
    let pod_label = lookup.pod.map_or_else(
        || "(a pod CNI_ARGS does not name)".to_owned(),
        |(ns, name)| format!("{ns}/{name}"),
    );
    let Some((namespace, name)) = lookup.pod else {
        return Err(Error::invalid_config(
            format!(
                "network {} needs a device of resource {:?}, but CNI_ARGS names no pod (K8S_POD_NAMESPACE, K8S_POD_NAME) to look its devices up for",
                first.network,
                first.resource.unwrap_or_default()
            ),
            "device IDs come from the kubelet's PodResources API, per pod",
        ));
    };
    let started = std::time::Instant::now();
    let (kubelet, kubelet_unsupported) = match lookup.source.allocations(namespace, name) {
        Ok(a) => (a, false),
        Err(LookupFailure::Unsupported) => (Allocations::default(), true),
        Err(f) => return Err(lookup_error(&pod_label, first, &f)),
    };
    tracing::debug!(
        pod = %pod_label,
        ?kubelet,
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "PodResources lookup"
    );
    let mut offered = Offered {
        kubelet,
        kubelet_unsupported,
        claimed: None,
    };
    // DRA only when the device plugins leave an attachment without a device.
    let mut wanted: BTreeMap<&str, usize> = BTreeMap::new();
    for r in needs.iter().filter_map(|n| n.resource) {
        *wanted.entry(r).or_default() += 1;
    }
    let short = wanted
        .iter()
        .find(|(r, n)| offered.kubelet.ids(r).len() < **n);
    if let (Some((resource, _)), Some(api)) = (short, lookup.api) {
        let need = needs
            .iter()
            .find(|n| n.resource == Some(*resource))
            .unwrap_or(first);
        let prefix = need_prefix(&pod_label, need);
        let started = std::time::Instant::now();
        offered.claimed = dra::lookup(api, namespace, name, &prefix)?;
        tracing::debug!(
            pod = %pod_label,
            claimed = ?offered.claimed,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "DRA lookup"
        );
        if let Some(c) = &offered.claimed {
            for (r, n) in &wanted {
                let Some(broken) = c.broken(r) else { continue };
                if offered.ids(r).len() >= *n {
                    // Enough devices without it: not this pod's problem.
                    tracing::warn!(pod = %pod_label, resource = r, device = %broken.describe(),
                        problem = %broken.what(), "a claimed device of the resource is unusable");
                    continue;
                }
                let need = needs
                    .iter()
                    .find(|x| x.resource == Some(*r))
                    .unwrap_or(first);
                return Err(Error::invalid_config(
                    format!(
                        "{}, but {} has {}",
                        need_prefix(&pod_label, need),
                        broken.describe(),
                        broken.what()
                    ),
                    format!(
                        "the DRA driver {} must publish both {} and {} (strings) on the device in its ResourceSlice",
                        broken.driver,
                        dra::RESOURCE_NAME_ATTR,
                        dra::DEVICE_ID_ATTR
                    ),
                ));
            }
        }
    }
    let mut by_resource: HashMap<&str, Vec<String>> = HashMap::new();
    let mut next: HashMap<&str, usize> = HashMap::new();
    let mut users: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut out = Vec::with_capacity(needs.len());
    for need in needs {
        let Some(resource) = need.resource else {
            out.push(None);
            continue;
        };
        let ids = by_resource
            .entry(resource)
            .or_insert_with(|| offered.ids(resource));
        let k = next.entry(resource).or_insert(0);
        let id = match (ids.get(*k), need.requested) {
            (Some(id), requested) => {
                if requested.is_some_and(|r| r != id) {
                    tracing::info!(network = need.network, allocated = %id, requested = ?requested,
                        "a device is allocated; the networks annotation's deviceID is not used");
                }
                *k += 1;
                users.entry(resource).or_default().push(need.network);
                id.clone()
            }
            (None, Some(requested)) => {
                tracing::info!(
                    network = need.network,
                    resource,
                    device = requested,
                    "no (more) device of the resource allocated; using the networks annotation's deviceID"
                );
                requested.to_owned()
            }
            (None, None) => {
                return Err(no_allocation(
                    &pod_label,
                    need,
                    &offered,
                    users.get(resource).map_or(&[][..], Vec::as_slice),
                ));
            }
        };
        let info = devinfo::read(
            lookup.device_info_dir,
            resource,
            &id,
            need.network,
            lookup.container_id,
            need.ifname,
        )
        .map_err(|cause| {
            Error::decode(
                format!(
                    "pod {pod_label}: network {}: the device information of device {id:?} of resource {resource:?} is not usable: {cause}",
                    need.network
                ),
                "the device plugin writes this file (Device Information Specification); fix or remove it",
            )
        })?;
        out.push(Some(Device {
            resource: resource.to_owned(),
            id,
            info,
        }));
    }
    Ok(out)
}

/// `pod ns/p: network ns/x needs a device of resource "R"`.
fn need_prefix(pod: &str, need: &Need<'_>) -> String {
    format!(
        "pod {pod}: network {} needs a device of resource {:?}",
        need.network,
        need.resource.unwrap_or_default()
    )
}

fn lookup_error(pod: &str, need: &Need<'_>, f: &LookupFailure) -> Error {
    let prefix = need_prefix(pod, need);
    let kubelet = |socket: &Path| format!("the kubelet PodResources API at {}", socket.display());
    match f {
        LookupFailure::Unreachable { socket, cause } => Error::Kubernetes {
            msg: format!("{prefix}, but {} is not reachable", kubelet(socket)),
            details: format!(
                "{cause}; is the kubelet running, and is podResourcesSocket in the node config its socket?"
            ),
            transient: true,
        },
        LookupFailure::Timeout { socket, after } => Error::Kubernetes {
            msg: format!(
                "{prefix}, but {} did not answer within {:.1}s",
                kubelet(socket),
                after.as_secs_f64()
            ),
            details: "podResourcesTimeoutSeconds in the node config sets this bound".into(),
            transient: true,
        },
        LookupFailure::Failed { socket, cause } => Error::Kubernetes {
            msg: format!("{prefix}, but {} failed", kubelet(socket)),
            details: cause.clone(),
            transient: false,
        },
        LookupFailure::Unsupported => Error::invalid_config(
            format!("{prefix}, but this plexus was built without the PodResources client"),
            "build plexus with the \"sriov\" cargo feature (on by default)",
        ),
    }
}

fn no_allocation(pod: &str, need: &Need<'_>, offered: &Offered, users: &[&str]) -> Error {
    let resource = need.resource.unwrap_or_default();
    let prefix = need_prefix(pod, need);
    let dp = offered.kubelet.ids(resource).len();
    let Some(claimed) = &offered.claimed else {
        // The pod has no claim (or DRA could not be asked): the device plugins' story.
        if offered.kubelet_unsupported && dp == 0 {
            return lookup_error(pod, need, &LookupFailure::Unsupported);
        }
        let msg = if dp == 0 {
            format!("{prefix}, but the kubelet allocated none to the pod")
        } else {
            format!(
                "{prefix}, but the kubelet allocated only {dp} to the pod, all used by earlier attachments ({})",
                users.join(", ")
            )
        };
        return Error::invalid_config(
            msg,
            format!(
                "request one {resource:?} per attachment of this resource in a container's resources (requests and limits), or remove the network from the pod"
            ),
        );
    };
    let dra = claimed.ids(resource).len();
    let claims = claimed.claims.join(", ");
    let msg = if dp + dra == 0 {
        format!(
            "{prefix}, but no device allocated to the pod carries it: the kubelet allocated none, and no device of the pod's ResourceClaims ({claims}) has {} {resource:?}",
            dra::RESOURCE_NAME_ATTR
        )
    } else {
        format!(
            "{prefix}, but the pod has only {} ({dp} from the kubelet, {dra} from its ResourceClaims {claims}), all used by earlier attachments ({})",
            dp + dra,
            users.join(", ")
        )
    };
    let mut details: Vec<String> = claimed
        .devices
        .iter()
        .map(|d| format!("{}: {}", d.describe(), d.what()))
        .collect();
    details.push(format!(
        "each attachment of this network needs one device whose {} is {resource:?} (and a string {}), from a ResourceClaim or a device plugin",
        dra::RESOURCE_NAME_ATTR,
        dra::DEVICE_ID_ATTR
    ));
    Error::invalid_config(msg, details.join("; "))
}

/// The runtime values of an attachment with a device: `deviceID`, and `CNIDeviceInfoFile`
/// when the device has device information.
pub fn runtime_values(device: &Device) -> Vec<(&'static str, Value)> {
    let mut v = vec![("deviceID", Value::String(device.id.clone()))];
    if let Some(info) = &device.info {
        v.push((
            "CNIDeviceInfoFile",
            Value::String(info.copy.display().to_string()),
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A kubelet that answers from a table and counts its lookups.
    struct FakeKubelet {
        answer: Result<Allocations, LookupFailure>,
        lookups: Cell<usize>,
    }

    impl FakeKubelet {
        fn with(entries: &[(&str, &[&str])]) -> Self {
            let owned: Vec<(String, Vec<String>)> = entries
                .iter()
                .map(|(r, ids)| (r.to_string(), ids.iter().map(|s| s.to_string()).collect()))
                .collect();
            FakeKubelet {
                answer: Ok(Allocations::from_entries(
                    owned.iter().map(|(r, ids)| (r.as_str(), ids.as_slice())),
                )),
                lookups: Cell::new(0),
            }
        }
        fn failing(f: LookupFailure) -> Self {
            FakeKubelet {
                answer: Err(f),
                lookups: Cell::new(0),
            }
        }
    }

    impl DeviceSource for FakeKubelet {
        fn allocations(&self, ns: &str, name: &str) -> Result<Allocations, LookupFailure> {
            assert_eq!((ns, name), ("ns", "p"));
            self.lookups.set(self.lookups.get() + 1);
            self.answer.clone()
        }
    }

    fn need<'a>(network: &'a str, ifname: &'a str, resource: Option<&'a str>) -> Need<'a> {
        Need {
            network,
            ifname,
            resource,
            requested: None,
        }
    }

    fn lookup<'a>(source: &'a dyn DeviceSource, dir: &'a Path) -> Lookup<'a> {
        Lookup {
            source,
            api: None,
            pod: Some(("ns", "p")),
            container_id: "c1",
            device_info_dir: dir,
        }
    }

    const R: &str = "example.com/vf";

    fn ids(devs: &[Option<Device>]) -> Vec<Option<&str>> {
        devs.iter()
            .map(|d| d.as_ref().map(|d| d.id.as_str()))
            .collect()
    }

    #[cfg(not(feature = "sriov"))]
    #[test]
    fn without_the_feature_the_kubelet_is_unsupported() {
        let k = Kubelet {
            socket: DEFAULT_SOCKET.into(),
            timeout: DEFAULT_TIMEOUT,
        };
        assert_eq!(k.allocations("ns", "p"), Err(LookupFailure::Unsupported));
    }

    #[test]
    fn allocations_keep_kubelet_order_and_drop_repeats() {
        let a: Vec<String> = vec!["0000:01:00.2".into(), "0000:01:00.1".into()];
        let b: Vec<String> = vec!["0000:01:00.1".into(), "0000:01:00.3".into(), "".into()];
        let other: Vec<String> = vec!["x".into()];
        let al = Allocations::from_entries([
            (R, a.as_slice()),
            ("other/res", other.as_slice()),
            (R, b.as_slice()),
            ("", other.as_slice()),
        ]);
        assert_eq!(al.ids(R), ["0000:01:00.2", "0000:01:00.1", "0000:01:00.3"]);
        assert_eq!(al.ids("other/res"), ["x"]);
        assert!(al.ids("none").is_empty());
    }

    #[test]
    fn no_resource_no_lookup() {
        let k = FakeKubelet::failing(LookupFailure::Unsupported);
        let dir = tempfile::tempdir().unwrap();
        let got = assign(
            &[need("cl", "eth0", None), need("ns/a", "net1", None)],
            &lookup(&k, dir.path()),
        )
        .unwrap();
        assert_eq!(got, vec![None, None]);
        assert_eq!(k.lookups.get(), 0);
    }

    #[test]
    fn one_lookup_ids_in_attachment_order_each_once() {
        let k = FakeKubelet::with(&[(R, &["vf-a", "vf-b"]), ("other/r", &["o1"])]);
        let dir = tempfile::tempdir().unwrap();
        let needs = [
            need("cl", "eth0", None),
            need("ns/s", "net1", Some(R)),
            need("ns/o", "net2", Some("other/r")),
            need("ns/s", "net3", Some(R)),
        ];
        let got = assign(&needs, &lookup(&k, dir.path())).unwrap();
        assert_eq!(ids(&got), [None, Some("vf-a"), Some("o1"), Some("vf-b")]);
        assert_eq!(k.lookups.get(), 1);
        assert_eq!(got[1].as_ref().unwrap().resource, R);
        assert!(got[1].as_ref().unwrap().info.is_none());
    }

    #[test]
    fn exhausted_or_missing_allocation_names_pod_network_resource() {
        let dir = tempfile::tempdir().unwrap();
        let k = FakeKubelet::with(&[(R, &["vf-a"])]);
        let needs = [need("ns/s", "net1", Some(R)), need("ns/t", "net2", Some(R))];
        let e = assign(&needs, &lookup(&k, dir.path())).unwrap_err();
        assert_eq!(
            e.msg(),
            "pod ns/p: network ns/t needs a device of resource \"example.com/vf\", but the kubelet allocated only 1 to the pod, all used by earlier attachments (ns/s)"
        );
        assert_eq!(e.code().0, 7);
        let k = FakeKubelet::with(&[("other/r", &["o1"])]);
        let e = assign(&needs[..1], &lookup(&k, dir.path())).unwrap_err();
        assert_eq!(
            e.msg(),
            "pod ns/p: network ns/s needs a device of resource \"example.com/vf\", but the kubelet allocated none to the pod"
        );
    }

    #[test]
    fn annotation_device_id_only_without_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let k = FakeKubelet::with(&[(R, &["vf-a"])]);
        let mut a = need("ns/s", "net1", Some(R));
        a.requested = Some("asked-1");
        let mut b = need("ns/s", "net2", Some(R));
        b.requested = Some("asked-2");
        let got = assign(&[a, b], &lookup(&k, dir.path())).unwrap();
        assert_eq!(ids(&got), [Some("vf-a"), Some("asked-2")]);
    }

    #[test]
    fn lookup_failures_name_pod_network_resource_with_codes() {
        let dir = tempfile::tempdir().unwrap();
        let sock = PathBuf::from("/run/kubelet.sock");
        let cases = [
            (
                LookupFailure::Unreachable {
                    socket: sock.clone(),
                    cause: "No such file or directory (os error 2)".into(),
                },
                11,
                "pod ns/p: network ns/s needs a device of resource \"example.com/vf\", but the kubelet PodResources API at /run/kubelet.sock is not reachable",
            ),
            (
                LookupFailure::Timeout {
                    socket: sock.clone(),
                    after: Duration::from_millis(1500),
                },
                11,
                "pod ns/p: network ns/s needs a device of resource \"example.com/vf\", but the kubelet PodResources API at /run/kubelet.sock did not answer within 1.5s",
            ),
            (
                LookupFailure::Failed {
                    socket: sock.clone(),
                    cause: "bad".into(),
                },
                5,
                "pod ns/p: network ns/s needs a device of resource \"example.com/vf\", but the kubelet PodResources API at /run/kubelet.sock failed",
            ),
            (
                LookupFailure::Unsupported,
                7,
                "pod ns/p: network ns/s needs a device of resource \"example.com/vf\", but this plexus was built without the PodResources client",
            ),
        ];
        for (failure, code, msg) in cases {
            let k = FakeKubelet::failing(failure);
            let needs = [need("cl", "eth0", None), need("ns/s", "net1", Some(R))];
            let e = assign(&needs, &lookup(&k, dir.path())).unwrap_err();
            assert_eq!((e.code().0, e.msg().as_str()), (code, msg));
        }
    }

    #[test]
    fn without_a_pod_a_resource_cannot_be_served() {
        let dir = tempfile::tempdir().unwrap();
        let k = FakeKubelet::with(&[(R, &["vf-a"])]);
        let mut l = lookup(&k, dir.path());
        l.pod = None;
        let e = assign(&[need("ns/s", "net1", Some(R))], &l).unwrap_err();
        assert!(
            e.msg()
                .starts_with("network ns/s needs a device of resource")
        );
        assert_eq!(k.lookups.get(), 0);
    }

    #[test]
    fn device_info_is_read_and_its_copy_named() {
        let dir = tempfile::tempdir().unwrap();
        let dp = dir.path().join("dp");
        std::fs::create_dir_all(&dp).unwrap();
        let body = br#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:01:00.1"}}"#;
        std::fs::write(dp.join("example.com-vf-0000:01:00.1-device.json"), body).unwrap();
        std::fs::write(dp.join("example.com-vf-0000:01:00.2-device.json"), b"{oops").unwrap();
        let k = FakeKubelet::with(&[(R, &["0000:01:00.1", "0000:01:00.2"])]);
        let got = assign(&[need("ns/s", "net1", Some(R))], &lookup(&k, dir.path())).unwrap();
        let dev = got[0].as_ref().unwrap();
        let info = dev.info.as_ref().unwrap();
        assert_eq!(info.bytes, body);
        assert_eq!(info.content["pci"]["pci-address"], "0000:01:00.1");
        assert_eq!(info.copy, dir.path().join("cni/ns-s-c1_net1-device.json"));
        assert_eq!(
            runtime_values(dev),
            vec![
                ("deviceID", Value::from("0000:01:00.1")),
                (
                    "CNIDeviceInfoFile",
                    Value::from(info.copy.display().to_string())
                )
            ]
        );
        // The second device's file is malformed: code 6, before anything.
        let e = assign(
            &[need("ns/s", "net1", Some(R)), need("ns/s", "net2", Some(R))],
            &lookup(&k, dir.path()),
        )
        .unwrap_err();
        assert_eq!(e.code().0, 6);
        assert!(
            e.msg().starts_with(
                "pod ns/p: network ns/s: the device information of device \"0000:01:00.2\" of resource \"example.com/vf\" is not usable: "
            ),
            "{}",
            e.msg()
        );
    }

    #[test]
    fn claims_are_read_only_when_device_plugins_fall_short_and_serve_after_them() {
        use dra::tests::{FakeApi, claim as dra_claim, pod_with, slice, vf};
        let dir = tempfile::tempdir().unwrap();
        let api = FakeApi {
            pod: Some(pod_with(&["c"])),
            claims: vec![dra_claim(
                "c",
                &[("d", "n1", "vf-2", "r"), ("d", "n1", "vf-3", "r")],
            )],
            slices: vec![(
                Some("n1".into()),
                slice(
                    "d",
                    "n1",
                    0,
                    serde_json::json!([
                        vf("vf-2", Some("dra-2"), Some(R)),
                        vf("vf-3", Some("dra-3"), Some(R))
                    ]),
                ),
            )],
            ..FakeApi::default()
        };
        let k = FakeKubelet::with(&[(R, &["dp-1"])]);
        let mut l = lookup(&k, dir.path());
        l.api = Some(&api);
        // The device plugin serves the only attachment: no API call.
        let got = assign(&[need("ns/s", "net1", Some(R))], &l).unwrap();
        assert_eq!(ids(&got), [Some("dp-1")]);
        assert!(api.calls.borrow().is_empty());
        // Three attachments: the device plugin's first, then the claim's in its order.
        let needs = [
            need("ns/s", "net1", Some(R)),
            need("cl", "eth0", None),
            need("ns/s", "net2", Some(R)),
            need("ns/t", "net3", Some(R)),
        ];
        let got = assign(&needs, &l).unwrap();
        assert_eq!(
            ids(&got),
            [Some("dp-1"), None, Some("dra-2"), Some("dra-3")]
        );
        assert_eq!(api.calls.borrow().len(), 3, "{:?}", api.calls.borrow());
        // One more than both sources have.
        let mut more = needs.to_vec();
        more.push(need("ns/u", "net4", Some(R)));
        let e = assign(&more, &l).unwrap_err();
        assert_eq!(e.code().0, 7);
        assert_eq!(
            e.msg(),
            "pod ns/p: network ns/u needs a device of resource \"example.com/vf\", but the pod has only 3 (1 from the kubelet, 2 from its ResourceClaims ns/c), all used by earlier attachments (ns/s, ns/s, ns/t)"
        );
        // Without a PodResources client (no feature `sriov`), the claims alone serve.
        let k = FakeKubelet::failing(LookupFailure::Unsupported);
        let mut l = lookup(&k, dir.path());
        l.api = Some(&api);
        let got = assign(&needs[..1], &l).unwrap();
        assert_eq!(ids(&got), [Some("dra-2")]);
    }
}
