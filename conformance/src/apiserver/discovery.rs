//! Discovery documents (`/version`, `/api`, `/apis`, ...) and the server-side `Table`
//! rendering that `kubectl get` asks for.
//!
//! Discovery is the legacy (unaggregated) form with `Content-Type: application/json`:
//! kubectl >= 1.26 first asks for aggregated discovery
//! (`Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...`) and falls
//! back to the legacy documents when the answer is plain JSON, as it must for older servers.

use std::time::SystemTime;

use serde_json::{Value, json};

use super::store::{EVENTS_GROUP, NAD_GROUP, RESOURCE_GROUP, Res};
use super::util::{human_duration, meta, meta_str, parse_rfc3339};

/// The Kubernetes version the stand-in claims to be (kubectl's skew rules read it): 1.34, the first
/// with resource.k8s.io/v1 (DRA), which it serves.
pub(crate) const VERSION: (&str, &str) = ("1", "34");

fn verbs(v: &[&str]) -> Value {
    json!(v)
}

const CRUD: &[&str] = &["create", "delete", "get", "list", "patch", "update"];

fn core_resources() -> Value {
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
             "verbs": verbs(CRUD), "shortNames": ["ev"]},
            {"name": "namespaces", "singularName": "namespace", "namespaced": false,
             "kind": "Namespace", "verbs": verbs(&["get", "list"]), "shortNames": ["ns"]},
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
             "verbs": verbs(CRUD), "shortNames": ["po"], "categories": ["all"]},
            {"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod",
             "verbs": verbs(&["get", "patch", "update"])}
        ]
    })
}

/// The group of `SelfSubjectAccessReview`.
pub(crate) const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";

fn group(name: &str) -> Value {
    let gv = format!("{name}/v1");
    json!({
        "name": name,
        "versions": [{"groupVersion": gv, "version": "v1"}],
        "preferredVersion": {"groupVersion": gv, "version": "v1"}
    })
}

fn group_resources(name: &str) -> Option<Value> {
    let resources = match name {
        NAD_GROUP => json!([{
            "name": "network-attachment-definitions",
            "singularName": "network-attachment-definition",
            "namespaced": true,
            "kind": "NetworkAttachmentDefinition",
            "verbs": verbs(&["delete", "get", "list", "patch", "create", "update"]),
            "shortNames": ["net-attach-def"]
        }]),
        EVENTS_GROUP => json!([{
            "name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
            "verbs": verbs(CRUD), "shortNames": ["ev"]
        }]),
        RESOURCE_GROUP => json!([
            {"name": "resourceclaims", "singularName": "resourceclaim", "namespaced": true,
             "kind": "ResourceClaim", "verbs": verbs(&["create", "delete", "deletecollection",
             "get", "list", "patch", "update", "watch"])},
            {"name": "resourceclaims/status", "singularName": "", "namespaced": true,
             "kind": "ResourceClaim", "verbs": verbs(&["get", "patch", "update"])},
            {"name": "resourceslices", "singularName": "resourceslice", "namespaced": false,
             "kind": "ResourceSlice", "verbs": verbs(&["create", "delete", "deletecollection",
             "get", "list", "patch", "update", "watch"])}
        ]),
        AUTHORIZATION_GROUP => json!([{
            "name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview",
            "namespaced": false, "kind": "SelfSubjectAccessReview",
            "verbs": verbs(&["create"])
        }]),
        _ => return None,
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{name}/v1"),
        "resources": resources
    }))
}

/// Is `name` an API group the stand-in serves?
pub(crate) fn known_group(name: &str) -> bool {
    name == NAD_GROUP || name == EVENTS_GROUP || name == RESOURCE_GROUP
}

/// The discovery document at `segments` (the URL path split on `/`), if there is one.
pub(crate) fn document(segments: &[&str], port: u16) -> Option<Value> {
    Some(match segments {
        ["version"] => json!({
            "major": VERSION.0,
            "minor": VERSION.1,
            "gitVersion": format!("v{}.{}.0", VERSION.0, VERSION.1),
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-12-11T00:00:00Z",
            "goVersion": "go1.23.3",
            "compiler": "gc",
            "platform": "linux/amd64"
        }),
        ["api"] => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": format!("127.0.0.1:{port}")}
            ]
        }),
        ["api", "v1"] => core_resources(),
        ["apis"] => json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [group(AUTHORIZATION_GROUP), group(EVENTS_GROUP), group(NAD_GROUP),
                       group(RESOURCE_GROUP)]
        }),
        ["apis", g] if known_group(g) || *g == AUTHORIZATION_GROUP => {
            let mut doc = group(g);
            let map = doc.as_object_mut().expect("an object");
            map.insert("kind".into(), json!("APIGroup"));
            map.insert("apiVersion".into(), json!("v1"));
            doc
        }
        ["apis", g, "v1"] => group_resources(g)?,
        _ => return None,
    })
}

/// What a `Table` row carries besides its cells (`?includeObject=`): `Metadata` (the default),
/// `Object` or `None`.
fn row_object(obj: &Value, include: &str) -> Option<Value> {
    match include {
        "None" => None,
        "Object" => Some(obj.clone()),
        _ => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta(obj).cloned().unwrap_or_default()
        })),
    }
}

fn age(obj: &Value) -> String {
    meta_str(obj, "creationTimestamp")
        .and_then(parse_rfc3339)
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(human_duration)
        .unwrap_or_else(|| "<unknown>".into())
}

fn column(name: &str, format: &str, description: &str) -> Value {
    json!({"name": name, "type": "string", "format": format, "description": description,
           "priority": 0})
}

fn pod_cells(pod: &Value) -> Vec<Value> {
    let containers = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let statuses = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|s| s["ready"].as_bool() == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|s| s["restartCount"].as_i64())
        .sum();
    let phase = if meta(pod).is_some_and(|m| m.contains_key("deletionTimestamp")) {
        "Terminating"
    } else {
        pod["status"]["phase"].as_str().unwrap_or("Pending")
    };
    vec![
        json!(meta_str(pod, "name").unwrap_or("")),
        json!(format!("{ready}/{containers}")),
        json!(phase),
        json!(restarts),
        json!(age(pod)),
    ]
}

/// A `meta.k8s.io/v1` `Table` of `items` of `res` (`None`: namespaces), as the server renders
/// it for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
pub(crate) fn table(res: Option<Res>, items: &[Value], rv: &str, include: &str) -> Value {
    let name_col = column(
        "Name",
        "name",
        "Name must be unique within a namespace. More info: \
         https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    );
    let age_col = column(
        "Age",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    let columns = match res {
        Some(Res::Pods) => vec![
            name_col,
            column(
                "Ready",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            column(
                "Status",
                "",
                "The aggregate status of the containers in this pod.",
            ),
            json!({"name": "Restarts", "type": "integer", "format": "",
                   "description": "The number of times the containers in this pod have been restarted.",
                   "priority": 0}),
            age_col,
        ],
        None => vec![
            name_col,
            column("Status", "", "The status of the namespace"),
            age_col,
        ],
        Some(_) => vec![name_col, age_col],
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let cells = match res {
                Some(Res::Pods) => pod_cells(obj),
                None => vec![
                    json!(meta_str(obj, "name").unwrap_or("")),
                    json!(obj["status"]["phase"].as_str().unwrap_or("Active")),
                    json!(age(obj)),
                ],
                Some(_) => vec![json!(meta_str(obj, "name").unwrap_or("")), json!(age(obj))],
            };
            let mut row = json!({"cells": cells});
            if let Some(o) = row_object(obj, include) {
                row["object"] = o;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns,
        "rows": rows
    })
}
