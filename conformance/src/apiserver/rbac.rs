//! Authorization: RBAC rules, the 403 the real server gives a request they do not allow, and
//! `SelfSubjectAccessReview`.
//!
//! By default every authenticated request is allowed, as for a member of `system:masters`.
//! [`super::ApiServer::set_rbac`] gives the stand-in one set of rules (a ClusterRole's
//! `rules`, as if bound by a ClusterRoleBinding to every caller, who is [`USER`]); from then
//! on a resource request they do not allow gets the real server's 403, and a
//! SelfSubjectAccessReview answers from them. Non-resource requests (discovery, `/version`,
//! health) and SelfSubjectAccessReviews themselves are always allowed, as the default cluster
//! roles (`system:discovery`, `system:public-info-viewer`, `system:basic-user`) allow them to
//! every authenticated user.
//!
//! Matching is RBAC's (`k8s.io/kubernetes/pkg/apis/rbac/v1` `evaluation_helpers.go`): a rule
//! allows a request when its `verbs` hold the verb or `*`, its `apiGroups` the group or `*`,
//! its `resources` `*`, the resource (`pods`; `pods` does not cover `pods/status`), the
//! resource with its subresource (`pods/status`) or `*/<subresource>`, and its
//! `resourceNames` are empty or hold the object's name.

use serde_json::{Value, json};

use super::status::{ApiError, Details};

/// Who every caller is, in 403 messages: the identity `examples/deploy/rbac.yaml` binds.
pub(crate) const USER: &str = "system:serviceaccount:kube-system:plexus";

/// The RBAC authorizer's reason when everything is allowed.
const ALLOW_ALL_REASON: &str = "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of \
     ClusterRole \"cluster-admin\" to Group \"system:masters\"";

/// The RBAC authorizer's reason when [`Rbac::Rules`] allow a request.
const RULES_REASON: &str = "RBAC: allowed by ClusterRoleBinding \"plexus\" of ClusterRole \
     \"plexus\" to ServiceAccount \"plexus/kube-system\"";

/// The RBAC authorizer's reason for the discovery and health paths.
const DISCOVERY_REASON: &str = "RBAC: allowed by ClusterRoleBinding \"system:discovery\" of \
     ClusterRole \"system:discovery\" to Group \"system:authenticated\"";

/// Non-resource paths every authenticated user may read.
const PUBLIC_PATHS: [&str; 6] = ["/version", "/api", "/apis", "/healthz", "/livez", "/readyz"];

/// One rule of a ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
}

/// What the stand-in allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Rbac {
    /// Everything (the default).
    #[default]
    AllowAll,
    /// What these rules allow, nothing else.
    Rules(Vec<Rule>),
}

/// What a resource request asks to do, as RBAC sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    /// `""` for a collection.
    pub name: String,
    /// `""` for a cluster-scoped request (a list in all namespaces).
    pub namespace: String,
}

fn strings(rule: &Value, key: &str) -> Result<Vec<String>, String> {
    match rule.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{key} must be a list of strings, not {v}"))
            })
            .collect(),
        Some(v) => Err(format!("{key} must be a list of strings, not {v}")),
    }
}

/// Parses a ClusterRole's `rules` (a JSON list). `nonResourceURLs` rules are accepted and
/// ignored (non-resource requests are always allowed, see the module docs).
pub(crate) fn parse_rules(rules: &Value) -> Result<Vec<Rule>, String> {
    let list = rules
        .as_array()
        .ok_or_else(|| format!("RBAC rules must be a list, not {rules}"))?;
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            let at = |e: String| format!("rule {i}: {e}");
            Ok(Rule {
                verbs: strings(r, "verbs").map_err(at)?,
                api_groups: strings(r, "apiGroups").map_err(at)?,
                resources: strings(r, "resources").map_err(at)?,
                resource_names: strings(r, "resourceNames").map_err(at)?,
            })
        })
        .collect()
}

/// The `rules` of the ClusterRole `name` in a multi-document YAML manifest.
pub(crate) fn cluster_role_rules(yaml: &str, name: &str) -> Result<Value, String> {
    use serde::Deserialize;
    for (i, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let doc = serde_yaml::Value::deserialize(doc)
            .map_err(|e| format!("YAML document {}: {e}", i + 1))?;
        let doc: Value = serde_json::to_value(&doc)
            .map_err(|e| format!("YAML document {}: not representable as JSON: {e}", i + 1))?;
        if doc["kind"] == "ClusterRole" && doc["metadata"]["name"] == name {
            return Ok(doc.get("rules").cloned().unwrap_or_else(|| json!([])));
        }
    }
    Err(format!("no ClusterRole {name:?} in the manifest"))
}

impl Rule {
    fn allows(&self, a: &Attributes) -> bool {
        let has = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        let combined = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let resource = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
        });
        has(&self.verbs, &a.verb)
            && has(&self.api_groups, &a.group)
            && resource
            && (self.resource_names.is_empty() || self.resource_names.contains(&a.name))
    }
}

impl Rbac {
    /// `Some(reason)` when `a` is allowed.
    pub fn allows(&self, a: &Attributes) -> Option<&'static str> {
        match self {
            Rbac::AllowAll => Some(ALLOW_ALL_REASON),
            Rbac::Rules(rules) => rules.iter().any(|r| r.allows(a)).then_some(RULES_REASON),
        }
    }
}

/// The real server's 403 for a request RBAC refuses (`responsewriters.Forbidden`).
pub(crate) fn forbidden(a: &Attributes, qualified: &str) -> ApiError {
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    let why = format!(
        "User {USER:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        a.verb, a.group
    );
    let message = if a.name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {:?} is forbidden: {why}", a.name)
    };
    ApiError {
        details: Some(Box::new(Details {
            name: (!a.name.is_empty()).then(|| a.name.clone()),
            group: (!a.group.is_empty()).then(|| a.group.clone()),
            kind: Some(a.resource.clone()),
            uid: None,
        })),
        ..ApiError::new(403, message)
    }
}

/// Answers a `SelfSubjectAccessReview` body: 201 with the review and its `status`, as the real
/// server does, or 400/422 for a body it refuses.
pub(crate) fn review(rbac: &Rbac, body: &[u8]) -> Result<Value, ApiError> {
    let mut review: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            format!(
                "the object provided is unrecognized (must be of type SelfSubjectAccessReview): {e}"
            ),
        )
    })?;
    if !review.is_object() {
        return Err(ApiError::new(
            400,
            "the object provided is unrecognized (must be of type SelfSubjectAccessReview)",
        ));
    }
    if let Some(kind) = review["kind"]
        .as_str()
        .filter(|k| *k != "SelfSubjectAccessReview")
    {
        return Err(ApiError::new(
            400,
            format!(
                "the object provided is unrecognized (must be of type SelfSubjectAccessReview): \
                 kind {kind:?}"
            ),
        ));
    }
    let spec = &review["spec"];
    let res = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_res = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    let invalid = |what: String| {
        let mut e = ApiError::new(
            422,
            format!("SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: {what}"),
        );
        e.details = Some(Box::new(Details {
            group: Some("authorization.k8s.io".into()),
            kind: Some("SelfSubjectAccessReview".into()),
            ..Details::default()
        }));
        e
    };
    let allowed = match (res, non_res) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "spec.nonResourceAttributes: Invalid value: \"\": cannot be specified in \
                 combination with resourceAttributes"
                    .into(),
            ));
        }
        (None, None) => {
            return Err(invalid(
                "spec.resourceAttributes: Invalid value: \"null\": exactly one of \
                 nonResourceAttributes or resourceAttributes must be specified"
                    .into(),
            ));
        }
        (None, Some(n)) => match rbac {
            Rbac::AllowAll => Some(ALLOW_ALL_REASON),
            // The default cluster roles allow reading the discovery and health paths to every
            // authenticated user; other paths need rules the stand-in does not keep.
            Rbac::Rules(_) => {
                let path = n["path"].as_str().unwrap_or_default();
                let public = PUBLIC_PATHS
                    .iter()
                    .any(|p| path == *p || path.starts_with(&format!("{p}/")));
                (public && n["verb"] == "get").then_some(DISCOVERY_REASON)
            }
        },
        (Some(r), None) => {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            rbac.allows(&Attributes {
                verb: s("verb"),
                group: s("group"),
                resource: s("resource"),
                subresource: s("subresource"),
                name: s("name"),
                namespace: s("namespace"),
            })
        }
    };
    let obj = review.as_object_mut().expect("checked above");
    obj.insert("kind".into(), json!("SelfSubjectAccessReview"));
    obj.insert("apiVersion".into(), json!("authorization.k8s.io/v1"));
    obj.insert("metadata".into(), json!({"creationTimestamp": null}));
    obj.insert(
        "status".into(),
        match allowed {
            Some(reason) => json!({"allowed": true, "reason": reason}),
            None => json!({"allowed": false}),
        },
    );
    Ok(review)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            ..Attributes::default()
        }
    }

    #[test]
    fn rules_match_as_rbac_matches() {
        let rbac = Rbac::Rules(
            parse_rules(&json!([
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["*/status"], "verbs": ["patch"]},
                {"apiGroups": ["*"], "resources": ["things"], "verbs": ["*"],
                 "resourceNames": ["one"]},
            ]))
            .unwrap(),
        );
        assert!(rbac.allows(&attrs("get", "", "pods", "")).is_some());
        assert!(rbac.allows(&attrs("get", "", "pods", "status")).is_none());
        assert!(rbac.allows(&attrs("patch", "", "pods", "status")).is_some());
        assert!(rbac.allows(&attrs("patch", "", "pods", "")).is_none());
        assert!(rbac.allows(&attrs("list", "", "pods", "")).is_none());
        assert!(rbac.allows(&attrs("get", "x.io", "pods", "")).is_none());
        assert!(
            rbac.allows(&attrs("delete", "x.io", "things", ""))
                .is_none()
        );
        let mut one = attrs("delete", "x.io", "things", "");
        one.name = "one".into();
        assert!(rbac.allows(&one).is_some());
        assert!(parse_rules(&json!([{"verbs": "get"}])).is_err());
    }

    #[test]
    fn forbidden_is_worded_as_the_real_server_words_it() {
        let mut a = attrs("patch", "", "pods", "status");
        a.name = "web".into();
        a.namespace = "default".into();
        assert_eq!(
            forbidden(&a, "pods").message,
            "pods \"web\" is forbidden: User \"system:serviceaccount:kube-system:plexus\" \
             cannot patch resource \"pods/status\" in API group \"\" in the namespace \"default\""
        );
        let a = attrs(
            "list",
            "k8s.cni.cncf.io",
            "network-attachment-definitions",
            "",
        );
        assert_eq!(
            forbidden(&a, "network-attachment-definitions.k8s.cni.cncf.io").message,
            "network-attachment-definitions.k8s.cni.cncf.io is forbidden: User \
             \"system:serviceaccount:kube-system:plexus\" cannot list resource \
             \"network-attachment-definitions\" in API group \"k8s.cni.cncf.io\" at the cluster \
             scope"
        );
    }
}
