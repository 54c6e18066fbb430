//! The builder of the pod annotation `k8s.v1.cni.cncf.io/network-status` (pure: no I/O).
//!
//! [`entries`] turns one attachment's CNI result into its status entries; [`annotation`]
//! joins the entries of all attachments, in attachment order, into the annotation text (a
//! compact JSON list). Writing the annotation to the API server is not done here.
//!
//! The result is decoded with [`CniResult::from_value`], so results of every version
//! 0.1.0–1.1.0 are read the same way; a result that does not decode fails with that
//! decode error (code 6, or code 1 for an unknown `cniVersion`), unchanged.
//!
//! # Entry shape
//!
//! Each entry is a JSON object with its keys in this order (`serde_json` keeps insertion
//! order):
//!
//! | key | content |
//! |---|---|
//! | `name` | `<namespace>/<nad>`, or the cluster network's own name (as given) |
//! | `interface` | the interface name; omitted when the result gives none (Go's `omitempty`) |
//! | `ips` | bare addresses (no prefix length), in result order; omitted when empty |
//! | `mac` | omitted when absent |
//! | `mtu` | only when the interface has one (1.x results) |
//! | `default` | `true` on every entry of the default network; never written as `false` |
//! | `dns` | always present, `{}` when empty; inside, `nameservers`, `domain`, `search`, `options` only when non-empty |
//! | `gateway` | gateway IPs of the attachment's default routes; omitted when none |
//! | `device-info` | the device information, when given, on the first entry only |
//!
//! Addresses and gateways are written in their canonical text form (`2001:DB8::0001`
//! becomes `2001:db8::1`), as Multus does with Go's `net.IP.String()`; MAC addresses are
//! kept as the plugin wrote them.
//!
//! # Which entries
//!
//! - Every interface of the result that has a `sandbox` gives one entry, in result order.
//!   Host-side interfaces (no `sandbox`: bridges, veth host ends) give none.
//! - An IP goes to the entry of the interface its `interface` index points at. An IP
//!   without an index, or whose index points at a host-side or missing interface, goes to
//!   the **last** sandbox interface (the libcni convention: the interface a plugin creates
//!   for the container comes last).
//! - A result with no sandbox interface at all (including every 0.1.0/0.2.0 result, which
//!   have no interfaces) gives one minimal entry `{name, default?, dns, device-info?}` — what
//!   the NPWG client library emits; its IPs and gateways are not reported, since there is
//!   no interface to hang them on.
//! - `dns` is the attachment's DNS and is repeated on every entry of that attachment.
//!
//! # Gateways
//!
//! - A default route is a route whose `dst` is `0.0.0.0/0` or `::/0` (compared as parsed
//!   addresses: `0:0::/0` counts too).
//! - Its gateway is the route's `gw`; when it has none, the `gateway` of the first IP of
//!   the route's family in the result (if that IP has no gateway, the route gives none —
//!   later IPs are not searched, as the kernel would use the first one).
//! - Each gateway goes to the first entry (in entry order) that owns an IP of the same
//!   family whose subnet contains it; when no entry does, to the first entry.
//! - A gateway appears at most once in the whole attachment (two default routes through the
//!   same router give one `gateway` element).
//!
//! # Decisions
//!
//! - `default: true` is put on every entry of the default attachment, as Multus does, so a
//!   consumer looking for "the default network's interfaces" finds all of them.
//! - `device-info` goes on the first entry only: the device belongs to the attachment, not
//!   to one of its interfaces, and consumers (SR-IOV / DPDK applications, the device-info
//!   spec's examples) read it from one entry per attachment. Repeating it would suggest one
//!   device per interface. A `device-info` of JSON `null` counts as not given.
//! - Nothing here panics, whatever the input: malformed input is a decode error, and the
//!   arithmetic on prefixes cannot overflow.

use super::api::{KubeApi, PodMeta};
use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::cni::error::Error;
use crate::cni::result::{CniResult, Dns, Interface, IpFamily, parse_cidr, parse_ip};

/// The pod annotation that reports every attachment's interfaces and addresses.
pub const ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";

/// One attachment's entries. `name` is `<namespace>/<nad>` or the cluster network's own name.
///
/// `result` is the attachment's CNI result, of any supported version; `is_default` marks the
/// cluster default network (or its per-pod replacement); `device_info` is the content of the
/// attachment's device-information file, when a device was used.
///
/// Errors: the [`CniResult::from_value`] error when `result` does not decode.
pub fn entries(
    name: &str,
    result: &Value,
    is_default: bool,
    device_info: Option<&Value>,
) -> Result<Vec<Value>, Error> {
    let (_, result) = CniResult::from_value(result)?;
    let device_info = device_info.filter(|d| !d.is_null());
    let dns = dns_value(&result.dns);

    let mut slots: Vec<Slot<'_>> = result
        .interfaces
        .iter()
        .enumerate()
        .filter(|(_, iface)| iface.sandbox.is_some())
        .map(|(index, iface)| Slot {
            index,
            iface,
            ips: Vec::new(),
            gateways: Vec::new(),
        })
        .collect();

    if slots.is_empty() {
        let mut e = Map::new();
        e.insert("name".into(), name.into());
        if is_default {
            e.insert("default".into(), true.into());
        }
        e.insert("dns".into(), dns);
        if let Some(d) = device_info {
            e.insert("device-info".into(), d.clone());
        }
        return Ok(vec![Value::Object(e)]);
    }

    // IPs: to the slot their index points at, else to the last slot.
    let last = slots.len() - 1;
    for ip in &result.ips {
        let Some(cidr) = parse_cidr(&ip.address) else {
            continue; // impossible after decoding
        };
        let k = ip
            .interface
            .and_then(|i| slots.iter().position(|s| s.index == i))
            .unwrap_or(last);
        if let Some(slot) = slots.get_mut(k) {
            slot.ips.push(cidr);
        }
    }

    // Gateways of the default routes.
    let mut seen: Vec<IpAddr> = Vec::new();
    for route in &result.routes {
        let Some((dst, 0)) = parse_cidr(&route.dst) else {
            continue;
        };
        if !dst.is_unspecified() {
            continue;
        }
        let gw = match &route.gw {
            Some(gw) => parse_ip(gw),
            None => result
                .ips
                .iter()
                .find(|ip| ip.family() == Some(IpFamily::of(dst)))
                .and_then(|ip| ip.gateway.as_deref())
                .and_then(parse_ip),
        };
        let Some(gw) = gw else {
            continue;
        };
        if seen.contains(&gw) {
            continue;
        }
        seen.push(gw);
        let k = slots
            .iter()
            .position(|s| {
                s.ips
                    .iter()
                    .any(|&(addr, prefix)| contains(addr, prefix, gw))
            })
            .unwrap_or(0);
        if let Some(slot) = slots.get_mut(k) {
            slot.gateways.push(gw);
        }
    }

    let out = slots
        .iter()
        .enumerate()
        .map(|(k, slot)| {
            let mut e = Map::new();
            e.insert("name".into(), name.into());
            if !slot.iface.name.is_empty() {
                e.insert("interface".into(), slot.iface.name.clone().into());
            }
            if !slot.ips.is_empty() {
                let ips = slot.ips.iter().map(|(a, _)| Value::from(a.to_string()));
                e.insert("ips".into(), Value::Array(ips.collect()));
            }
            if let Some(mac) = &slot.iface.mac {
                e.insert("mac".into(), mac.clone().into());
            }
            if let Some(mtu) = slot.iface.mtu {
                e.insert("mtu".into(), mtu.into());
            }
            if is_default {
                e.insert("default".into(), true.into());
            }
            e.insert("dns".into(), dns.clone());
            if !slot.gateways.is_empty() {
                let gws = slot.gateways.iter().map(|g| Value::from(g.to_string()));
                e.insert("gateway".into(), Value::Array(gws.collect()));
            }
            if k == 0
                && let Some(d) = device_info
            {
                e.insert("device-info".into(), d.clone());
            }
            Value::Object(e)
        })
        .collect();
    Ok(out)
}

/// The annotation text for all entries of all attachments, in attachment order: a compact JSON list.
pub fn annotation(entries: &[Value]) -> String {
    let mut out = String::from("[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.to_string());
    }
    out.push(']');
    out
}

/// One sandbox interface of the result and what is reported on its entry.
struct Slot<'a> {
    /// Its index in the result's `interfaces`.
    index: usize,
    iface: &'a Interface,
    /// Its addresses with their prefix lengths, in result order.
    ips: Vec<(IpAddr, u8)>,
    /// The default-route gateways placed on it.
    gateways: Vec<IpAddr>,
}

/// The status `dns` object: only the non-empty fields, in the order of the NPWG type.
fn dns_value(dns: &Dns) -> Value {
    let mut o = Map::new();
    let list = |l: &[String]| Value::Array(l.iter().map(|s| Value::from(s.as_str())).collect());
    if !dns.nameservers.is_empty() {
        o.insert("nameservers".into(), list(&dns.nameservers));
    }
    if let Some(domain) = dns.domain.as_deref().filter(|d| !d.is_empty()) {
        o.insert("domain".into(), domain.into());
    }
    if !dns.search.is_empty() {
        o.insert("search".into(), list(&dns.search));
    }
    if !dns.options.is_empty() {
        o.insert("options".into(), list(&dns.options));
    }
    Value::Object(o)
}

/// Whether `ip` lies in the subnet `addr/prefix` (same family only).
fn contains(addr: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    match (addr, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128u32.saturating_sub(u32::from(prefix)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Writes the annotation for `entries` on the pod: one merge patch of this one annotation on
/// `pods/status` (only the `pods/status` permission needed; other annotations, written
/// concurrently by others, are untouched).
pub fn write(api: &dyn KubeApi, pod: &PodMeta, entries: &[Value]) -> Result<(), Error> {
    api.set_pod_annotation(pod, ANNOTATION, &annotation(entries))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cni::error::Code;

    fn ok(name: &str, result: Value, is_default: bool, dev: Option<&Value>) -> Vec<Value> {
        match entries(name, &result, is_default, dev) {
            Ok(e) => e,
            Err(e) => panic!("entries failed: {e} ({})", e.details()),
        }
    }

    #[test]
    fn annotation_name() {
        assert_eq!(ANNOTATION, "k8s.v1.cni.cncf.io/network-status");
    }

    #[test]
    fn reference_example_cluster_network_and_macvlan() {
        // A bridge-style cluster network: host bridge and veth end first, the pod's eth0 last.
        let cluster = json!({
            "cniVersion": "0.3.1",
            "interfaces": [
                {"name": "cni0", "mac": "aa:bb:cc:00:00:01"},
                {"name": "veth1234", "mac": "aa:bb:cc:00:00:02"},
                {"name": "eth0", "mac": "0a:58:0a:46:00:02", "sandbox": "/var/run/netns/pod"}
            ],
            "ips": [{"version": "4", "interface": 2, "address": "10.70.0.2/24", "gateway": "10.70.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        });
        let macvlan = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "mac": "5e:2d:11:0c:a1:04", "sandbox": "/var/run/netns/pod"}],
            "ips": [{"interface": 0, "address": "10.71.0.2/24"}]
        });
        let mut all = ok("cluster-net", cluster, true, None);
        assert_eq!(
            all,
            vec![json!({
                "name": "cluster-net",
                "interface": "eth0",
                "ips": ["10.70.0.2"],
                "mac": "0a:58:0a:46:00:02",
                "default": true,
                "dns": {},
                "gateway": ["10.70.0.1"]
            })]
        );
        all.extend(ok("default/macvlan-a", macvlan, false, None));
        assert_eq!(
            annotation(&all),
            concat!(
                r#"[{"name":"cluster-net","interface":"eth0","ips":["10.70.0.2"],"mac":"0a:58:0a:46:00:02","default":true,"dns":{},"gateway":["10.70.0.1"]},"#,
                r#"{"name":"default/macvlan-a","interface":"net1","ips":["10.71.0.2"],"mac":"5e:2d:11:0c:a1:04","dns":{}}]"#
            )
        );
    }

    #[test]
    fn v020_result_gives_a_minimal_entry() {
        let r = json!({
            "cniVersion": "0.2.0",
            "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
            "ip6": {"ip": "2001:db8::5/64"},
            "dns": {"nameservers": ["10.1.0.10"]}
        });
        let e = ok("cluster-net", r, true, None);
        assert_eq!(
            e,
            vec![
                json!({"name": "cluster-net", "default": true, "dns": {"nameservers": ["10.1.0.10"]}})
            ]
        );
        assert_eq!(
            annotation(&e),
            r#"[{"name":"cluster-net","default":true,"dns":{"nameservers":["10.1.0.10"]}}]"#
        );

        // 0.1.0 (no cniVersion at all), not default: no `default` key.
        let r = json!({"ip4": {"ip": "10.1.0.5/16"}});
        let e = ok("ns/old", r, false, None);
        assert_eq!(e, vec![json!({"name": "ns/old", "dns": {}})]);
        assert_eq!(annotation(&e), r#"[{"name":"ns/old","dns":{}}]"#);
    }

    #[test]
    fn v040_result() {
        let r = json!({
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "net1", "mac": "02:00:00:00:00:01", "sandbox": "/proc/1/ns/net", "mtu": 9000}],
            "ips": [
                {"version": "4", "interface": 0, "address": "192.168.1.10/24", "gateway": "192.168.1.1"},
                {"version": "6", "interface": 0, "address": "2001:DB8:0:0::0010/64"}
            ],
            "routes": [{"dst": "10.0.0.0/8", "gw": "192.168.1.254"}],
            "dns": {
                "options": ["ndots:5"],
                "search": ["svc.cluster.local"],
                "domain": "cluster.local",
                "nameservers": ["10.96.0.10"]
            }
        });
        // 0.4.0 has no interface mtu: it is ignored. A non-default route gives no gateway.
        assert_eq!(
            ok("ns/bridge", r, false, None),
            vec![json!({
                "name": "ns/bridge",
                "interface": "net1",
                "ips": ["192.168.1.10", "2001:db8::10"],
                "mac": "02:00:00:00:00:01",
                "dns": {
                    "nameservers": ["10.96.0.10"],
                    "domain": "cluster.local",
                    "search": ["svc.cluster.local"],
                    "options": ["ndots:5"]
                }
            })]
        );
    }

    #[test]
    fn v100_result_with_mtu() {
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "mac": "02:00:00:00:00:02", "mtu": 1450, "sandbox": "/var/run/netns/x"}],
            "ips": [{"interface": 0, "address": "10.10.0.4/24", "gateway": "10.10.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.10.0.1"}],
            "dns": {"nameservers": ["1.1.1.1"]}
        });
        assert_eq!(
            ok("ns/vxlan", r, false, None),
            vec![json!({
                "name": "ns/vxlan",
                "interface": "net1",
                "ips": ["10.10.0.4"],
                "mac": "02:00:00:00:00:02",
                "mtu": 1450,
                "dns": {"nameservers": ["1.1.1.1"]},
                "gateway": ["10.10.0.1"]
            })]
        );
    }

    #[test]
    fn v110_result_with_mtu() {
        let r = json!({
            "cniVersion": "1.1.0",
            "interfaces": [{
                "name": "eth0",
                "mac": "0a:58:0a:f4:00:07",
                "mtu": 8900,
                "sandbox": "/var/run/netns/y",
                "socketPath": "/run/vhost.sock",
                "pciID": "0000:3b:00.2"
            }],
            "ips": [
                {"interface": 0, "address": "10.244.0.7/24", "gateway": "10.244.0.1"},
                {"interface": 0, "address": "fd00:10:244::7/64", "gateway": "fd00:10:244::1"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.244.0.1", "mtu": 1400, "priority": 10},
                {"dst": "::/0", "gw": "fd00:10:244::1"}
            ]
        });
        let e = ok("cluster-net", r, true, None);
        assert_eq!(
            e,
            vec![json!({
                "name": "cluster-net",
                "interface": "eth0",
                "ips": ["10.244.0.7", "fd00:10:244::7"],
                "mac": "0a:58:0a:f4:00:07",
                "mtu": 8900,
                "default": true,
                "dns": {},
                "gateway": ["10.244.0.1", "fd00:10:244::1"]
            })]
        );
        assert_eq!(
            annotation(&e),
            r#"[{"name":"cluster-net","interface":"eth0","ips":["10.244.0.7","fd00:10:244::7"],"mac":"0a:58:0a:f4:00:07","mtu":8900,"default":true,"dns":{},"gateway":["10.244.0.1","fd00:10:244::1"]}]"#
        );
    }

    #[test]
    fn several_sandbox_interfaces_and_a_host_interface() {
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "net1", "mac": "02:00:00:00:01:01", "sandbox": "/var/run/netns/p"},
                {"name": "br-host", "mac": "02:00:00:00:01:02"},
                {"name": "net2", "mac": "02:00:00:00:01:03", "sandbox": "/var/run/netns/p"}
            ],
            "ips": [
                {"interface": 2, "address": "10.2.0.3/24"},
                {"interface": 0, "address": "10.1.0.3/24"},
                {"interface": 2, "address": "10.2.1.3/24"}
            ],
            "dns": {"domain": "example.org"}
        });
        // The default flag is on every entry of the default attachment.
        assert_eq!(
            ok("cluster-net", r, true, None),
            vec![
                json!({
                    "name": "cluster-net",
                    "interface": "net1",
                    "ips": ["10.1.0.3"],
                    "mac": "02:00:00:00:01:01",
                    "default": true,
                    "dns": {"domain": "example.org"}
                }),
                json!({
                    "name": "cluster-net",
                    "interface": "net2",
                    "ips": ["10.2.0.3", "10.2.1.3"],
                    "mac": "02:00:00:00:01:03",
                    "default": true,
                    "dns": {"domain": "example.org"}
                }),
            ]
        );
    }

    #[test]
    fn unindexed_ips_go_to_the_last_sandbox_interface() {
        let r = json!({
            "cniVersion": "0.3.1",
            "interfaces": [
                {"name": "a", "sandbox": "/ns"},
                {"name": "host"},
                {"name": "b", "sandbox": "/ns"},
                {"name": "c", "sandbox": "/ns"}
            ],
            "ips": [
                {"version": "4", "address": "10.0.0.1/24"},
                {"version": "4", "interface": 1, "address": "10.0.1.1/24"},
                {"version": "4", "interface": 99, "address": "10.0.2.1/24"},
                {"version": "4", "interface": 0, "address": "10.0.3.1/24"},
                {"version": "4", "interface": 18446744073709551615u64, "address": "10.0.4.1/24"}
            ]
        });
        assert_eq!(
            ok("ns/n", r, false, None),
            vec![
                json!({"name": "ns/n", "interface": "a", "ips": ["10.0.3.1"], "dns": {}}),
                json!({"name": "ns/n", "interface": "b", "dns": {}}),
                json!({
                    "name": "ns/n",
                    "interface": "c",
                    "ips": ["10.0.0.1", "10.0.1.1", "10.0.2.1", "10.0.4.1"],
                    "dns": {}
                }),
            ]
        );
    }

    #[test]
    fn default_routes_ipv4_and_ipv6() {
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "net1", "sandbox": "/ns"},
                {"name": "net2", "sandbox": "/ns"}
            ],
            "ips": [
                {"interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                {"interface": 1, "address": "fd00:2::5/64", "gateway": "fd00:2::1"},
                {"interface": 1, "address": "192.168.7.5/24"},
                {"interface": 0, "address": "fd00:1::5/64", "gateway": "fd00:1::1"}
            ],
            "routes": [
                // Placed by subnet: 192.168.7.0/24 is on net2.
                {"dst": "0.0.0.0/0", "gw": "192.168.7.1"},
                // Not a default route.
                {"dst": "10.0.0.0/8", "gw": "10.1.0.254"},
                // No gw: the gateway of the first IPv6 address (fd00:2::1, on net2).
                {"dst": "::/0"},
                // No gw, IPv4: the first IPv4 address's gateway, 10.1.0.1, on net1.
                {"dst": "0.0.0.0/0"},
                // In no subnet: to the first entry.
                {"dst": "::/0", "gw": "2001:db8::1"},
                // Duplicates are dropped, whatever their spelling.
                {"dst": "0:0::/0", "gw": "FD00:2:0::1"},
                {"dst": "0.0.0.0/0", "gw": "10.1.0.1"}
            ]
        });
        assert_eq!(
            ok("ns/dual", r, false, None),
            vec![
                json!({
                    "name": "ns/dual",
                    "interface": "net1",
                    "ips": ["10.1.0.5", "fd00:1::5"],
                    "dns": {},
                    "gateway": ["10.1.0.1", "2001:db8::1"]
                }),
                json!({
                    "name": "ns/dual",
                    "interface": "net2",
                    "ips": ["fd00:2::5", "192.168.7.5"],
                    "dns": {},
                    "gateway": ["192.168.7.1", "fd00:2::1"]
                }),
            ]
        );

        // A default route without gw whose first IP of its family has no gateway gives none.
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "sandbox": "/ns"}],
            "ips": [
                {"interface": 0, "address": "10.1.0.5/24"},
                {"interface": 0, "address": "10.2.0.5/24", "gateway": "10.2.0.1"}
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
        });
        assert_eq!(
            ok("ns/n", r, false, None),
            vec![
                json!({"name": "ns/n", "interface": "net1", "ips": ["10.1.0.5", "10.2.0.5"], "dns": {}})
            ]
        );
    }

    #[test]
    fn no_interfaces() {
        // IPs but no interfaces: the minimal entry.
        let r = json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}]
        });
        let e = ok("cluster-net", r, true, None);
        assert_eq!(
            e,
            vec![json!({"name": "cluster-net", "default": true, "dns": {}})]
        );

        // Only host-side interfaces: the same.
        let r = json!({"cniVersion": "0.4.0", "interfaces": [{"name": "br0"}]});
        assert_eq!(
            ok("ns/n", r, false, None),
            vec![json!({"name": "ns/n", "dns": {}})]
        );

        // Nothing at all.
        let r = json!({"cniVersion": "1.1.0"});
        assert_eq!(
            ok("ns/n", r, false, None),
            vec![json!({"name": "ns/n", "dns": {}})]
        );
    }

    #[test]
    fn device_info_on_the_first_entry_only() {
        let dev = json!({
            "type": "pci",
            "version": "1.1.0",
            "pci": {"pci-address": "0000:3b:02.4", "pf-pci-address": "0000:3b:00.0"}
        });
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "net1", "sandbox": "/ns"},
                {"name": "net2", "sandbox": "/ns"}
            ],
            "ips": [{"interface": 0, "address": "10.56.217.7/24"}]
        });
        let e = ok("ns/sriov", r.clone(), false, Some(&dev));
        assert_eq!(
            e,
            vec![
                json!({
                    "name": "ns/sriov",
                    "interface": "net1",
                    "ips": ["10.56.217.7"],
                    "dns": {},
                    "device-info": dev.clone()
                }),
                json!({"name": "ns/sriov", "interface": "net2", "dns": {}}),
            ]
        );
        assert_eq!(
            annotation(&e),
            concat!(
                r#"[{"name":"ns/sriov","interface":"net1","ips":["10.56.217.7"],"dns":{},"#,
                r#""device-info":{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.4","pf-pci-address":"0000:3b:00.0"}}},"#,
                r#"{"name":"ns/sriov","interface":"net2","dns":{}}]"#
            )
        );

        // On the minimal entry too, after dns.
        let e = ok("ns/sriov", json!({"cniVersion": "0.2.0"}), true, Some(&dev));
        assert_eq!(
            e,
            vec![
                json!({"name": "ns/sriov", "default": true, "dns": {}, "device-info": dev.clone()})
            ]
        );

        // A JSON null counts as not given.
        let e = ok("ns/sriov", r, false, Some(&Value::Null));
        assert!(e.iter().all(|e| e.get("device-info").is_none()), "{e:?}");
    }

    #[test]
    fn a_result_that_fails_to_decode_gives_the_decode_error() {
        let bad = json!({"cniVersion": "1.0.0", "ips": [{"address": "banana"}]});
        let err = entries("ns/n", &bad, false, None).unwrap_err();
        assert_eq!(err, CniResult::from_value(&bad).unwrap_err());
        assert_eq!(err.code(), Code::DECODE);
        assert_eq!(
            err.msg(),
            r#"invalid CNI result: ips[0].address "banana" is not an IP/prefix"#
        );

        let err = entries("ns/n", &json!("not an object"), false, None).unwrap_err();
        assert_eq!(err.code(), Code::DECODE);

        let err = entries("ns/n", &json!({"cniVersion": "9.9.9"}), false, None).unwrap_err();
        assert_eq!(err.code(), Code::INCOMPATIBLE_VERSION);
    }

    #[test]
    fn annotation_of_nothing_is_an_empty_list() {
        assert_eq!(annotation(&[]), "[]");
    }

    #[test]
    fn odd_but_valid_inputs_do_not_panic() {
        // Prefix 0 and full-length prefixes, odd names, empty interface name.
        let r = json!({
            "cniVersion": "1.1.0",
            "interfaces": [{"name": "", "sandbox": "/ns"}, {"name": "x", "sandbox": "/ns"}],
            "ips": [
                {"interface": 1, "address": "0.0.0.0/0"},
                {"interface": 1, "address": "::/0"},
                {"interface": 0, "address": "10.0.0.1/32", "gateway": "10.0.0.1"},
                {"interface": 0, "address": "fe80::1/128"}
            ],
            "routes": [
                {"dst": "0.0.0.0/0", "gw": "10.0.0.1"},
                {"dst": "::/0", "gw": "fe80::2"},
                {"dst": "10.0.0.0/0", "gw": "10.9.9.9"}
            ]
        });
        assert_eq!(
            ok("", r, true, None),
            vec![
                json!({"name": "", "ips": ["10.0.0.1", "fe80::1"], "default": true, "dns": {}, "gateway": ["10.0.0.1"]}),
                json!({"name": "", "interface": "x", "ips": ["0.0.0.0", "::"], "default": true, "dns": {}, "gateway": ["fe80::2"]}),
            ]
        );
        assert!(contains(
            "0.0.0.0".parse().unwrap(),
            0,
            "1.2.3.4".parse().unwrap()
        ));
        assert!(contains("::".parse().unwrap(), 0, "::1".parse().unwrap()));
        assert!(!contains(
            "::".parse().unwrap(),
            0,
            "1.2.3.4".parse().unwrap()
        ));
        assert!(!contains(
            "10.0.0.1".parse().unwrap(),
            32,
            "10.0.0.2".parse().unwrap()
        ));
        assert!(!contains(
            "10.0.0.1".parse().unwrap(),
            200,
            "10.0.0.2".parse().unwrap()
        ));
    }
}
