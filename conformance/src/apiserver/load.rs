//! Loading objects from multi-document YAML.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Kinds that `load_yaml_*` skips: the stand-in serves the NAD CRD and every namespace by
/// construction, so manifests that install them load as no-ops; DeviceClasses and
/// ResourceClaimTemplates, which only a scheduler and a claim controller read; and the objects that install
/// plexus itself (`examples/deploy/`: its service account, RBAC, DaemonSet and the admission
/// policy for NADs) concern a real cluster only (the stand-in does no admission and runs no
/// pods; its authorization rules are set with `ApiServer::set_rbac`, not loaded).
const SKIPPED_KINDS: [&str; 10] = [
    // The DRA objects that only the scheduler and the claim controller read (the stand-in runs
    // neither: a pod's claims are loaded as they are once allocated).
    "DeviceClass",
    "ResourceClaimTemplate",
    "CustomResourceDefinition",
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "DaemonSet",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

/// Parses every document of `text` into JSON objects: empty documents are dropped, `kind: List`
/// is flattened into its items, skipped kinds are left out.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let yaml = serde_yaml::Value::deserialize(doc)
            .map_err(|e| format!("YAML document {}: {e}", i + 1))?;
        if yaml.is_null() {
            continue;
        }
        let json: Value = serde_json::to_value(&yaml)
            .map_err(|e| format!("YAML document {}: not representable as JSON: {e}", i + 1))?;
        flatten(json, &mut out);
    }
    Ok(out)
}

fn flatten(v: Value, out: &mut Vec<Value>) {
    match v.get("kind").and_then(Value::as_str) {
        Some("List") => {
            if let Some(Value::Array(items)) = v.get("items") {
                for item in items.clone() {
                    flatten(item, out);
                }
            }
        }
        Some(k) if SKIPPED_KINDS.contains(&k) => {}
        _ => out.push(v),
    }
}

/// Every `.yaml`/`.yml` file under `dir`, recursively, in path order.
pub(crate) fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).map_err(|e| format!("reading {}: {e}", d.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("reading {}: {e}", d.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
