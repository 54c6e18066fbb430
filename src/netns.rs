//! Work inside a pod's network namespace: list its interfaces, read and move its default
//! route.
//!
//! # Threads
//!
//! Every function here enters the namespace on a thread of its own: the namespace file
//! (`/run/netns/<name>` or `/proc/<pid>/ns/net`, as given in `CNI_NETNS`) is opened by the
//! caller, a dedicated thread is spawned, calls `setns(fd, CLONE_NEWNET)` on itself only, does
//! the work over a fresh rtnetlink socket and exits. No thread of plexus, the caller's
//! included, ever changes namespace, so a panic or an early return cannot leave one behind
//! in a pod. The work is plain, synchronous rtnetlink: a `netlink-sys` socket, the route
//! messages of `netlink-packet-route`, links read by hand as index and name only (parsing
//! every kind of link would add ~0.8 MB to the binary); no async runtime, no `ip` binary.
//!
//! # Errors
//!
//! Failures are [`Error::Io`] (CNI code 5) and name what failed, the namespace path, the
//! interface and the gateway, the kernel's reason and, where the kernel gives one, its
//! extended-ack message, e.g. `cannot add default route via 10.72.0.1 dev net1 in
//! /run/netns/pod-1: Network is unreachable: Nexthop has invalid gateway (no IPv4 address on
//! net1 has 10.72.0.1 in its subnet, or net1 is down?); the previous default routes were
//! restored`.

use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use netlink_packet_core::{
    DecodeError, Emitable, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_EXCL, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable, NlasIterator, Parseable,
};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHopFlags,
    RouteProtocol, RouteScope, RouteType, RouteVia,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;
use nix::sched::CloneFlags;

use crate::cni::Error;
use crate::cni::result::IpFamily;

/// One default route (destination `0.0.0.0/0` or `::/0`) of the main routing table.
///
/// A multipath default route is reported as one `DefaultRoute` per next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    /// The IP family of the route (of its destination, not of its gateway).
    pub family: IpFamily,
    /// The next hop, if the route has one (`default dev eth0` has none).
    pub gateway: Option<IpAddr>,
    /// The output interface; empty when the kernel reports none (an IPv4 `blackhole`,
    /// `unreachable` or `prohibit` route; IPv6 reports those on `lo`).
    pub ifname: String,
    /// The route's metric (`RTA_PRIORITY`); 0 when the kernel reports none (IPv4's default).
    pub metric: u32,
}

/// The names of the links in the network namespace at `netns`, in the kernel's order
/// (by interface index: `lo` first).
///
/// Used to refuse an interface name that is already present in the pod.
pub fn interface_names(netns: &Path) -> Result<Vec<String>, Error> {
    start_interface_names(netns).wait()
}

/// [`interface_names`] started on its own thread, so that the listing runs while the caller
/// does something else (ADD reads the pod and its networks from the API meanwhile); the
/// answer is [`InNetns::wait`]. Dropping it without waiting lets the thread finish alone.
pub fn start_interface_names(netns: &Path) -> InNetns<Vec<String>> {
    spawn_in_netns(netns, list_names)
}

/// The links of the namespace the calling thread is in.
fn list_names(netns: &Path) -> Result<Vec<String>, Error> {
    let links = Rtnl::open().and_then(|mut nl| nl.links()).map_err(|e| {
        Error::io(
            format!("cannot list the interfaces in {}", netns.display()),
            e,
        )
    })?;
    Ok(links.into_iter().map(|(_, name)| name).collect())
}

/// The default routes of the main table in the namespace at `netns`, IPv4 first, each family
/// in the kernel's order.
///
/// What the pod's network-status must agree with, and what tests check
/// [`set_default_route`] against.
pub fn default_routes(netns: &Path) -> Result<Vec<DefaultRoute>, Error> {
    in_netns(netns, |netns| {
        let read = || -> Result<Vec<DefaultRoute>, NlError> {
            let mut nl = Rtnl::open()?;
            let links = nl.links()?;
            let mut out = Vec::new();
            for family in [IpFamily::V4, IpFamily::V6] {
                for route in nl.default_routes(family)? {
                    out.extend(describe(family, &route, &links));
                }
            }
            Ok(out)
        };
        read().map_err(|e| {
            Error::io(
                format!("cannot read the default routes in {}", netns.display()),
                e,
            )
        })
    })
}

/// Makes the default route of `gateway`'s IP family in the namespace at `netns` go via
/// `gateway` on `ifname`.
///
/// Every default route of that family in the main table is deleted (whatever its interface,
/// metric or type), then `default via <gateway> dev <ifname>` is added (metric 0 for IPv4,
/// the kernel's 1024 for IPv6; protocol `boot`, as `ip route add` does). The other family's
/// routes are not touched. If the interface does not exist, nothing is changed. If adding
/// fails, the deleted routes are put back (best effort) and the error says whether that
/// worked.
pub fn set_default_route(netns: &Path, ifname: &str, gateway: IpAddr) -> Result<(), Error> {
    check_gateway(gateway)?;
    let owned = ifname.to_owned();
    in_netns(netns, move |netns| {
        let ifname = owned.as_str();
        let where_ = format!("dev {ifname} in {}", netns.display());
        let mut nl = Rtnl::open().map_err(|e| {
            Error::io(
                format!("cannot set the default route via {gateway} {where_}"),
                e,
            )
        })?;
        let links = nl.links().map_err(|e| {
            Error::io(
                format!("cannot list the interfaces in {}", netns.display()),
                e,
            )
        })?;
        let Some(index) = links.iter().find(|(_, n)| n == ifname).map(|(i, _)| *i) else {
            let names: Vec<&str> = links.iter().map(|(_, n)| n.as_str()).collect();
            return Err(Error::io(
                format!("cannot set the default route via {gateway} {where_}"),
                format!(
                    "no interface named {ifname:?} (the namespace has: {})",
                    names.join(", ")
                ),
            ));
        };
        let family = IpFamily::of(gateway);
        let old = nl.default_routes(family).map_err(|e| {
            Error::io(
                format!(
                    "cannot read the {family} default routes in {}",
                    netns.display()
                ),
                e,
            )
        })?;

        let mut deleted: Vec<RouteMessage> = Vec::new();
        for route in old {
            let route = replayable(route);
            match nl.request(Rtm::Route(libc::RTM_DELROUTE, route.clone()), 0) {
                Ok(()) => deleted.push(route),
                // Gone meanwhile: nothing to delete, nothing to restore.
                Err(NlError::Kernel {
                    errno: Errno::ESRCH,
                    ..
                }) => {}
                Err(e) => {
                    let shown = routes_text(family, &route, &links);
                    let restored = restore(&mut nl, family, &deleted, &links);
                    return Err(Error::io(
                        format!(
                            "cannot delete the {family} default route ({shown}) in {}",
                            netns.display()
                        ),
                        format!("{e}{restored}"),
                    ));
                }
            }
        }

        let new = new_default_route(gateway, index);
        if let Err(e) = nl.request(
            Rtm::Route(libc::RTM_NEWROUTE, new),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            let hint = add_hint(&e, family, ifname, gateway);
            let restored = restore(&mut nl, family, &deleted, &links);
            return Err(Error::io(
                format!("cannot add default route via {gateway} {where_}"),
                format!("{e}{hint}{restored}"),
            ));
        }
        Ok(())
    })
}

/// Refuses gateways no route can go via: unspecified, multicast, IPv4 broadcast.
fn check_gateway(gateway: IpAddr) -> Result<(), Error> {
    let bad = gateway.is_unspecified()
        || gateway.is_multicast()
        || matches!(gateway, IpAddr::V4(v4) if v4.is_broadcast());
    if bad {
        return Err(Error::invalid_config(
            format!("invalid default-route gateway {gateway}"),
            "a gateway must be a unicast address (not unspecified, multicast or broadcast)",
        ));
    }
    Ok(())
}

/// Runs `work` on a new thread that has entered the network namespace at `netns`, and
/// returns what it returned. The calling thread never changes namespace; the worker exits
/// when `work` is done. A panic in `work` is resumed on the caller.
fn in_netns<T: Send + 'static>(
    netns: &Path,
    work: impl FnOnce(&Path) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    spawn_in_netns(netns, work).wait()
}

/// [`in_netns`] without waiting: `work` (given the namespace's path) runs on a new thread
/// that has entered the namespace, and [`InNetns::wait`] gives its answer.
fn spawn_in_netns<T: Send + 'static>(
    netns: &Path,
    work: impl FnOnce(&Path) -> Result<T, Error> + Send + 'static,
) -> InNetns<T> {
    let started = open_netns(netns).and_then(|file| {
        let path = netns.to_path_buf();
        std::thread::Builder::new()
            .name("plexus-netns".to_owned())
            .spawn(move || {
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| setns_error(&path, e))?;
                drop(file);
                work(&path)
            })
            .map_err(|e| {
                Error::io(
                    format!("cannot start a thread to enter {}", netns.display()),
                    e,
                )
            })
    });
    InNetns(started)
}

/// Work running in a network namespace ([`start_interface_names`]), not waited for yet.
#[derive(Debug)]
pub struct InNetns<T>(Result<std::thread::JoinHandle<Result<T, Error>>, Error>);

impl<T> InNetns<T> {
    /// The work's answer, or why it could not run. A panic of the work is resumed here.
    pub fn wait(self) -> Result<T, Error> {
        self.0?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

fn open_netns(netns: &Path) -> Result<File, Error> {
    File::open(netns).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::io(
            format!("network namespace {} does not exist", netns.display()),
            "no such file (was the pod sandbox already deleted?)",
        ),
        _ => Error::io(
            format!("cannot open network namespace {}", netns.display()),
            e,
        ),
    })
}

fn setns_error(netns: &Path, errno: Errno) -> Error {
    let context = format!("cannot enter network namespace {}", netns.display());
    match errno {
        Errno::EINVAL => Error::io(
            context,
            "it is not a network namespace (a plain file, or a namespace mount that is gone?)",
        ),
        Errno::EPERM => Error::io(
            context,
            "operation not permitted (plexus needs CAP_SYS_ADMIN, as every CNI plugin does)",
        ),
        e => Error::io(context, e.desc()),
    }
}

/// The explanation appended to a failed add, from the kernel's errno.
fn add_hint(e: &NlError, family: IpFamily, ifname: &str, gateway: IpAddr) -> String {
    let NlError::Kernel { errno, .. } = e else {
        return String::new();
    };
    match errno {
        Errno::ENETUNREACH | Errno::EHOSTUNREACH => format!(
            " (no {family} address on {ifname} has {gateway} in its subnet, or {ifname} is down?)"
        ),
        Errno::ENETDOWN => format!(" ({ifname} is down)"),
        Errno::EEXIST => " (a default route came back meanwhile: is something else managing \
                          this namespace?)"
            .to_owned(),
        _ => String::new(),
    }
}

/// Puts `deleted` back; returns what to append to the error about it, naming each route that
/// could not be restored.
fn restore(
    nl: &mut Rtnl,
    family: IpFamily,
    deleted: &[RouteMessage],
    links: &[(u32, String)],
) -> String {
    if deleted.is_empty() {
        return String::new();
    }
    let failures: Vec<String> = deleted
        .iter()
        .filter_map(|route| {
            match nl.request(
                Rtm::Route(libc::RTM_NEWROUTE, route.clone()),
                NLM_F_CREATE | NLM_F_APPEND,
            ) {
                Ok(())
                | Err(NlError::Kernel {
                    errno: Errno::EEXIST,
                    ..
                }) => None,
                Err(e) => Some(format!("{}: {e}", routes_text(family, route, links))),
            }
        })
        .collect();
    if failures.is_empty() {
        "; the previous default routes were restored".to_owned()
    } else {
        format!(
            "; restoring the previous default routes failed too ({} of {}): {}",
            failures.len(),
            deleted.len(),
            failures.join("; ")
        )
    }
}

/// `default via <gateway> dev <index>` in the main table.
fn new_default_route(gateway: IpAddr, index: u32) -> RouteMessage {
    let mut route = RouteMessage::default();
    route.header.address_family = address_family(IpFamily::of(gateway));
    route.header.destination_prefix_length = 0;
    route.header.table = RouteHeader::RT_TABLE_MAIN;
    route.header.protocol = RouteProtocol::Boot;
    route.header.scope = RouteScope::Universe;
    route.header.kind = RouteType::Unicast;
    route.attributes = vec![
        RouteAttribute::Gateway(RouteAddress::from(gateway)),
        RouteAttribute::Oif(index),
    ];
    route
}

/// A dumped route, made fit to be sent back (to delete or re-create it): without the
/// read-only attributes and flags the kernel refuses in a request (`RTNH_F_DEAD`,
/// `RTNH_F_LINKDOWN`, …); `onlink` is kept.
fn replayable(mut route: RouteMessage) -> RouteMessage {
    route.header.flags &= RouteFlags::Onlink;
    route.attributes.retain(|a| {
        !matches!(
            a,
            RouteAttribute::CacheInfo(_)
                | RouteAttribute::MfcStats(_)
                | RouteAttribute::MulticastExpires(_)
        )
    });
    for a in &mut route.attributes {
        if let RouteAttribute::MultiPath(hops) = a {
            for hop in hops {
                hop.flags &= RouteNextHopFlags::Onlink;
            }
        }
    }
    route
}

fn address_family(family: IpFamily) -> AddressFamily {
    match family {
        IpFamily::V4 => AddressFamily::Inet,
        IpFamily::V6 => AddressFamily::Inet6,
    }
}

/// The routing table a route is in: `RTA_TABLE` when present (ids above 255), else the header.
fn table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

/// Whether a dumped route is a default route of the main table (not a cached clone).
fn is_main_default(route: &RouteMessage) -> bool {
    route.header.destination_prefix_length == 0
        && table(route) == u32::from(RouteHeader::RT_TABLE_MAIN)
        && !route.header.flags.contains(RouteFlags::Cloned)
}

fn gateway_of(attributes: &[RouteAttribute]) -> Option<IpAddr> {
    attributes.iter().find_map(|a| match a {
        RouteAttribute::Gateway(RouteAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        RouteAttribute::Gateway(RouteAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        RouteAttribute::Via(RouteVia::Inet(v4)) => Some(IpAddr::V4(*v4)),
        RouteAttribute::Via(RouteVia::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })
}

/// The [`DefaultRoute`]s of one dumped route: one, or one per next hop of a multipath route.
fn describe(family: IpFamily, route: &RouteMessage, links: &[(u32, String)]) -> Vec<DefaultRoute> {
    let name = |index: u32| match links.iter().find(|(i, _)| *i == index) {
        Some((_, n)) => n.clone(),
        None if index == 0 => String::new(),
        None => format!("if{index}"),
    };
    let mut oif = 0;
    let mut metric = 0;
    let mut hops = None;
    for a in &route.attributes {
        match a {
            RouteAttribute::Oif(i) => oif = *i,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(h) => hops = Some(h),
            _ => {}
        }
    }
    match hops {
        Some(hops) => hops
            .iter()
            .map(|hop| DefaultRoute {
                family,
                gateway: gateway_of(&hop.attributes),
                ifname: name(hop.interface_index),
                metric,
            })
            .collect(),
        None => vec![DefaultRoute {
            family,
            gateway: gateway_of(&route.attributes),
            ifname: name(oif),
            metric,
        }],
    }
}

/// A dumped route for messages: `default via 10.0.0.1 dev eth0 metric 5`, its next hops
/// joined with `, ` when it has several.
fn routes_text(family: IpFamily, route: &RouteMessage, links: &[(u32, String)]) -> String {
    let hops: Vec<String> = describe(family, route, links)
        .iter()
        .map(route_text)
        .collect();
    hops.join(", ")
}

/// `default via 10.0.0.1 dev eth0 metric 5`, for messages.
fn route_text(r: &DefaultRoute) -> String {
    let mut s = "default".to_owned();
    if let Some(gw) = r.gateway {
        s += &format!(" via {gw}");
    }
    if !r.ifname.is_empty() {
        s += &format!(" dev {}", r.ifname);
    }
    if r.metric != 0 {
        s += &format!(" metric {}", r.metric);
    }
    s
}

/// Why a netlink exchange failed.
#[derive(Debug)]
enum NlError {
    /// The kernel refused the request: its errno and extended-ack message, if any.
    Kernel { errno: Errno, ext: Option<String> },
    /// The socket failed.
    Io(io::Error),
    /// The kernel's answer could not be decoded.
    Decode(String),
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NlError::Kernel { errno, ext: None } => f.write_str(errno.desc()),
            NlError::Kernel {
                errno,
                ext: Some(m),
            } => write!(f, "{}: {m}", errno.desc()),
            NlError::Io(e) => write!(f, "netlink socket: {e}"),
            NlError::Decode(e) => write!(f, "cannot decode the kernel's netlink answer: {e}"),
        }
    }
}

impl From<io::Error> for NlError {
    fn from(e: io::Error) -> Self {
        NlError::Io(e)
    }
}

fn kernel_error(code: i32, ext: Option<String>) -> NlError {
    NlError::Kernel {
        errno: Errno::from_raw(code.saturating_abs()),
        ext,
    }
}

/// `NLMSGERR_ATTR_MSG`: the extended-ack attribute holding the kernel's message.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// The flags the kernel sets on an `NLMSG_ERROR` whose request was capped / that has TLVs.
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
/// Length of a netlink message header.
const NLMSG_HDRLEN: usize = 16;

/// The kernel's extended-ack message from the payload of an `NLMSG_ERROR` (what follows its
/// error code: the request's header, all of the request unless `NLM_F_CAPPED`, then TLVs when
/// `NLM_F_ACK_TLVS`).
fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let skip = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = payload.get(..4)?;
        u32::from_ne_bytes(len.try_into().ok()?) as usize
    };
    attr_message(payload.get(align4(skip)..)?)
}

/// Finds `NLMSGERR_ATTR_MSG` in a run of netlink attributes.
fn attr_message(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([tlvs[0], tlvs[1]]));
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let value = &tlvs[4..len];
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            let text = String::from_utf8_lossy(text).trim().to_owned();
            return (!text.is_empty()).then_some(text);
        }
        tlvs = tlvs.get(align4(len)..).unwrap_or_default();
    }
    None
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// `IFLA_IFNAME`: the attribute of a link message holding its name.
const IFLA_IFNAME: u16 = 3;
/// Length of a `struct ifinfomsg`.
const IFINFOMSG_LEN: usize = 16;

/// The rtnetlink messages plexus exchanges. Links are read only as index and name, and only
/// default routes are parsed, so the parsers for every other kind of message, link and
/// route stay out of the binary (and cannot fail on what plexus does not look at).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rtm {
    /// `RTM_GETLINK`: a request for every link (sent with `NLM_F_DUMP`).
    GetLinks,
    /// `RTM_NEWLINK` as dumped: the link's index and name.
    Link { index: u32, name: Option<String> },
    /// `RTM_NEWROUTE`, `RTM_DELROUTE` or `RTM_GETROUTE` with its route; as read, a default
    /// route (destination prefix length 0).
    Route(u16, RouteMessage),
    /// Anything else read, e.g. a route with a destination prefix: not parsed.
    Other(u16),
}

impl NetlinkSerializable for Rtm {
    fn message_type(&self) -> u16 {
        match self {
            Rtm::GetLinks => libc::RTM_GETLINK,
            Rtm::Link { .. } => libc::RTM_NEWLINK,
            Rtm::Route(kind, _) | Rtm::Other(kind) => *kind,
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Rtm::GetLinks | Rtm::Link { .. } => IFINFOMSG_LEN,
            Rtm::Route(_, route) => route.buffer_len(),
            Rtm::Other(_) => 0,
        }
    }

    /// A link request is an all-zero `ifinfomsg` (family `AF_UNSPEC`, any link). Only
    /// [`Rtm::GetLinks`] and [`Rtm::Route`] are ever sent.
    fn serialize(&self, buffer: &mut [u8]) {
        match self {
            Rtm::Route(_, route) => route.emit(buffer),
            _ => buffer.fill(0),
        }
    }
}

impl NetlinkDeserializable for Rtm {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        match header.message_type {
            libc::RTM_NEWLINK => parse_link(payload),
            // rtmsg.rtm_dst_len is the second byte.
            kind @ (libc::RTM_NEWROUTE | libc::RTM_DELROUTE) if payload.get(1) == Some(&0) => {
                Ok(Rtm::Route(kind, RouteMessage::parse(payload)?))
            }
            kind => Ok(Rtm::Other(kind)),
        }
    }
}

/// The index and name of a dumped link: `struct ifinfomsg` (index at bytes 4..8), then
/// attributes.
fn parse_link(payload: &[u8]) -> Result<Rtm, DecodeError> {
    let Some(attributes) = payload.get(IFINFOMSG_LEN..) else {
        return Err(format!("link message of {} bytes, too short", payload.len()).into());
    };
    let index = u32::from_ne_bytes([payload[4], payload[5], payload[6], payload[7]]);
    let mut name = None;
    for nla in NlasIterator::new(attributes) {
        let nla = nla?;
        if nla.kind() == IFLA_IFNAME {
            let value = nla.value();
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            name = Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    Ok(Rtm::Link { index, name })
}

/// A route-netlink socket of the calling thread's network namespace.
struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    fn open() -> Result<Rtnl, NlError> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Best effort: the kernel's own words in errors, and short acks.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Rtnl { socket, seq: 0 })
    }

    /// `(index, name)` of every link.
    fn links(&mut self) -> Result<Vec<(u32, String)>, NlError> {
        let answers = self.dump(Rtm::GetLinks)?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                Rtm::Link {
                    index,
                    name: Some(name),
                } => Some((index, name)),
                _ => None,
            })
            .collect())
    }

    /// The default routes of `family` in the main table, as the kernel dumps them.
    fn default_routes(&mut self, family: IpFamily) -> Result<Vec<RouteMessage>, NlError> {
        let mut query = RouteMessage::default();
        query.header.address_family = address_family(family);
        let answers = self.dump(Rtm::Route(libc::RTM_GETROUTE, query))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                Rtm::Route(libc::RTM_NEWROUTE, r) if is_main_default(&r) => Some(r),
                _ => None,
            })
            .collect())
    }

    /// Sends a dump request; the answers. Retried when the kernel flags the dump as
    /// interrupted by a concurrent change.
    fn dump(&mut self, query: Rtm) -> Result<Vec<Rtm>, NlError> {
        const TRIES: usize = 3;
        for _ in 0..TRIES {
            let seq = self.send(query.clone(), NLM_F_DUMP)?;
            let (answers, interrupted) = self.receive(seq)?;
            if !interrupted {
                return Ok(answers);
            }
        }
        Err(NlError::Io(io::Error::new(
            io::ErrorKind::Interrupted,
            format!("the kernel's dump was interrupted by concurrent changes {TRIES} times"),
        )))
    }

    /// Sends a request with `NLM_F_ACK` and waits for the kernel's verdict.
    fn request(&mut self, message: Rtm, flags: u16) -> Result<(), NlError> {
        let seq = self.send(message, flags | NLM_F_ACK)?;
        self.receive(seq).map(|_| ())
    }

    fn send(&mut self, message: Rtm, flags: u16) -> Result<u32, NlError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// Reads the answers to request `seq` until its ack, error or end of dump. Returns the
    /// messages and whether the dump was flagged as interrupted.
    fn receive(&mut self, seq: u32) -> Result<(Vec<Rtm>, bool), NlError> {
        let mut answers = Vec::new();
        let mut interrupted = false;
        loop {
            let (buf, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset + NLMSG_HDRLEN <= buf.len() {
                let bytes = &buf[offset..];
                let message = NetlinkMessage::<Rtm>::deserialize(bytes)
                    .map_err(|e| NlError::Decode(e.to_string()))?;
                let length = message.header.length as usize;
                if length < NLMSG_HDRLEN {
                    return Err(NlError::Decode(format!("message length {length}")));
                }
                offset += align4(length);
                if message.header.sequence_number != seq {
                    continue;
                }
                interrupted |= message.header.flags & NLM_F_DUMP_INTR != 0;
                match message.payload {
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    NetlinkPayload::Error(e) if e.code.is_none() => {
                        return Ok((answers, interrupted));
                    }
                    NetlinkPayload::Error(e) => {
                        let ext = ext_ack_message(message.header.flags, &e.header);
                        return Err(kernel_error(e.raw_code(), ext));
                    }
                    NetlinkPayload::Done(d) if d.code < 0 => {
                        let ext = (message.header.flags & NLM_F_ACK_TLVS != 0)
                            .then(|| attr_message(&d.extended_ack))
                            .flatten();
                        return Err(kernel_error(d.code, ext));
                    }
                    NetlinkPayload::Done(_) => return Ok((answers, interrupted)),
                    NetlinkPayload::Overrun(_) => {
                        return Err(NlError::Io(io::Error::other("netlink overrun")));
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = 4 + value.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        v.resize(align4(len), 0);
        v
    }

    #[test]
    fn ext_ack_message_is_found_after_a_capped_or_full_request() {
        let mut capped = vec![0u8; NLMSG_HDRLEN];
        capped.extend(tlv(3, &7u32.to_ne_bytes())); // NLMSGERR_ATTR_OFFS comes first here
        capped.extend(tlv(NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0"));
        assert_eq!(
            ext_ack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &capped).as_deref(),
            Some("Nexthop has invalid gateway")
        );
        // Not capped: the whole request (here 22 bytes long, padded to 24) precedes the TLVs.
        let mut full = 22u32.to_ne_bytes().to_vec();
        full.resize(24, 0xee);
        full.extend(tlv(NLMSGERR_ATTR_MSG, b"bad\0"));
        assert_eq!(
            ext_ack_message(NLM_F_ACK_TLVS, &full).as_deref(),
            Some("bad")
        );
        // No TLVs flagged, truncated or malformed TLVs: no message, no panic.
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &capped), None);
        assert_eq!(
            ext_ack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &capped[..10]),
            None
        );
        let mut bad = vec![0u8; NLMSG_HDRLEN];
        bad.extend_from_slice(&[200, 0, 1, 0, b'x']);
        assert_eq!(ext_ack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &bad), None);
        assert_eq!(ext_ack_message(NLM_F_ACK_TLVS, &[1, 2]), None);
    }

    #[test]
    fn link_messages_are_read_as_index_and_name() {
        let mut payload = vec![0u8; IFINFOMSG_LEN];
        payload[4..8].copy_from_slice(&7u32.to_ne_bytes());
        payload.extend(tlv(4, &1500u32.to_ne_bytes())); // IFLA_MTU
        payload.extend(tlv(IFLA_IFNAME, b"net1\0"));
        assert_eq!(
            parse_link(&payload).unwrap(),
            Rtm::Link {
                index: 7,
                name: Some("net1".into())
            }
        );
        assert_eq!(
            parse_link(&payload[..IFINFOMSG_LEN]).unwrap(),
            Rtm::Link {
                index: 7,
                name: None
            }
        );
        assert!(parse_link(&payload[..8]).is_err());
        // A truncated attribute is a decode error, not a panic.
        assert!(parse_link(&payload[..payload.len() - 6]).is_err());
    }

    #[test]
    fn only_default_routes_are_parsed_and_they_round_trip() {
        let mut header = NetlinkHeader::default();
        header.message_type = libc::RTM_NEWROUTE;
        let r = route(
            AddressFamily::Inet,
            vec![
                RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(10, 0, 0, 1))),
                RouteAttribute::Oif(2),
            ],
        );
        let m = Rtm::Route(libc::RTM_NEWROUTE, r.clone());
        assert_eq!(m.message_type(), libc::RTM_NEWROUTE);
        let mut bytes = vec![0u8; m.buffer_len()];
        m.serialize(&mut bytes);
        assert_eq!(Rtm::deserialize(&header, &bytes).unwrap(), m);
        // A route with a destination prefix is left unparsed.
        bytes[1] = 24;
        assert_eq!(
            Rtm::deserialize(&header, &bytes).unwrap(),
            Rtm::Other(libc::RTM_NEWROUTE)
        );
        // The link dump request is an all-zero ifinfomsg.
        let mut req = vec![0xffu8; Rtm::GetLinks.buffer_len()];
        Rtm::GetLinks.serialize(&mut req);
        assert_eq!(req, [0u8; IFINFOMSG_LEN]);
        assert_eq!(Rtm::GetLinks.message_type(), libc::RTM_GETLINK);
    }

    fn route(family: AddressFamily, attributes: Vec<RouteAttribute>) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header.address_family = family;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.header.kind = RouteType::Unicast;
        r.attributes = attributes;
        r
    }

    #[test]
    fn main_table_default_routes_are_recognised() {
        let gw = RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(10, 0, 0, 1)));
        let r = route(AddressFamily::Inet, vec![gw.clone()]);
        assert!(is_main_default(&r));
        let mut subnet = r.clone();
        subnet.header.destination_prefix_length = 24;
        assert!(!is_main_default(&subnet));
        let mut local = r.clone();
        local.header.table = 255;
        assert!(!is_main_default(&local));
        // Table ids above 255: the header says RT_TABLE_COMPAT, RTA_TABLE has the id.
        let mut big = r.clone();
        big.header.table = 252;
        big.attributes.push(RouteAttribute::Table(1000));
        assert!(!is_main_default(&big));
        let mut main_by_attr = r.clone();
        main_by_attr.header.table = 0;
        main_by_attr.attributes.push(RouteAttribute::Table(254));
        assert!(is_main_default(&main_by_attr));
        let mut cloned = r;
        cloned.header.flags = RouteFlags::Cloned;
        assert!(!is_main_default(&cloned));
    }

    #[test]
    fn describe_names_interfaces_and_splits_multipath() {
        let links = vec![
            (1, "lo".to_owned()),
            (2, "eth0".to_owned()),
            (3, "net1".to_owned()),
        ];
        let gw4 = Ipv4Addr::new(10, 90, 0, 1);
        let r = route(
            AddressFamily::Inet,
            vec![
                RouteAttribute::Gateway(RouteAddress::Inet(gw4)),
                RouteAttribute::Oif(2),
                RouteAttribute::Priority(5),
            ],
        );
        let d = describe(IpFamily::V4, &r, &links);
        assert_eq!(
            d,
            [DefaultRoute {
                family: IpFamily::V4,
                gateway: Some(IpAddr::V4(gw4)),
                ifname: "eth0".into(),
                metric: 5
            }]
        );
        assert_eq!(route_text(&d[0]), "default via 10.90.0.1 dev eth0 metric 5");

        let hop = |index: u32, gw: Ipv6Addr| {
            let mut h = netlink_packet_route::route::RouteNextHop::default();
            h.interface_index = index;
            h.attributes = vec![RouteAttribute::Gateway(RouteAddress::Inet6(gw))];
            h
        };
        let a: Ipv6Addr = "fd90::1".parse().unwrap();
        let b: Ipv6Addr = "fd91::1".parse().unwrap();
        let multi = route(
            AddressFamily::Inet6,
            vec![
                RouteAttribute::Priority(1024),
                RouteAttribute::MultiPath(vec![hop(2, a), hop(9, b)]),
            ],
        );
        let d = describe(IpFamily::V6, &multi, &links);
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].gateway, d[0].ifname.as_str()),
            (Some(IpAddr::V6(a)), "eth0")
        );
        // An index the link list does not know is still shown, as the kernel's ifN.
        assert_eq!(
            (d[1].gateway, d[1].ifname.as_str()),
            (Some(IpAddr::V6(b)), "if9")
        );

        let blackhole = route(AddressFamily::Inet, vec![]);
        let d = describe(IpFamily::V4, &blackhole, &links);
        assert_eq!((d[0].gateway, d[0].ifname.as_str()), (None, ""));
        assert_eq!(route_text(&d[0]), "default");
    }

    #[test]
    fn replayable_drops_read_only_state() {
        let mut r = route(
            AddressFamily::Inet6,
            vec![RouteAttribute::Oif(2), RouteAttribute::MulticastExpires(5)],
        );
        r.header.flags = RouteFlags::Linkdown | RouteFlags::Dead | RouteFlags::Onlink;
        let mut hop = netlink_packet_route::route::RouteNextHop::default();
        hop.flags = RouteNextHopFlags::Linkdown | RouteNextHopFlags::Onlink;
        r.attributes.push(RouteAttribute::MultiPath(vec![hop]));
        let r = replayable(r);
        assert_eq!(r.header.flags, RouteFlags::Onlink);
        assert!(matches!(
            r.attributes[..],
            [RouteAttribute::Oif(2), RouteAttribute::MultiPath(_)]
        ));
        let RouteAttribute::MultiPath(hops) = &r.attributes[1] else {
            unreachable!()
        };
        assert_eq!(hops[0].flags, RouteNextHopFlags::Onlink);
    }

    #[test]
    fn new_default_route_is_unicast_in_main_via_gateway_on_the_interface() {
        let gw: IpAddr = "fd91::1".parse().unwrap();
        let r = new_default_route(gw, 7);
        assert_eq!(r.header.address_family, AddressFamily::Inet6);
        assert!(is_main_default(&r));
        assert_eq!(r.header.kind, RouteType::Unicast);
        assert_eq!(
            r.attributes,
            [
                RouteAttribute::Gateway(RouteAddress::Inet6("fd91::1".parse().unwrap())),
                RouteAttribute::Oif(7)
            ]
        );
    }

    #[test]
    fn errors_read_like_the_kernel_and_explain() {
        let e = kernel_error(-101, Some("Nexthop has invalid gateway".into()));
        assert_eq!(
            e.to_string(),
            "Network is unreachable: Nexthop has invalid gateway"
        );
        let gw: IpAddr = "10.72.0.1".parse().unwrap();
        assert_eq!(
            add_hint(&e, IpFamily::V4, "net1", gw),
            " (no IPv4 address on net1 has 10.72.0.1 in its subnet, or net1 is down?)"
        );
        assert_eq!(kernel_error(-113, None).to_string(), "No route to host");
        assert_eq!(
            add_hint(&kernel_error(-1, None), IpFamily::V4, "net1", gw),
            ""
        );
        let e = setns_error(Path::new("/tmp/x"), Errno::EINVAL);
        assert!(
            e.to_string().starts_with(
                "cannot enter network namespace /tmp/x: it is not a network namespace"
            ),
            "{e}"
        );
    }

    #[test]
    fn gateways_must_be_unicast() {
        for bad in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"] {
            let e = check_gateway(bad.parse().unwrap()).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        for good in ["10.0.0.1", "fe80::1", "fd00::1"] {
            check_gateway(good.parse().unwrap()).unwrap();
        }
    }

    #[test]
    fn a_missing_namespace_is_named() {
        let e = interface_names(Path::new("/run/netns/plexus-no-such-ns")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "network namespace /run/netns/plexus-no-such-ns does not exist: no such file \
             (was the pod sandbox already deleted?)"
        );
        assert_eq!(e.code(), crate::cni::Code::IO);
    }

    #[test]
    fn a_file_that_is_not_a_namespace_is_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = default_routes(f.path()).unwrap_err();
        let msg = e.to_string();
        // Not root: EPERM; root: EINVAL. Either way the path is named and nothing else ran.
        assert!(
            msg.starts_with(&format!(
                "cannot enter network namespace {}",
                f.path().display()
            )),
            "{msg}"
        );
    }
}
