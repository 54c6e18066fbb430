//! SR-IOV VFs through Dynamic Resource Allocation (issue 23) via the binary's CNI contract:
//! NADs naming a resource (`k8s.v1.cni.cncf.io/resourceName`), a pod whose
//! `status.resourceClaimStatuses` name its ResourceClaims, claims allocated to devices of a
//! DRA driver, and the driver's ResourceSlices publishing `k8s.cni.cncf.io/deviceID` and
//! `k8s.cni.cncf.io/resourceName` on each device, all in the API stand-in; the kubelet's
//! PodResources stand-in for the device-plugin side; `fake-sriov` as the VF delegate (veths
//! stand in for VFs, see tests/sriov.rs). Needs root: every test runs in its own network and
//! mount namespaces.
//!
//! Observed: exit codes and CNI errors, the interfaces in the pod and on the host (MACs tell
//! which VF went where), what the delegate received, network-status, the device-information
//! copies, and the API stand-in's request log (which objects were read, how often, with which
//! field selector).

mod common;

use std::fs;

use plexus_conformance::apiserver::RequestRecord;
use plexus_conformance::podresources::Container;
use plexus_conformance::sandbox;
use serde_json::{Value, json};

use common::devices::{DeviceNode, host_mac, make_vfs, sriov_adds, sriov_config, vf_name};
use common::node::{NS, Pod};

const RESOURCE: &str = "example.com/sriov_vf";
const DRIVER: &str = "sriovnetwork.k8snetworkplumbingwg.io";
const NODE: &str = "node-1";
const VF1: &str = "0000:af:00.1";
const VF2: &str = "0000:af:00.2";
const VF3: &str = "0000:af:00.3";

/// A node with a kubelet socket, a device-information directory and DRA objects.
struct DraNode(DeviceNode);

impl std::ops::Deref for DraNode {
    type Target = DeviceNode;
    fn deref(&self) -> &DeviceNode {
        &self.0
    }
}

impl std::ops::DerefMut for DraNode {
    fn deref_mut(&mut self) -> &mut DeviceNode {
        &mut self.0
    }
}

impl DraNode {
    /// NAD `name` in [`NS`], the fake SR-IOV delegate, annotated with `resource`.
    fn nad(&self, name: &str, resource: &str) {
        self.resource_nad(name, resource, &sriov_config(name));
    }

    /// A pod as [`Node::pod`] makes it, with `claims` (pod claim name, ResourceClaim name) in
    /// its `status.resourceClaimStatuses`.
    fn pod(&self, name: &str, networks: &str, claims: &[(&str, &str)]) -> Pod {
        let pod = self.node.pod(name, networks);
        let mut obj = self.node.api.get("pods", NS, name).unwrap();
        let statuses: Vec<Value> = claims
            .iter()
            .map(|(n, c)| json!({"name": n, "resourceClaimName": c}))
            .collect();
        obj["status"] = json!({"phase": "Pending", "resourceClaimStatuses": statuses});
        self.node.api.put(obj);
        pod
    }

    /// ResourceClaim `name` in [`NS`], allocated the devices `(driver, pool, device)`;
    /// `None`: not allocated.
    fn claim(&self, name: &str, devices: Option<&[(&str, &str, &str)]>) {
        let mut obj = json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"namespace": NS, "name": name},
            "spec": {"devices": {"requests": [{"name": "vf", "exactly": {
                "deviceClassName": "sriovnetwork.k8snetworkplumbingwg.io", "count": 2}}]}},
            "status": {}
        });
        if let Some(devices) = devices {
            let results: Vec<Value> = devices
                .iter()
                .map(|(d, p, dev)| json!({"driver": d, "pool": p, "device": dev, "request": "vf"}))
                .collect();
            obj["status"] = json!({"allocation": {"devices": {"results": results}}});
        }
        self.node.api.put(obj);
    }

    /// A ResourceSlice `name` of `driver` on [`NODE`], pool [`NODE`], with `devices`.
    fn slice(&self, name: &str, driver: &str, devices: Value) {
        self.node.api.put(json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": name},
            "spec": {"driver": driver, "nodeName": NODE,
                     "pool": {"name": NODE, "generation": 1, "resourceSliceCount": 1},
                     "devices": devices}
        }));
    }
}

/// A VF as its DRA driver publishes it.
fn vf(name: &str, id: Option<&str>, resource: Option<&str>) -> Value {
    let mut attrs = json!({"vendor": {"string": "8086"}, "numaNode": {"int": 0}});
    if let Some(id) = id {
        attrs["k8s.cni.cncf.io/deviceID"] = json!({"string": id});
    }
    if let Some(r) = resource {
        attrs["k8s.cni.cncf.io/resourceName"] = json!({"string": r});
    }
    json!({"name": name, "attributes": attrs})
}

/// `%XX` decoding of a query string (what the stand-in's log keeps raw).
fn decode(q: &str) -> String {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&q[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// The DRA requests of the log: `GET <path>` for claims and full pod reads (not the metadata
/// reads), `LIST resourceslices?<decoded query>`.
fn dra_requests(log: &[RequestRecord], pod: &str) -> Vec<String> {
    let pod_path = format!("/api/v1/namespaces/{NS}/pods/{pod}");
    log.iter()
        .filter_map(|r| {
            let metadata_only = r
                .headers
                .iter()
                .any(|(k, v)| k == "accept" && v.contains("PartialObjectMetadata"));
            if r.path == pod_path && r.method == "GET" && !metadata_only {
                Some(format!("GET pod {pod}"))
            } else if r.path.contains("/resourceclaims/") {
                Some(format!("{} {}", r.method, r.path))
            } else if r.path.ends_with("/resourceslices") {
                Some(format!(
                    "LIST resourceslices?{}",
                    decode(r.query.trim_start_matches('&'))
                ))
            } else {
                None
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn one_claim_two_vfs_serve_two_networks_in_order() {
    sandbox::run("one_claim_two_vfs_serve_two_networks_in_order", || {
        let s = DraNode(DeviceNode::start("cl-dra", "plxd0", "10.150.0.0/24"));
        let macs = make_vfs(&[VF1, VF2]);
        let kubelet = s.kubelet();
        // The kubelet knows the pod, without device-plugin devices.
        kubelet.set_pod(NS, "vfs", vec![Container::new("app")]);
        s.nad("sriov-a", RESOURCE);
        s.nad("sriov-b", RESOURCE);
        // The claim's results name vf-1 then vf-2; the slice lists them the other way round
        // (the claim's order counts), and a device of another node's pool is not looked at.
        s.claim(
            "vfs-claim-x7",
            Some(&[(DRIVER, NODE, "vf-1"), (DRIVER, NODE, "vf-2")]),
        );
        s.slice(
            "node-1-sriov-abcde",
            DRIVER,
            json!([
                vf("vf-2", Some(VF2), Some(RESOURCE)),
                vf("vf-1", Some(VF1), Some(RESOURCE))
            ]),
        );
        s.node.api.put(json!({
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": "node-2-sriov-fghij"},
            "spec": {"driver": DRIVER, "nodeName": "node-2",
                     "pool": {"name": "node-2", "generation": 1, "resourceSliceCount": 1},
                     "devices": [vf("vf-1", Some("0000:00:00.9"), Some(RESOURCE))]}
        }));
        let info1 = s.dp_file(RESOURCE, VF1, None);
        let pod = s.pod("vfs", "sriov-a,sriov-b@fast1", &[("vfs", "vfs-claim-x7")]);

        let run = s.node.add(&pod);
        run.assert_ok("ADD of a pod with one claim of two VFs");
        let result = run.json();

        // The VFs, in the claim's order, each once.
        assert_eq!(pod.link_names(), ["eth0", "fast1", "lo", "net1"]);
        let ns = pod.ns();
        assert_eq!(ns.link("net1").unwrap().mac, macs[0], "net1 is VF1");
        assert_eq!(ns.link("fast1").unwrap().mac, macs[1], "fast1 is VF2");
        let adds = sriov_adds(&pod);
        assert_eq!(adds.len(), 2, "{adds:?}");
        let copy1 = s.devinfo.join("cni").join(format!(
            "{NS}-sriov-a-{}_net1-device.json",
            pod.container_id
        ));
        assert_eq!(adds[0]["deviceID"], VF1);
        assert_eq!(adds[0]["pciBusID"], VF1);
        assert_eq!(
            adds[0]["runtimeConfig"],
            json!({"deviceID": VF1, "CNIDeviceInfoFile": copy1})
        );
        assert_eq!(adds[1]["deviceID"], VF2);
        assert_eq!(adds[1]["pciBusID"], VF2);
        assert_eq!(adds[1]["runtimeConfig"], json!({"deviceID": VF2}));
        assert_eq!(fs::read(&copy1).unwrap(), info1);

        // network-status: the device information where the device has some.
        let status = s.node.network_status(&pod);
        assert_eq!(status.len(), 3, "{status:?}");
        assert_eq!(status[1]["name"], "default/sriov-a");
        let want: Value = serde_json::from_slice(&info1).unwrap();
        assert_eq!(status[1]["device-info"], want);
        assert_eq!(status[2]["name"], "default/sriov-b");
        assert!(status[2].get("device-info").is_none(), "{:?}", status[2]);

        // The API: the pod read whole once, the claim once, the driver's slices on this node
        // once, selected by the API server.
        assert_eq!(
            dra_requests(&s.node.api.requests(), "vfs"),
            [
                "GET pod vfs".to_owned(),
                format!("GET /apis/resource.k8s.io/v1/namespaces/{NS}/resourceclaims/vfs-claim-x7"),
                format!(
                    "LIST resourceslices?fieldSelector=spec.driver={DRIVER},spec.nodeName={NODE}&resourceVersion=0&resourceVersionMatch=NotOlderThan"
                ),
            ]
        );
        assert_eq!(kubelet.calls(), [format!("Get {NS}/vfs")]);

        // DEL with the API and the kubelet gone: the journal has everything.
        drop(kubelet);
        s.node.api.refuse_connections(true);
        s.node
            .del(&pod, Some(&result))
            .assert_ok("DEL without the API and the kubelet");
        s.node.assert_clean(&pod, "after DEL");
        assert!(s.copies().is_empty(), "{:?}", s.copies());
        assert_eq!(host_mac(&vf_name(VF1)).as_ref(), Some(&macs[0]), "VF1 back");
        assert_eq!(host_mac(&vf_name(VF2)).as_ref(), Some(&macs[1]), "VF2 back");
    });
}

#[test]
fn device_plugin_vfs_come_first_then_claimed_ones() {
    sandbox::run("device_plugin_vfs_come_first_then_claimed_ones", || {
        let s = DraNode(DeviceNode::start("cl-mix", "plxd1", "10.151.0.0/24"));
        let macs = make_vfs(&[VF1, VF2]);
        let kubelet = s.kubelet();
        // The kubelet reports the claim in `dynamic_resources` too (plexus reads devices from
        // the claims' objects, not from there: it carries no device ID).
        kubelet.set_pod(
            NS,
            "mixed",
            vec![Container::new("app").device(RESOURCE, &[VF1]).claim(
                NS,
                "vf-claim",
                &[(DRIVER, NODE, "vf-2")],
            )],
        );
        s.nad("sriov-a", RESOURCE);
        // A GPU claim beside the VF claim: its device has neither attribute and is skipped.
        s.claim("gpu-claim", Some(&[("gpu.example.com", NODE, "gpu-0")]));
        s.slice(
            "node-1-gpu",
            "gpu.example.com",
            json!([vf("gpu-0", None, None)]),
        );
        s.claim("vf-claim", Some(&[(DRIVER, NODE, "vf-2")]));
        s.slice(
            "node-1-sriov",
            DRIVER,
            json!([vf("vf-2", Some(VF2), Some(RESOURCE))]),
        );
        let claims = [("gpu", "gpu-claim"), ("vf", "vf-claim")];

        // Enough device-plugin VFs for every attachment: no DRA request at all.
        kubelet.set_pod(
            NS,
            "dp-only",
            vec![Container::new("app").device(RESOURCE, &[VF1])],
        );
        let dp_only = s.pod("dp-only", "sriov-a", &claims);
        let run = s.node.add(&dp_only);
        run.assert_ok("ADD served by the device plugin");
        assert!(
            dra_requests(&s.node.api.requests(), "dp-only").is_empty(),
            "{:?}",
            dra_requests(&s.node.api.requests(), "dp-only")
        );
        s.node.del(&dp_only, Some(&run.json())).assert_ok("DEL");

        // One VF from the device plugin, one from the claim: the device plugin's first.
        let pod = s.pod("mixed", "sriov-a,sriov-a", &claims);
        let run = s.node.add(&pod);
        run.assert_ok("ADD with a device-plugin VF and a DRA VF");
        let adds = sriov_adds(&pod);
        assert_eq!(adds[0]["deviceID"], VF1);
        assert_eq!(adds[1]["deviceID"], VF2);
        let ns = pod.ns();
        assert_eq!(ns.link("net1").unwrap().mac, macs[0]);
        assert_eq!(ns.link("net2").unwrap().mac, macs[1]);
        let slices: Vec<String> = dra_requests(&s.node.api.requests(), "mixed")
            .into_iter()
            .filter(|r| r.starts_with("LIST"))
            .collect();
        assert_eq!(slices.len(), 2, "one list per driver: {slices:?}");
        s.node.del(&pod, Some(&run.json())).assert_ok("DEL");
        s.node.assert_clean(&pod, "after DEL");
    });
}

#[test]
fn dra_problems_fail_add_before_anything_is_attached() {
    sandbox::run("dra_problems_fail_add_before_anything_is_attached", || {
        let s = DraNode(DeviceNode::start("cl-draerr", "plxd2", "10.152.0.0/24"));
        make_vfs(&[VF1]);
        let kubelet = s.kubelet();
        s.nad("sriov-a", RESOURCE);
        s.nad("sriov-b", RESOURCE);
        s.slice(
            "node-1-sriov",
            DRIVER,
            json!([
                vf("vf-1", Some(VF1), Some(RESOURCE)),
                vf("bare", None, None),
                vf("half", None, Some(RESOURCE)),
                vf("other", Some(VF3), Some("example.com/other")),
            ]),
        );
        let prefix = |pod: &str, net: &str| {
            format!("pod {NS}/{pod}: network {NS}/{net} needs a device of resource \"{RESOURCE}\"")
        };
        let fails = |name: &str, networks: &str, claim: &str| {
            kubelet.set_pod(NS, name, vec![Container::new("app")]);
            let pod = s.pod(name, networks, &[("vfs", claim)]);
            let (code, msg, details) = s.node.add(&pod).error();
            s.assert_nothing_attached(&pod, name);
            s.node.del(&pod, None).assert_ok("the runtime's DEL");
            (code, msg, details)
        };

        // The claim is not allocated yet: try again later.
        s.claim("pending", None);
        let (code, msg, details) = fails("pending", "sriov-a", "pending");
        assert_eq!(code, 11, "{msg}");
        assert_eq!(
            msg,
            format!(
                "{}, but ResourceClaim {NS}/pending of the pod is not allocated yet",
                prefix("pending", "sriov-a")
            )
        );
        assert!(details.contains("scheduler"), "{details}");

        // The allocated device has neither attribute: no device carries the resource.
        s.claim("bare", Some(&[(DRIVER, NODE, "bare")]));
        let (code, msg, details) = fails("bare", "sriov-a", "bare");
        assert_eq!(code, 7);
        assert_eq!(
            msg,
            format!(
                "{}, but no device allocated to the pod carries it: the kubelet allocated none, and no device of the pod's ResourceClaims ({NS}/bare) has k8s.cni.cncf.io/resourceName \"{RESOURCE}\"",
                prefix("bare", "sriov-a")
            )
        );
        assert!(
            details.starts_with(&format!(
                "device \"bare\" of ResourceClaim {NS}/bare (driver {DRIVER}, pool {NODE}): neither k8s.cni.cncf.io/resourceName nor k8s.cni.cncf.io/deviceID; "
            )),
            "{details}"
        );

        // The device names the resource but has no deviceID.
        s.claim("half", Some(&[(DRIVER, NODE, "half")]));
        let (code, msg, _) = fails("half", "sriov-a", "half");
        assert_eq!(code, 7);
        assert_eq!(
            msg,
            format!(
                "{}, but device \"half\" of ResourceClaim {NS}/half (driver {DRIVER}, pool {NODE}) has k8s.cni.cncf.io/resourceName \"{RESOURCE}\" but no k8s.cni.cncf.io/deviceID",
                prefix("half", "sriov-a")
            )
        );

        // Only another resource's device is allocated.
        s.claim("other", Some(&[(DRIVER, NODE, "other")]));
        let (code, msg, details) = fails("other", "sriov-a", "other");
        assert_eq!(code, 7);
        assert!(msg.starts_with(&format!("{}, but no device", prefix("other", "sriov-a"))));
        assert!(
            details.contains(&format!(
                "k8s.cni.cncf.io/resourceName \"example.com/other\", k8s.cni.cncf.io/deviceID \"{VF3}\""
            )),
            "{details}"
        );

        // Two networks, one device.
        s.claim("one", Some(&[(DRIVER, NODE, "vf-1")]));
        let (code, msg, _) = fails("one", "sriov-a,sriov-b", "one");
        assert_eq!(code, 7);
        assert_eq!(
            msg,
            format!(
                "{}, but the pod has only 1 (0 from the kubelet, 1 from its ResourceClaims {NS}/one), all used by earlier attachments ({NS}/sriov-a)",
                prefix("one", "sriov-b")
            )
        );
        assert!(host_mac(&vf_name(VF1)).is_some(), "VF1 never left the host");
    });
}

#[test]
fn extended_resource_claims_map_requests_to_resource_names() {
    sandbox::run(
        "extended_resource_claims_map_requests_to_resource_names",
        || {
            let s = DraNode(DeviceNode::start("cl-ext", "plxd3", "10.153.0.0/24"));
            let macs = make_vfs(&[VF1]);
            let kubelet = s.kubelet();
            kubelet.set_pod(NS, "ext", vec![Container::new("app")]);
            s.nad("sriov-a", RESOURCE);
            // The pod asked for `example.com/sriov_vf: 1` in its limits, served by DRA: the claim
            // made for it, its request mapped to the resource name. The device carries a deviceID
            // and no resourceName of its own.
            s.node.api.put(json!({
                "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                "metadata": {"namespace": NS, "name": "ext-extended-resources-4xk2p"},
                "spec": {"devices": {"requests": [{"name": "container-0-request-0", "exactly": {
                    "deviceClassName": "sriovnetwork.k8snetworkplumbingwg.io"}}]}},
                "status": {"allocation": {"devices": {"results": [
                    {"driver": DRIVER, "pool": NODE, "device": "vf-1",
                     "request": "container-0-request-0"}]}}}
            }));
            s.slice("node-1-sriov", DRIVER, json!([vf("vf-1", Some(VF1), None)]));
            let pod = s.node.pod("ext", "sriov-a");
            let mut obj = s.node.api.get("pods", NS, "ext").unwrap();
            obj["status"] = json!({"extendedResourceClaimStatus": {
                "resourceClaimName": "ext-extended-resources-4xk2p",
                "requestMappings": [{"containerName": "app", "resourceName": RESOURCE,
                                     "requestName": "container-0-request-0"}]
            }});
            s.node.api.put(obj);

            let run = s.node.add(&pod);
            run.assert_ok("ADD of a pod with a DRA-backed extended resource");
            assert_eq!(sriov_adds(&pod)[0]["deviceID"], VF1);
            assert_eq!(pod.ns().link("net1").unwrap().mac, macs[0]);
            s.node.del(&pod, Some(&run.json())).assert_ok("DEL");
            s.node.assert_clean(&pod, "after DEL");
        },
    );
}

#[test]
fn without_the_dra_grants_add_names_them() {
    sandbox::run("without_the_dra_grants_add_names_them", || {
        let s = DraNode(DeviceNode::start("cl-rbac", "plxd4", "10.154.0.0/24"));
        make_vfs(&[VF1]);
        let kubelet = s.kubelet();
        kubelet.set_pod(NS, "p", vec![Container::new("app")]);
        s.nad("sriov-a", RESOURCE);
        s.claim("c", Some(&[(DRIVER, NODE, "vf-1")]));
        s.slice(
            "node-1-sriov",
            DRIVER,
            json!([vf("vf-1", Some(VF1), Some(RESOURCE))]),
        );
        let rbac = fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/rbac.yaml"),
        )
        .unwrap();
        s.node.api.set_rbac_from_yaml(&rbac, "plexus").unwrap();
        let pod = s.pod("p", "sriov-a", &[("vfs", "c")]);
        let (code, msg, details) = s.node.add(&pod).error();
        assert_eq!(code, 5, "{msg}");
        assert!(
            msg.starts_with(&format!(
                "pod {NS}/p: network {NS}/sriov-a needs a device of resource \"{RESOURCE}\", and reading its DRA devices failed: plexus is not allowed reading ResourceClaim {NS}/c (403 Forbidden)"
            )),
            "{msg}"
        );
        assert!(
            details.contains("examples/deploy/rbac-dra.yaml"),
            "{details}"
        );
        s.assert_nothing_attached(&pod, "without the grants");
        s.node.del(&pod, None).assert_ok("the runtime's DEL");
    });
}
