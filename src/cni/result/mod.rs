//! CNI results of every version, and conversion between them.
//!
//! A CNI result has had three JSON shapes, one per [`Family`] of versions:
//!
//! | family | versions | shape |
//! |---|---|---|
//! | [`Family::V02`] | 0.1.0, 0.2.0 | `{ip4: {ip, gateway?, routes?: [{dst, gw?}]}, ip6: {…}, dns}` |
//! | [`Family::V04`] | 0.3.0, 0.3.1, 0.4.0 | `{interfaces: [{name, mac?, sandbox?}], ips: [{version: "4"\|"6", interface?, address, gateway?}], routes: [{dst, gw?}], dns}` |
//! | [`Family::V1`] | 1.0.0, 1.1.0 | as 0.4.0 without `ips[].version`; interfaces add `mtu`, `socketPath`, `pciID`; routes add `mtu`, `advmss`, `priority`, `table`, `scope` |
//!
//! [`CniResult`] is the canonical model, shaped like 1.x; every version decodes into it and
//! renders from it. Addresses and route destinations are `addr/prefix` strings (host bits
//! kept), gateways plain addresses; the IP family of an entry is the family of its address
//! as written (an IPv4-mapped IPv6 address is IPv6).
//!
//! # Decoding: [`CniResult::from_value`]
//!
//! - `cniVersion` missing, `null` or `""` means 0.1.0; a version plexus does not know is an
//!   incompatible-version error (code 1) naming it.
//! - Each family is read with its own fields only, as libcni's types do: the 1.x additions
//!   are ignored in a 0.4.0 result, `ips[].version` is ignored in a 1.x result; unknown keys
//!   are ignored.
//! - 0.1.0/0.2.0 are up-converted like libcni's `convertFrom02x`: `ip4` then `ip6` become
//!   `ips` entries without an interface index, and their routes are appended, `ip4`'s first.
//!   An `ip4.ip` that is not IPv4 (or `ip6.ip` not IPv6) is rejected.
//! - In 0.3.x/0.4.0, `ips[].version` is otherwise ignored but must be `"4"` or `"6"` and
//!   agree with the address family.
//! - Addresses and `dst` must be valid `addr/prefix`, gateways valid IP addresses, numbers
//!   integers from 0 to 2³²−1, strings strings, lists lists. `null` counts as absent; `""` for
//!   an optional string, and 0 for `mtu`, `advmss` and `priority`, count as absent too (the
//!   zero values Go's `omitempty` drops). Anything else is a decode error (code 6) whose
//!   message names the field: `invalid CNI result: ips[1].address "x" is not an IP/prefix`.
//!   Decoding never panics.
//!
//! # Rendering: [`CniResult::to_value`]
//!
//! `cniVersion` is always the first key. Empty `interfaces`, `ips` and `routes` lists and
//! `None` fields are omitted (libcni's `omitempty`).
//! - 1.x: all fields; `dns` is omitted when empty.
//! - 0.3.x/0.4.0: `ips[].version` is derived from the address; interfaces keep only name,
//!   mac and sandbox, routes only dst and gw; `dns` is always present (`{}` when empty;
//!   inside it, empty lists and a missing domain are omitted, in every version).
//! - 0.1.0/0.2.0 (libcni's `convertTo02x`): only the first IPv4 and the first IPv6 address
//!   are kept, as `ip4`/`ip6` with `ip` and `gateway`; interfaces are dropped; each route
//!   goes to `ip4.routes` or `ip6.routes` by the family of its `dst`, and is dropped when
//!   that family has no address; `dns` is always present. A result without any IP address
//!   fails with [`Error::Conversion`] `cannot convert: no valid IP addresses` (code 1).
//!
//! # Converting: [`convert`]
//!
//! Up-conversion always works; down-conversion loses what the older shape cannot hold.
//! Between two versions of the **same family** (1.0.0 ↔ 1.1.0, 0.3.0 ↔ 0.3.1 ↔ 0.4.0,
//! 0.1.0 ↔ 0.2.0) conversion is a pure relabel: the document is validated, then only the
//! `cniVersion` string changes and every other key is kept as it was, in its place, unknown
//! and plugin-specific keys included — so 1.1.0 → 1.0.0 → 1.1.0 gives back the input
//! exactly. Across families the result is decoded and re-rendered, which keeps only the
//! fields of the model (libcni drops unknown keys the same way).
//!
//! # Validating: [`validate::check`]
//!
//! Decoding checks a result's shape; [`validate::check`] checks what a delegate may put in
//! it before plexus uses any of it: bounded sizes (interfaces, ips, routes, dns entries and
//! strings), valid Linux interface names and MAC addresses, and, when the result has a
//! sandbox interface, that one of them is the interface plexus asked for. It reads the raw
//! document of any version, and its error is one line naming the field and the rule.
//!
//! [`Family`]: crate::cni::version::Family
//! [`Family::V02`]: crate::cni::version::Family::V02
//! [`Family::V04`]: crate::cni::version::Family::V04
//! [`Family::V1`]: crate::cni::version::Family::V1

mod cidr;
mod decode;
mod encode;
#[cfg(test)]
mod tests;
pub mod validate;

use serde_json::{Map, Value};

pub use cidr::{IpFamily, cidr_family, parse_cidr, parse_ip};

use crate::cni::error::Error;
use crate::cni::version::Version;

/// A CNI result in the canonical (1.x-shaped) model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniResult {
    /// `interfaces`.
    pub interfaces: Vec<Interface>,
    /// `ips` (0.1.0/0.2.0: `ip4` and `ip6`).
    pub ips: Vec<IpConfig>,
    /// `routes` (0.1.0/0.2.0: `ip4.routes` and `ip6.routes`).
    pub routes: Vec<Route>,
    /// `dns`.
    pub dns: Dns,
}

/// An `interfaces` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    /// `name`.
    pub name: String,
    /// `mac`.
    pub mac: Option<String>,
    /// `mtu` (1.x only).
    pub mtu: Option<u32>,
    /// `sandbox`: the netns path; `None` for a host-side interface.
    pub sandbox: Option<String>,
    /// `socketPath` (1.x only).
    pub socket_path: Option<String>,
    /// `pciID` (1.x only).
    pub pci_id: Option<String>,
}

/// An `ips` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpConfig {
    /// `interface`: index into [`CniResult::interfaces`].
    pub interface: Option<usize>,
    /// `address`: `addr/prefix`, e.g. `10.1.0.5/24`.
    pub address: String,
    /// `gateway`: a plain address.
    pub gateway: Option<String>,
}

impl IpConfig {
    /// The family of [`IpConfig::address`]; `None` if it is not a valid `addr/prefix`
    /// (only possible for a hand-built value).
    pub fn family(&self) -> Option<IpFamily> {
        cidr_family(&self.address)
    }

    /// Whether the address is IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.family() == Some(IpFamily::V4)
    }

    /// Whether the address is IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.family() == Some(IpFamily::V6)
    }
}

/// A `routes` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Route {
    /// `dst`: `addr/prefix`.
    pub dst: String,
    /// `gw`: a plain address.
    pub gw: Option<String>,
    /// `mtu` (1.x only).
    pub mtu: Option<u32>,
    /// `advmss` (1.x only).
    pub advmss: Option<u32>,
    /// `priority` (1.x only).
    pub priority: Option<u32>,
    /// `table` (1.x only).
    pub table: Option<u32>,
    /// `scope` (1.x only).
    pub scope: Option<u32>,
}

impl Route {
    /// The family of [`Route::dst`]; `None` if it is not a valid `addr/prefix`.
    pub fn family(&self) -> Option<IpFamily> {
        cidr_family(&self.dst)
    }
}

/// The `dns` object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dns {
    /// `nameservers`.
    pub nameservers: Vec<String>,
    /// `domain`.
    pub domain: Option<String>,
    /// `search`.
    pub search: Vec<String>,
    /// `options`.
    pub options: Vec<String>,
}

impl Dns {
    /// True when no field is set (1.x then omits `dns`; older versions write `{}`).
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// Decodes a result document of any supported version (see the module docs), returning
    /// the version it declares and its content.
    ///
    /// Errors: [`Error::IncompatibleVersion`] for an unknown `cniVersion`, [`Error::Decode`]
    /// for anything malformed.
    pub fn from_value(v: &Value) -> Result<(Version, CniResult), Error> {
        decode::decode(v)
    }

    /// Renders the result as a document of version `v` (see the module docs).
    ///
    /// Errors: [`Error::Conversion`] when `v` is 0.1.0/0.2.0 and there is no IP address, or
    /// when an address the rendering needs the family of is not a valid `addr/prefix`.
    pub fn to_value(&self, v: Version) -> Result<Value, Error> {
        encode::encode(self, v)
    }
}

/// Converts a result document to version `to`.
///
/// Same family: validated, then only `cniVersion` is changed (inserted first if it was
/// missing); every other key is kept as is. Other families: [`CniResult::from_value`] then
/// [`CniResult::to_value`].
pub fn convert(v: &Value, to: Version) -> Result<Value, Error> {
    let (from, result) = CniResult::from_value(v)?;
    if from.family() != to.family() {
        return result.to_value(to);
    }
    let Value::Object(src) = v else {
        // from_value accepts objects only.
        return result.to_value(to);
    };
    let mut out = Map::with_capacity(src.len() + 1);
    if !src.contains_key("cniVersion") {
        out.insert("cniVersion".into(), to.as_str().into());
    }
    for (k, val) in src {
        if k == "cniVersion" {
            out.insert(k.clone(), to.as_str().into());
        } else {
            out.insert(k.clone(), val.clone());
        }
    }
    Ok(Value::Object(out))
}
