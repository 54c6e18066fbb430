//! Decoding a result document of any supported version into a [`CniResult`].

use serde_json::{Map, Value};

use super::cidr::{IpFamily, parse_cidr, parse_ip};
use super::{CniResult, Dns, Interface, IpConfig, Route};
use crate::cni::error::Error;
use crate::cni::version::{Family, SUPPORTED, Version};

type Obj = Map<String, Value>;

/// See [`CniResult::from_value`].
pub(super) fn decode(v: &Value) -> Result<(Version, CniResult), Error> {
    let version = result_version(v)?;
    let d = Decoder { version };
    let top = d.object(v, "the result")?;
    let result = match version.family() {
        Family::V02 => d.v02(top)?,
        Family::V04 | Family::V1 => d.current(top)?,
    };
    Ok((version, result))
}

/// The version a result document declares: `cniVersion`, where missing, `null` or `""`
/// mean 0.1.0.
pub(super) fn result_version(v: &Value) -> Result<Version, Error> {
    let Value::Object(top) = v else {
        return Err(Error::decode(
            format!(
                "invalid CNI result: the result must be a JSON object, got {}",
                kind(v)
            ),
            "a CNI result is an object such as {\"cniVersion\":\"1.1.0\",\"ips\":[…]}",
        ));
    };
    match top.get("cniVersion") {
        None | Some(Value::Null) => Ok(Version::V0_1_0),
        Some(Value::String(s)) => Version::parse(s).ok_or_else(|| {
            Error::incompatible(
                format!("unsupported cniVersion {} in CNI result", quote(s)),
                format!(
                    "plexus supports [{}]",
                    SUPPORTED.map(Version::as_str).join(" ")
                ),
            )
        }),
        Some(other) => Err(Error::decode(
            format!(
                "invalid CNI result: cniVersion must be a string, got {}",
                kind(other)
            ),
            "",
        )),
    }
}

struct Decoder {
    version: Version,
}

impl Decoder {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::decode(
            format!("invalid CNI result: {msg}"),
            format!("while decoding a cniVersion {} result", self.version),
        )
    }

    // ---- shapes -------------------------------------------------------------------------

    /// 0.1.0 / 0.2.0: `ip4`, `ip6`, `dns`, up-converted like libcni's `convertFrom02x`.
    fn v02(&self, top: &Obj) -> Result<CniResult, Error> {
        let mut out = CniResult::default();
        let mut routes6 = Vec::new();
        for (key, want) in [("ip4", IpFamily::V4), ("ip6", IpFamily::V6)] {
            let Some(ipc) = self.opt_object(top, key, key)? else {
                continue;
            };
            let ip_path = format!("{key}.ip");
            let (address, fam) = self.req_cidr(ipc, "ip", &ip_path)?;
            if fam != want {
                return Err(self.err(format_args!(
                    "{ip_path} {} is not an {want} address",
                    quote(&address)
                )));
            }
            let gateway = self.opt_ip(ipc, "gateway", &format!("{key}.gateway"))?;
            out.ips.push(IpConfig {
                interface: None,
                address,
                gateway,
            });
            let routes_path = format!("{key}.routes");
            for (i, r) in self.list(ipc, "routes", &routes_path)?.iter().enumerate() {
                let route = self.route(r, &format!("{routes_path}[{i}]"), false)?;
                match want {
                    IpFamily::V4 => out.routes.push(route),
                    IpFamily::V6 => routes6.push(route),
                }
            }
        }
        out.routes.extend(routes6);
        out.dns = self.dns(top)?;
        Ok(out)
    }

    /// 0.3.x/0.4.0 and 1.x: `interfaces`, `ips`, `routes`, `dns`. Each family reads only its
    /// own fields (the 1.x additions are ignored in a 0.4.0 result, as libcni does).
    fn current(&self, top: &Obj) -> Result<CniResult, Error> {
        let v1 = self.version.family() == Family::V1;
        let mut out = CniResult::default();

        for (i, it) in self
            .list(top, "interfaces", "interfaces")?
            .iter()
            .enumerate()
        {
            let path = format!("interfaces[{i}]");
            let o = self.object(it, &path)?;
            let s = |key: &str| self.opt_string(o, key, &format!("{path}.{key}"));
            let mut iface = Interface {
                name: s("name")?.unwrap_or_default(),
                mac: s("mac")?,
                sandbox: s("sandbox")?,
                ..Interface::default()
            };
            if v1 {
                iface.mtu = self.opt_u32(o, "mtu", &format!("{path}.mtu"), true)?;
                iface.socket_path = s("socketPath")?;
                iface.pci_id = s("pciID")?;
            }
            out.interfaces.push(iface);
        }

        for (i, it) in self.list(top, "ips", "ips")?.iter().enumerate() {
            let path = format!("ips[{i}]");
            let o = self.object(it, &path)?;
            let interface = self.opt_index(o, "interface", &format!("{path}.interface"))?;
            let (address, fam) = self.req_cidr(o, "address", &format!("{path}.address"))?;
            if !v1 {
                let vpath = format!("{path}.version");
                if let Some(ver) = self.opt_string(o, "version", &vpath)? {
                    match IpFamily::from_version(&ver) {
                        None => {
                            return Err(self.err(format_args!(
                                "{vpath} {} is not \"4\" or \"6\"",
                                quote(&ver)
                            )));
                        }
                        Some(f) if f != fam => {
                            return Err(self.err(format_args!(
                                "{vpath} {} does not match address {} ({fam})",
                                quote(&ver),
                                quote(&address)
                            )));
                        }
                        Some(_) => {}
                    }
                }
            }
            let gateway = self.opt_ip(o, "gateway", &format!("{path}.gateway"))?;
            out.ips.push(IpConfig {
                interface,
                address,
                gateway,
            });
        }

        for (i, r) in self.list(top, "routes", "routes")?.iter().enumerate() {
            out.routes.push(self.route(r, &format!("routes[{i}]"), v1)?);
        }

        out.dns = self.dns(top)?;
        Ok(out)
    }

    /// A route: `{dst, gw?}`, plus the 1.x fields when `v1`.
    fn route(&self, v: &Value, path: &str, v1: bool) -> Result<Route, Error> {
        let o = self.object(v, path)?;
        let (dst, _) = self.req_cidr(o, "dst", &format!("{path}.dst"))?;
        let gw = self.opt_ip(o, "gw", &format!("{path}.gw"))?;
        let mut route = Route {
            dst,
            gw,
            ..Route::default()
        };
        if v1 {
            let n = |key: &str, zero_is_none| {
                self.opt_u32(o, key, &format!("{path}.{key}"), zero_is_none)
            };
            route.mtu = n("mtu", true)?;
            route.advmss = n("advmss", true)?;
            route.priority = n("priority", true)?;
            route.table = n("table", false)?;
            route.scope = n("scope", false)?;
        }
        Ok(route)
    }

    /// `dns`: `{nameservers?, domain?, search?, options?}`; absent or `null` is empty.
    fn dns(&self, top: &Obj) -> Result<Dns, Error> {
        let Some(o) = self.opt_object(top, "dns", "dns")? else {
            return Ok(Dns::default());
        };
        Ok(Dns {
            nameservers: self.string_list(o, "nameservers", "dns.nameservers")?,
            domain: self.opt_string(o, "domain", "dns.domain")?,
            search: self.string_list(o, "search", "dns.search")?,
            options: self.string_list(o, "options", "dns.options")?,
        })
    }

    // ---- typed field access -------------------------------------------------------------
    // `null` counts as absent everywhere, as Go's encoding/json treats it.

    fn object<'a>(&self, v: &'a Value, path: &str) -> Result<&'a Obj, Error> {
        match v {
            Value::Object(o) => Ok(o),
            other => Err(self.err(format_args!(
                "{path} must be an object, got {}",
                kind(other)
            ))),
        }
    }

    fn opt_object<'a>(&self, o: &'a Obj, key: &str, path: &str) -> Result<Option<&'a Obj>, Error> {
        field(o, key).map(|v| self.object(v, path)).transpose()
    }

    fn list<'a>(&self, o: &'a Obj, key: &str, path: &str) -> Result<&'a [Value], Error> {
        match field(o, key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => {
                Err(self.err(format_args!("{path} must be a list, got {}", kind(other))))
            }
        }
    }

    /// An optional string; `""` is absent (Go's `omitempty` zero value).
    fn opt_string(&self, o: &Obj, key: &str, path: &str) -> Result<Option<String>, Error> {
        match field(o, key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(self.err(format_args!("{path} must be a string, got {}", kind(other))))
            }
        }
    }

    fn string_list(&self, o: &Obj, key: &str, path: &str) -> Result<Vec<String>, Error> {
        self.list(o, key, path)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(self.err(format_args!(
                    "{path}[{i}] must be a string, got {}",
                    kind(other)
                ))),
            })
            .collect()
    }

    /// A required `addr/prefix` string, with its family.
    fn req_cidr(&self, o: &Obj, key: &str, path: &str) -> Result<(String, IpFamily), Error> {
        let Some(s) = self.opt_string(o, key, path)? else {
            return Err(self.err(format_args!("{path} is missing")));
        };
        match parse_cidr(&s) {
            Some((addr, _)) => Ok((s, IpFamily::of(addr))),
            None => Err(self.err(format_args!("{path} {} is not an IP/prefix", quote(&s)))),
        }
    }

    /// An optional plain IP address (a gateway); `""` is absent.
    fn opt_ip(&self, o: &Obj, key: &str, path: &str) -> Result<Option<String>, Error> {
        let s = self.opt_string(o, key, path)?;
        if let Some(s) = &s
            && parse_ip(s).is_none()
        {
            return Err(self.err(format_args!("{path} {} is not an IP address", quote(s))));
        }
        Ok(s)
    }

    /// An optional non-negative integer that fits in 32 bits. With `zero_is_none`, 0 is
    /// absent (the Go `int` fields with `omitempty`: mtu, advmss, priority).
    fn opt_u32(
        &self,
        o: &Obj,
        key: &str,
        path: &str,
        zero_is_none: bool,
    ) -> Result<Option<u32>, Error> {
        let Some(v) = field(o, key) else {
            return Ok(None);
        };
        match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(0) if zero_is_none => Ok(None),
            Some(n) => Ok(Some(n)),
            None => Err(self.err(format_args!(
                "{path} must be an integer from 0 to {}, got {}",
                u32::MAX,
                describe(v)
            ))),
        }
    }

    /// An optional index into `interfaces`.
    fn opt_index(&self, o: &Obj, key: &str, path: &str) -> Result<Option<usize>, Error> {
        let Some(v) = field(o, key) else {
            return Ok(None);
        };
        match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(self.err(format_args!(
                "{path} must be a non-negative integer, got {}",
                describe(v)
            ))),
        }
    }
}

/// A field, with `null` treated as absent.
pub(super) fn field<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

/// "a string", "a list", … for messages.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value for a message: numbers as written, strings quoted, other kinds by name.
fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("the string {}", quote(s)),
        other => kind(other).to_owned(),
    }
}

/// A quoted (Rust-escaped) string for messages, cut after 64 characters.
pub(super) fn quote(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
    }
}
