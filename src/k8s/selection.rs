//! The pod annotation `k8s.v1.cni.cncf.io/networks`: which secondary networks a pod asks for.
//!
//! [`parse`] turns the annotation text into a list of [`NetworkSelection`]s, one per requested
//! attachment, in annotation order. It is pure: no Kubernetes access, no I/O.
//!
//! # Forms
//!
//! The text is read as JSON when it contains `[`, `{` or `"` (the NPWG rule), else as the comma
//! form. Empty or whitespace-only text is an empty list (no secondary networks), not an error.
//!
//! - **Comma form**: `net-a,other-ns/net-b,net-c@eth7`. Each item is `[namespace/]name[@interface]`
//!   ([`parse_reference`]); whitespace around items is trimmed, nothing else is. A missing
//!   namespace means the pod's namespace.
//! - **JSON form**: a list of objects, e.g.
//!   `[{"name":"net-a","interface":"net1","ips":["10.1.1.5/24"]}]`. Keys:
//!   - `name` (required, string): the NetworkAttachmentDefinition name;
//!   - `namespace` (string): defaults to the pod's namespace;
//!   - `interface` (string): the interface name requested in the pod. `interfaceRequest` is
//!     accepted as an alias (the field name Multus uses in Go, which some tools write out); an
//!     element setting both is refused as ambiguous;
//!   - `ips` (list of strings): IP addresses or CIDRs (`10.1.1.5`, `10.1.1.5/24`, `fd00::5/64`),
//!     kept as written;
//!   - `mac` (string): `aa:bb:cc:dd:ee:ff`, hex in any case, normalised to lower case;
//!   - `infiniband-guid` (string): eight bytes `xx:xx:xx:xx:xx:xx:xx:xx`, normalised to lower case;
//!   - `portMappings` (list of `{hostPort, containerPort, protocol?, hostIP?}`): ports are JSON
//!     integers 1–65535; `protocol` is TCP, UDP or SCTP in any case (kept upper-cased, default
//!     TCP); `hostIP` is an IP address;
//!   - `bandwidth` (object): `ingressRate`, `ingressBurst`, `egressRate`, `egressBurst`, each when
//!     present a positive (non-zero) integer, at least one present;
//!   - `cni-args` (object): merged by the caller into the delegate's `args.cni`;
//!   - `default-route` (list of gateway IP strings): the pod's default route moves to this
//!     attachment;
//!   - `deviceID` (string), `ipam-claim-reference` (string): passed on, non-empty.
//!
//!   Unknown keys are ignored (the NPWG rule: other tools put their own keys there). A key whose
//!   value is JSON `null` counts as absent (what Go's `encoding/json`, and so Multus, does); a
//!   present value of the wrong JSON type is an error.
//!
//! [`NetworkSelection::runtime_config`] gives the CNI `runtimeConfig` keys an element asks for
//! (`ips`, `mac`, `portMappings`, `bandwidth`, `infinibandGUID`, `deviceID`); which delegate may
//! receive them (its `capabilities`) is decided by the caller.
//!
//! # Validation decisions
//!
//! The NPWG spec lets implementations ignore invalid elements; plexus refuses the whole annotation
//! instead, with an error naming the element and the field, because "ignore invalid" is what left
//! pods silently half-configured (running without the network they asked for). Hence:
//!
//! - empty items (`net-a,,net-b`, a trailing comma) and empty parts (`ns/`, `/net`, `net@`) are
//!   errors, as are more than one `/` or `@` in an item and an `@interface` placed before the `/`;
//! - namespace and name must be DNS-1123 labels (lower-case alphanumerics and `-`, starting and
//!   ending with an alphanumeric, at most 63 characters): that is what Kubernetes allows for
//!   namespaces and NAD names, so anything else can only fail later, less clearly. The namespace
//!   is checked also when it comes from the pod, so every returned selection is well formed;
//! - interface names follow the Linux rules ([`crate::cni::env::validate_ifname`]: 1–15 bytes,
//!   not `.`/`..`, no `/`, `:` or whitespace), not DNS-1123; a requested name must be unique in
//!   the list (two attachments cannot share an interface). Collisions with the runtime's
//!   `CNI_IFNAME` or with generated `net<i>` names are checked by the caller, which knows them;
//! - at most one element may carry `default-route` (a pod has one default route), it must list at
//!   least one gateway, and at most one per IP family;
//! - a `mac` must be a unicast, non-zero address (the kernel refuses others on an interface);
//! - JSON strings are not trimmed: `" net-a"` is refused, not repaired;
//! - the same network may appear twice: that is two attachments, and it is valid.
//!
//! # Errors
//!
//! Every error is [`Error::InvalidConfig`] (CNI code 7). Its `msg` is
//!
//! - `k8s.v1.cni.cncf.io/networks: element <i> ("<namespace>/<name>"): <field>: <problem>` for
//!   a problem in one element, `<i>` counting from 0. Once the element's name and namespace are
//!   known to be valid it is named `"<namespace>/<name>"`; before that (an error in the name or
//!   the namespace, or an element that is not an object) it is named by its raw text: the trimmed
//!   item of the comma form, or the compact JSON of the element, cut to 80 characters. The label
//!   is written as a quoted, escaped string (Rust's `{:?}`). `<field>` is the JSON key, with the
//!   position for lists and nested objects (`ips[1]`, `portMappings[0].hostPort`,
//!   `bandwidth.ingressRate`), or `reference` for a malformed comma-form item. Example:
//!   `k8s.v1.cni.cncf.io/networks: element 1 ("default/net-b"): mac: "zz:00:00:00:00:00" is not a MAC address`;
//! - `k8s.v1.cni.cncf.io/networks: element <i> ("<raw>"): must be a JSON object, found <type>`
//!   for a list item that is not an object;
//! - `k8s.v1.cni.cncf.io/networks: <problem>` for the list as a whole, e.g.
//!   `must be a JSON list of objects, found an object`,
//!   `elements 0 and 2 both request interface "eth1"`,
//!   `elements 0 and 3 both set default-route; at most one may`.
//!
//! `details` is a short hint of what a valid value looks like. Errors of [`parse_reference`]
//! used on its own read `network reference "<text>": <field>: <problem>`.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::cni::env::validate_ifname;
use crate::cni::error::Error;

/// The pod annotation that selects secondary networks.
pub const ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";

/// One requested attachment: an element of the annotation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkSelection {
    /// The NAD's namespace; the pod's namespace when the element names none.
    pub namespace: String,
    /// The NAD's name.
    pub name: String,
    /// The interface name requested in the pod, if any.
    pub interface: Option<String>,
    /// Requested IPs, as written: addresses or CIDRs, validated.
    pub ips: Vec<String>,
    /// Requested MAC address, lower case.
    pub mac: Option<String>,
    /// Requested InfiniBand GUID, lower case.
    pub infiniband_guid: Option<String>,
    /// Requested port mappings.
    pub port_mappings: Vec<PortMapping>,
    /// Requested traffic shaping.
    pub bandwidth: Option<Bandwidth>,
    /// Extra `args.cni` keys for the delegate (the annotation wins over the NAD).
    pub cni_args: Option<Map<String, Value>>,
    /// Gateways: when not empty, the pod's default route moves to this attachment.
    pub default_route: Vec<IpAddr>,
    /// The device to use (SR-IOV and friends).
    pub device_id: Option<String>,
    /// The IPAMClaim this attachment's addresses belong to.
    pub ipam_claim_reference: Option<String>,
}

/// One `portMappings` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// Upper-cased: `TCP`, `UDP` or `SCTP` (default `TCP`).
    pub protocol: String,
    pub host_ip: Option<String>,
}

/// The `bandwidth` request: rates in bits per second, bursts in bits (the bandwidth plugin's
/// units). At least one is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bandwidth {
    pub ingress_rate: Option<u64>,
    pub ingress_burst: Option<u64>,
    pub egress_rate: Option<u64>,
    pub egress_burst: Option<u64>,
}

impl Bandwidth {
    /// The four keys with their wire names, in wire order.
    fn fields(&self) -> [(&'static str, Option<u64>); 4] {
        [
            ("ingressRate", self.ingress_rate),
            ("ingressBurst", self.ingress_burst),
            ("egressRate", self.egress_rate),
            ("egressBurst", self.egress_burst),
        ]
    }
}

impl NetworkSelection {
    /// The CNI `runtimeConfig` keys this element asks for, only those it sets: `ips`, `mac`,
    /// `portMappings` (`[{hostPort,containerPort,protocol,hostIP?}]`, protocol in lower case as
    /// container runtimes send it), `bandwidth` (only the set keys), `infinibandGUID`,
    /// `deviceID`.
    pub fn runtime_config(&self) -> Map<String, Value> {
        let mut rc = Map::new();
        if !self.ips.is_empty() {
            rc.insert(
                "ips".into(),
                Value::Array(self.ips.iter().cloned().map(Value::String).collect()),
            );
        }
        if let Some(mac) = &self.mac {
            rc.insert("mac".into(), Value::String(mac.clone()));
        }
        if !self.port_mappings.is_empty() {
            let list = self
                .port_mappings
                .iter()
                .map(|pm| {
                    let mut o = Map::new();
                    o.insert("hostPort".into(), pm.host_port.into());
                    o.insert("containerPort".into(), pm.container_port.into());
                    o.insert("protocol".into(), pm.protocol.to_ascii_lowercase().into());
                    if let Some(ip) = &pm.host_ip {
                        o.insert("hostIP".into(), Value::String(ip.clone()));
                    }
                    Value::Object(o)
                })
                .collect();
            rc.insert("portMappings".into(), Value::Array(list));
        }
        if let Some(bw) = &self.bandwidth {
            let mut o = Map::new();
            for (key, value) in bw.fields() {
                if let Some(v) = value {
                    o.insert(key.into(), v.into());
                }
            }
            rc.insert("bandwidth".into(), Value::Object(o));
        }
        if let Some(guid) = &self.infiniband_guid {
            rc.insert("infinibandGUID".into(), Value::String(guid.clone()));
        }
        if let Some(dev) = &self.device_id {
            rc.insert("deviceID".into(), Value::String(dev.clone()));
        }
        rc
    }
}

// ---- hints (the `details` of errors) ----

const HINT_LABEL: &str = "a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters (e.g. \"macvlan-a\")";
const HINT_IFNAME: &str = "a Linux interface name: 1-15 bytes, not \".\" or \"..\", without '/', ':' or whitespace (e.g. \"net1\")";
const HINT_REFERENCE: &str = "[namespace/]name[@interface], e.g. \"other-ns/macvlan-a@net1\"";
const HINT_EMPTY_ITEM: &str = "the comma form is [namespace/]name[@interface] items separated by ',' with no empty item, e.g. \"net-a,other-ns/net-b@eth1\"";
const HINT_LIST: &str = "a JSON list of objects, e.g. [{\"name\":\"net-a\",\"interface\":\"net1\"}], or the comma form \"net-a,other-ns/net-b@eth1\"";
const HINT_NOT_JSON: &str = "text containing '[', '{' or '\"' is read as JSON: write a JSON list of objects, e.g. [{\"name\":\"net-a\"}], or the comma form without quotes, e.g. \"net-a,other-ns/net-b@eth1\"";
const HINT_ELEMENT: &str = "each element is an object with at least \"name\", e.g. {\"name\":\"net-a\",\"namespace\":\"other-ns\"}";
const HINT_IP: &str = "an IPv4 or IPv6 address, e.g. \"10.1.1.1\" or \"fd00::1\"";
const HINT_IP_OR_CIDR: &str =
    "an IPv4 or IPv6 address or CIDR, e.g. \"10.1.1.5/24\", \"10.1.1.5\" or \"fd00::5/64\"";
const HINT_MAC: &str =
    "six hex bytes separated by ':', unicast and not all zero, e.g. \"0a:58:0a:46:00:02\"";
const HINT_GUID: &str = "eight hex bytes separated by ':', e.g. \"c2:11:22:33:44:55:66:77\"";
const HINT_PORT_MAPPINGS: &str = "a list of {\"hostPort\":8080,\"containerPort\":80,\"protocol\":\"TCP\",\"hostIP\":\"10.0.0.1\"}";
const HINT_PORT: &str = "an integer from 1 to 65535";
const HINT_PROTOCOL: &str = "TCP, UDP or SCTP (any case); TCP when omitted";
const HINT_BANDWIDTH: &str = "{\"ingressRate\":N,\"ingressBurst\":N,\"egressRate\":N,\"egressBurst\":N}: each a positive integer (bits per second, bits), at least one set";
const HINT_CNI_ARGS: &str = "a JSON object, e.g. {\"foo\":\"bar\"}";
const HINT_DEFAULT_ROUTE: &str =
    "a non-empty list of gateway IPs, at most one per IP family, e.g. [\"10.1.1.1\"]";
const HINT_STRING: &str = "a non-empty string";
const HINT_UNIQUE_IFNAME: &str =
    "every requested interface name must be unique in the pod; rename one or omit it to get net<i>";
const HINT_ONE_DEFAULT_ROUTE: &str =
    "a pod has one default route: keep default-route on the one attachment that should carry it";

/// Raw texts in messages are cut to this many characters.
const RAW_MAX_CHARS: usize = 80;

/// A problem in one element (or one reference), before it is given its context.
#[derive(Debug)]
struct Problem {
    field: String,
    problem: String,
    details: String,
    /// `"<namespace>/<name>"` once both are known to be valid.
    network: Option<String>,
}

impl Problem {
    fn new(
        field: impl Into<String>,
        problem: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        Problem {
            field: field.into(),
            problem: problem.into(),
            details: details.into(),
            network: None,
        }
    }

    /// Names the element by its network (kept if already set).
    fn on(mut self, network: &str) -> Self {
        if self.network.is_none() {
            self.network = Some(network.to_owned());
        }
        self
    }

    /// The annotation error for element `index`, named by its network or else by `raw`.
    fn into_error(self, index: usize, raw: &str) -> Error {
        let label = self.network.unwrap_or_else(|| shorten(raw));
        Error::invalid_config(
            format!(
                "{ANNOTATION}: element {index} ({label:?}): {}: {}",
                self.field, self.problem
            ),
            self.details,
        )
    }
}

type Checked<T> = Result<T, Problem>;

fn list_error(problem: impl std::fmt::Display, details: &str) -> Error {
    Error::invalid_config(format!("{ANNOTATION}: {problem}"), details)
}

/// `s` cut to [`RAW_MAX_CHARS`] characters (on a character boundary), `...` marking the cut.
fn shorten(s: &str) -> String {
    if s.chars().count() <= RAW_MAX_CHARS {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(RAW_MAX_CHARS - 3).collect();
    out.push_str("...");
    out
}

// ---- the entry points ----

/// Parses the `k8s.v1.cni.cncf.io/networks` annotation (either form) into the requested
/// attachments, in order; elements without a namespace get `pod_namespace`. Empty text gives an
/// empty list. See the module docs for the rules and the error format.
pub fn parse(annotation: &str, pod_namespace: &str) -> Result<Vec<NetworkSelection>, Error> {
    let text = annotation.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let selections = if text.contains(['[', '{', '"']) {
        parse_json(text, pod_namespace)?
    } else {
        parse_comma(text, pod_namespace)?
    };
    check_list(&selections)?;
    Ok(selections)
}

/// Parses one `[namespace/]name[@interface]` reference (also used for the default-network
/// annotation and `clusterNetwork` names): returns `(namespace, name, interface)`, the namespace
/// being `default_namespace` when the text names none. Whitespace around the text is trimmed.
/// Errors read `network reference "<text>": <field>: <problem>` (code 7).
pub fn parse_reference(
    text: &str,
    default_namespace: &str,
) -> Result<(String, String, Option<String>), Error> {
    reference(text.trim(), default_namespace).map_err(|p| {
        Error::invalid_config(
            format!("network reference {text:?}: {}: {}", p.field, p.problem),
            p.details,
        )
    })
}

// ---- comma form ----

fn parse_comma(text: &str, pod_namespace: &str) -> Result<Vec<NetworkSelection>, Error> {
    let mut out = Vec::new();
    for (index, item) in text.split(',').enumerate() {
        let item = item.trim();
        if item.is_empty() {
            return Err(Problem::new("name", "is empty", HINT_EMPTY_ITEM).into_error(index, item));
        }
        let (namespace, name, interface) =
            reference(item, pod_namespace).map_err(|p| p.into_error(index, item))?;
        out.push(NetworkSelection {
            namespace,
            name,
            interface,
            ..Default::default()
        });
    }
    Ok(out)
}

/// The checks of one trimmed `[namespace/]name[@interface]`.
fn reference(text: &str, default_namespace: &str) -> Checked<(String, String, Option<String>)> {
    if text.is_empty() {
        return Err(Problem::new("name", "is empty", HINT_REFERENCE));
    }
    if text.matches('/').count() > 1 {
        return Err(Problem::new(
            "reference",
            "contains more than one '/'",
            HINT_REFERENCE,
        ));
    }
    if text.matches('@').count() > 1 {
        return Err(Problem::new(
            "reference",
            "contains more than one '@'",
            HINT_REFERENCE,
        ));
    }
    let (path, interface) = match text.split_once('@') {
        Some((path, interface)) => (path, Some(interface)),
        None => (text, None),
    };
    if interface.is_some_and(|i| i.contains('/')) {
        return Err(Problem::new(
            "reference",
            "'@interface' must come after 'namespace/name'",
            HINT_REFERENCE,
        ));
    }
    let (namespace, name) = match path.split_once('/') {
        Some((namespace, name)) => (Some(namespace), name),
        None => (None, path),
    };
    check_label("name", name, "")?;
    let namespace = match namespace {
        Some(ns) => {
            check_label("namespace", ns, "")?;
            ns
        }
        None => {
            check_label("namespace", default_namespace, " (the default namespace)")?;
            default_namespace
        }
    };
    let network = format!("{namespace}/{name}");
    if let Some(interface) = interface {
        check_ifname("interface", interface).map_err(|p| p.on(&network))?;
    }
    Ok((
        namespace.to_owned(),
        name.to_owned(),
        interface.map(str::to_owned),
    ))
}

// ---- JSON form ----

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn parse_json(text: &str, pod_namespace: &str) -> Result<Vec<NetworkSelection>, Error> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| list_error(format_args!("is not valid JSON ({e})"), HINT_NOT_JSON))?;
    let Value::Array(items) = doc else {
        return Err(list_error(
            format_args!("must be a JSON list of objects, found {}", type_name(&doc)),
            HINT_LIST,
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| element(index, item, pod_namespace))
        .collect()
}

/// One JSON list item.
fn element(index: usize, item: &Value, pod_namespace: &str) -> Result<NetworkSelection, Error> {
    let raw = || item.to_string();
    let Value::Object(obj) = item else {
        let label = shorten(&raw());
        return Err(Error::invalid_config(
            format!(
                "{ANNOTATION}: element {index} ({label:?}): must be a JSON object, found {}",
                type_name(item)
            ),
            HINT_ELEMENT,
        ));
    };
    element_fields(obj, pod_namespace).map_err(|p| p.into_error(index, &raw()))
}

/// The value of `key`, `None` when absent or `null`.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn string<'a>(field: &str, v: &'a Value, hint: &str) -> Checked<&'a str> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(Problem::new(
            field,
            format!("must be a string, found {}", type_name(other)),
            hint,
        )),
    }
}

/// A string that must not be empty.
fn non_empty<'a>(field: &str, v: &'a Value, hint: &str) -> Checked<&'a str> {
    let s = string(field, v, hint)?;
    if s.is_empty() {
        return Err(Problem::new(field, "is empty", hint));
    }
    Ok(s)
}

fn list<'a>(field: &str, v: &'a Value, what: &str, hint: &str) -> Checked<&'a [Value]> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(Problem::new(
            field,
            format!("must be a list of {what}, found {}", type_name(other)),
            hint,
        )),
    }
}

fn object<'a>(field: &str, v: &'a Value, hint: &str) -> Checked<&'a Map<String, Value>> {
    match v {
        Value::Object(o) => Ok(o),
        other => Err(Problem::new(
            field,
            format!("must be a JSON object, found {}", type_name(other)),
            hint,
        )),
    }
}

fn element_fields(obj: &Map<String, Value>, pod_namespace: &str) -> Checked<NetworkSelection> {
    let name = match get(obj, "name") {
        Some(v) => string("name", v, HINT_LABEL)?,
        None => return Err(Problem::new("name", "is required", HINT_ELEMENT)),
    };
    check_label("name", name, "")?;
    let namespace = match get(obj, "namespace") {
        Some(v) => {
            let ns = string("namespace", v, HINT_LABEL)?;
            check_label("namespace", ns, "")?;
            ns
        }
        None => {
            check_label("namespace", pod_namespace, " (the pod's namespace)")?;
            pod_namespace
        }
    };
    let network = format!("{namespace}/{name}");
    let mut sel = NetworkSelection {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        ..Default::default()
    };
    optional_fields(obj, &mut sel).map_err(|p| p.on(&network))?;
    Ok(sel)
}

/// Every key but `name` and `namespace`.
fn optional_fields(obj: &Map<String, Value>, sel: &mut NetworkSelection) -> Checked<()> {
    sel.interface = match (get(obj, "interface"), get(obj, "interfaceRequest")) {
        (Some(_), Some(_)) => {
            return Err(Problem::new(
                "interfaceRequest",
                "is set together with interface; set only one",
                "use \"interface\" (\"interfaceRequest\" is an accepted alias)",
            ));
        }
        (Some(v), None) => Some(ifname_value("interface", v)?),
        (None, Some(v)) => Some(ifname_value("interfaceRequest", v)?),
        (None, None) => None,
    };

    if let Some(v) = get(obj, "ips") {
        let items = list("ips", v, "strings", HINT_IP_OR_CIDR)?;
        for (i, item) in items.iter().enumerate() {
            let field = format!("ips[{i}]");
            let s = string(&field, item, HINT_IP_OR_CIDR)?;
            if !is_ip_or_cidr(s) {
                return Err(Problem::new(
                    field,
                    format!("{s:?} is not an IP address or CIDR"),
                    HINT_IP_OR_CIDR,
                ));
            }
            sel.ips.push(s.to_owned());
        }
    }

    if let Some(v) = get(obj, "mac") {
        sel.mac = Some(mac("mac", v)?);
    }

    if let Some(v) = get(obj, "infiniband-guid") {
        let s = string("infiniband-guid", v, HINT_GUID)?;
        match hex_bytes(s, 8) {
            Some(_) => sel.infiniband_guid = Some(s.to_ascii_lowercase()),
            None => {
                return Err(Problem::new(
                    "infiniband-guid",
                    format!("{s:?} is not an InfiniBand GUID"),
                    HINT_GUID,
                ));
            }
        }
    }

    if let Some(v) = get(obj, "portMappings") {
        let items = list("portMappings", v, "objects", HINT_PORT_MAPPINGS)?;
        for (i, item) in items.iter().enumerate() {
            sel.port_mappings
                .push(port_mapping(&format!("portMappings[{i}]"), item)?);
        }
    }

    if let Some(v) = get(obj, "bandwidth") {
        sel.bandwidth = Some(bandwidth(v)?);
    }

    if let Some(v) = get(obj, "cni-args") {
        sel.cni_args = Some(object("cni-args", v, HINT_CNI_ARGS)?.clone());
    }

    if let Some(v) = get(obj, "default-route") {
        sel.default_route = default_route(v)?;
    }

    if let Some(v) = get(obj, "deviceID") {
        sel.device_id = Some(non_empty("deviceID", v, HINT_STRING)?.to_owned());
    }

    if let Some(v) = get(obj, "ipam-claim-reference") {
        sel.ipam_claim_reference =
            Some(non_empty("ipam-claim-reference", v, HINT_STRING)?.to_owned());
    }
    Ok(())
}

fn ifname_value(field: &str, v: &Value) -> Checked<String> {
    let s = string(field, v, HINT_IFNAME)?;
    check_ifname(field, s)?;
    Ok(s.to_owned())
}

fn mac(field: &str, v: &Value) -> Checked<String> {
    let s = string(field, v, HINT_MAC)?;
    let Some(bytes) = hex_bytes(s, 6) else {
        return Err(Problem::new(
            field,
            format!("{s:?} is not a MAC address"),
            HINT_MAC,
        ));
    };
    if bytes.first().is_some_and(|b| b & 1 == 1) {
        return Err(Problem::new(
            field,
            format!("{s:?} is a multicast address"),
            HINT_MAC,
        ));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err(Problem::new(field, format!("{s:?} is all zero"), HINT_MAC));
    }
    Ok(s.to_ascii_lowercase())
}

/// `count` bytes written as two hex digits each, separated by `:`.
fn hex_bytes(s: &str, count: usize) -> Option<Vec<u8>> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != count {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            if p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()) {
                u8::from_str_radix(p, 16).ok()
            } else {
                None
            }
        })
        .collect()
}

fn port_mapping(field: &str, v: &Value) -> Checked<PortMapping> {
    let o = object(field, v, HINT_PORT_MAPPINGS)?;
    let port = |key: &str| -> Checked<u16> {
        let f = format!("{field}.{key}");
        match get(o, key) {
            None => Err(Problem::new(f, "is required", HINT_PORT)),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    Problem::new(f, format!("{n} is not a port number (1-65535)"), HINT_PORT)
                }),
            Some(other) => Err(Problem::new(
                f,
                format!("must be an integer, found {}", type_name(other)),
                HINT_PORT,
            )),
        }
    };
    let host_port = port("hostPort")?;
    let container_port = port("containerPort")?;
    let protocol = match get(o, "protocol") {
        None => "TCP".to_owned(),
        Some(v) => {
            let f = format!("{field}.protocol");
            let s = string(&f, v, HINT_PROTOCOL)?;
            let upper = s.to_ascii_uppercase();
            if !matches!(upper.as_str(), "TCP" | "UDP" | "SCTP") {
                return Err(Problem::new(
                    f,
                    format!("{s:?} is not TCP, UDP or SCTP"),
                    HINT_PROTOCOL,
                ));
            }
            upper
        }
    };
    let host_ip = match get(o, "hostIP") {
        None => None,
        Some(v) => {
            let f = format!("{field}.hostIP");
            let s = string(&f, v, HINT_IP)?;
            if s.parse::<IpAddr>().is_err() {
                return Err(Problem::new(
                    f,
                    format!("{s:?} is not an IP address"),
                    HINT_IP,
                ));
            }
            Some(s.to_owned())
        }
    };
    Ok(PortMapping {
        host_port,
        container_port,
        protocol,
        host_ip,
    })
}

fn bandwidth(v: &Value) -> Checked<Bandwidth> {
    let o = object("bandwidth", v, HINT_BANDWIDTH)?;
    let value = |key: &str| -> Checked<Option<u64>> {
        let f = format!("bandwidth.{key}");
        match get(o, key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(x) if x > 0 => Ok(Some(x)),
                _ => Err(Problem::new(
                    f,
                    format!("{n} is not a positive integer"),
                    HINT_BANDWIDTH,
                )),
            },
            Some(other) => Err(Problem::new(
                f,
                format!("must be an integer, found {}", type_name(other)),
                HINT_BANDWIDTH,
            )),
        }
    };
    let bw = Bandwidth {
        ingress_rate: value("ingressRate")?,
        ingress_burst: value("ingressBurst")?,
        egress_rate: value("egressRate")?,
        egress_burst: value("egressBurst")?,
    };
    if bw.fields().iter().all(|(_, v)| v.is_none()) {
        return Err(Problem::new(
            "bandwidth",
            "sets none of ingressRate, ingressBurst, egressRate, egressBurst",
            HINT_BANDWIDTH,
        ));
    }
    Ok(bw)
}

fn default_route(v: &Value) -> Checked<Vec<IpAddr>> {
    let items = list("default-route", v, "strings", HINT_DEFAULT_ROUTE)?;
    if items.is_empty() {
        return Err(Problem::new(
            "default-route",
            "is an empty list",
            HINT_DEFAULT_ROUTE,
        ));
    }
    let mut out: Vec<IpAddr> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("default-route[{i}]");
        let s = string(&field, item, HINT_DEFAULT_ROUTE)?;
        let Ok(ip) = s.parse::<IpAddr>() else {
            return Err(Problem::new(
                field,
                format!("{s:?} is not an IP address"),
                HINT_DEFAULT_ROUTE,
            ));
        };
        if out.iter().any(|o| o.is_ipv4() == ip.is_ipv4()) {
            let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(Problem::new(
                field,
                format!("{s:?} is a second {family} gateway; at most one per IP family"),
                HINT_DEFAULT_ROUTE,
            ));
        }
        out.push(ip);
    }
    Ok(out)
}

// ---- shared checks ----

/// A DNS-1123 label; `origin` is appended to the problem (e.g. where a defaulted value came from).
fn check_label(field: &str, value: &str, origin: &str) -> Checked<()> {
    let fail = |problem: String| Err(Problem::new(field, problem + origin, HINT_LABEL));
    if value.is_empty() {
        return fail("is empty".to_owned());
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return fail(format!(
            "{value:?} is not a DNS-1123 label: {c:?} is not a lower-case letter, digit or '-'"
        ));
    }
    // Only ASCII is left: bytes are characters.
    if value.len() > 63 {
        return fail(format!(
            "{value:?} is not a DNS-1123 label: {} characters, at most 63 allowed",
            value.len()
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return fail(format!(
            "{value:?} is not a DNS-1123 label: it must start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// A Linux interface name, by the rules of [`validate_ifname`].
fn check_ifname(field: &str, value: &str) -> Checked<()> {
    if value.is_empty() {
        return Err(Problem::new(field, "is empty", HINT_IFNAME));
    }
    validate_ifname(value).map_err(|e| {
        Problem::new(
            field,
            format!("{value:?} is not a valid interface name ({})", e.msg()),
            HINT_IFNAME,
        )
    })
}

/// An IP address, or an IP address with a prefix length (`addr/len`, host bits allowed).
fn is_ip_or_cidr(s: &str) -> bool {
    let (addr, prefix) = match s.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (s, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let Some(prefix) = prefix else {
        return true;
    };
    let canonical = !prefix.is_empty()
        && prefix.len() <= 3
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && (prefix == "0" || !prefix.starts_with('0'));
    let max = if addr.is_ipv4() { 32 } else { 128 };
    canonical && prefix.parse::<u8>().is_ok_and(|p| p <= max)
}

/// The checks that span elements: unique interface names, one `default-route`.
fn check_list(selections: &[NetworkSelection]) -> Result<(), Error> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, sel) in selections.iter().enumerate() {
        if let Some(ifname) = sel.interface.as_deref() {
            if let Some(first) = seen.get(ifname) {
                return Err(list_error(
                    format_args!("elements {first} and {i} both request interface {ifname:?}"),
                    HINT_UNIQUE_IFNAME,
                ));
            }
            seen.insert(ifname, i);
        }
    }
    let mut with_route = selections
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.default_route.is_empty())
        .map(|(i, _)| i);
    if let (Some(first), Some(second)) = (with_route.next(), with_route.next()) {
        return Err(list_error(
            format_args!("elements {first} and {second} both set default-route; at most one may"),
            HINT_ONE_DEFAULT_ROUTE,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::error::Code;
    use serde_json::json;

    const P: &str = "k8s.v1.cni.cncf.io/networks: ";

    fn ok(annotation: &str) -> Vec<NetworkSelection> {
        parse(annotation, "default").unwrap_or_else(|e| panic!("{annotation:?}: {}", e.msg()))
    }

    /// The error message; also checks the code (7) and that a hint is given.
    fn err(annotation: &str) -> String {
        match parse(annotation, "default") {
            Ok(v) => panic!("{annotation:?} parsed: {v:?}"),
            Err(e) => {
                assert_eq!(e.code(), Code::INVALID_CONFIG, "{annotation:?}");
                assert!(!e.details().is_empty(), "{annotation:?}: no details");
                e.msg()
            }
        }
    }

    fn sel(namespace: &str, name: &str, interface: Option<&str>) -> NetworkSelection {
        NetworkSelection {
            namespace: namespace.into(),
            name: name.into(),
            interface: interface.map(Into::into),
            ..Default::default()
        }
    }

    /// `(annotation, expected message without the annotation prefix)`.
    fn check_errors(cases: &[(&str, &str)]) {
        for (annotation, expected) in cases {
            assert_eq!(err(annotation), format!("{P}{expected}"), "{annotation:?}");
        }
    }

    #[test]
    fn comma_form_default_and_explicit_namespace() {
        assert_eq!(
            ok("net-a,other-ns/net-c"),
            vec![
                sel("default", "net-a", None),
                sel("other-ns", "net-c", None)
            ]
        );
    }

    #[test]
    fn comma_form_items_are_trimmed() {
        assert_eq!(
            ok(" net-a , net-b@eth1 "),
            vec![
                sel("default", "net-a", None),
                sel("default", "net-b", Some("eth1"))
            ]
        );
        assert_eq!(
            ok("\tnet-a,\n net-b\n"),
            vec![sel("default", "net-a", None), sel("default", "net-b", None)]
        );
    }

    #[test]
    fn comma_form_namespace_name_interface() {
        assert_eq!(ok("ns/name@eth1"), vec![sel("ns", "name", Some("eth1"))]);
        assert_eq!(
            ok("net-a,other-ns/net-b,net-c@eth7"),
            vec![
                sel("default", "net-a", None),
                sel("other-ns", "net-b", None),
                sel("default", "net-c", Some("eth7"))
            ]
        );
    }

    #[test]
    fn same_network_twice_is_two_attachments() {
        assert_eq!(
            ok("net-a,net-a"),
            vec![sel("default", "net-a", None), sel("default", "net-a", None)]
        );
        assert_eq!(
            ok(r#"[{"name":"net-a"},{"name":"net-a","interface":"net9"}]"#).len(),
            2
        );
    }

    #[test]
    fn empty_annotation_is_an_empty_list() {
        for text in ["", " ", "\n\t ", "[]", " [ ] "] {
            assert_eq!(ok(text), Vec::new(), "{text:?}");
        }
    }

    #[test]
    fn comma_form_structure_errors() {
        check_errors(&[
            ("net-a,,net-b", r#"element 1 (""): name: is empty"#),
            ("net-a,", r#"element 1 (""): name: is empty"#),
            (",net-a", r#"element 0 (""): name: is empty"#),
            ("net-a, ,net-b", r#"element 1 (""): name: is empty"#),
            (
                "a/b/c",
                r#"element 0 ("a/b/c"): reference: contains more than one '/'"#,
            ),
            (
                "net-a,net@a@b",
                r#"element 1 ("net@a@b"): reference: contains more than one '@'"#,
            ),
            (
                "ns@eth1/net",
                r#"element 0 ("ns@eth1/net"): reference: '@interface' must come after 'namespace/name'"#,
            ),
            ("ns/", r#"element 0 ("ns/"): name: is empty"#),
            ("ns/@eth1", r#"element 0 ("ns/@eth1"): name: is empty"#),
            ("/net", r#"element 0 ("/net"): namespace: is empty"#),
            ("@eth1", r#"element 0 ("@eth1"): name: is empty"#),
            ("net@", r#"element 0 ("default/net"): interface: is empty"#),
        ]);
    }

    #[test]
    fn comma_form_name_and_namespace_must_be_dns_labels() {
        let long = "a".repeat(64);
        let msg = format!(
            "element 0 ({long:?}): name: {long:?} is not a DNS-1123 label: 64 characters, at most 63 allowed"
        );
        check_errors(&[
            (
                "Net-A",
                r#"element 0 ("Net-A"): name: "Net-A" is not a DNS-1123 label: 'N' is not a lower-case letter, digit or '-'"#,
            ),
            (
                "net-a,OTHER/net-b",
                r#"element 1 ("OTHER/net-b"): namespace: "OTHER" is not a DNS-1123 label: 'O' is not a lower-case letter, digit or '-'"#,
            ),
            (
                "my_ns/net",
                r#"element 0 ("my_ns/net"): namespace: "my_ns" is not a DNS-1123 label: '_' is not a lower-case letter, digit or '-'"#,
            ),
            (
                "-net",
                r#"element 0 ("-net"): name: "-net" is not a DNS-1123 label: it must start and end with a letter or digit"#,
            ),
            (
                "net-",
                r#"element 0 ("net-"): name: "net-" is not a DNS-1123 label: it must start and end with a letter or digit"#,
            ),
            (
                "net.a",
                r#"element 0 ("net.a"): name: "net.a" is not a DNS-1123 label: '.' is not a lower-case letter, digit or '-'"#,
            ),
            (
                "ns /net",
                r#"element 0 ("ns /net"): namespace: "ns " is not a DNS-1123 label: ' ' is not a lower-case letter, digit or '-'"#,
            ),
            (
                "né",
                r#"element 0 ("né"): name: "né" is not a DNS-1123 label: 'é' is not a lower-case letter, digit or '-'"#,
            ),
            (&long, &msg),
        ]);
        let max = "a".repeat(63);
        assert_eq!(ok(&max), vec![sel("default", &max, None)]);
        assert_eq!(ok("0-9"), vec![sel("default", "0-9", None)]);
    }

    #[test]
    fn interface_names_follow_linux_rules() {
        assert_eq!(
            ok("net@abcdefghijklmno"),
            vec![sel("default", "net", Some("abcdefghijklmno"))]
        );
        // Not DNS-1123: upper case, '_' and '.' are valid interface names.
        assert_eq!(
            ok("net@Eth_1.5"),
            vec![sel("default", "net", Some("Eth_1.5"))]
        );
        check_errors(&[
            (
                "net@abcdefghijklmnop",
                r#"element 0 ("default/net"): interface: "abcdefghijklmnop" is not a valid interface name (interface name is too long)"#,
            ),
            (
                "ns/net@a:b",
                r#"element 0 ("ns/net"): interface: "a:b" is not a valid interface name (interface name contains / or : or whitespace characters)"#,
            ),
            (
                "net@eth 1",
                r#"element 0 ("default/net"): interface: "eth 1" is not a valid interface name (interface name contains / or : or whitespace characters)"#,
            ),
            (
                "net@..",
                r#"element 0 ("default/net"): interface: ".." is not a valid interface name (interface name is . or ..)"#,
            ),
        ]);
    }

    #[test]
    fn duplicate_interface_names_are_refused() {
        check_errors(&[
            (
                "net-a@eth1,net-b,net-c@eth1",
                r#"elements 0 and 2 both request interface "eth1""#,
            ),
            (
                r#"[{"name":"net-a","interface":"eth1"},{"name":"net-b"},{"name":"net-c","interface":"eth1"}]"#,
                r#"elements 0 and 2 both request interface "eth1""#,
            ),
            (
                r#"[{"name":"net-a","interface":"net1"},{"name":"net-b","interfaceRequest":"net1"}]"#,
                r#"elements 0 and 1 both request interface "net1""#,
            ),
        ]);
        // Interface names are case-sensitive.
        assert_eq!(ok("net-a@eth1,net-b@ETH1").len(), 2);
    }

    #[test]
    fn json_top_level_must_be_a_list() {
        check_errors(&[
            (
                r#"{"name":"net-a"}"#,
                "must be a JSON list of objects, found an object",
            ),
            (
                r#""net-a""#,
                "must be a JSON list of objects, found a string",
            ),
            (
                r#"[{"name":"net-a"}"#,
                "is not valid JSON (EOF while parsing a list at line 1 column 17)",
            ),
            (
                r#"net-a,"net-b""#,
                "is not valid JSON (expected ident at line 1 column 2)",
            ),
        ]);
        let e = parse(r#"net-a,"net-b""#, "default").unwrap_err();
        assert!(
            e.details()
                .starts_with("text containing '[', '{' or '\"' is read as JSON")
        );
    }

    #[test]
    fn json_list_items_must_be_objects() {
        check_errors(&[
            (
                r#"[{"name":"net-a"},"net-b"]"#,
                r#"element 1 ("\"net-b\""): must be a JSON object, found a string"#,
            ),
            (
                r#"[[{"name":"net-a"}]]"#,
                r#"element 0 ("[{\"name\":\"net-a\"}]"): must be a JSON object, found a list"#,
            ),
            (
                r#"[null]"#,
                r#"element 0 ("null"): must be a JSON object, found null"#,
            ),
        ]);
    }

    #[test]
    fn json_name_and_namespace_errors() {
        check_errors(&[
            (
                r#"[{"name":5}]"#,
                r#"element 0 ("{\"name\":5}"): name: must be a string, found a number"#,
            ),
            (
                r#"[{"namespace":"ns"}]"#,
                r#"element 0 ("{\"namespace\":\"ns\"}"): name: is required"#,
            ),
            (
                r#"[{"name":null}]"#,
                r#"element 0 ("{\"name\":null}"): name: is required"#,
            ),
            (
                r#"[{"name":""}]"#,
                r#"element 0 ("{\"name\":\"\"}"): name: is empty"#,
            ),
            (
                r#"[{"name":" net-a"}]"#,
                r#"element 0 ("{\"name\":\" net-a\"}"): name: " net-a" is not a DNS-1123 label: ' ' is not a lower-case letter, digit or '-'"#,
            ),
            (
                r#"[{"name":"net-a","namespace":"my_ns"}]"#,
                r#"element 0 ("{\"name\":\"net-a\",\"namespace\":\"my_ns\"}"): namespace: "my_ns" is not a DNS-1123 label: '_' is not a lower-case letter, digit or '-'"#,
            ),
            (
                r#"[{"name":"net-a","namespace":""}]"#,
                r#"element 0 ("{\"name\":\"net-a\",\"namespace\":\"\"}"): namespace: is empty"#,
            ),
            (
                r#"[{"name":"net-a","namespace":["x"]}]"#,
                r#"element 0 ("{\"name\":\"net-a\",\"namespace\":[\"x\"]}"): namespace: must be a string, found a list"#,
            ),
        ]);
    }

    #[test]
    fn json_unknown_keys_are_ignored_and_null_is_absent() {
        assert_eq!(
            ok(
                r#"[{"name":"net-a","foo":1,"bar":{"x":[1,2]},"Interface":"bad name!","namespace":null,"mac":null,"ips":null}]"#
            ),
            vec![sel("default", "net-a", None)]
        );
    }

    #[test]
    fn json_every_key() {
        let text = r#"[{"name":"net-a","namespace":"other-ns","interface":"net1",
            "ips":["10.1.1.5/24","fd00::5"],"mac":"0A:58:0a:46:00:02",
            "infiniband-guid":"C2:11:22:33:44:55:66:77",
            "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"udp","hostIP":"10.0.0.1"},
                            {"hostPort":443,"containerPort":8443}],
            "bandwidth":{"ingressRate":1000,"ingressBurst":2000,"egressRate":3000,"egressBurst":4000},
            "cni-args":{"foo":"bar","n":1},
            "default-route":["10.1.1.1","fd00::1"],
            "deviceID":"0000:03:00.1","ipam-claim-reference":"claim-a"}]"#;
        let expected = NetworkSelection {
            namespace: "other-ns".into(),
            name: "net-a".into(),
            interface: Some("net1".into()),
            ips: vec!["10.1.1.5/24".into(), "fd00::5".into()],
            mac: Some("0a:58:0a:46:00:02".into()),
            infiniband_guid: Some("c2:11:22:33:44:55:66:77".into()),
            port_mappings: vec![
                PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: "UDP".into(),
                    host_ip: Some("10.0.0.1".into()),
                },
                PortMapping {
                    host_port: 443,
                    container_port: 8443,
                    protocol: "TCP".into(),
                    host_ip: None,
                },
            ],
            bandwidth: Some(Bandwidth {
                ingress_rate: Some(1000),
                ingress_burst: Some(2000),
                egress_rate: Some(3000),
                egress_burst: Some(4000),
            }),
            cni_args: json!({"foo":"bar","n":1}).as_object().cloned(),
            default_route: vec!["10.1.1.1".parse().unwrap(), "fd00::1".parse().unwrap()],
            device_id: Some("0000:03:00.1".into()),
            ipam_claim_reference: Some("claim-a".into()),
        };
        let parsed = ok(text);
        assert_eq!(parsed, vec![expected]);
        assert_eq!(
            Value::Object(parsed[0].runtime_config()).to_string(),
            concat!(
                r#"{"ips":["10.1.1.5/24","fd00::5"],"mac":"0a:58:0a:46:00:02","#,
                r#""portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"udp","hostIP":"10.0.0.1"},"#,
                r#"{"hostPort":443,"containerPort":8443,"protocol":"tcp"}],"#,
                r#""bandwidth":{"ingressRate":1000,"ingressBurst":2000,"egressRate":3000,"egressBurst":4000},"#,
                r#""infinibandGUID":"c2:11:22:33:44:55:66:77","deviceID":"0000:03:00.1"}"#
            )
        );
    }

    #[test]
    fn runtime_config_is_empty_without_requests() {
        assert!(ok("net-a@eth1")[0].runtime_config().is_empty());
        let with_route_and_args = ok(
            r#"[{"name":"net-a","default-route":["10.0.0.1"],"cni-args":{"a":1},"ipam-claim-reference":"c"}]"#,
        );
        assert!(with_route_and_args[0].runtime_config().is_empty());
    }

    #[test]
    fn runtime_config_bandwidth_has_only_set_keys() {
        let parsed = ok(r#"[{"name":"net-a","bandwidth":{"egressRate":100,"ingressBurst":7}}]"#);
        assert_eq!(
            parsed[0].bandwidth,
            Some(Bandwidth {
                ingress_burst: Some(7),
                egress_rate: Some(100),
                ..Default::default()
            })
        );
        assert_eq!(
            Value::Object(parsed[0].runtime_config()),
            json!({"bandwidth": {"ingressBurst": 7, "egressRate": 100}})
        );
    }

    #[test]
    fn interface_request_is_an_alias() {
        assert_eq!(
            ok(r#"[{"name":"net-a","interfaceRequest":"net5"}]"#),
            vec![sel("default", "net-a", Some("net5"))]
        );
        check_errors(&[
            (
                r#"[{"name":"net-a","interface":"net5","interfaceRequest":"net5"}]"#,
                r#"element 0 ("default/net-a"): interfaceRequest: is set together with interface; set only one"#,
            ),
            (
                r#"[{"name":"net-a","interfaceRequest":"abcdefghijklmnop"}]"#,
                r#"element 0 ("default/net-a"): interfaceRequest: "abcdefghijklmnop" is not a valid interface name (interface name is too long)"#,
            ),
            (
                r#"[{"name":"net-a","interface":7}]"#,
                r#"element 0 ("default/net-a"): interface: must be a string, found a number"#,
            ),
            (
                r#"[{"name":"net-a","interface":""}]"#,
                r#"element 0 ("default/net-a"): interface: is empty"#,
            ),
        ]);
    }

    #[test]
    fn mac_is_validated_and_lower_cased() {
        assert_eq!(
            ok(r#"[{"name":"net-a","mac":"AA:bb:CC:dd:EE:f0"}]"#)[0].mac,
            Some("aa:bb:cc:dd:ee:f0".into())
        );
        check_errors(&[
            (
                r#"[{"name":"net-a"},{"name":"net-b","mac":"zz:00:00:00:00:00"}]"#,
                r#"element 1 ("default/net-b"): mac: "zz:00:00:00:00:00" is not a MAC address"#,
            ),
            (
                r#"[{"name":"net-a","mac":"0a:58:0a:46:00"}]"#,
                r#"element 0 ("default/net-a"): mac: "0a:58:0a:46:00" is not a MAC address"#,
            ),
            (
                r#"[{"name":"net-a","mac":"0a-58-0a-46-00-02"}]"#,
                r#"element 0 ("default/net-a"): mac: "0a-58-0a-46-00-02" is not a MAC address"#,
            ),
            (
                r#"[{"name":"net-a","mac":"a:58:0a:46:00:002"}]"#,
                r#"element 0 ("default/net-a"): mac: "a:58:0a:46:00:002" is not a MAC address"#,
            ),
            (
                r#"[{"name":"net-a","mac":"01:00:5e:00:00:01"}]"#,
                r#"element 0 ("default/net-a"): mac: "01:00:5e:00:00:01" is a multicast address"#,
            ),
            (
                r#"[{"name":"net-a","mac":"00:00:00:00:00:00"}]"#,
                r#"element 0 ("default/net-a"): mac: "00:00:00:00:00:00" is all zero"#,
            ),
            (
                r#"[{"name":"net-a","mac":1}]"#,
                r#"element 0 ("default/net-a"): mac: must be a string, found a number"#,
            ),
        ]);
    }

    #[test]
    fn infiniband_guid_is_eight_bytes() {
        check_errors(&[
            (
                r#"[{"name":"net-a","infiniband-guid":"c2:11:22:33:44:55"}]"#,
                r#"element 0 ("default/net-a"): infiniband-guid: "c2:11:22:33:44:55" is not an InfiniBand GUID"#,
            ),
            (
                r#"[{"name":"net-a","infiniband-guid":"c2:11:22:33:44:55:66:7g"}]"#,
                r#"element 0 ("default/net-a"): infiniband-guid: "c2:11:22:33:44:55:66:7g" is not an InfiniBand GUID"#,
            ),
        ]);
    }

    #[test]
    fn ips_take_addresses_and_cidrs() {
        assert_eq!(
            ok(r#"[{"name":"net-a","ips":["10.1.1.5/24","10.1.1.6","fd00::5/64","fd00::6","0.0.0.0/0"]}]"#)[0].ips,
            vec!["10.1.1.5/24", "10.1.1.6", "fd00::5/64", "fd00::6", "0.0.0.0/0"]
        );
        let bad = |ip: &str, i: usize| {
            format!(r#"element 0 ("default/net-a"): ips[{i}]: {ip:?} is not an IP address or CIDR"#)
        };
        for ip in [
            "10.1.1.300",
            "10.1.1.5/33",
            "fd00::5/129",
            "10.1.1.5/",
            "10.1.1.5/024",
            "10.1.1.5/+8",
            "10.1.1.5/24/1",
            "010.1.1.5",
            "host.example",
            "",
        ] {
            let text = format!(r#"[{{"name":"net-a","ips":["10.0.0.1",{ip:?}]}}]"#);
            assert_eq!(err(&text), format!("{P}{}", bad(ip, 1)), "{ip:?}");
        }
        check_errors(&[
            (
                r#"[{"name":"net-a","ips":"10.1.1.5"}]"#,
                r#"element 0 ("default/net-a"): ips: must be a list of strings, found a string"#,
            ),
            (
                r#"[{"name":"net-a","ips":[167837957]}]"#,
                r#"element 0 ("default/net-a"): ips[0]: must be a string, found a number"#,
            ),
        ]);
    }

    #[test]
    fn port_mappings_are_validated() {
        let pm = |body: &str| format!(r#"[{{"name":"net-a","portMappings":[{body}]}}]"#);
        let parsed = ok(&pm(
            r#"{"hostPort":1,"containerPort":65535,"protocol":"sCtP"},{"hostPort":2,"containerPort":3,"protocol":"TCP","hostIP":"fd00::1"}"#,
        ));
        assert_eq!(
            parsed[0].port_mappings,
            vec![
                PortMapping {
                    host_port: 1,
                    container_port: 65535,
                    protocol: "SCTP".into(),
                    host_ip: None
                },
                PortMapping {
                    host_port: 2,
                    container_port: 3,
                    protocol: "TCP".into(),
                    host_ip: Some("fd00::1".into())
                },
            ]
        );
        let cases = [
            (
                r#"{"hostPort":0,"containerPort":80}"#,
                "portMappings[0].hostPort: 0 is not a port number (1-65535)",
            ),
            (
                r#"{"hostPort":8080,"containerPort":65536}"#,
                "portMappings[0].containerPort: 65536 is not a port number (1-65535)",
            ),
            (
                r#"{"hostPort":-1,"containerPort":80}"#,
                "portMappings[0].hostPort: -1 is not a port number (1-65535)",
            ),
            (
                r#"{"hostPort":80.5,"containerPort":80}"#,
                "portMappings[0].hostPort: 80.5 is not a port number (1-65535)",
            ),
            (
                r#"{"hostPort":"8080","containerPort":80}"#,
                "portMappings[0].hostPort: must be an integer, found a string",
            ),
            (
                r#"{"containerPort":80}"#,
                "portMappings[0].hostPort: is required",
            ),
            (
                r#"{"hostPort":8080,"containerPort":80,"protocol":"icmp"}"#,
                r#"portMappings[0].protocol: "icmp" is not TCP, UDP or SCTP"#,
            ),
            (
                r#"{"hostPort":8080,"containerPort":80,"hostIP":"10.0.0.0/8"}"#,
                r#"portMappings[0].hostIP: "10.0.0.0/8" is not an IP address"#,
            ),
            (
                r#"{"hostPort":1,"containerPort":1},8080"#,
                "portMappings[1]: must be a JSON object, found a number",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                err(&pm(body)),
                format!(r#"{P}element 0 ("default/net-a"): {expected}"#),
                "{body}"
            );
        }
        check_errors(&[(
            r#"[{"name":"net-a","portMappings":{"hostPort":1,"containerPort":1}}]"#,
            r#"element 0 ("default/net-a"): portMappings: must be a list of objects, found an object"#,
        )]);
    }

    #[test]
    fn bandwidth_values_are_positive_integers() {
        let bw = |body: &str| format!(r#"[{{"name":"net-a","bandwidth":{body}}}]"#);
        let cases = [
            (
                r#"{"ingressRate":0}"#,
                "bandwidth.ingressRate: 0 is not a positive integer",
            ),
            (
                r#"{"ingressRate":10,"egressBurst":-5}"#,
                "bandwidth.egressBurst: -5 is not a positive integer",
            ),
            (
                r#"{"egressRate":1.5}"#,
                "bandwidth.egressRate: 1.5 is not a positive integer",
            ),
            (
                r#"{"egressRate":"1M"}"#,
                "bandwidth.egressRate: must be an integer, found a string",
            ),
            (
                r#"{}"#,
                "bandwidth: sets none of ingressRate, ingressBurst, egressRate, egressBurst",
            ),
            (
                r#"{"ingressrate":5}"#,
                "bandwidth: sets none of ingressRate, ingressBurst, egressRate, egressBurst",
            ),
            (
                r#"[1000]"#,
                "bandwidth: must be a JSON object, found a list",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                err(&bw(body)),
                format!(r#"{P}element 0 ("default/net-a"): {expected}"#),
                "{body}"
            );
        }
        assert_eq!(
            ok(&bw(r#"{"ingressRate":18446744073709551615}"#))[0].bandwidth,
            Some(Bandwidth {
                ingress_rate: Some(u64::MAX),
                ..Default::default()
            })
        );
    }

    #[test]
    fn cni_args_must_be_an_object() {
        assert_eq!(
            ok(r#"[{"name":"net-a","cni-args":{}}]"#)[0].cni_args,
            Some(Map::new())
        );
        check_errors(&[
            (
                r#"[{"name":"net-a","cni-args":["foo"]}]"#,
                r#"element 0 ("default/net-a"): cni-args: must be a JSON object, found a list"#,
            ),
            (
                r#"[{"name":"net-a","cni-args":"foo=bar"}]"#,
                r#"element 0 ("default/net-a"): cni-args: must be a JSON object, found a string"#,
            ),
        ]);
    }

    #[test]
    fn default_route_ipv6_and_dual_stack() {
        assert_eq!(
            ok(r#"[{"name":"net-a"},{"name":"net-b","default-route":["fd00::1"]}]"#)[1]
                .default_route,
            vec!["fd00::1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            ok(r#"[{"name":"net-b","default-route":["fd00::1","10.0.0.1"]}]"#)[0]
                .default_route
                .len(),
            2
        );
    }

    #[test]
    fn default_route_errors() {
        check_errors(&[
            (
                r#"[{"name":"a","default-route":["10.0.0.1"]},{"name":"b"},{"name":"c"},{"name":"d","default-route":["fd00::1"]}]"#,
                "elements 0 and 3 both set default-route; at most one may",
            ),
            (
                r#"[{"name":"a","default-route":[]}]"#,
                r#"element 0 ("default/a"): default-route: is an empty list"#,
            ),
            (
                r#"[{"name":"a","default-route":"10.0.0.1"}]"#,
                r#"element 0 ("default/a"): default-route: must be a list of strings, found a string"#,
            ),
            (
                r#"[{"name":"a","default-route":["10.0.0.0/24"]}]"#,
                r#"element 0 ("default/a"): default-route[0]: "10.0.0.0/24" is not an IP address"#,
            ),
            (
                r#"[{"name":"a","default-route":["10.0.0.1","fd00::1","10.0.0.2"]}]"#,
                r#"element 0 ("default/a"): default-route[2]: "10.0.0.2" is a second IPv4 gateway; at most one per IP family"#,
            ),
        ]);
    }

    #[test]
    fn device_id_and_ipam_claim_reference() {
        let parsed =
            ok(r#"[{"name":"a","deviceID":"0000:af:00.2","ipam-claim-reference":"pod-a.net"}]"#);
        assert_eq!(parsed[0].device_id.as_deref(), Some("0000:af:00.2"));
        assert_eq!(parsed[0].ipam_claim_reference.as_deref(), Some("pod-a.net"));
        check_errors(&[
            (
                r#"[{"name":"a","deviceID":""}]"#,
                r#"element 0 ("default/a"): deviceID: is empty"#,
            ),
            (
                r#"[{"name":"a","ipam-claim-reference":{"name":"x"}}]"#,
                r#"element 0 ("default/a"): ipam-claim-reference: must be a string, found an object"#,
            ),
        ]);
    }

    #[test]
    fn the_first_error_wins_and_names_its_element() {
        assert_eq!(
            err(r#"[{"name":"a","mac":"bad"},{"name":5}]"#),
            format!(r#"{P}element 0 ("default/a"): mac: "bad" is not a MAC address"#)
        );
        // Element errors come before list-level ones.
        assert_eq!(
            err("a@eth1,b@eth1,C"),
            format!(
                r#"{P}element 2 ("C"): name: "C" is not a DNS-1123 label: 'C' is not a lower-case letter, digit or '-'"#
            )
        );
    }

    #[test]
    fn long_raw_elements_are_cut_in_messages() {
        let text = format!(r#"[{{"name":"{}"}}]"#, "é".repeat(100));
        let msg = err(&text);
        let raw: String = format!(r#"{{"name":"{}"}}"#, "é".repeat(100))
            .chars()
            .take(77)
            .collect();
        assert!(
            msg.starts_with(&format!("{P}element 0 ({:?}): name: ", format!("{raw}..."))),
            "{msg}"
        );
    }

    #[test]
    fn the_pod_namespace_is_checked_when_used() {
        let e = parse("net-a", "").unwrap_err();
        assert_eq!(
            e.msg(),
            format!(r#"{P}element 0 ("net-a"): namespace: is empty (the default namespace)"#)
        );
        let e = parse(r#"[{"name":"net-a"}]"#, "Bad").unwrap_err();
        assert_eq!(
            e.msg(),
            format!(
                r#"{P}element 0 ("{{\"name\":\"net-a\"}}"): namespace: "Bad" is not a DNS-1123 label: 'B' is not a lower-case letter, digit or '-' (the pod's namespace)"#
            )
        );
        // Not used: not checked.
        assert_eq!(
            parse("ns/net-a", "").unwrap(),
            vec![sel("ns", "net-a", None)]
        );
    }

    #[test]
    fn parse_reference_alone() {
        assert_eq!(
            parse_reference("macvlan-a", "kube-system").unwrap(),
            ("kube-system".into(), "macvlan-a".into(), None)
        );
        assert_eq!(
            parse_reference(" ns/net@eth1 ", "kube-system").unwrap(),
            ("ns".into(), "net".into(), Some("eth1".into()))
        );
        let e = parse_reference("ns/a/b", "kube-system").unwrap_err();
        assert_eq!(e.code(), Code::INVALID_CONFIG);
        assert_eq!(
            e.msg(),
            r#"network reference "ns/a/b": reference: contains more than one '/'"#
        );
        assert_eq!(
            parse_reference("", "kube-system").unwrap_err().msg(),
            r#"network reference "": name: is empty"#
        );
        assert_eq!(
            parse_reference("/etc/cni/net.d/10-flannel.conf", "kube-system")
                .unwrap_err()
                .msg(),
            r#"network reference "/etc/cni/net.d/10-flannel.conf": reference: contains more than one '/'"#
        );
    }

    #[test]
    fn every_error_is_invalid_config_with_a_hint() {
        // `err` asserts code 7 and non-empty details; run it over one case of each kind.
        for text in [
            "a,,b",
            "a/b/c",
            "a@b@c",
            "A",
            "a@",
            "a@b,c@b",
            "{}",
            "[1]",
            "[",
            r#"[{}]"#,
            r#"[{"name":"a","ips":["x"]}]"#,
            r#"[{"name":"a","bandwidth":{}}]"#,
            r#"[{"name":"a","default-route":["1.1.1.1"]},{"name":"b","default-route":["1.1.1.2"]}]"#,
        ] {
            err(text);
        }
    }

    #[test]
    fn never_panics() {
        let samples = [
            r#"[{"name":"net-a","namespace":"other-ns","interface":"net1","ips":["10.1.1.5/24"],"mac":"0a:58:0a:46:00:02","infiniband-guid":"c2:11:22:33:44:55:66:77","portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"udp","hostIP":"10.0.0.1"}],"bandwidth":{"ingressRate":1},"cni-args":{"é":"ü"},"default-route":["fd00::1"],"deviceID":"d","ipam-claim-reference":"c"}]"#,
            " né-a , ü/nét@éth1,x@ÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ ",
            "\u{0}\u{7f}\u{feff},/@",
        ];
        for sample in samples {
            for (i, _) in sample.char_indices() {
                let _ = parse(&sample[..i], "default");
                let _ = parse(&sample[i..], "dé");
                let _ = parse_reference(&sample[i..], "");
            }
        }
        for text in [
            "[[[[[[[[[[]]]]]]]]]]",
            "[1e999]",
            r#"[{"name":"a","bandwidth":{"ingressRate":1e400}}]"#,
            r#"[{"name":"a","portMappings":[{"hostPort":99999999999999999999999,"containerPort":1}]}]"#,
            r#"[{"name":"a","mac":"éé:éé:éé:éé:éé:éé"}]"#,
            r#"[{"name":"a","mac":"::::::"}]"#,
            r#"[{"name":"a","ips":["10.0.0.1/é"]}]"#,
            "@/",
            "/@",
        ] {
            let _ = parse(text, "default");
        }
    }
}
