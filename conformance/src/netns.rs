//! Pod network namespaces and `ip -j` based inspection, inside the sandbox.
//!
//! Everything here shells out to iproute2's `ip` with a deadline
//! ([`crate::COMMAND_TIMEOUT`]). Functions that create or change anything
//! panic unless called inside [`crate::sandbox::run`], so a test can never
//! reconfigure the host by mistake.
//!
//! iproute2 accepts abbreviations of its keywords, so a bare device name
//! like `a` or `b` can be read as `address` or `broadcast`: pass `dev NAME`
//! / `name NAME` explicitly, as the helpers here do.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::{COMMAND_TIMEOUT, output_with_timeout, sandbox};

/// Directory where `ip netns add` pins named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// One network interface as reported by `ip -j -d addr show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface name (`ifname`), e.g. `eth0`.
    pub name: String,
    /// Interface index (`ifindex`).
    pub ifindex: u32,
    /// Hardware address (`address`), e.g. `12:3a:26:45:51:1f`; empty if none.
    pub mac: String,
    /// Link type from `linkinfo.info_kind` (`veth`, `bridge`, `macvlan`...),
    /// `None` for links without one such as `lo`.
    pub kind: Option<String>,
    /// MTU in bytes.
    pub mtu: u32,
    /// Whether the `UP` flag is set (administratively up).
    pub up: bool,
    /// Addresses with prefix length, e.g. `10.1.2.3/24`, in `ip`'s order,
    /// IPv4 and IPv6 alike (an up interface soon gets an `fe80::/64` one).
    pub addrs: Vec<String>,
}

impl Link {
    /// The IPv4 addresses among [`Link::addrs`].
    pub fn ipv4(&self) -> Vec<&str> {
        self.addrs
            .iter()
            .map(String::as_str)
            .filter(|a| !a.contains(':'))
            .collect()
    }
}

/// A named network namespace (`/run/netns/<name>`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
    /// Made here (deleted on drop), or someone else's ([`Netns::existing`]).
    owned: bool,
}

impl Netns {
    /// Creates a network namespace named `<prefix>-<pid>-<counter>`, unique
    /// within the sandbox, with `ip netns add`. Its only link is `lo`, down.
    ///
    /// Panics outside the sandbox or if `ip netns add` fails.
    pub fn new(prefix: &str) -> Netns {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name]);
        let path = Path::new(NETNS_DIR).join(&name);
        Netns {
            name,
            path,
            owned: true,
        }
    }

    /// A handle on the network namespace `name` of `/run/netns` that another program made
    /// (containerd's `cni-<uuid>`), for inspection: it is not deleted on drop.
    pub fn existing(name: &str) -> Netns {
        Netns {
            name: name.to_owned(),
            path: Path::new(NETNS_DIR).join(name),
            owned: false,
        }
    }

    /// The namespace's name, as used by `ip -n NAME` / `ip link set ... netns NAME`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`: the path to pass as `CNI_NETNS`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All links in the namespace (`ip -n NAME -j -d addr show`).
    pub fn links(&self) -> Vec<Link> {
        parse_links(&self.ip_json(&["-d", "addr", "show"]))
    }

    /// The link called `name`, if the namespace has one.
    pub fn link(&self, name: &str) -> Option<Link> {
        self.links().into_iter().find(|l| l.name == name)
    }

    /// The routes of IP `family` (4 or 6) in the main table, as `ip -j` prints
    /// them (`ip -n NAME -j -<family> route show`).
    ///
    /// Panics if `family` is neither 4 nor 6.
    pub fn routes(&self, family: u8) -> Vec<Value> {
        assert!(
            family == 4 || family == 6,
            "IP family must be 4 or 6, not {family}"
        );
        let flag = format!("-{family}");
        match self.ip_json(&[&flag, "route", "show"]) {
            Value::Array(routes) => routes,
            other => panic!("`ip route` printed something other than a JSON array: {other}"),
        }
    }

    /// Runs `ip -n NAME <args>` and returns its output, whatever its exit
    /// status. Panics only if `ip` cannot be run or times out.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        run_ip(&full)
    }

    /// Runs `ip -n NAME <args>`, panicking with its stderr if it fails;
    /// returns its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full)
    }

    fn ip_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        parse_json(&self.ip(&full))
    }
}

impl Drop for Netns {
    /// Deletes the namespace with `ip netns del`, ignoring errors (the
    /// sandbox's teardown removes it anyway). Interfaces still in it are
    /// destroyed by the kernel asynchronously, shortly after.
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "del", &self.name]);
        let _ = output_with_timeout(&mut cmd, b"", COMMAND_TIMEOUT);
    }
}

/// All links in the sandbox's root network namespace (`ip -j -d addr show`):
/// the "host" side of the simulated node.
pub fn host_links() -> Vec<Link> {
    parse_links(&parse_json(&ip(&["-j", "-d", "addr", "show"])))
}

/// Runs `ip <args>` in the sandbox's root namespace, panicking with its
/// stderr if it fails; returns its stdout.
///
/// Panics outside the sandbox: `ip` could change the host's network.
pub fn ip(args: &[&str]) -> String {
    let out = run_ip(args);
    if !out.status.success() {
        panic!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates a veth pair `a` <-> `b` in the sandbox's root namespace and sets
/// both ends up. Move an end into a pod with
/// `ip(&["link", "set", "dev", b, "netns", ns.name()])`.
///
/// Panics outside the sandbox or if `ip` fails (e.g. a name is taken or
/// longer than 15 bytes).
pub fn veth_pair(a: &str, b: &str) {
    ip(&["link", "add", "name", a, "type", "veth", "peer", "name", b]);
    ip(&["link", "set", "dev", a, "up"]);
    ip(&["link", "set", "dev", b, "up"]);
}

fn run_ip(args: &[&str]) -> Output {
    assert!(
        sandbox::inside(),
        "netns helpers run `ip` and may change the network: call them only inside sandbox::run"
    );
    let mut cmd = Command::new("ip");
    cmd.args(args);
    output_with_timeout(&mut cmd, b"", COMMAND_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_json(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("`ip -j` printed invalid JSON ({e}): {text}"))
}

fn parse_links(v: &Value) -> Vec<Link> {
    let Some(items) = v.as_array() else {
        panic!("`ip -j addr show` printed something other than a JSON array: {v}");
    };
    items
        .iter()
        .map(|l| {
            let s = |k: &str| {
                l.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let n = |k: &str| l.get(k).and_then(Value::as_u64).unwrap_or_default() as u32;
            let addrs = l
                .get("addr_info")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| {
                    let local = a.get("local")?.as_str()?;
                    let prefix = a.get("prefixlen")?.as_u64()?;
                    Some(format!("{local}/{prefix}"))
                })
                .collect();
            let up = l
                .get("flags")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|f| f == "UP"));
            Link {
                name: s("ifname"),
                ifindex: n("ifindex"),
                mac: s("address"),
                kind: l
                    .pointer("/linkinfo/info_kind")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                mtu: n("mtu"),
                up,
                addrs,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_addr_json() {
        let text = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8},{"family":"inet6","local":"::1","prefixlen":128}]},
        {"ifindex":2,"link_index":3,"ifname":"vb","flags":["BROADCAST","MULTICAST"],"mtu":1500,"address":"12:3a:26:45:51:1f","linkinfo":{"info_kind":"veth"},"addr_info":[]}]"#;
        let links = parse_links(&parse_json(text));
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].name, "lo");
        assert_eq!(links[0].kind, None);
        assert!(links[0].up);
        assert_eq!(links[0].addrs, ["127.0.0.1/8", "::1/128"]);
        assert_eq!(links[0].ipv4(), ["127.0.0.1/8"]);
        assert_eq!(links[1].kind.as_deref(), Some("veth"));
        assert_eq!(links[1].mac, "12:3a:26:45:51:1f");
        assert_eq!(links[1].mtu, 1500);
        assert_eq!(links[1].ifindex, 2);
        assert!(!links[1].up);
        assert!(parse_links(&parse_json("")).is_empty());
    }
}
