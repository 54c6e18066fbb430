//! Writing an attachment's device ID into its delegate config (pure).
//!
//! SR-IOV delegates read the device from their config: sriov-cni from `deviceID`, host-device
//! from `pciBusID`. [`device_id`] sets both to the ID:
//! - in a single plugin config, at its top level;
//! - in a conflist, in every plugin object (not at the list level, which plugins never see).
//!
//! Existing values of those two keys are replaced; every other key keeps its value and its
//! place. The result is serialised compactly; configs without a device are never passed
//! through here, so their bytes stay exactly as the NAD holds them.

use serde_json::{Map, Value};

use crate::cni::{Error, NetworkConfig};

/// The keys set to the device ID.
pub const KEYS: [&str; 2] = ["deviceID", "pciBusID"];

/// `config` with `deviceID` and `pciBusID` set to `id` (see the module docs).
pub fn device_id(config: &NetworkConfig, id: &str) -> Result<NetworkConfig, Error> {
    let mut doc: Value = serde_json::from_slice(config.bytes())
        .map_err(|e| Error::decode("error decoding network config", e.to_string()))?;
    let set = |obj: &mut Map<String, Value>| {
        for key in KEYS {
            obj.insert(key.into(), Value::String(id.to_owned()));
        }
    };
    match doc.get_mut("plugins").and_then(Value::as_array_mut) {
        Some(plugins) => plugins
            .iter_mut()
            .filter_map(Value::as_object_mut)
            .for_each(set),
        None => {
            if let Some(obj) = doc.as_object_mut() {
                set(obj);
            }
        }
    }
    let bytes = serde_json::to_vec(&doc)
        .map_err(|e| Error::Internal(format!("serialising a network config: {e}")))?;
    NetworkConfig::from_value(doc, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_plugin_gets_both_keys_others_kept_in_place() {
        let raw = br#"{"cniVersion":"1.0.0", "name":"s","type":"sriov","deviceID":"old","vlan":7,"n":1.50}"#;
        let c = NetworkConfig::parse(raw).unwrap();
        let got = device_id(&c, "0000:af:00.1").unwrap();
        assert_eq!(
            String::from_utf8_lossy(got.bytes()),
            r#"{"cniVersion":"1.0.0","name":"s","type":"sriov","deviceID":"0000:af:00.1","vlan":7,"n":1.50,"pciBusID":"0000:af:00.1"}"#
        );
        assert_eq!(got.plugins()[0].plugin_type(), "sriov");
    }

    #[test]
    fn every_plugin_of_a_conflist() {
        let raw = br#"{"cniVersion":"1.0.0","name":"l","plugins":[{"type":"sriov"},{"type":"tuning","capabilities":{"mac":true}}]}"#;
        let c = NetworkConfig::parse(raw).unwrap();
        let got = device_id(&c, "d1").unwrap();
        let v: Value = serde_json::from_slice(got.bytes()).unwrap();
        assert!(v.get("deviceID").is_none(), "not at the list level");
        for p in v["plugins"].as_array().unwrap() {
            assert_eq!(p["deviceID"], "d1");
            assert_eq!(p["pciBusID"], "d1");
        }
        assert_eq!(got.plugins()[1].capabilities().collect::<Vec<_>>(), ["mac"]);
    }
}
