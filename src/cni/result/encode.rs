//! Rendering a [`CniResult`] in a given version.

use serde_json::{Map, Value};

use super::cidr::{IpFamily, cidr_family};
use super::decode::quote;
use super::{CniResult, Dns, Interface, IpConfig, Route};
use crate::cni::error::Error;
use crate::cni::version::{Family, Version};

type Obj = Map<String, Value>;

/// See [`CniResult::to_value`].
pub(super) fn encode(r: &CniResult, v: Version) -> Result<Value, Error> {
    let mut out = Obj::new();
    out.insert("cniVersion".into(), v.as_str().into());
    match v.family() {
        Family::V1 => v1(r, &mut out),
        Family::V04 => v04(r, &mut out)?,
        Family::V02 => v02(r, &mut out)?,
    }
    Ok(Value::Object(out))
}

/// 1.0.0 / 1.1.0: every field; `None`s, empty lists and an empty `dns` are omitted.
fn v1(r: &CniResult, out: &mut Obj) {
    if !r.interfaces.is_empty() {
        let list = r.interfaces.iter().map(|i| interface(i, true)).collect();
        out.insert("interfaces".into(), Value::Array(list));
    }
    if !r.ips.is_empty() {
        let list = r.ips.iter().map(|ip| ip_config(ip, None)).collect();
        out.insert("ips".into(), Value::Array(list));
    }
    if !r.routes.is_empty() {
        let list = r.routes.iter().map(|rt| route(rt, true)).collect();
        out.insert("routes".into(), Value::Array(list));
    }
    if !r.dns.is_empty() {
        out.insert("dns".into(), dns(&r.dns));
    }
}

/// 0.3.0 / 0.3.1 / 0.4.0: `ips[].version` from the address; interfaces keep name, mac and
/// sandbox, routes dst and gw; `dns` always present.
fn v04(r: &CniResult, out: &mut Obj) -> Result<(), Error> {
    if !r.interfaces.is_empty() {
        let list = r.interfaces.iter().map(|i| interface(i, false)).collect();
        out.insert("interfaces".into(), Value::Array(list));
    }
    if !r.ips.is_empty() {
        let list = r
            .ips
            .iter()
            .enumerate()
            .map(|(n, ip)| Ok(ip_config(ip, Some(ip_family(ip, n)?))))
            .collect::<Result<_, Error>>()?;
        out.insert("ips".into(), Value::Array(list));
    }
    if !r.routes.is_empty() {
        let list = r.routes.iter().map(|rt| route(rt, false)).collect();
        out.insert("routes".into(), Value::Array(list));
    }
    out.insert("dns".into(), dns(&r.dns));
    Ok(())
}

/// 0.1.0 / 0.2.0, libcni's `convertTo02x`: the first IPv4 and the first IPv6 address become
/// `ip4` and `ip6`; each route goes to the `routes` of its destination's family, and is
/// dropped when that family has no address; interfaces are dropped; `dns` always present.
fn v02(r: &CniResult, out: &mut Obj) -> Result<(), Error> {
    let mut ip4: Option<Obj> = None;
    let mut ip6: Option<Obj> = None;
    for (n, ip) in r.ips.iter().enumerate() {
        let slot = match ip_family(ip, n)? {
            IpFamily::V4 => &mut ip4,
            IpFamily::V6 => &mut ip6,
        };
        if slot.is_none() {
            let mut o = Obj::new();
            o.insert("ip".into(), ip.address.clone().into());
            if let Some(gw) = &ip.gateway {
                o.insert("gateway".into(), gw.clone().into());
            }
            *slot = Some(o);
        }
    }
    if ip4.is_none() && ip6.is_none() {
        return Err(Error::Conversion(
            "cannot convert: no valid IP addresses".into(),
        ));
    }
    let (mut routes4, mut routes6) = (Vec::new(), Vec::new());
    for (n, rt) in r.routes.iter().enumerate() {
        let Some(fam) = cidr_family(&rt.dst) else {
            return Err(Error::Conversion(format!(
                "cannot convert: routes[{n}].dst {} is not an IP/prefix",
                quote(&rt.dst)
            )));
        };
        match fam {
            IpFamily::V4 if ip4.is_some() => routes4.push(route(rt, false)),
            IpFamily::V6 if ip6.is_some() => routes6.push(route(rt, false)),
            _ => {}
        }
    }
    for (key, ipc, routes) in [("ip4", ip4, routes4), ("ip6", ip6, routes6)] {
        if let Some(mut o) = ipc {
            if !routes.is_empty() {
                o.insert("routes".into(), Value::Array(routes));
            }
            out.insert(key.into(), Value::Object(o));
        }
    }
    out.insert("dns".into(), dns(&r.dns));
    Ok(())
}

/// The family of `ips[n]`, or the conversion error for an address that is not a CIDR
/// (possible only for a hand-built [`CniResult`]; decoding validates addresses).
fn ip_family(ip: &IpConfig, n: usize) -> Result<IpFamily, Error> {
    ip.family().ok_or_else(|| {
        Error::Conversion(format!(
            "cannot convert: ips[{n}].address {} is not an IP/prefix",
            quote(&ip.address)
        ))
    })
}

fn interface(i: &Interface, v1: bool) -> Value {
    let mut o = Obj::new();
    o.insert("name".into(), i.name.clone().into());
    put_str(&mut o, "mac", &i.mac);
    if v1 {
        put_u32(&mut o, "mtu", i.mtu);
    }
    put_str(&mut o, "sandbox", &i.sandbox);
    if v1 {
        put_str(&mut o, "socketPath", &i.socket_path);
        put_str(&mut o, "pciID", &i.pci_id);
    }
    Value::Object(o)
}

/// An `ips` entry; `version` is written only for 0.3.x/0.4.0 (`Some`).
fn ip_config(ip: &IpConfig, version: Option<IpFamily>) -> Value {
    let mut o = Obj::new();
    if let Some(f) = version {
        o.insert("version".into(), f.as_str().into());
    }
    if let Some(idx) = ip.interface {
        o.insert("interface".into(), idx.into());
    }
    o.insert("address".into(), ip.address.clone().into());
    put_str(&mut o, "gateway", &ip.gateway);
    Value::Object(o)
}

fn route(r: &Route, v1: bool) -> Value {
    let mut o = Obj::new();
    o.insert("dst".into(), r.dst.clone().into());
    put_str(&mut o, "gw", &r.gw);
    if v1 {
        put_u32(&mut o, "mtu", r.mtu);
        put_u32(&mut o, "advmss", r.advmss);
        put_u32(&mut o, "priority", r.priority);
        put_u32(&mut o, "table", r.table);
        put_u32(&mut o, "scope", r.scope);
    }
    Value::Object(o)
}

/// `dns` with empty lists and a `None` domain left out (`{}` when all are empty).
fn dns(d: &Dns) -> Value {
    let mut o = Obj::new();
    put_list(&mut o, "nameservers", &d.nameservers);
    put_str(&mut o, "domain", &d.domain);
    put_list(&mut o, "search", &d.search);
    put_list(&mut o, "options", &d.options);
    Value::Object(o)
}

fn put_str(o: &mut Obj, key: &str, v: &Option<String>) {
    if let Some(s) = v {
        o.insert(key.into(), s.clone().into());
    }
}

fn put_u32(o: &mut Obj, key: &str, v: Option<u32>) {
    if let Some(n) = v {
        o.insert(key.into(), n.into());
    }
}

fn put_list(o: &mut Obj, key: &str, v: &[String]) {
    if !v.is_empty() {
        o.insert(key.into(), v.into());
    }
}
