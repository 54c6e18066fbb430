//! The object store: pods, NetworkAttachmentDefinitions and events, keyed by namespace and name,
//! with one global resourceVersion counter as etcd has.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::util::{meta, meta_mut, meta_str, new_uid, rfc3339};

/// The NAD API group.
pub(crate) const NAD_GROUP: &str = "k8s.cni.cncf.io";
/// The `events.k8s.io` API group.
pub(crate) const EVENTS_GROUP: &str = "events.k8s.io";
/// The Dynamic Resource Allocation API group (`resource.k8s.io/v1`).
pub(crate) const RESOURCE_GROUP: &str = "resource.k8s.io";

/// A stored resource type. Core and `events.k8s.io` events share one storage, as in a real
/// cluster (which converts between the two shapes; the stand-in stores what was sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Res {
    Pods,
    Nads,
    Events,
    /// `resource.k8s.io/v1` ResourceClaims (namespaced).
    ResourceClaims,
    /// `resource.k8s.io/v1` ResourceSlices (cluster-scoped).
    ResourceSlices,
}

impl Res {
    /// The resource name in URLs and counter keys.
    pub fn plural(self) -> &'static str {
        match self {
            Res::Pods => "pods",
            Res::Nads => "network-attachment-definitions",
            Res::Events => "events",
            Res::ResourceClaims => "resourceclaims",
            Res::ResourceSlices => "resourceslices",
        }
    }

    /// The `kind` of one object.
    pub fn kind(self) -> &'static str {
        match self {
            Res::Pods => "Pod",
            Res::Nads => "NetworkAttachmentDefinition",
            Res::Events => "Event",
            Res::ResourceClaims => "ResourceClaim",
            Res::ResourceSlices => "ResourceSlice",
        }
    }

    /// Parses a resource name as the public accessors take it.
    pub fn from_plural(s: &str) -> Option<Res> {
        [
            Res::Pods,
            Res::Nads,
            Res::Events,
            Res::ResourceClaims,
            Res::ResourceSlices,
        ]
        .into_iter()
        .find(|r| r.plural() == s)
    }

    /// The resource an object of `apiVersion`/`kind` is stored as.
    pub fn for_object(api_version: &str, kind: &str) -> Option<Res> {
        match (api_version, kind) {
            ("v1", "Pod") => Some(Res::Pods),
            ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition") => Some(Res::Nads),
            ("v1" | "events.k8s.io/v1", "Event") => Some(Res::Events),
            ("resource.k8s.io/v1", "ResourceClaim") => Some(Res::ResourceClaims),
            ("resource.k8s.io/v1", "ResourceSlice") => Some(Res::ResourceSlices),
            _ => None,
        }
    }

    /// Whether its objects live in a namespace (ResourceSlices do not; they are stored under
    /// the namespace `""`).
    pub fn namespaced(self) -> bool {
        self != Res::ResourceSlices
    }

    /// The fields a `fieldSelector` may name, when the real server restricts them (`None`:
    /// the stand-in takes any dotted path). ResourceSlice's are those of
    /// `k8s.io/kubernetes/pkg/apis/resource` (`ResourceSliceSelectorNodeName`,
    /// `ResourceSliceSelectorDriver`) and `metadata.name`: not `spec.pool.name`.
    pub fn selectable_fields(self) -> Option<&'static [&'static str]> {
        match self {
            Res::ResourceSlices => Some(&["metadata.name", "spec.nodeName", "spec.driver"]),
            Res::ResourceClaims => Some(&["metadata.name", "metadata.namespace"]),
            _ => None,
        }
    }
}

/// A resource as served at one API group (`events` is served at two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub res: Res,
    /// `""` for the core group.
    pub group: &'static str,
}

impl Endpoint {
    /// Core pods.
    pub const PODS: Endpoint = Endpoint {
        res: Res::Pods,
        group: "",
    };

    /// The endpoint for `plural` in `group`, if served there.
    pub fn find(group: &str, plural: &str) -> Option<Endpoint> {
        let res = Res::from_plural(plural)?;
        let group = match (group, res) {
            ("", Res::Pods | Res::Events) => "",
            (NAD_GROUP, Res::Nads) => NAD_GROUP,
            (EVENTS_GROUP, Res::Events) => EVENTS_GROUP,
            (RESOURCE_GROUP, Res::ResourceClaims | Res::ResourceSlices) => RESOURCE_GROUP,
            _ => return None,
        };
        Some(Endpoint { res, group })
    }

    /// `v1` or `<group>/v1`.
    pub fn api_version(self) -> String {
        if self.group.is_empty() {
            "v1".to_owned()
        } else {
            format!("{}/v1", self.group)
        }
    }

    /// `pods`, or `network-attachment-definitions.k8s.cni.cncf.io`, as error messages name it.
    pub fn qualified(self) -> String {
        if self.group.is_empty() {
            self.res.plural().to_owned()
        } else {
            format!("{}.{}", self.res.plural(), self.group)
        }
    }

    /// Built-in types: the real server omits `kind`/`apiVersion` on list items and
    /// answers DELETE with the object; custom resources keep them and answer a `Status`.
    pub fn built_in(self) -> bool {
        self.res != Res::Nads
    }
}

type Key = (Res, String, String);

/// All stored objects plus the resourceVersion counter.
pub(crate) struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    /// The watch cache when it lags behind: what `resourceVersion=0` reads see (see
    /// [`Store::get_cached`]); `None` when it is in step with the store.
    lagging: Option<BTreeMap<Key, Value>>,
}

impl Store {
    pub fn new() -> Store {
        Store {
            objects: BTreeMap::new(),
            rv: 1,
            lagging: None,
        }
    }

    /// `true`: the watch cache stops at the objects as they are now; `false`: it catches up.
    pub fn lag_cache(&mut self, lag: bool) {
        self.lagging = lag.then(|| self.objects.clone());
    }

    /// What a read with `resourceVersion=0` gets: the real server answers it from its watch
    /// cache, which may lag behind storage (see [`Store::lag_cache`]).
    pub fn get_cached(&self, res: Res, ns: &str, name: &str) -> Option<&Value> {
        match &self.lagging {
            Some(cache) => cache.get(&(res, ns.to_owned(), name.to_owned())),
            None => self.get(res, ns, name),
        }
    }

    /// The latest resourceVersion handed out (what a LIST reports).
    pub fn current_rv(&self) -> String {
        self.rv.to_string()
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    pub fn get(&self, res: Res, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(res, ns.to_owned(), name.to_owned()))
    }

    /// Objects of `res` in `ns` (every namespace when `None`), by namespace then name.
    pub fn list(&self, res: Res, ns: Option<&str>) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((r, n, _), _)| *r == res && ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
            .collect()
    }

    /// Namespaces that hold at least one object.
    pub fn namespaces(&self) -> BTreeSet<String> {
        self.objects.keys().map(|(_, ns, _)| ns.clone()).collect()
    }

    /// Stores `obj` (whose metadata.namespace and name are set) as a new object: fresh uid and
    /// creationTimestamp unless `keep_identity` and they are already set, next resourceVersion.
    pub fn insert(&mut self, res: Res, mut obj: Value, keep_identity: bool) -> Value {
        let rv = self.next_rv();
        let m = meta_mut(&mut obj);
        if !keep_identity || !m.get("uid").is_some_and(Value::is_string) {
            m.insert("uid".into(), Value::String(new_uid()));
        }
        if !keep_identity || !m.get("creationTimestamp").is_some_and(Value::is_string) {
            m.insert(
                "creationTimestamp".into(),
                Value::String(rfc3339(SystemTime::now())),
            );
        }
        m.insert("resourceVersion".into(), Value::String(rv));
        self.objects.insert(key(res, &obj), obj.clone());
        obj
    }

    /// Replaces a stored object with `obj`; bumps the resourceVersion only if something
    /// changed, as the real server skips no-op writes.
    pub fn update(&mut self, res: Res, mut obj: Value) -> Value {
        let k = key(res, &obj);
        if let Some(old) = self.objects.get(&k) {
            let mut unchanged = obj.clone();
            let rv = meta_str(old, "resourceVersion").unwrap_or("").to_owned();
            meta_mut(&mut unchanged).insert("resourceVersion".into(), Value::String(rv));
            if &unchanged == old {
                return old.clone();
            }
        }
        let rv = self.next_rv();
        meta_mut(&mut obj).insert("resourceVersion".into(), Value::String(rv));
        self.objects.insert(k, obj.clone());
        obj
    }

    /// Stores `obj` whatever is there (the test-side `put`): keeps the old uid and
    /// creationTimestamp when `obj` has none.
    pub fn put(&mut self, res: Res, mut obj: Value) -> Value {
        if let Some(old) = self.objects.get(&key(res, &obj)) {
            let old_meta = meta(old).cloned().unwrap_or_default();
            let m = meta_mut(&mut obj);
            for f in ["uid", "creationTimestamp"] {
                match old_meta.get(f) {
                    Some(v) if !m.contains_key(f) => {
                        m.insert(f.into(), v.clone());
                    }
                    _ => {}
                }
            }
        }
        self.insert(res, obj, true)
    }

    pub fn remove(&mut self, res: Res, ns: &str, name: &str) -> Option<Value> {
        self.objects.remove(&(res, ns.to_owned(), name.to_owned()))
    }
}

fn key(res: Res, obj: &Value) -> Key {
    (
        res,
        meta_str(obj, "namespace").unwrap_or("").to_owned(),
        meta_str(obj, "name").unwrap_or("").to_owned(),
    )
}

/// Does `obj` match a field selector such as `metadata.name=x,spec.nodeName!=y`?
/// Supports `=`, `==` and `!=` on any dotted path; a missing field compares as `""`.
pub(crate) fn field_selector_matches(obj: &Value, selector: &str) -> Result<bool, String> {
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (path, want, negate) =
            split_term(term).ok_or_else(|| format!("invalid field selector term {term:?}"))?;
        let mut v = obj;
        let mut found = true;
        for part in path.split('.') {
            match v.get(part) {
                Some(next) => v = next,
                None => {
                    found = false;
                    break;
                }
            }
        }
        let have = match (found, v) {
            (false, _) | (true, Value::Null) => String::new(),
            (true, Value::String(s)) => s.clone(),
            (true, other) => other.to_string(),
        };
        if (have == want) == negate {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Does `obj` match a label selector of `k=v`, `k==v`, `k!=v`, `k` and `!k` terms?
/// (Set-based `in`/`notin` terms are rejected.)
pub(crate) fn label_selector_matches(obj: &Value, selector: &str) -> Result<bool, String> {
    let empty = Map::new();
    let labels = meta(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if term.contains('(') || term.contains(' ') {
            return Err(format!(
                "unsupported label selector term {term:?} (the stand-in knows k=v, k!=v, k, !k)"
            ));
        }
        let ok = if let Some((k, want, negate)) = split_term(term) {
            let have = labels.get(k).and_then(Value::as_str);
            if negate {
                have != Some(want)
            } else {
                have == Some(want)
            }
        } else if let Some(k) = term.strip_prefix('!') {
            !labels.contains_key(k)
        } else {
            labels.contains_key(term)
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `k!=v` → (k, v, true); `k==v` / `k=v` → (k, v, false).
fn split_term(term: &str) -> Option<(&str, &str, bool)> {
    if let Some((k, v)) = term.split_once("!=") {
        Some((k.trim(), v.trim(), true))
    } else if let Some((k, v)) = term.split_once("==") {
        Some((k.trim(), v.trim(), false))
    } else {
        term.split_once('=')
            .map(|(k, v)| (k.trim(), v.trim(), false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let pod = json!({"metadata": {"name": "a", "labels": {"app": "web"}}, "spec": {"nodeName": "n1"}});
        assert!(field_selector_matches(&pod, "metadata.name=a").unwrap());
        assert!(field_selector_matches(&pod, "metadata.name==a,spec.nodeName=n1").unwrap());
        assert!(!field_selector_matches(&pod, "metadata.name!=a").unwrap());
        assert!(field_selector_matches(&pod, "spec.missing=").unwrap());
        assert!(label_selector_matches(&pod, "app=web").unwrap());
        assert!(label_selector_matches(&pod, "app,!tier").unwrap());
        assert!(!label_selector_matches(&pod, "app!=web").unwrap());
        assert!(!label_selector_matches(&pod, "tier").unwrap());
        assert!(label_selector_matches(&pod, "app in (web)").is_err());
    }

    #[test]
    fn no_op_update_keeps_the_resource_version() {
        let mut s = Store::new();
        let obj = s.insert(
            Res::Pods,
            json!({"metadata": {"namespace": "ns", "name": "a"}}),
            false,
        );
        let again = s.update(Res::Pods, obj.clone());
        assert_eq!(again, obj);
        let mut changed = obj.clone();
        changed["spec"] = json!({});
        let after = s.update(Res::Pods, changed);
        assert_ne!(
            meta_str(&after, "resourceVersion"),
            meta_str(&obj, "resourceVersion")
        );
    }
}
