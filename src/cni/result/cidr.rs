//! IP addresses and `addr/prefix` strings, parsed with `std::net` only.

use std::fmt;
use std::net::IpAddr;

/// The IP family of an address, route destination or gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4 (`ips[].version` "4", `ip4` in 0.1.0/0.2.0).
    V4,
    /// IPv6 (`ips[].version` "6", `ip6` in 0.1.0/0.2.0).
    V6,
}

impl IpFamily {
    /// The family of a parsed address. The textual form decides: an IPv4-mapped IPv6
    /// address (`::ffff:10.0.0.1`) is IPv6.
    pub fn of(addr: IpAddr) -> IpFamily {
        match addr {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// The `ips[].version` string of 0.3.x/0.4.0 results: `"4"` or `"6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::V4 => "4",
            IpFamily::V6 => "6",
        }
    }

    /// The family from an `ips[].version` string, if it is `"4"` or `"6"`.
    pub fn from_version(s: &str) -> Option<IpFamily> {
        match s {
            "4" => Some(IpFamily::V4),
            "6" => Some(IpFamily::V6),
            _ => None,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// Splits and validates a CIDR string `addr/prefix` (`10.1.0.5/24`, `2001:db8::5/64`).
///
/// The address keeps its host bits (a CNI address is an interface address, not a network).
/// The prefix is 1 to 3 decimal digits, at most 32 for IPv4 and 128 for IPv6. Zones
/// (`fe80::1%eth0`) and surrounding whitespace are rejected, as Go's `net.ParseCIDR` does.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = s.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    let max = match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    (prefix <= max).then_some((addr, prefix))
}

/// Parses a plain IP address (a gateway), without prefix or zone.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// The family of a CIDR string, or `None` when it is not a valid `addr/prefix`.
pub fn cidr_family(s: &str) -> Option<IpFamily> {
    parse_cidr(s).map(|(a, _)| IpFamily::of(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.1.0.5/24"),
            Some(("10.1.0.5".parse().unwrap(), 24))
        );
        assert_eq!(cidr_family("2001:db8::5/64"), Some(IpFamily::V6));
        assert_eq!(cidr_family("::/0"), Some(IpFamily::V6));
        assert_eq!(cidr_family("0.0.0.0/0"), Some(IpFamily::V4));
        assert_eq!(cidr_family("::ffff:10.0.0.1/128"), Some(IpFamily::V6));
        for bad in [
            "",
            "/",
            "banana",
            "10.1.0.5",
            "10.1.0.5/",
            "10.1.0.5/33",
            "10.1.0.5/+4",
            "10.1.0.5/-1",
            "10.1.0.5/ 4",
            " 10.1.0.5/24",
            "10.1.0.5/24 ",
            "10.1.0.5/0024",
            "2001:db8::1/129",
            "fe80::1%eth0/64",
            "10.1.0.5/24/1",
            "10.01.0.5/24",
            "é/é",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad:?}");
        }
        assert!(parse_ip("10.0.0.1").is_some());
        assert!(parse_ip("10.0.0.1/32").is_none());
        assert!(parse_ip("").is_none());
    }
}
