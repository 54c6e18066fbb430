//! Validation of a delegate's CNI result before plexus uses any of it.
//!
//! A delegate is a separate binary, and what it prints is outside input: its interface names
//! end up in the pod's `k8s.v1.cni.cncf.io/network-status` annotation, its result in the
//! journal and in what the runtime gets back. Decoding ([`super::CniResult::from_value`])
//! checks the *shape* of a result (types, addresses, prefixes); [`check`] adds the rules
//! about its *content* that decoding does not know: sizes, interface names, MAC addresses,
//! and that the interface plexus asked for is the one the delegate reports. A result
//! [`check`] refuses fails ADD; the caller names the delegate and rolls back.
//!
//! # What is checked
//!
//! [`check`] reads the raw JSON document as the delegate wrote it, whatever `cniVersion` it
//! declares, and looks at every key that some CNI version defines (`interfaces` too in a
//! 0.2.0 result, `ip4`/`ip6` too in a 1.x one): conversion between versions of the same
//! family hands such keys on unchanged, so a key a version does not define is still
//! something plexus passes along. In order, so that nothing is walked before its size is
//! known:
//!
//! 1. The result is a JSON object.
//! 2. Sizes: `interfaces` has at most [`MAX_INTERFACES`] entries, `ips` at most [`MAX_IPS`],
//!    `routes` together with the 0.1.0/0.2.0 `ip4.routes` and `ip6.routes` at most
//!    [`MAX_ROUTES`], and each of `dns.nameservers`, `dns.search` and `dns.options` at most
//!    [`MAX_DNS_ENTRIES`].
//! 3. Every interface, host-side ones included: `name` is a valid Linux interface name (the
//!    rules of [`crate::cni::env::validate_ifname`]: 1 to 15 bytes, not `.` or `..`, no `/`,
//!    `:` or whitespace); a non-empty `mac` parses as Go's `net.ParseMAC` accepts (see
//!    [`parse_mac`]); `sandbox`, `socketPath` and `pciID` are at most
//!    [`MAX_INTERFACE_FIELD_LEN`] bytes.
//! 4. `dns.domain` and every entry of the `dns` lists are at most [`MAX_DNS_NAME_LEN`] bytes.
//! 5. When some interface has a non-empty `sandbox`, one of those sandbox interfaces is named
//!    like the interface plexus asked the delegate to create (`CNI_IFNAME`): that is the name
//!    network-status reports for the attachment. A result without any sandbox interface is
//!    fine: 0.1.0/0.2.0 results have no interfaces, and some plugins (Calico, for one)
//!    report only host-side ones.
//!
//! As in decoding, `null` counts as absent everywhere and `""` counts as absent for `mac`,
//! `sandbox`, `socketPath` and `pciID` (Go's `omitempty` zero value). A value of the wrong
//! type where [`check`] has to look (a list it counts, an object it reads, a string it
//! measures) is refused, so that everything [`check`] accepts was actually checked.
//! Everything else (addresses, gateways, route fields, unknown keys) is left to decoding.
//!
//! # Messages
//!
//! The error is one sentence naming the field and the rule it breaks, for example:
//!
//! ```text
//! interfaces[0].name "../../x\n\"evil" is not a valid Linux interface name (1 to 15 bytes, not "." or "..", no '/', ':' or whitespace)
//! ```
//!
//! Values from the result are printed escaped (Rust's `{:?}`) and cut after 64 characters,
//! so a hostile value can neither start a new line in a log or an error document nor make
//! the message large.
//!
//! [`check`] is pure, never panics, and does not recurse: it looks at a fixed depth of the
//! document whatever its nesting.

use serde_json::{Map, Value};

use super::decode::{field, kind, quote};
use crate::cni::env::validate_ifname;

/// Most `interfaces` entries a result may have. A CNI attachment creates one sandbox
/// interface and a few host-side ones (a bridge and a veth end); 64 leaves room for
/// plugins that create several without letting a result grow the pod's annotation without
/// bound.
pub const MAX_INTERFACES: usize = 64;

/// Most `ips` entries a result may have (a pod interface with a few addresses per family is
/// the norm; 256 covers any real address plan).
pub const MAX_IPS: usize = 256;

/// Most routes a result may have: `routes`, plus `ip4.routes` and `ip6.routes` of a
/// 0.1.0/0.2.0 result, counted together (decoding merges them into one list).
pub const MAX_ROUTES: usize = 1024;

/// Most entries in each of `dns.nameservers`, `dns.search` and `dns.options` (glibc reads
/// 3 nameservers and 6 search domains; 64 is generous and still small).
pub const MAX_DNS_ENTRIES: usize = 64;

/// Longest `sandbox`, `socketPath` or `pciID` of an interface, in bytes: Linux's `PATH_MAX`
/// (the first two are paths; a PCI address is a dozen bytes).
pub const MAX_INTERFACE_FIELD_LEN: usize = 4096;

/// Longest `dns.domain` and `dns` list entry, in bytes: the longest DNS name in text form
/// (RFC 1035's 255 octets on the wire).
pub const MAX_DNS_NAME_LEN: usize = 253;

/// The rule of [`validate_ifname`], as messages state it.
const IFNAME_RULE: &str = r#"1 to 15 bytes, not "." or "..", no '/', ':' or whitespace"#;

/// The rule of [`parse_mac`], as messages state it.
const MAC_RULE: &str = "6, 8 or 20 bytes written as hex pairs separated all by ':' or all \
                        by '-', or as groups of 4 hex digits separated by '.'";

/// How many sandbox interface names the message of rule 5 lists at most.
const LISTED_NAMES: usize = 4;

type Obj = Map<String, Value>;

/// Checks a delegate's result document (of any CNI version) against the rules of the module
/// docs. `requested_ifname` is the interface name plexus asked the delegate to create.
///
/// Errors: one sentence naming the first field that breaks a rule, and the rule.
pub fn check(result: &Value, requested_ifname: &str) -> Result<(), String> {
    let Value::Object(top) = result else {
        return Err(format!(
            "the result must be a JSON object, got {}",
            kind(result)
        ));
    };

    // 2. Sizes, before any entry is looked at.
    let interfaces = list(top, "interfaces", "interfaces")?;
    at_most(interfaces.len(), MAX_INTERFACES, "interfaces has")?;
    at_most(list(top, "ips", "ips")?.len(), MAX_IPS, "ips has")?;
    let mut route_lists = vec![("routes", list(top, "routes", "routes")?.len())];
    for (key, path) in [("ip4", "ip4.routes"), ("ip6", "ip6.routes")] {
        if let Some(o) = object(top, key, key)? {
            route_lists.push((path, list(o, "routes", path)?.len()));
        }
    }
    let routes: usize = route_lists.iter().map(|(_, n)| n).sum();
    if routes > MAX_ROUTES {
        // Name the lists the routes are in: `routes`, or the 0.1.0/0.2.0 ones.
        let named: Vec<&str> = route_lists
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(p, _)| *p)
            .collect();
        let what = match named.as_slice() {
            [one] => format!("{one} has"),
            [init @ .., last] => format!("{} and {last} have", init.join(", ")),
            [] => "routes has".to_owned(), // not reached: routes > 0
        };
        return at_most(routes, MAX_ROUTES, &what);
    }
    let dns = object(top, "dns", "dns")?;
    let mut dns_lists: Vec<(&str, &[Value])> = Vec::new();
    if let Some(dns) = dns {
        for (key, path) in [
            ("nameservers", "dns.nameservers"),
            ("search", "dns.search"),
            ("options", "dns.options"),
        ] {
            let l = list(dns, key, path)?;
            at_most(l.len(), MAX_DNS_ENTRIES, &format!("{path} has"))?;
            dns_lists.push((path, l));
        }
    }

    // 3. Interfaces.
    let mut sandboxed: Vec<&str> = Vec::new();
    for (i, it) in interfaces.iter().enumerate() {
        let path = format!("interfaces[{i}]");
        let Value::Object(o) = it else {
            return Err(format!("{path} must be an object, got {}", kind(it)));
        };
        let name_path = format!("{path}.name");
        let Some(name) = string(o, "name", &name_path)? else {
            return Err(format!(
                "{name_path} is missing; every interface needs a valid Linux interface name \
                 ({IFNAME_RULE})"
            ));
        };
        if validate_ifname(name).is_err() {
            return Err(format!(
                "{name_path} {} is not a valid Linux interface name ({IFNAME_RULE})",
                quote(name)
            ));
        }
        let mac_path = format!("{path}.mac");
        if let Some(mac) = string(o, "mac", &mac_path)?.filter(|m| !m.is_empty())
            && parse_mac(mac).is_none()
        {
            return Err(format!(
                "{mac_path} {} is not a MAC address ({MAC_RULE})",
                quote(mac)
            ));
        }
        for key in ["sandbox", "socketPath", "pciID"] {
            let field_path = format!("{path}.{key}");
            if let Some(s) = string(o, key, &field_path)? {
                not_longer(s, MAX_INTERFACE_FIELD_LEN, &field_path)?;
                if key == "sandbox" && !s.is_empty() {
                    sandboxed.push(name);
                }
            }
        }
    }

    // 4. DNS strings.
    if let Some(dns) = dns {
        if let Some(domain) = string(dns, "domain", "dns.domain")? {
            not_longer(domain, MAX_DNS_NAME_LEN, "dns.domain")?;
        }
        for (path, l) in dns_lists {
            for (i, v) in l.iter().enumerate() {
                let Value::String(s) = v else {
                    return Err(format!("{path}[{i}] must be a string, got {}", kind(v)));
                };
                not_longer(s, MAX_DNS_NAME_LEN, &format!("{path}[{i}]"))?;
            }
        }
    }

    // 5. The requested interface is among the sandbox interfaces.
    if !sandboxed.is_empty() && !sandboxed.contains(&requested_ifname) {
        let mut listed: Vec<String> = sandboxed
            .iter()
            .take(LISTED_NAMES)
            .map(|n| quote(n))
            .collect();
        if sandboxed.len() > LISTED_NAMES {
            listed.push("…".to_owned());
        }
        return Err(format!(
            "interfaces has no sandbox interface named {}, the interface plexus asked the \
             delegate to create (sandbox interfaces: {})",
            quote(requested_ifname),
            listed.join(", ")
        ));
    }
    Ok(())
}

/// Parses a MAC address the way Go's `net.ParseMAC` does (what libcni-based tools, and so
/// the consumers of network-status, accept): 6, 8 or 20 bytes, written as two-digit hex
/// pairs all separated by `:` or all by `-` (`0a:58:0a:46:00:02`, `0A-58-0A-46-00-02`), or
/// as groups of four hex digits separated by `.` (`0a58.0a46.0002`). Hex digits may be of
/// either case. Returns the bytes, or `None` for anything else (the empty string included).
pub fn parse_mac(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    // The shortest form, 6 bytes dotted, is 14 characters; this also makes b[2] and b[4]
    // exist below.
    if b.len() < 14 {
        return None;
    }
    let (group, sep) = if b[2] == b':' || b[2] == b'-' {
        (2, b[2])
    } else if b[4] == b'.' {
        (4, b'.')
    } else {
        return None;
    };
    // Groups of `group` digits, each but the last followed by `sep`: with the length a
    // multiple of `stride` minus one, every chunk is `group` digits and a separator but the
    // last, which is the digits alone.
    let stride = group + 1;
    if (b.len() + 1) % stride != 0 {
        return None;
    }
    let n = (b.len() + 1) / stride * group / 2;
    if !matches!(n, 6 | 8 | 20) {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for chunk in b.chunks(stride) {
        let (digits, rest) = chunk.split_at(group.min(chunk.len()));
        if digits.len() != group || !(rest.is_empty() || rest == [sep]) {
            return None;
        }
        for pair in digits.chunks_exact(2) {
            let &[high, low] = pair else { return None };
            out.push((hex(high)? << 4) | hex(low)?);
        }
    }
    Some(out)
}

/// The value of one hex digit.
fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `Err` when a list of `n` entries is longer than `max`; `what` is e.g. `"ips has"`.
fn at_most(n: usize, max: usize, what: &str) -> Result<(), String> {
    if n > max {
        return Err(format!("{what} {n} entries; at most {max} are allowed"));
    }
    Ok(())
}

/// `Err` when `s` is longer than `max` bytes.
fn not_longer(s: &str, max: usize, path: &str) -> Result<(), String> {
    if s.len() > max {
        return Err(format!(
            "{path} {} is {} bytes long; at most {max} are allowed",
            quote(s),
            s.len()
        ));
    }
    Ok(())
}

/// An optional list; absent is empty.
fn list<'a>(o: &'a Obj, key: &str, path: &str) -> Result<&'a [Value], String> {
    match field(o, key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(format!("{path} must be a list, got {}", kind(other))),
    }
}

/// An optional object.
fn object<'a>(o: &'a Obj, key: &str, path: &str) -> Result<Option<&'a Obj>, String> {
    match field(o, key) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(format!("{path} must be an object, got {}", kind(other))),
    }
}

/// An optional string (`""` is returned as is; the caller decides what it means).
fn string<'a>(o: &'a Obj, key: &str, path: &str) -> Result<Option<&'a str>, String> {
    match field(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{path} must be a string, got {}", kind(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn refused(v: &Value, ifname: &str) -> String {
        match check(v, ifname) {
            Ok(()) => panic!("accepted: {v}"),
            Err(e) => {
                assert!(!e.contains('\n') && !e.contains('\r'), "one line: {e:?}");
                assert!(e.len() < 600, "short: {} bytes: {e}", e.len());
                e
            }
        }
    }

    #[track_caller]
    fn accepted(v: &Value, ifname: &str) {
        if let Err(e) = check(v, ifname) {
            panic!("refused: {e}\n{v:#}");
        }
    }

    /// A 1.0.0 result with one sandbox interface `eth0` and one address, plus the keys of
    /// `extra` (which replace those).
    fn with_one_sandbox(extra: Value) -> Value {
        let mut v = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": "0a:58:0a:46:00:02", "sandbox": "/var/run/netns/p"}],
            "ips": [{"interface": 0, "address": "10.70.0.2/24", "gateway": "10.70.0.1"}]
        });
        if let (Value::Object(o), Value::Object(e)) = (&mut v, extra) {
            o.extend(e);
        }
        v
    }

    fn iface(name: &str) -> Value {
        json!({"name": name, "sandbox": "/var/run/netns/p"})
    }

    fn ips(n: usize) -> Value {
        Value::Array(
            (0..n)
                .map(|i| json!({"address": format!("10.{}.{}.2/16", i / 256, i % 256)}))
                .collect(),
        )
    }

    fn routes(n: usize) -> Value {
        Value::Array(
            (0..n)
                .map(|i| json!({"dst": format!("10.{}.{}.0/24", i / 256, i % 256)}))
                .collect(),
        )
    }

    fn strings(n: usize) -> Value {
        Value::Array((0..n).map(|i| json!(format!("e{i}"))).collect())
    }

    // ---- real results ----

    #[test]
    fn debian_bridge_result_is_accepted() {
        // containernetworking-plugins' bridge (Debian's package): the bridge and the veth's
        // host end first, the pod's end last.
        let v = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "6a:3e:0d:33:c6:3b"},
                {"name": "veth4e1c9b5a", "mac": "9a:2f:71:3e:44:d1"},
                {"name": "eth0", "mac": "0a:58:0a:58:00:05", "sandbox": "/var/run/netns/cni-3f1c2a4e-9b0d-7c55-1e2a-6b8f0d4c3a21"}
            ],
            "ips": [{"interface": 2, "address": "10.88.0.5/16", "gateway": "10.88.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        });
        accepted(&v, "eth0");
        let e = refused(&v, "net1");
        assert_eq!(
            e,
            r#"interfaces has no sandbox interface named "net1", the interface plexus asked the delegate to create (sandbox interfaces: "eth0")"#
        );
    }

    #[test]
    fn macvlan_result_is_accepted() {
        let v = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "mac": "5e:2d:11:0c:a1:04", "mtu": 1500, "sandbox": "/var/run/netns/pod"}],
            "ips": [{"interface": 0, "address": "192.168.10.5/24", "gateway": "192.168.10.1"}],
            "dns": {}
        });
        accepted(&v, "net1");
        refused(&v, "eth0");
    }

    #[test]
    fn results_without_a_sandbox_interface_are_accepted() {
        let v02 = json!({
            "cniVersion": "0.2.0",
            "ip4": {"ip": "10.1.0.5/24", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
            "ip6": {"ip": "fd00::5/64", "routes": [{"dst": "::/0", "gw": "fd00::1"}]},
            "dns": {"nameservers": ["10.96.0.10"]}
        });
        accepted(&v02, "eth0");
        accepted(&json!({}), "eth0");
        // Calico: only the host end of the veth.
        let calico = json!({
            "cniVersion": "0.3.1",
            "interfaces": [{"name": "cali12ab34cd56e"}],
            "ips": [{"version": "4", "address": "192.168.1.7/32"}],
            "dns": {}
        });
        accepted(&calico, "eth0");
        // An empty sandbox is a host-side interface.
        accepted(
            &json!({"interfaces": [{"name": "veth0", "sandbox": ""}, {"name": "x", "sandbox": null}]}),
            "eth0",
        );
    }

    #[test]
    fn one_of_several_sandbox_interfaces_must_be_the_requested_one() {
        let v = json!({"interfaces": [iface("net1"), {"name": "veth1"}, iface("net1-vf")]});
        accepted(&v, "net1");
        accepted(&v, "net1-vf");
        let e = refused(&v, "eth0");
        assert!(
            e.ends_with(r#"(sandbox interfaces: "net1", "net1-vf")"#),
            "{e}"
        );
        // A host-side interface with the requested name does not count.
        refused(
            &json!({"interfaces": [{"name": "eth0"}, iface("net1")]}),
            "eth0",
        );
        // Many sandbox interfaces: the message lists a few.
        let many: Vec<Value> = (0..10).map(|i| iface(&format!("n{i}"))).collect();
        let e = refused(&json!({"interfaces": many}), "eth0");
        assert!(
            e.ends_with(r#"(sandbox interfaces: "n0", "n1", "n2", "n3", …)"#),
            "{e}"
        );
    }

    // ---- the issue's example ----

    #[test]
    fn the_hostile_result_of_the_issue_is_refused_field_by_field() {
        let name = "../../x\n\"evil";
        let e = refused(&json!({"interfaces": [iface(name)]}), name);
        assert_eq!(
            e,
            r#"interfaces[0].name "../../x\n\"evil" is not a valid Linux interface name (1 to 15 bytes, not "." or "..", no '/', ':' or whitespace)"#
        );

        let e = refused(
            &with_one_sandbox(
                json!({"interfaces": [{"name": "eth0", "mac": "not-a-mac", "sandbox": "/p"}]}),
            ),
            "eth0",
        );
        assert!(
            e.starts_with(r#"interfaces[0].mac "not-a-mac" is not a MAC address ("#),
            "{e}"
        );

        let e = refused(&with_one_sandbox(json!({"ips": ips(10_000)})), "eth0");
        assert_eq!(e, "ips has 10000 entries; at most 256 are allowed");

        // All three at once: the size is reported first (nothing is walked before).
        let all = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": name, "mac": "not-a-mac", "sandbox": "/p"}],
            "ips": ips(10_000)
        });
        assert!(refused(&all, "eth0").starts_with("ips has 10000"));
    }

    // ---- names ----

    #[test]
    fn every_interface_name_must_be_a_linux_name() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "eth0\n",
            "\u{a0}x",
            "abcdefghijklmnop",
        ] {
            // Sandbox and host-side interfaces alike.
            let e = refused(&json!({"interfaces": [iface(bad)]}), bad);
            assert!(e.starts_with("interfaces[0].name "), "{e}");
            assert!(e.contains("is not a valid Linux interface name"), "{e}");
            let e = refused(
                &json!({"interfaces": [{"name": bad}, iface("eth0")]}),
                "eth0",
            );
            assert!(e.starts_with("interfaces[0].name "), "{e}");
        }
        // 15 bytes is the most.
        accepted(
            &json!({"interfaces": [iface("abcdefghijklmno")]}),
            "abcdefghijklmno",
        );
        accepted(&json!({"interfaces": [iface("é.x_y-z...")]}), "é.x_y-z...");
        // Missing or not a string.
        let e = refused(&json!({"interfaces": [{"sandbox": "/p"}]}), "eth0");
        assert!(e.starts_with("interfaces[0].name is missing;"), "{e}");
        refused(&json!({"interfaces": [{"name": null}]}), "eth0");
        assert_eq!(
            refused(&json!({"interfaces": [{"name": 7}]}), "eth0"),
            "interfaces[0].name must be a string, got a number"
        );
        assert_eq!(
            refused(&json!({"interfaces": [iface("eth0"), "eth1"]}), "eth0"),
            "interfaces[1] must be an object, got a string"
        );
    }

    #[test]
    fn hostile_values_are_escaped_and_cut() {
        let long = format!("{}\n{}", "a".repeat(100), "b".repeat(10_000));
        let e = refused(&json!({"interfaces": [iface(&long)]}), "eth0");
        assert!(e.starts_with(&format!("interfaces[0].name \"{}\"…", "a".repeat(64))));
        let e = refused(
            &json!({"interfaces": [{"name": "eth0", "mac": "\u{1b}[2J\r\n\u{202e}", "sandbox": "/p"}]}),
            "eth0",
        );
        assert!(!e.contains('\u{1b}') && !e.contains('\u{202e}'), "{e:?}");
        let e = refused(&json!({"interfaces": [iface("x")]}), "a\nb");
        assert!(e.contains(r#""a\nb""#), "{e}");
    }

    // ---- MAC addresses ----

    #[test]
    fn macs_are_parsed_as_go_does() {
        for (s, n) in [
            ("0a:58:0a:46:00:02", 6),
            ("0A-58-0A-46-00-02", 6),
            ("0a58.0a46.0002", 6),
            ("AbCd.Ef01.2345", 6),
            ("02:00:5e:10:00:00:00:01", 8),
            ("0200.5e10.0000.0001", 8),
            (
                "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
                20,
            ),
            ("0000.0000.fe80.0000.0000.0000.0200.5e10.0000.0001", 20),
        ] {
            assert_eq!(parse_mac(s).map(|b| b.len()), Some(n), "{s}");
            accepted(
                &json!({"interfaces": [{"name": "eth0", "mac": s, "sandbox": "/p"}]}),
                "eth0",
            );
        }
        assert_eq!(
            parse_mac("0a:58:0a:46:00:ff"),
            Some(vec![0x0a, 0x58, 0x0a, 0x46, 0x00, 0xff])
        );
        assert_eq!(
            parse_mac("0a58.0a46.00fF"),
            Some(vec![0x0a, 0x58, 0x0a, 0x46, 0x00, 0xff])
        );
        for s in [
            "",
            "not-a-mac",
            "0a:58:0a:46:00",
            "0a:58:0a:46:00:02:03",
            "0a:58:0a:46:00:02:",
            ":0a:58:0a:46:00:02",
            "0a:58-0a:46:00:02",
            "0a-58-0a-46-00:02",
            "0a:58:0a:46:00:0g",
            "0a:58:0a:46:00: 2",
            "0a:58:0a:46:0:002",
            "0a58.0a46.002",
            "0a58.0a46.0002.",
            "0a58.0a46:0002",
            "0a58.0a460.002",
            "0a:58:0a:46:00:é",
            "0a 58 0a 46 00 02",
            "0a:58:0a:46:00:02:00:00:00",
            "+a:58:0a:46:00:02",
        ] {
            assert_eq!(parse_mac(s), None, "{s:?}");
        }
        // Empty or null is absent; anything else must parse.
        for mac in [json!(""), Value::Null] {
            accepted(
                &json!({"interfaces": [{"name": "eth0", "mac": mac, "sandbox": "/p"}]}),
                "eth0",
            );
        }
        // Host-side interfaces too.
        let e = refused(
            &json!({"interfaces": [{"name": "br0", "mac": "0a:58"}, iface("eth0")]}),
            "eth0",
        );
        assert!(e.starts_with(r#"interfaces[0].mac "0a:58" is not a MAC address"#));
        assert_eq!(
            refused(&json!({"interfaces": [{"name": "eth0", "mac": 5}]}), "eth0"),
            "interfaces[0].mac must be a string, got a number"
        );
    }

    #[test]
    fn every_byte_length_but_6_8_and_20_is_refused() {
        for n in 0..=32 {
            let bytes: Vec<String> = (0..n).map(|i| format!("{:02x}", i * 7)).collect();
            let colon = bytes.join(":");
            let dash = bytes.join("-").to_uppercase();
            let ok = matches!(n, 6 | 8 | 20);
            assert_eq!(parse_mac(&colon).is_some(), ok, "{colon}");
            assert_eq!(parse_mac(&dash).is_some(), ok, "{dash}");
            if n % 2 == 0 {
                let dotted: Vec<String> = bytes.chunks(2).map(|p| p.concat()).collect();
                let dotted = dotted.join(".");
                assert_eq!(parse_mac(&dotted).is_some(), ok, "{dotted}");
            }
        }
    }

    // ---- sizes ----

    #[test]
    fn interfaces_are_limited() {
        let list = |n: usize| -> Value {
            let mut l: Vec<Value> = (1..n)
                .map(|i| json!({"name": format!("veth{i}")}))
                .collect();
            l.push(iface("eth0"));
            Value::Array(l)
        };
        accepted(&json!({"interfaces": list(MAX_INTERFACES)}), "eth0");
        assert_eq!(
            refused(&json!({"interfaces": list(MAX_INTERFACES + 1)}), "eth0"),
            "interfaces has 65 entries; at most 64 are allowed"
        );
    }

    #[test]
    fn ips_are_limited() {
        accepted(&with_one_sandbox(json!({"ips": ips(MAX_IPS)})), "eth0");
        assert_eq!(
            refused(&with_one_sandbox(json!({"ips": ips(MAX_IPS + 1)})), "eth0"),
            "ips has 257 entries; at most 256 are allowed"
        );
    }

    #[test]
    fn routes_are_limited_all_lists_together() {
        accepted(
            &with_one_sandbox(json!({"routes": routes(MAX_ROUTES)})),
            "eth0",
        );
        assert_eq!(
            refused(
                &with_one_sandbox(json!({"routes": routes(MAX_ROUTES + 1)})),
                "eth0"
            ),
            "routes has 1025 entries; at most 1024 are allowed"
        );
        let v02 = |a: usize, b: usize| {
            json!({
                "cniVersion": "0.2.0",
                "ip4": {"ip": "10.0.0.2/8", "routes": routes(a)},
                "ip6": {"ip": "fd00::2/64", "routes": routes(b)}
            })
        };
        accepted(&v02(1000, 24), "eth0");
        assert_eq!(
            refused(&v02(1000, 25), "eth0"),
            "ip4.routes and ip6.routes have 1025 entries; at most 1024 are allowed"
        );
        assert_eq!(
            refused(&v02(0, 1025), "eth0"),
            "ip6.routes has 1025 entries; at most 1024 are allowed"
        );
    }

    #[test]
    fn dns_lists_are_limited() {
        for key in ["nameservers", "search", "options"] {
            accepted(
                &with_one_sandbox(json!({"dns": {key: strings(MAX_DNS_ENTRIES)}})),
                "eth0",
            );
            assert_eq!(
                refused(
                    &with_one_sandbox(json!({"dns": {key: strings(MAX_DNS_ENTRIES + 1)}})),
                    "eth0"
                ),
                format!("dns.{key} has 65 entries; at most 64 are allowed")
            );
        }
    }

    #[test]
    fn dns_strings_are_limited() {
        let at_max = "a".repeat(MAX_DNS_NAME_LEN);
        let over = "a".repeat(MAX_DNS_NAME_LEN + 1);
        accepted(
            &with_one_sandbox(json!({"dns": {"domain": at_max}})),
            "eth0",
        );
        let e = refused(&with_one_sandbox(json!({"dns": {"domain": over}})), "eth0");
        assert!(
            e.starts_with("dns.domain \"aaaa")
                && e.ends_with(" is 254 bytes long; at most 253 are allowed"),
            "{e}"
        );
        for key in ["nameservers", "search", "options"] {
            accepted(
                &with_one_sandbox(json!({"dns": {key: ["x", at_max]}})),
                "eth0",
            );
            let e = refused(
                &with_one_sandbox(json!({"dns": {key: ["x", over]}})),
                "eth0",
            );
            assert!(e.starts_with(&format!("dns.{key}[1] ")), "{e}");
            assert_eq!(
                refused(&with_one_sandbox(json!({"dns": {key: ["x", 1]}})), "eth0"),
                format!("dns.{key}[1] must be a string, got a number")
            );
        }
    }

    #[test]
    fn interface_strings_are_limited() {
        for key in ["sandbox", "socketPath", "pciID"] {
            let mut at_max = json!({"name": "eth0", "sandbox": "/p"});
            at_max[key] = json!("p".repeat(MAX_INTERFACE_FIELD_LEN));
            accepted(&json!({"interfaces": [at_max]}), "eth0");
            let mut over = json!({"name": "eth0", "sandbox": "/p"});
            over[key] = json!("p".repeat(MAX_INTERFACE_FIELD_LEN + 1));
            let e = refused(&json!({"interfaces": [over]}), "eth0");
            assert!(
                e.starts_with(&format!("interfaces[0].{key} \"ppp"))
                    && e.ends_with(" is 4097 bytes long; at most 4096 are allowed"),
                "{e}"
            );
        }
    }

    // ---- shapes ----

    #[test]
    fn wrong_types_where_check_looks_are_refused_and_nothing_panics() {
        for (v, want) in [
            (json!("x"), "the result must be a JSON object, got a string"),
            (json!([]), "the result must be a JSON object, got a list"),
            (
                json!({"interfaces": {}}),
                "interfaces must be a list, got an object",
            ),
            (json!({"ips": 1}), "ips must be a list, got a number"),
            (
                json!({"routes": "x"}),
                "routes must be a list, got a string",
            ),
            (json!({"ip4": []}), "ip4 must be an object, got a list"),
            (
                json!({"ip6": {"routes": {}}}),
                "ip6.routes must be a list, got an object",
            ),
            (json!({"dns": []}), "dns must be an object, got a list"),
            (
                json!({"dns": {"search": "a"}}),
                "dns.search must be a list, got a string",
            ),
            (
                json!({"dns": {"domain": true}}),
                "dns.domain must be a string, got a boolean",
            ),
            (
                json!({"interfaces": [{"name": "eth0", "sandbox": 1}]}),
                "interfaces[0].sandbox must be a string, got a number",
            ),
        ] {
            assert_eq!(refused(&v, "eth0"), want, "{v}");
        }
        // null is absent everywhere.
        accepted(
            &json!({"interfaces": null, "ips": null, "routes": null, "ip4": null, "dns": {"domain": null, "search": null}}),
            "eth0",
        );
        // Deep nesting inside the document does not matter: check looks at a fixed depth.
        let mut deep = json!("leaf");
        for _ in 0..256 {
            deep = json!([deep]);
        }
        let v = json!({"interfaces": [{"name": "eth0", "sandbox": "/p", "x": deep.clone()}], "extra": deep.clone()});
        accepted(&v, "eth0");
        let v = json!({"interfaces": [{"name": deep}]});
        assert_eq!(
            refused(&v, "eth0"),
            "interfaces[0].name must be a string, got a list"
        );
    }
}
