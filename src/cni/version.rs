//! CNI spec versions: which ones plexus speaks, ordering, and the per-command gates.

use std::fmt;

use super::error::Error;

/// A CNI specification version plexus understands.
///
/// The order of the variants is the order of the versions, so `<`/`>=` compare versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

/// Every version plexus accepts in a config and can emit a result in, oldest first.
pub const SUPPORTED: [Version; 7] = [
    Version::V0_1_0,
    Version::V0_2_0,
    Version::V0_3_0,
    Version::V0_3_1,
    Version::V0_4_0,
    Version::V1_0_0,
    Version::V1_1_0,
];

impl Version {
    /// The newest version plexus speaks; used for errors when no config version is known.
    pub const LATEST: Version = Version::V1_1_0;

    /// The version string as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_1_0 => "0.1.0",
            Version::V0_2_0 => "0.2.0",
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Parses a wire version string. An empty string means 0.1.0 (the spec's rule for a
    /// config without `cniVersion`).
    pub fn parse(s: &str) -> Option<Version> {
        if s.is_empty() {
            return Some(Version::V0_1_0);
        }
        SUPPORTED.iter().copied().find(|v| v.as_str() == s)
    }

    /// Parses a config's version, or fails with the CNI "incompatible CNI versions" error.
    pub fn parse_config(s: &str) -> Result<Version, Error> {
        Version::parse(s).ok_or_else(|| {
            Error::incompatible(
                "incompatible CNI versions",
                format!(
                    "config is {s:?}, plugin supports [{}]",
                    SUPPORTED.map(Version::as_str).join(" ")
                ),
            )
        })
    }

    /// The result family: results of versions in one family share a JSON shape.
    pub fn family(self) -> Family {
        match self {
            Version::V0_1_0 | Version::V0_2_0 => Family::V02,
            Version::V0_3_0 | Version::V0_3_1 | Version::V0_4_0 => Family::V04,
            Version::V1_0_0 | Version::V1_1_0 => Family::V1,
        }
    }
}

/// The three shapes a CNI result has had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// 0.1.0 and 0.2.0: `ip4` / `ip6` objects.
    V02,
    /// 0.3.0, 0.3.1, 0.4.0: `interfaces`, `ips` with `version`, `routes`.
    V04,
    /// 1.0.0 and 1.1.0: like 0.4.0 without `ips[].version`, with mtu, pciID, socketPath, …
    V1,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The VERSION answer: the newest version and all supported ones.
pub fn version_answer() -> serde_json::Value {
    serde_json::json!({
        "cniVersion": Version::LATEST.as_str(),
        "supportedVersions": SUPPORTED.map(Version::as_str),
    })
}

/// The command gates of the spec: CHECK needs a config version >= 0.4.0, STATUS and GC
/// need >= 1.1.0. `command` is the wire name (`CHECK`, `STATUS`, `GC`); other commands pass.
pub fn gate(command: &str, config: Version) -> Result<(), Error> {
    let min = match command {
        "CHECK" => Version::V0_4_0,
        "STATUS" | "GC" => Version::V1_1_0,
        _ => return Ok(()),
    };
    if config < min {
        return Err(Error::incompatible(
            format!("config version does not allow {command}"),
            format!("{command} needs cniVersion {min} or newer, the config is {config}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::error::Code;

    #[test]
    fn parses_all_supported_and_empty_as_0_1_0() {
        for v in SUPPORTED {
            assert_eq!(Version::parse(v.as_str()), Some(v));
        }
        assert_eq!(Version::parse(""), Some(Version::V0_1_0));
        assert_eq!(Version::parse("1.2.0"), None);
        assert_eq!(Version::parse("0.4"), None);
    }

    #[test]
    fn unknown_config_version_is_code_1() {
        let e = Version::parse_config("2.0.0").unwrap_err();
        assert_eq!(e.code(), Code::INCOMPATIBLE_VERSION);
        assert_eq!(e.msg(), "incompatible CNI versions");
    }

    #[test]
    fn gates() {
        assert!(gate("CHECK", Version::V0_4_0).is_ok());
        let e = gate("CHECK", Version::V0_3_1).unwrap_err();
        assert_eq!(e.msg(), "config version does not allow CHECK");
        assert_eq!(e.code(), Code::INCOMPATIBLE_VERSION);
        assert!(gate("GC", Version::V1_1_0).is_ok());
        assert_eq!(
            gate("GC", Version::V1_0_0).unwrap_err().msg(),
            "config version does not allow GC"
        );
        assert_eq!(
            gate("STATUS", Version::V0_4_0).unwrap_err().msg(),
            "config version does not allow STATUS"
        );
        assert!(gate("ADD", Version::V0_1_0).is_ok());
    }

    #[test]
    fn version_answer_lists_seven() {
        assert_eq!(
            version_answer().to_string(),
            r#"{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#
        );
    }
}
