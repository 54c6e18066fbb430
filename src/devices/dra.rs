//! Devices from Dynamic Resource Allocation (DRA, `resource.k8s.io/v1`, GA in Kubernetes 1.34).
//!
//! A pod can get its VFs through ResourceClaims (the NPWG SR-IOV DRA driver) instead of a
//! device plugin. The convention is Multus's (4.3), with the same objects and attribute names:
//!
//! - the NAD keeps `k8s.v1.cni.cncf.io/resourceName: <name>`;
//! - the pod's `status.resourceClaimStatuses[]` name its ResourceClaims (`name`,
//!   `resourceClaimName`; an entry without `resourceClaimName` needs no claim and is skipped);
//! - each claim's `status.allocation.devices.results[]` names the allocated devices (`driver`,
//!   `pool`, `device`, `request`);
//! - the ResourceSlices of that driver and pool list the devices (`spec.devices[]`: `name`,
//!   `attributes`); the allocated device's attributes `k8s.cni.cncf.io/deviceID`
//!   (`{"string": "<PCI address>"}`) and `k8s.cni.cncf.io/resourceName` (`{"string": ...}`,
//!   equal to the NAD's resourceName) make it a network device;
//! - a pod using DRA's extended-resource mapping has `status.extendedResourceClaimStatus`
//!   (`resourceClaimName`, `requestMappings[]`: `requestName` → `resourceName`); the devices
//!   of a mapped request belong to that resource name.
//!
//! This file holds the parts of those objects plexus reads ([`PodClaims`], [`ResourceClaim`],
//! [`ResourceSlice`], parsed leniently from the API's JSON: no typed k8s-openapi structs, whose
//! deserialisers would be most of the cost), the pure matching ([`match_devices`]) and the
//! reads ([`lookup`], through [`KubeApi`]).
//!
//! # Requests (as few as the API allows)
//!
//! Only when a device plugin left some attachment without a device (see [`super`]): one read
//! of the pod (`spec.nodeName` and `status`; ADD's own read is of the metadata only, and none
//! at all when the runtime passes the annotations), each distinct claim read once, and the
//! ResourceSlices of each driver that allocated a device listed once, with the narrowest field
//! selector the API server supports for them: `spec.driver=<driver>,spec.nodeName=<node>`
//! (ResourceSlice's selectable fields are `metadata.name`, `spec.driver` and `spec.nodeName`;
//! `spec.pool.name` is not one, so the pool is filtered here). Reads ask the API server's watch
//! cache (`resourceVersion=0`); a pod without claim statuses, and a claim missing or not
//! allocated, are read once more from storage before plexus believes it (the cache may lag a
//! moment). A device not found on the node's slices (a pool that is not node-local:
//! `allNodes` or a node selector) makes one more list of that driver, `spec.driver=<driver>`
//! alone. Of a pool spread over several slices only the slices of its newest
//! `spec.pool.generation` count (older ones are being replaced).
//!
//! # Which devices serve which resource
//!
//! In claim order (`status.resourceClaimStatuses`, then the extended-resource claim), and in
//! each claim in `results` order; a device allocated twice counts once. A device is a network
//! device of resource R when its `k8s.cni.cncf.io/resourceName` is R (for a mapped request of
//! the extended-resource claim: when the mapping names R, the attribute being absent or R) and
//! it has a string `k8s.cni.cncf.io/deviceID`. **Decision** (as Multus): a device with neither
//! attribute (a GPU in the same pod, say) is not a network device and is skipped, and so is
//! one whose resourceName no network of the pod names; they are listed in the error when a
//! network finds no device. A device carrying a resourceName some attachment needs but no
//! deviceID fails ADD: the driver published half of what it must.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use crate::cni::Error;
use crate::k8s::api::KubeApi;

/// The device attribute holding the ID the delegate gets (a PCI address for a VF).
pub const DEVICE_ID_ATTR: &str = "k8s.cni.cncf.io/deviceID";
/// The device attribute naming the resource, to be equal to the NAD's resourceName.
pub const RESOURCE_NAME_ATTR: &str = "k8s.cni.cncf.io/resourceName";

/// The parts of a pod DRA needs: its node and its claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodClaims {
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// `status.resourceClaimStatuses[].resourceClaimName`, in order, those without one left out.
    pub claims: Vec<String>,
    /// `status.extendedResourceClaimStatus`.
    pub extended: Option<ExtendedClaim>,
}

/// `status.extendedResourceClaimStatus`: the claim made for extended resources backed by DRA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendedClaim {
    pub claim: String,
    /// `(requestName, resourceName)`, in order.
    pub mappings: Vec<(String, String)>,
}

impl PodClaims {
    /// Whether the pod has any claim.
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.extended.is_none()
    }

    /// The claim names to read, each once: the claim statuses' then the extended one.
    pub fn claim_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let ext = self.extended.as_ref().map(|e| e.claim.as_str());
        for c in self.claims.iter().map(String::as_str).chain(ext) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    /// From a pod object's JSON (`spec`, `status`); missing or malformed parts are empty.
    pub fn from_pod(pod: &Value) -> PodClaims {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Status {
            resource_claim_statuses: Vec<ClaimStatus>,
            extended_resource_claim_status: Option<Extended>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct ClaimStatus {
            resource_claim_name: Option<String>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Extended {
            resource_claim_name: String,
            request_mappings: Vec<Mapping>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Mapping {
            request_name: String,
            resource_name: String,
        }
        let status: Status = pod
            .get("status")
            .and_then(|s| Status::deserialize(s).ok())
            .unwrap_or_default();
        PodClaims {
            node_name: pod["spec"]["nodeName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            claims: status
                .resource_claim_statuses
                .into_iter()
                .filter_map(|c| c.resource_claim_name.filter(|n| !n.is_empty()))
                .collect(),
            extended: status
                .extended_resource_claim_status
                .filter(|e| !e.resource_claim_name.is_empty())
                .map(|e| ExtendedClaim {
                    claim: e.resource_claim_name,
                    mappings: e
                        .request_mappings
                        .into_iter()
                        .map(|m| (m.request_name, m.resource_name))
                        .collect(),
                }),
        }
    }
}

/// One allocated device of a claim (`status.allocation.devices.results[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AllocatedDevice {
    pub driver: String,
    pub pool: String,
    pub device: String,
    pub request: String,
}

/// The parts of a ResourceClaim plexus reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceClaim {
    pub namespace: String,
    pub name: String,
    /// Whether `status.allocation` is set.
    pub allocated: bool,
    /// Its devices, in order.
    pub results: Vec<AllocatedDevice>,
}

impl ResourceClaim {
    /// From a ResourceClaim's JSON.
    pub fn from_object(namespace: &str, name: &str, obj: &Value) -> ResourceClaim {
        let allocation = &obj["status"]["allocation"];
        let results = allocation["devices"]["results"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| AllocatedDevice::deserialize(r).ok())
                    .collect()
            })
            .unwrap_or_default();
        ResourceClaim {
            namespace: namespace.into(),
            name: name.into(),
            allocated: allocation.is_object(),
            results,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The parts of a ResourceSlice plexus reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceSlice {
    pub driver: String,
    pub pool: String,
    /// `spec.pool.generation`.
    pub generation: i64,
    /// `spec.devices[]`: name and attributes (`{"string": ...}`, `{"int": ...}`...).
    pub devices: Vec<(String, BTreeMap<String, Value>)>,
}

impl ResourceSlice {
    /// From a ResourceSlice's JSON.
    pub fn from_object(obj: &Value) -> ResourceSlice {
        let spec = &obj["spec"];
        let devices = spec["devices"]
            .as_array()
            .map(|ds| {
                ds.iter()
                    .filter_map(|d| {
                        let name = d["name"].as_str()?.to_owned();
                        let attrs = d["attributes"]
                            .as_object()
                            .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                            .unwrap_or_default();
                        Some((name, attrs))
                    })
                    .collect()
            })
            .unwrap_or_default();
        ResourceSlice {
            driver: spec["driver"].as_str().unwrap_or_default().to_owned(),
            pool: spec["pool"]["name"].as_str().unwrap_or_default().to_owned(),
            generation: spec["pool"]["generation"].as_i64().unwrap_or(0),
            devices,
        }
    }
}

/// A device the pod got through a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDevice {
    /// `namespace/name` of its claim.
    pub claim: String,
    pub driver: String,
    pub pool: String,
    pub device: String,
    /// `k8s.cni.cncf.io/deviceID`, when it is a string.
    pub device_id: Option<String>,
    /// The resource it belongs to: `k8s.cni.cncf.io/resourceName`, or the extended-resource
    /// mapping of its request.
    pub resource: Option<String>,
    /// Why it cannot serve its resource although it names one (a mapping and an attribute that
    /// disagree), else `None`.
    pub conflict: Option<String>,
    /// Whether it was found in a ResourceSlice at all.
    pub published: bool,
}

impl ClaimedDevice {
    /// `device "vf-1" of ResourceClaim ns/c (driver d, pool p)`.
    pub fn describe(&self) -> String {
        format!(
            "device {:?} of ResourceClaim {} (driver {}, pool {})",
            self.device, self.claim, self.driver, self.pool
        )
    }

    /// What it lacks or says, for an error's details.
    pub fn what(&self) -> String {
        if !self.published {
            return "not in any ResourceSlice of its driver and pool".into();
        }
        if let Some(c) = &self.conflict {
            return c.clone();
        }
        match (&self.resource, &self.device_id) {
            (None, None) => format!("neither {RESOURCE_NAME_ATTR} nor {DEVICE_ID_ATTR}"),
            (None, Some(_)) => format!("no {RESOURCE_NAME_ATTR}"),
            (Some(r), None) => format!("{RESOURCE_NAME_ATTR} {r:?} but no {DEVICE_ID_ATTR}"),
            (Some(r), Some(id)) => format!("{RESOURCE_NAME_ATTR} {r:?}, {DEVICE_ID_ATTR} {id:?}"),
        }
    }

    /// The (resource, device ID) it serves, when it is a complete network device.
    pub fn serves(&self) -> Option<(&str, &str)> {
        if self.conflict.is_some() {
            return None;
        }
        Some((self.resource.as_deref()?, self.device_id.as_deref()?))
    }
}

/// What the pod's claims hold, in the order of the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    /// The claims read (`namespace/name`), in order.
    pub claims: Vec<String>,
    /// Every allocated device, usable or not, in order.
    pub devices: Vec<ClaimedDevice>,
}

impl Claimed {
    /// The device IDs of `resource`, in order, each once.
    pub fn ids(&self, resource: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (r, id) in self.devices.iter().filter_map(ClaimedDevice::serves) {
            if r == resource && !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    /// The first device that names `resource` but cannot serve it.
    pub fn broken(&self, resource: &str) -> Option<&ClaimedDevice> {
        self.devices.iter().find(|d| {
            d.published && d.resource.as_deref() == Some(resource) && d.serves().is_none()
        })
    }
}

/// The pure matching: the devices of `claims` (read, in the pod's order) looked up in `slices`
/// (every slice listed, of any pool), with the extended-resource mappings of `pod`.
pub fn match_devices(
    pod: &PodClaims,
    claims: &[ResourceClaim],
    slices: &[ResourceSlice],
) -> Claimed {
    // The newest generation of each pool.
    let mut newest: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for s in slices {
        let g = newest.entry((&s.driver, &s.pool)).or_insert(s.generation);
        *g = (*g).max(s.generation);
    }
    let find = |r: &AllocatedDevice| {
        slices
            .iter()
            .filter(|s| s.driver == r.driver && s.pool == r.pool)
            .filter(|s| newest.get(&(s.driver.as_str(), s.pool.as_str())) == Some(&s.generation))
            .flat_map(|s| s.devices.iter())
            .find(|(name, _)| *name == r.device)
            .map(|(_, attrs)| attrs)
    };
    let string_attr = |attrs: &BTreeMap<String, Value>, key: &str| {
        attrs
            .get(key)
            .and_then(|v| v.get("string"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut seen: HashSet<(&str, &str, &str)> = HashSet::new();
    let mut out = Claimed::default();
    for claim in claims {
        out.claims.push(claim.key());
        let mapping = pod
            .extended
            .as_ref()
            .filter(|e| e.claim == claim.name)
            .map(|e| e.mappings.as_slice())
            .unwrap_or_default();
        for r in &claim.results {
            if !seen.insert((&r.driver, &r.pool, &r.device)) {
                continue;
            }
            let attrs = find(r);
            let attr_resource = attrs.and_then(|a| string_attr(a, RESOURCE_NAME_ATTR));
            let mapped = mapping
                .iter()
                .find(|(req, _)| *req == r.request)
                .map(|(_, res)| res.clone());
            let conflict = match (&mapped, &attr_resource) {
                (Some(m), Some(a)) if m != a => Some(format!(
                    "{RESOURCE_NAME_ATTR} {a:?}, but the pod's extended-resource mapping of request {:?} names {m:?}",
                    r.request
                )),
                _ => None,
            };
            out.devices.push(ClaimedDevice {
                claim: claim.key(),
                driver: r.driver.clone(),
                pool: r.pool.clone(),
                device: r.device.clone(),
                device_id: attrs.and_then(|a| string_attr(a, DEVICE_ID_ATTR)),
                resource: mapped.or(attr_resource),
                conflict,
                published: attrs.is_some(),
            });
        }
    }
    out
}

/// Why the claims could not be read.
fn claim_error(prefix: &str, claim: &str, cause: &str, details: String) -> Error {
    Error::Kubernetes {
        msg: format!("{prefix}, but ResourceClaim {claim} of the pod {cause}"),
        details,
        transient: true,
    }
}

/// A failed read, its message prefixed with what it was for; its code is kept.
fn wrap(prefix: &str, e: Error) -> Error {
    let transient = e.code().0 == 11;
    let mut details = e.details();
    if e.msg().contains("(403 Forbidden)") {
        details = format!(
            "{details}; DRA needs get on resourceclaims and list on resourceslices (resource.k8s.io): examples/deploy/rbac-dra.yaml"
        );
    }
    Error::Kubernetes {
        msg: format!("{prefix}, and reading its DRA devices failed: {}", e.msg()),
        details,
        transient,
    }
}

/// Reads the pod's claims and their devices (see the module docs for the requests). `prefix`
/// (`pod ns/p: network ns/x needs a device of resource "R"`) starts every error. `None`: the
/// pod has no claim (or is not in the API).
pub fn lookup(
    api: &dyn KubeApi,
    namespace: &str,
    name: &str,
    prefix: &str,
) -> Result<Option<Claimed>, Error> {
    let mut pod = api
        .pod_claims(namespace, name, false)
        .map_err(|e| wrap(prefix, e))?;
    if pod.as_ref().is_none_or(PodClaims::is_empty) {
        pod = api
            .pod_claims(namespace, name, true)
            .map_err(|e| wrap(prefix, e))?;
    }
    let Some(pod) = pod.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let mut claims = Vec::new();
    for c in pod.claim_names() {
        let key = format!("{namespace}/{c}");
        let mut found = api
            .resource_claim(namespace, c, false)
            .map_err(|e| wrap(prefix, e))?;
        if !found.as_ref().is_some_and(|f| f.allocated) {
            found = api
                .resource_claim(namespace, c, true)
                .map_err(|e| wrap(prefix, e))?;
        }
        match found {
            None => {
                return Err(claim_error(
                    prefix,
                    &key,
                    "does not exist",
                    "the pod's status names it; it may still be being created: the runtime retries"
                        .into(),
                ));
            }
            Some(f) if !f.allocated => {
                return Err(claim_error(
                    prefix,
                    &key,
                    "is not allocated yet",
                    "the scheduler allocates a pod's claims before it binds the pod to a node; the runtime retries".into(),
                ));
            }
            Some(f) => claims.push(f),
        }
    }
    // Each driver's slices on this node, listed once; then, for devices not found there,
    // the driver's slices anywhere, once.
    let mut drivers: Vec<&str> = Vec::new();
    for r in claims.iter().flat_map(|c| &c.results) {
        if !drivers.contains(&r.driver.as_str()) {
            drivers.push(&r.driver);
        }
    }
    let node = pod.node_name.as_deref();
    let mut slices = Vec::new();
    for d in &drivers {
        slices.extend(api.resource_slices(d, node).map_err(|e| wrap(prefix, e))?);
    }
    if node.is_some() {
        let matched = match_devices(&pod, &claims, &slices);
        let mut missing: Vec<&str> = Vec::new();
        for dev in matched.devices.iter().filter(|d| !d.published) {
            if let Some(d) = drivers.iter().find(|d| **d == dev.driver)
                && !missing.contains(d)
            {
                missing.push(d);
            }
        }
        for d in missing {
            tracing::debug!(
                driver = d,
                "a device is not on the node's ResourceSlices; listing the driver's slices"
            );
            slices.retain(|s| s.driver != d);
            slices.extend(api.resource_slices(d, None).map_err(|e| wrap(prefix, e))?);
        }
    }
    Ok(Some(match_devices(&pod, &claims, &slices)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) const R: &str = "example.com/vf";

    pub(crate) fn slice(
        driver: &str,
        pool: &str,
        generation: i64,
        devices: Value,
    ) -> ResourceSlice {
        ResourceSlice::from_object(&json!({
            "spec": {"driver": driver, "pool": {"name": pool, "generation": generation,
                     "resourceSliceCount": 1}, "nodeName": "n1", "devices": devices}
        }))
    }

    pub(crate) fn vf(name: &str, id: Option<&str>, resource: Option<&str>) -> Value {
        let mut attrs = json!({"vendor": {"string": "8086"}, "numa": {"int": 0}});
        if let Some(id) = id {
            attrs[DEVICE_ID_ATTR] = json!({"string": id});
        }
        if let Some(r) = resource {
            attrs[RESOURCE_NAME_ATTR] = json!({"string": r});
        }
        json!({"name": name, "attributes": attrs})
    }

    pub(crate) fn claim(name: &str, results: &[(&str, &str, &str, &str)]) -> ResourceClaim {
        let results: Vec<Value> = results
            .iter()
            .map(|(d, p, dev, req)| json!({"driver": d, "pool": p, "device": dev, "request": req}))
            .collect();
        ResourceClaim::from_object(
            "ns",
            name,
            &json!({"status": {"allocation": {"devices": {"results": results}}}}),
        )
    }

    #[test]
    fn pod_claims_parse_leniently() {
        let pod = json!({
            "spec": {"nodeName": "n1"},
            "status": {
                "resourceClaimStatuses": [
                    {"name": "vfs", "resourceClaimName": "p-vfs-x1"},
                    {"name": "unused"},
                    {"name": "gpu", "resourceClaimName": "p-gpu-x2"}
                ],
                "extendedResourceClaimStatus": {
                    "resourceClaimName": "p-extended-resources-x3",
                    "requestMappings": [{"containerName": "app", "resourceName": R,
                                         "requestName": "container-0-request-0"}]
                }
            }
        });
        let p = PodClaims::from_pod(&pod);
        assert_eq!(p.node_name.as_deref(), Some("n1"));
        assert_eq!(p.claims, ["p-vfs-x1", "p-gpu-x2"]);
        assert_eq!(
            p.extended,
            Some(ExtendedClaim {
                claim: "p-extended-resources-x3".into(),
                mappings: vec![("container-0-request-0".into(), R.into())]
            })
        );
        assert_eq!(
            p.claim_names(),
            ["p-vfs-x1", "p-gpu-x2", "p-extended-resources-x3"]
        );
        // Anything malformed is empty, never a panic.
        for bad in [
            json!({}),
            json!({"status": {"resourceClaimStatuses": "x"}}),
            json!({"spec": 1, "status": []}),
        ] {
            let p = PodClaims::from_pod(&bad);
            assert!(p.is_empty() && p.node_name.is_none(), "{bad}");
        }
        let c = ResourceClaim::from_object("ns", "c", &json!({"status": {}}));
        assert!(!c.allocated && c.results.is_empty());
    }

    #[test]
    fn devices_in_claim_then_result_order_with_both_attributes() {
        let pod = PodClaims {
            node_name: Some("n1".into()),
            claims: vec!["a".into(), "b".into()],
            extended: None,
        };
        let claims = [
            claim(
                "a",
                &[
                    ("sriov.example", "n1", "vf-2", "vfs"),
                    ("gpu.example", "n1", "gpu-0", "gpu"),
                    ("sriov.example", "n1", "vf-1", "vfs"),
                ],
            ),
            claim(
                "b",
                &[
                    ("sriov.example", "n1", "vf-3", "vf"),
                    // The same device twice counts once.
                    ("sriov.example", "n1", "vf-2", "vf"),
                ],
            ),
        ];
        let slices = [
            slice(
                "sriov.example",
                "n1",
                1,
                json!([
                    vf("vf-1", Some("0000:01:00.1"), Some(R)),
                    vf("vf-2", Some("0000:01:00.2"), Some(R))
                ]),
            ),
            // A second slice of the same pool.
            slice(
                "sriov.example",
                "n1",
                1,
                json!([vf("vf-3", Some("0000:01:00.3"), Some("other/r"))]),
            ),
            slice("gpu.example", "n1", 4, json!([vf("gpu-0", None, None)])),
        ];
        let got = match_devices(&pod, &claims, &slices);
        assert_eq!(got.claims, ["ns/a", "ns/b"]);
        assert_eq!(got.ids(R), ["0000:01:00.2", "0000:01:00.1"]);
        assert_eq!(got.ids("other/r"), ["0000:01:00.3"]);
        assert!(got.broken(R).is_none());
        assert_eq!(got.devices.len(), 4);
        assert_eq!(
            got.devices[1].what(),
            format!("neither {RESOURCE_NAME_ATTR} nor {DEVICE_ID_ATTR}")
        );
        assert_eq!(
            got.devices[1].describe(),
            "device \"gpu-0\" of ResourceClaim ns/a (driver gpu.example, pool n1)"
        );
    }

    #[test]
    fn stale_generations_and_other_pools_do_not_count() {
        let pod = PodClaims {
            claims: vec!["a".into()],
            ..PodClaims::default()
        };
        let claims = [claim(
            "a",
            &[("d", "n1", "vf-1", "r"), ("d", "n1", "vf-9", "r")],
        )];
        let slices = [
            slice("d", "n1", 1, json!([vf("vf-1", Some("old"), Some(R))])),
            slice("d", "n1", 2, json!([vf("vf-1", Some("new"), Some(R))])),
            slice(
                "d",
                "n2",
                3,
                json!([vf("vf-9", Some("elsewhere"), Some(R))]),
            ),
            slice(
                "other",
                "n1",
                3,
                json!([vf("vf-9", Some("elsewhere"), Some(R))]),
            ),
        ];
        let got = match_devices(&pod, &claims, &slices);
        assert_eq!(got.ids(R), ["new"]);
        assert!(!got.devices[1].published);
        assert_eq!(
            got.devices[1].what(),
            "not in any ResourceSlice of its driver and pool"
        );
    }

    #[test]
    fn half_published_devices_are_broken_not_served() {
        let pod = PodClaims {
            claims: vec!["a".into()],
            ..PodClaims::default()
        };
        let claims = [claim(
            "a",
            &[("d", "p", "vf-1", "r"), ("d", "p", "vf-2", "r")],
        )];
        let slices = [slice(
            "d",
            "p",
            0,
            json!([vf("vf-1", None, Some(R)),
                   // An attribute of another type is not a deviceID.
                   {"name": "vf-2", "attributes": {DEVICE_ID_ATTR: {"int": 3}, RESOURCE_NAME_ATTR: {"string": R}}}]),
        )];
        let got = match_devices(&pod, &claims, &slices);
        assert!(got.ids(R).is_empty());
        let b = got.broken(R).unwrap();
        assert_eq!(b.device, "vf-1");
        assert_eq!(
            b.what(),
            format!("{RESOURCE_NAME_ATTR} \"{R}\" but no {DEVICE_ID_ATTR}")
        );
    }

    #[test]
    fn extended_resource_mappings_name_the_resource() {
        let pod = PodClaims {
            claims: vec![],
            node_name: None,
            extended: Some(ExtendedClaim {
                claim: "x".into(),
                mappings: vec![("req-0".into(), R.into()), ("req-1".into(), "b/r".into())],
            }),
        };
        let claims = [claim(
            "x",
            &[
                ("d", "p", "vf-1", "req-0"),
                ("d", "p", "vf-2", "req-1"),
                ("d", "p", "vf-3", "req-2"),
            ],
        )];
        let slices = [slice(
            "d",
            "p",
            0,
            json!([
                vf("vf-1", Some("id-1"), None),
                vf("vf-2", Some("id-2"), Some("c/r")),
                vf("vf-3", Some("id-3"), Some(R))
            ]),
        )];
        let got = match_devices(&pod, &claims, &slices);
        // Mapped without an attribute; unmapped by its attribute.
        assert_eq!(got.ids(R), ["id-1", "id-3"]);
        assert!(got.ids("b/r").is_empty());
        let b = got.broken("b/r").unwrap();
        assert_eq!(
            b.what(),
            format!(
                "{RESOURCE_NAME_ATTR} \"c/r\", but the pod's extended-resource mapping of request \"req-1\" names \"b/r\""
            )
        );
    }

    /// An API holding one pod's claims and slices; records every call.
    #[derive(Default)]
    pub(crate) struct FakeApi {
        pub pod: Option<Value>,
        /// The pod as the cache has it, when it differs.
        pub cached_pod: Option<Value>,
        pub claims: Vec<ResourceClaim>,
        /// Claims the cache has unallocated.
        pub stale_claims: Vec<String>,
        /// Slices, with the node they are on.
        pub slices: Vec<(Option<String>, ResourceSlice)>,
        pub calls: std::cell::RefCell<Vec<String>>,
    }

    impl KubeApi for FakeApi {
        fn pod(&self, _: &str, _: &str) -> Result<crate::k8s::api::PodMeta, Error> {
            unreachable!()
        }
        fn nad(&self, _: &str, _: &str) -> Result<Option<crate::k8s::api::Nad>, Error> {
            unreachable!()
        }
        fn set_pod_annotation(
            &self,
            _: &crate::k8s::api::PodMeta,
            _: &str,
            _: &str,
        ) -> Result<(), Error> {
            unreachable!()
        }
        fn event(
            &self,
            _: &crate::k8s::api::PodMeta,
            _: crate::k8s::api::EventType,
            _: &str,
            _: &str,
        ) {
        }
        fn pod_claims(&self, _: &str, _: &str, latest: bool) -> Result<Option<PodClaims>, Error> {
            self.calls.borrow_mut().push(format!("pod latest={latest}"));
            let pod = if latest {
                self.pod.as_ref()
            } else {
                self.cached_pod.as_ref().or(self.pod.as_ref())
            };
            Ok(pod.map(PodClaims::from_pod))
        }
        fn resource_claim(
            &self,
            _: &str,
            name: &str,
            latest: bool,
        ) -> Result<Option<ResourceClaim>, Error> {
            self.calls
                .borrow_mut()
                .push(format!("claim {name} latest={latest}"));
            let mut found = self.claims.iter().find(|c| c.name == name).cloned();
            if !latest && self.stale_claims.iter().any(|s| s == name) {
                found = found.map(|c| ResourceClaim {
                    allocated: false,
                    results: vec![],
                    ..c
                });
            }
            Ok(found)
        }
        fn resource_slices(
            &self,
            driver: &str,
            node: Option<&str>,
        ) -> Result<Vec<ResourceSlice>, Error> {
            self.calls
                .borrow_mut()
                .push(format!("slices {driver} {node:?}"));
            Ok(self
                .slices
                .iter()
                .filter(|(n, s)| s.driver == driver && (node.is_none() || n.as_deref() == node))
                .map(|(_, s)| s.clone())
                .collect())
        }
    }

    pub(crate) fn pod_with(claims: &[&str]) -> Value {
        let st: Vec<Value> = claims
            .iter()
            .map(|c| json!({"name": c, "resourceClaimName": c}))
            .collect();
        json!({"spec": {"nodeName": "n1"}, "status": {"resourceClaimStatuses": st}})
    }

    #[test]
    fn lookup_reads_each_claim_once_and_each_driver_once() {
        let api = FakeApi {
            pod: Some(pod_with(&["a", "b"])),
            claims: vec![
                claim("a", &[("d", "n1", "vf-1", "r"), ("g", "n1", "gpu", "r")]),
                claim("b", &[("d", "n1", "vf-2", "r")]),
            ],
            slices: vec![
                (
                    Some("n1".into()),
                    slice(
                        "d",
                        "n1",
                        0,
                        json!([
                            vf("vf-1", Some("1"), Some(R)),
                            vf("vf-2", Some("2"), Some(R))
                        ]),
                    ),
                ),
                (
                    Some("n1".into()),
                    slice("g", "n1", 0, json!([vf("gpu", None, None)])),
                ),
            ],
            ..FakeApi::default()
        };
        let got = lookup(&api, "ns", "p", "x").unwrap().unwrap();
        assert_eq!(got.ids(R), ["1", "2"]);
        assert_eq!(
            *api.calls.borrow(),
            [
                "pod latest=false",
                "claim a latest=false",
                "claim b latest=false",
                "slices d Some(\"n1\")",
                "slices g Some(\"n1\")"
            ]
        );
    }

    #[test]
    fn lookup_rereads_what_the_cache_may_have_stale_and_lists_non_local_pools() {
        // The cache has the pod without claims and the claim unallocated; the device's pool is
        // not on the node's slices.
        let api = FakeApi {
            pod: Some(pod_with(&["a"])),
            cached_pod: Some(json!({"spec": {"nodeName": "n1"}})),
            claims: vec![claim("a", &[("d", "shared", "vf-1", "r")])],
            stale_claims: vec!["a".into()],
            slices: vec![(
                None,
                slice("d", "shared", 0, json!([vf("vf-1", Some("1"), Some(R))])),
            )],
            ..FakeApi::default()
        };
        let got = lookup(&api, "ns", "p", "x").unwrap().unwrap();
        assert_eq!(got.ids(R), ["1"]);
        assert_eq!(
            *api.calls.borrow(),
            [
                "pod latest=false",
                "pod latest=true",
                "claim a latest=false",
                "claim a latest=true",
                "slices d Some(\"n1\")",
                "slices d None"
            ]
        );
        // No claims at all (or no pod): `None`, after the one re-read.
        let api = FakeApi {
            pod: Some(json!({"spec": {}})),
            ..FakeApi::default()
        };
        assert_eq!(lookup(&api, "ns", "p", "x").unwrap(), None);
        assert_eq!(api.calls.borrow().len(), 2);
        // A claim that stays unallocated: code 11, naming it.
        let api = FakeApi {
            pod: Some(pod_with(&["a"])),
            claims: vec![ResourceClaim {
                namespace: "ns".into(),
                name: "a".into(),
                ..ResourceClaim::default()
            }],
            ..FakeApi::default()
        };
        let e = lookup(
            &api,
            "ns",
            "p",
            "pod ns/p: network ns/n needs a device of resource \"r\"",
        )
        .unwrap_err();
        assert_eq!(e.code().0, 11);
        assert_eq!(
            e.msg(),
            "pod ns/p: network ns/n needs a device of resource \"r\", but ResourceClaim ns/a of the pod is not allocated yet"
        );
    }
}
