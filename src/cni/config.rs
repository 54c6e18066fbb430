//! Network configurations: a single plugin config or a conflist, kept as data.
//!
//! A delegate's config is data to pass on, not to reinterpret: plexus keeps the original bytes
//! and the JSON object with every key in its original order (serde_json's `preserve_order`,
//! numbers kept textually with `arbitrary_precision`). It reads only the few fields it needs
//! (`cniVersion`, `name`, `type`, `capabilities`, `plugins`). When nothing has to be injected a
//! delegate receives the original bytes; otherwise it receives the same object with only the
//! injected keys added or replaced (see [`crate::delegate::chain`]).

use serde_json::{Map, Value};

use super::error::Error;
use super::version::Version;

/// One plugin's configuration object, every key kept.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConf {
    obj: Map<String, Value>,
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

impl PluginConf {
    /// Wraps a JSON object; anything else is a decode error.
    pub fn from_value(v: Value) -> Result<PluginConf, Error> {
        match v {
            Value::Object(obj) => Ok(PluginConf { obj }),
            other => Err(Error::decode(
                "network config is not a JSON object",
                format!("got {}", json_kind(&other)),
            )),
        }
    }

    /// The plugin `type` ("" when absent or not a string).
    pub fn plugin_type(&self) -> &str {
        str_field(&self.obj, "type")
    }

    /// The `name` ("" when absent).
    pub fn name(&self) -> &str {
        str_field(&self.obj, "name")
    }

    /// The `cniVersion` string ("" when absent, which the spec reads as 0.1.0).
    pub fn cni_version(&self) -> &str {
        str_field(&self.obj, "cniVersion")
    }

    /// The capability keys this plugin declares as `true`.
    pub fn capabilities(&self) -> impl Iterator<Item = &str> {
        self.obj
            .get("capabilities")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.as_bool() == Some(true))
            .map(|(k, _)| k.as_str())
    }

    /// The whole object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.obj
    }

    /// The whole object, owned.
    pub fn into_map(self) -> Map<String, Value> {
        self.obj
    }
}

/// A conflist: list-level keys plus its plugins, every key kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfList {
    obj: Map<String, Value>,
    plugins: Vec<PluginConf>,
}

impl ConfList {
    /// The list's `name`.
    pub fn name(&self) -> &str {
        str_field(&self.obj, "name")
    }

    /// The list's `cniVersion` string.
    pub fn cni_version(&self) -> &str {
        str_field(&self.obj, "cniVersion")
    }

    /// The plugins, in order.
    pub fn plugins(&self) -> &[PluginConf] {
        &self.plugins
    }

    /// The list-level object (with its `plugins` key).
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.obj
    }
}

/// A network configuration as a runtime or a NAD hands it over.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkConfig {
    /// A single plugin config.
    Plugin { conf: PluginConf, bytes: Vec<u8> },
    /// A conflist (`plugins` is an array).
    List { list: ConfList, bytes: Vec<u8> },
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl NetworkConfig {
    /// Parses bytes into a config. Not JSON, or not an object: code 6. A `plugins` key that is
    /// not an array of objects: code 7. No other validation happens here (see [`validate`]).
    ///
    /// [`validate`]: NetworkConfig::validate
    pub fn parse(bytes: &[u8]) -> Result<NetworkConfig, Error> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::decode("error decoding network config", e.to_string()))?;
        Self::from_value(v, bytes.to_vec())
    }

    /// Like [`parse`](NetworkConfig::parse) from an already decoded value; `bytes` are what a
    /// delegate receives when nothing is injected.
    pub fn from_value(v: Value, bytes: Vec<u8>) -> Result<NetworkConfig, Error> {
        let conf = PluginConf::from_value(v)?;
        let Some(plugins) = conf.obj.get("plugins") else {
            return Ok(NetworkConfig::Plugin { conf, bytes });
        };
        let name = conf.name().to_owned();
        let Some(items) = plugins.as_array() else {
            return Err(Error::invalid_config(
                format!("conflist {name:?}: \"plugins\" must be an array"),
                format!("got {}", json_kind(plugins)),
            ));
        };
        let plugins = items
            .iter()
            .enumerate()
            .map(|(i, p)| {
                PluginConf::from_value(p.clone()).map_err(|_| {
                    Error::invalid_config(
                        format!("conflist {name:?}: plugins[{i}] must be an object"),
                        format!("got {}", json_kind(p)),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NetworkConfig::List {
            list: ConfList {
                obj: conf.obj,
                plugins,
            },
            bytes,
        })
    }

    /// The network name (list name or plugin name).
    pub fn name(&self) -> &str {
        match self {
            NetworkConfig::Plugin { conf, .. } => conf.name(),
            NetworkConfig::List { list, .. } => list.name(),
        }
    }

    /// The raw `cniVersion` string.
    pub fn cni_version_str(&self) -> &str {
        match self {
            NetworkConfig::Plugin { conf, .. } => conf.cni_version(),
            NetworkConfig::List { list, .. } => list.cni_version(),
        }
    }

    /// The parsed `cniVersion` (missing means 0.1.0), or code 1 for a version plexus does not
    /// speak.
    pub fn version(&self) -> Result<Version, Error> {
        Version::parse_config(self.cni_version_str())
    }

    /// The exact bytes this config was parsed from.
    pub fn bytes(&self) -> &[u8] {
        match self {
            NetworkConfig::Plugin { bytes, .. } | NetworkConfig::List { bytes, .. } => bytes,
        }
    }

    /// The plugins of this config, in order (one for a single plugin config).
    pub fn plugins(&self) -> &[PluginConf] {
        match self {
            NetworkConfig::Plugin { conf, .. } => std::slice::from_ref(conf),
            NetworkConfig::List { list, .. } => list.plugins(),
        }
    }

    /// Checks what running it needs: a supported `cniVersion`, at least one plugin, a string
    /// `type` in each. `label` names the config in errors (e.g. the network it serves).
    pub fn validate(&self, label: &str) -> Result<Version, Error> {
        let version = self.version().map_err(|e| match e {
            Error::IncompatibleVersion { msg, details } => Error::IncompatibleVersion {
                msg: format!("network {label:?}: {msg}"),
                details,
            },
            other => other,
        })?;
        if self.plugins().is_empty() {
            return Err(Error::invalid_config(
                format!("network {label:?}: conflist has no plugins"),
                "",
            ));
        }
        for (i, p) in self.plugins().iter().enumerate() {
            if p.plugin_type().is_empty() {
                let which = match self {
                    NetworkConfig::Plugin { .. } => "the config".to_owned(),
                    NetworkConfig::List { .. } => format!("plugins[{i}]"),
                };
                return Err(Error::invalid_config(
                    format!("network {label:?}: {which} has no \"type\""),
                    "every plugin config needs a \"type\" naming the plugin binary",
                ));
            }
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::error::Code;

    #[test]
    fn single_conf_keeps_bytes_and_unknown_keys() {
        let raw = br#"{"cniVersion":"1.0.0","name":"n","type":"bridge","zeta":1,"alpha":{"x":[1,2]},"big":123456789012345678901234567890}"#;
        let c = NetworkConfig::parse(raw).unwrap();
        assert_eq!(c.bytes(), raw);
        assert_eq!(c.name(), "n");
        assert_eq!(c.version().unwrap(), Version::V1_0_0);
        let NetworkConfig::Plugin { conf, .. } = &c else {
            panic!("not a plugin conf")
        };
        assert_eq!(conf.plugin_type(), "bridge");
        // Re-serialising keeps key order and the exact number text.
        assert_eq!(
            serde_json::to_vec(conf.as_map()).unwrap(),
            raw.to_vec(),
            "round trip must be byte-exact for compact input"
        );
    }

    #[test]
    fn conflist_plugins_and_capabilities() {
        let raw = br#"{"cniVersion":"1.0.0","name":"l","plugins":[{"type":"bridge"},{"type":"tuning","capabilities":{"mac":true,"ips":false}}]}"#;
        let c = NetworkConfig::parse(raw).unwrap();
        assert_eq!(c.plugins().len(), 2);
        assert_eq!(
            c.plugins()[1].capabilities().collect::<Vec<_>>(),
            vec!["mac"]
        );
        assert_eq!(c.validate("l").unwrap(), Version::V1_0_0);
    }

    #[test]
    fn errors() {
        assert_eq!(
            NetworkConfig::parse(b"nope").unwrap_err().code(),
            Code::DECODE
        );
        assert_eq!(
            NetworkConfig::parse(b"[]").unwrap_err().code(),
            Code::DECODE
        );
        let e = NetworkConfig::parse(br#"{"name":"l","plugins":{}}"#).unwrap_err();
        assert_eq!(e.code(), Code::INVALID_CONFIG);
        let e = NetworkConfig::parse(br#"{"name":"l","plugins":[1]}"#).unwrap_err();
        assert_eq!(e.msg(), "conflist \"l\": plugins[0] must be an object");
        let c = NetworkConfig::parse(br#"{"name":"l","cniVersion":"1.0.0","plugins":[]}"#).unwrap();
        assert_eq!(c.validate("l").unwrap_err().code(), Code::INVALID_CONFIG);
        let c =
            NetworkConfig::parse(br#"{"name":"l","cniVersion":"1.0.0","plugins":[{"type":""}]}"#)
                .unwrap();
        assert_eq!(
            c.validate("l").unwrap_err().msg(),
            "network \"l\": plugins[0] has no \"type\""
        );
        let c = NetworkConfig::parse(br#"{"name":"x","cniVersion":"9.9.9","type":"t"}"#).unwrap();
        assert_eq!(
            c.validate("x").unwrap_err().code(),
            Code::INCOMPATIBLE_VERSION
        );
        let c = NetworkConfig::parse(br#"{"name":"x","type":"t"}"#).unwrap();
        assert_eq!(c.validate("x").unwrap(), Version::V0_1_0);
    }
}
