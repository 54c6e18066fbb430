//! The plan of an ADD: every attachment of the pod, decided before anything is attached.
//!
//! Order of attachments (their position `i` also names unrequested interfaces `net<i>`):
//! 0. the cluster network (or the pod's `v1.multus-cni.io/default-network`), interface
//!    CNI_IFNAME, with the runtime's `runtimeConfig`;
//! 1. the node's `defaultNetworks` (and `delegates[1..]`), skipped for pods in
//!    `systemNamespaces`;
//! 2. the pod's selected networks, in annotation order, each with the runtime values its
//!    element asks for (`ips`, `mac`, `portMappings`, `bandwidth`, `infinibandGUID`,
//!    `deviceID`) and its `cni-args` merged into `args.cni`.
//!
//! Refused here, before any delegate runs: two attachments with one interface name, a name
//! already present in the pod's namespace, and an element asking for `ips`, `mac`,
//! `portMappings`, `bandwidth` or `infiniband-guid` from a network none of whose plugins
//! declares that capability (the NPWG rule: such a request MUST fail, never be dropped).
//!
//! Devices: [`plan`] keeps each network's `k8s.v1.cni.cncf.io/resourceName`; the caller asks
//! [`crate::devices::assign`] for the devices of the attachments that name one ([`needs`]),
//! then [`with_devices`] writes each device into its attachment: `deviceID` and `pciBusID`
//! into the delegate config ([`crate::devices::inject`]), `deviceID` (replacing an element's
//! own) and, with device information, `CNIDeviceInfoFile` into its runtime values. An
//! attachment without a device is left exactly as it was.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::cni::{Error, NetworkConfig};
use crate::devices::{self, Device, Need};
use crate::k8s::nad::ResolvedNetwork;
use crate::k8s::networks::Selected;
use crate::k8s::selection::NetworkSelection;

/// One attachment to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// The name in network-status: the cluster network's config name, else `namespace/nad`.
    pub network: String,
    pub ifname: String,
    pub config: NetworkConfig,
    /// Offered to the plugins by capability.
    pub runtime_config: Map<String, Value>,
    /// The cluster default network (first attachment).
    pub is_default: bool,
    /// The gateways of `default-route`, when this attachment takes the pod's default route.
    pub default_route: Vec<IpAddr>,
    /// The NAD's `k8s.v1.cni.cncf.io/resourceName`.
    pub resource_name: Option<String>,
    /// The device this attachment uses, once [`with_devices`] gave it one.
    pub device: Option<Device>,
}

impl Attachment {
    /// The content of the device's information file, for network-status.
    pub fn device_info(&self) -> Option<&Value> {
        self.device
            .as_ref()
            .and_then(|d| d.info.as_ref())
            .map(|i| &i.content)
    }
}

/// The networks of one pod, before interface names are given.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// The cluster network (already replaced by the default-network annotation if any).
    pub cluster: ResolvedNetwork,
    /// Whether `cluster` is the pod's own (its default-network annotation), not the node's.
    pub cluster_from_pod: bool,
    /// `defaultNetworks` (empty for system namespaces).
    pub defaults: Vec<ResolvedNetwork>,
    /// The pod's selected networks.
    pub selected: Vec<Selected>,
    /// The runtime's `runtimeConfig` (for the cluster network only).
    pub runtime_config: Map<String, Value>,
    /// CNI_IFNAME.
    pub ifname: String,
}

/// The capability each selection key needs, as (runtimeConfig key, annotation key).
const CAPABILITIES: [(&str, &str); 5] = [
    ("ips", "ips"),
    ("mac", "mac"),
    ("portMappings", "portMappings"),
    ("bandwidth", "bandwidth"),
    ("infinibandGUID", "infiniband-guid"),
];

/// Builds the attachments. `existing` are the interface names already in the pod's namespace.
/// The first problem [`plan_all`] finds is the error.
pub fn plan(inputs: Inputs, existing: &[String]) -> Result<Vec<Attachment>, Error> {
    let (atts, mut problems) = plan_all(inputs, existing);
    if problems.is_empty() {
        Ok(atts)
    } else {
        Err(problems.remove(0))
    }
}

/// Builds the attachments, and every reason to refuse them (a missing capability per element,
/// each clash of interface names), in the order [`plan`] meets them: what `plexus explain`
/// shows. An element whose `cni-args` cannot be merged keeps its config as it is.
pub fn plan_all(inputs: Inputs, existing: &[String]) -> (Vec<Attachment>, Vec<Error>) {
    let mut problems = Vec::new();
    let mut out = Vec::with_capacity(1 + inputs.defaults.len() + inputs.selected.len());
    out.push(Attachment {
        network: status_name(&inputs.cluster),
        ifname: inputs.ifname.clone(),
        resource_name: inputs.cluster.resource_name,
        config: inputs.cluster.config,
        runtime_config: inputs.runtime_config,
        is_default: true,
        default_route: vec![],
        device: None,
    });
    for n in inputs.defaults {
        let i = out.len();
        out.push(Attachment {
            network: status_name(&n),
            ifname: format!("net{i}"),
            resource_name: n.resource_name,
            config: n.config,
            runtime_config: Map::new(),
            is_default: false,
            default_route: vec![],
            device: None,
        });
    }
    for s in inputs.selected {
        let i = out.len();
        let network = s.network.key();
        if let Err(e) = check_capabilities(&network, &s.network.config, &s.selection) {
            problems.push(e);
        }
        let config = match &s.selection.cni_args {
            Some(args) if !args.is_empty() => merge_cni_args(&s.network.config, args)
                .unwrap_or_else(|e| {
                    problems.push(e);
                    s.network.config.clone()
                }),
            _ => s.network.config.clone(),
        };
        out.push(Attachment {
            network,
            ifname: s
                .selection
                .interface
                .clone()
                .unwrap_or_else(|| format!("net{i}")),
            config,
            runtime_config: s.selection.runtime_config(),
            is_default: false,
            default_route: s.selection.default_route.clone(),
            resource_name: s.network.resource_name.clone(),
            device: None,
        });
    }
    problems.extend(name_problems(&out, existing));
    (out, problems)
}

/// What [`devices::assign`] needs of each attachment, in order. The `deviceID` an element
/// asks for is in its runtime values.
pub fn needs(atts: &[Attachment]) -> Vec<Need<'_>> {
    atts.iter()
        .map(|a| Need {
            network: &a.network,
            ifname: &a.ifname,
            resource: a.resource_name.as_deref(),
            requested: a.runtime_config.get("deviceID").and_then(Value::as_str),
        })
        .collect()
}

/// Gives each attachment its device (same positions as `atts`; see the module docs).
pub fn with_devices(atts: &mut [Attachment], devices: Vec<Option<Device>>) -> Result<(), Error> {
    if devices.len() != atts.len() {
        return Err(Error::Internal(format!(
            "{} devices for {} attachments",
            devices.len(),
            atts.len()
        )));
    }
    for (att, device) in atts.iter_mut().zip(devices) {
        let Some(device) = device else { continue };
        att.config = devices::inject::device_id(&att.config, &device.id)?;
        for (k, v) in devices::runtime_values(&device) {
            att.runtime_config.insert(k.into(), v);
        }
        att.device = Some(device);
    }
    Ok(())
}

pub(crate) fn status_name(n: &ResolvedNetwork) -> String {
    if n.namespace.is_empty() {
        n.name.clone()
    } else {
        n.key()
    }
}

/// Every clash of interface names: two attachments with one name, a name already in the pod.
fn name_problems(atts: &[Attachment], existing: &[String]) -> Vec<Error> {
    let mut problems = Vec::new();
    for (i, a) in atts.iter().enumerate() {
        if let Some(first) = atts[..i].iter().find(|b| b.ifname == a.ifname) {
            problems.push(Error::invalid_config(
                format!(
                    "networks {} and {} would both be interface {:?} in the pod",
                    first.network, a.network, a.ifname
                ),
                "request distinct names with \"interface\" (or name@ifname)",
            ));
        }
        if existing.contains(&a.ifname) {
            problems.push(Error::invalid_config(
                format!(
                    "network {}: interface {:?} already exists in the pod's network namespace",
                    a.network, a.ifname
                ),
                "request another interface name",
            ));
        }
    }
    problems
}

fn check_capabilities(
    network: &str,
    config: &NetworkConfig,
    sel: &NetworkSelection,
) -> Result<(), Error> {
    let asked = sel.runtime_config();
    for (cap, key) in CAPABILITIES {
        if asked.contains_key(cap)
            && !config
                .plugins()
                .iter()
                .any(|p| p.capabilities().any(|c| c == cap))
        {
            return Err(Error::invalid_config(
                format!(
                    "network {network}: the pod asks for {key:?} but no plugin of the network declares the {cap:?} capability"
                ),
                format!(
                    "add \"capabilities\": {{\"{cap}\": true}} to the plugin that handles it (e.g. static IPAM for ips, tuning for mac), or drop the request"
                ),
            ));
        }
    }
    Ok(())
}

/// Merges `args` into `args.cni` of every plugin (the element's values win over the NAD's).
pub fn merge_cni_args(
    config: &NetworkConfig,
    args: &Map<String, Value>,
) -> Result<NetworkConfig, Error> {
    let mut doc: Value = serde_json::from_slice(config.bytes())
        .map_err(|e| Error::decode("error decoding network config", e.to_string()))?;
    let merge = |obj: &mut Value| {
        if let Some(o) = obj.as_object_mut() {
            let a = o.entry("args").or_insert_with(|| Value::Object(Map::new()));
            if !a.is_object() {
                *a = Value::Object(Map::new());
            }
            if let Some(a) = a.as_object_mut() {
                let c = a.entry("cni").or_insert_with(|| Value::Object(Map::new()));
                if !c.is_object() {
                    *c = Value::Object(Map::new());
                }
                if let Some(c) = c.as_object_mut() {
                    c.extend(args.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
    };
    match doc.get_mut("plugins").and_then(Value::as_array_mut) {
        Some(plugins) => plugins.iter_mut().for_each(merge),
        None => merge(&mut doc),
    }
    let bytes = serde_json::to_vec(&doc)
        .map_err(|e| Error::Internal(format!("serialising a network config: {e}")))?;
    NetworkConfig::from_value(doc, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::selection;
    use serde_json::json;

    fn net(ns: &str, name: &str, conf: Value) -> ResolvedNetwork {
        let bytes = conf.to_string().into_bytes();
        ResolvedNetwork {
            namespace: ns.into(),
            name: name.into(),
            config: NetworkConfig::parse(&bytes).unwrap(),
            source: String::new(),
            resource_name: None,
        }
    }

    fn inputs(annotation: &str, nets: &[ResolvedNetwork]) -> Inputs {
        let selected = selection::parse(annotation, "ns")
            .unwrap()
            .into_iter()
            .map(|selection| Selected {
                network: nets
                    .iter()
                    .find(|n| n.namespace == selection.namespace && n.name == selection.name)
                    .cloned()
                    .unwrap(),
                selection,
            })
            .collect();
        Inputs {
            cluster: net(
                "",
                "cluster",
                json!({"cniVersion":"1.0.0","name":"cluster","type":"bridge"}),
            ),
            cluster_from_pod: false,
            defaults: vec![net(
                "kube-system",
                "extra",
                json!({"cniVersion":"1.0.0","name":"extra","type":"ptp"}),
            )],
            selected,
            runtime_config: json!({"portMappings":[]}).as_object().unwrap().clone(),
            ifname: "eth0".into(),
        }
    }

    fn plain(name: &str) -> ResolvedNetwork {
        net(
            "ns",
            name,
            json!({"cniVersion":"1.0.0","name":name,"type":"macvlan"}),
        )
    }

    #[test]
    fn names_runtime_values_and_order() {
        let nets = [plain("a"), plain("b")];
        let p = plan(inputs("a,b@data0,a", &nets), &["lo".into()]).unwrap();
        let got: Vec<(&str, &str, bool)> = p
            .iter()
            .map(|a| (a.network.as_str(), a.ifname.as_str(), a.is_default))
            .collect();
        assert_eq!(
            got,
            vec![
                ("cluster", "eth0", true),
                ("kube-system/extra", "net1", false),
                ("ns/a", "net2", false),
                ("ns/b", "data0", false),
                ("ns/a", "net4", false),
            ]
        );
        assert_eq!(
            p[0].runtime_config,
            *json!({"portMappings":[]}).as_object().unwrap()
        );
        assert!(p[2].runtime_config.is_empty());
    }

    #[test]
    fn duplicate_and_existing_names_are_refused() {
        let nets = [plain("a"), plain("b")];
        let e = plan(inputs("a@net1", &nets), &[]).unwrap_err();
        assert_eq!(
            e.msg(),
            "networks kube-system/extra and ns/a would both be interface \"net1\" in the pod"
        );
        let e = plan(inputs("b@eth9", &nets), &["lo".into(), "eth9".into()]).unwrap_err();
        assert_eq!(
            e.msg(),
            "network ns/b: interface \"eth9\" already exists in the pod's network namespace"
        );
        let e = plan(inputs("a", &nets), &["eth0".into()]).unwrap_err();
        assert_eq!(e.code().0, 7);
    }

    #[test]
    fn capability_rules() {
        let capable = net(
            "ns",
            "st",
            json!({"cniVersion":"1.0.0","name":"st","plugins":[{"type":"macvlan","ipam":{"type":"static"},"capabilities":{"ips":true}},{"type":"tuning","capabilities":{"mac":true}}]}),
        );
        let nets = [plain("a"), capable];
        let ok = plan(
            inputs(
                r#"[{"name":"st","ips":["10.1.1.5/24"],"mac":"0a:00:00:00:00:01"}]"#,
                &nets,
            ),
            &[],
        )
        .unwrap();
        assert_eq!(ok[2].runtime_config["ips"], json!(["10.1.1.5/24"]));
        for (ann, key, cap) in [
            (r#"[{"name":"a","ips":["10.1.1.5/24"]}]"#, "ips", "ips"),
            (r#"[{"name":"a","mac":"0a:00:00:00:00:01"}]"#, "mac", "mac"),
            (
                r#"[{"name":"a","portMappings":[{"hostPort":80,"containerPort":80}]}]"#,
                "portMappings",
                "portMappings",
            ),
            (
                r#"[{"name":"a","bandwidth":{"ingressRate":10}}]"#,
                "bandwidth",
                "bandwidth",
            ),
            (
                r#"[{"name":"a","infiniband-guid":"00:11:22:33:44:55:66:77"}]"#,
                "infiniband-guid",
                "infinibandGUID",
            ),
        ] {
            let e = plan(inputs(ann, &nets), &[]).unwrap_err();
            assert_eq!(
                e.msg(),
                format!(
                    "network ns/a: the pod asks for {key:?} but no plugin of the network declares the {cap:?} capability"
                ),
                "{ann}"
            );
        }
    }

    #[test]
    fn cni_args_merge_into_each_plugin_annotation_wins() {
        let list = net(
            "ns",
            "l",
            json!({"cniVersion":"1.0.0","name":"l","plugins":[{"type":"bridge","args":{"cni":{"a":1,"b":1}}},{"type":"tuning"}]}),
        );
        let nets = [list];
        let p = plan(
            inputs(r#"[{"name":"l","cni-args":{"b":2,"c":3}}]"#, &nets),
            &[],
        )
        .unwrap();
        let doc: Value = serde_json::from_slice(p[2].config.bytes()).unwrap();
        assert_eq!(doc["plugins"][0]["args"]["cni"], json!({"a":1,"b":2,"c":3}));
        assert_eq!(doc["plugins"][1]["args"]["cni"], json!({"b":2,"c":3}));
        // Without cni-args the bytes are untouched.
        let nets = [plain("a")];
        let p = plan(inputs("a", &nets), &[]).unwrap();
        assert_eq!(p[2].config.bytes(), nets[0].config.bytes());
    }

    #[test]
    fn devices_go_where_given_and_nowhere_else() {
        let mut sv = net(
            "ns",
            "sv",
            json!({"cniVersion":"1.0.0","name":"sv","type":"sriov","capabilities":{"deviceID":true}}),
        );
        sv.resource_name = Some("r.io/vf".into());
        let nets = [plain("a"), sv];
        let mut p = plan(
            inputs(r#"[{"name":"sv","deviceID":"asked"},{"name":"a"}]"#, &nets),
            &[],
        )
        .unwrap();
        let n = needs(&p);
        assert_eq!(n.len(), 4);
        assert_eq!(n[2].resource, Some("r.io/vf"));
        assert_eq!(n[2].requested, Some("asked"));
        assert_eq!((n[0].resource, n[3].resource), (None, None));
        let info = crate::devices::devinfo::DeviceInfo {
            source: "/d/dp/r.io-vf-0000:01:00.1-device.json".into(),
            copy: "/d/cni/ns-sv-c_net2-device.json".into(),
            bytes: br#"{"type":"pci"}"#.to_vec(),
            content: json!({"type":"pci"}),
        };
        let dev = Device {
            resource: "r.io/vf".into(),
            id: "0000:01:00.1".into(),
            info: Some(info),
        };
        with_devices(&mut p, vec![None, None, Some(dev), None]).unwrap();
        let doc: Value = serde_json::from_slice(p[2].config.bytes()).unwrap();
        assert_eq!(doc["deviceID"], "0000:01:00.1");
        assert_eq!(doc["pciBusID"], "0000:01:00.1");
        assert_eq!(
            p[2].runtime_config,
            *json!({"deviceID":"0000:01:00.1","CNIDeviceInfoFile":"/d/cni/ns-sv-c_net2-device.json"})
                .as_object()
                .unwrap()
        );
        assert_eq!(p[2].device_info(), Some(&json!({"type":"pci"})));
        // The others are untouched, byte for byte.
        assert_eq!(p[3].config.bytes(), nets[0].config.bytes());
        assert!(p[3].runtime_config.is_empty() && p[3].device.is_none());
        assert!(p[0].device_info().is_none());
        assert!(with_devices(&mut p, vec![None]).is_err());
    }
}
