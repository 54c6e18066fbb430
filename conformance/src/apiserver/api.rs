//! The REST protocol: routing, authentication, authorization ([`super::rbac`]) and the verbs
//! on pods, NADs, events and (synthesized, read-only) namespaces, and SelfSubjectAccessReviews.

use serde_json::{Value, json};

use super::Shared;
use super::discovery::{self, table};
use super::patch::{json_patch, merge_patch, strategic_merge_patch};
use super::rbac::{self, Attributes};
use super::status::{ApiError, Details, success_body};
use super::store::{Endpoint, Res, field_selector_matches, label_selector_matches};
use super::util::{
    generate_name_suffix, lock, meta, meta_mut, meta_str, parse_query, percent_decode,
    set_or_remove,
};

/// One HTTP request, body read to the end.
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header value by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A decoded query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    fn wants_table(&self) -> bool {
        self.header("accept")
            .is_some_and(|a| a.contains("as=Table"))
    }

    fn wants_partial_metadata(&self) -> bool {
        self.header("accept")
            .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
    }

    fn is_watch(&self) -> bool {
        matches!(self.param("watch").as_deref(), Some("true" | "1"))
    }
}

/// One HTTP response.
pub(crate) struct Response {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, v: &Value) -> Response {
        Response {
            status,
            content_type: "application/json".into(),
            headers: Vec::new(),
            body: serde_json::to_vec(v).expect("JSON serializes"),
        }
    }

    /// A `Status` failure response.
    pub fn error(e: &ApiError) -> Response {
        Response {
            status: e.code,
            content_type: "application/json".into(),
            headers: Vec::new(),
            body: e.body(),
        }
    }
}

/// What a URL path names.
pub(crate) enum Route {
    /// A discovery document (already rendered).
    Discovery(Value),
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// `/api/v1/namespaces[/{name}]`.
    Namespaces(Option<String>),
    /// A collection, in one namespace or (`None`) in all.
    Collection { ep: Endpoint, ns: Option<String> },
    /// One object.
    Item {
        ep: Endpoint,
        ns: String,
        name: String,
    },
    /// `pods/{name}/status`.
    Status {
        ep: Endpoint,
        ns: String,
        name: String,
    },
    /// `/apis/authorization.k8s.io/v1/selfsubjectaccessreviews`.
    AccessReview,
    /// Anything else: 404.
    Unknown,
}

/// Routes a URL path.
pub(crate) fn route(path: &str, port: u16) -> Route {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    if let Some(doc) = discovery::document(&segs, port) {
        return Route::Discovery(doc);
    }
    let (group, rest) = match segs.as_slice() {
        ["healthz" | "livez" | "readyz"] => return Route::Health,
        [
            "apis",
            discovery::AUTHORIZATION_GROUP,
            "v1",
            "selfsubjectaccessreviews",
        ] => {
            return Route::AccessReview;
        }
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, "v1", rest @ ..] if discovery::known_group(g) => (*g, rest),
        _ => return Route::Unknown,
    };
    let ep = |plural: &str| Endpoint::find(group, plural);
    let owned = |s: &str| s.to_owned();
    match rest {
        ["namespaces"] if group.is_empty() => Route::Namespaces(None),
        ["namespaces", ns] if group.is_empty() => Route::Namespaces(Some(owned(ns))),
        ["namespaces", ns, plural] => match ep(plural).filter(|e| e.res.namespaced()) {
            Some(ep) => Route::Collection {
                ep,
                ns: Some(owned(ns)),
            },
            None => Route::Unknown,
        },
        ["namespaces", ns, plural, name] => match ep(plural).filter(|e| e.res.namespaced()) {
            Some(ep) => Route::Item {
                ep,
                ns: owned(ns),
                name: owned(name),
            },
            None => Route::Unknown,
        },
        ["namespaces", ns, "pods", name, "status"] if group.is_empty() => Route::Status {
            ep: Endpoint::PODS,
            ns: owned(ns),
            name: owned(name),
        },
        [plural] => match ep(plural) {
            Some(ep) => Route::Collection { ep, ns: None },
            None => Route::Unknown,
        },
        // A cluster-scoped object (ResourceSlices), stored under the namespace "".
        [plural, name] => match ep(plural).filter(|e| !e.res.namespaced()) {
            Some(ep) => Route::Item {
                ep,
                ns: String::new(),
                name: owned(name),
            },
            None => Route::Unknown,
        },
        _ => Route::Unknown,
    }
}

/// The counter key of a request: `"<VERB> <resource>[/<subresource>]"`.
pub(crate) fn counter_key(req: &Request, route: &Route) -> String {
    let m = req.method.as_str();
    let collection_verb = || match m {
        "GET" if req.is_watch() => "WATCH",
        "GET" => "LIST",
        other => other,
    };
    match route {
        Route::Discovery(_) => format!("{m} discovery"),
        Route::Health => format!("{m} healthz"),
        Route::Namespaces(None) => format!("{} namespaces", collection_verb()),
        Route::Namespaces(Some(_)) => format!("{m} namespaces"),
        Route::Collection { ep, .. } => format!("{} {}", collection_verb(), ep.res.plural()),
        Route::Item { ep, .. } => format!("{m} {}", ep.res.plural()),
        Route::Status { ep, .. } => format!("{m} {}/status", ep.res.plural()),
        Route::AccessReview => format!("{m} selfsubjectaccessreviews"),
        Route::Unknown => format!("{m} unknown"),
    }
}

fn authorized(shared: &Shared, req: &Request) -> bool {
    let Some(header) = req.header("authorization") else {
        return false;
    };
    let Some((scheme, token)) = header.trim().split_once(' ') else {
        return false;
    };
    let token = token.trim();
    scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && lock(&shared.tokens).iter().any(|t| t == token)
}

/// Answers an authenticated-or-not request that fault injection let through.
pub(crate) fn handle(shared: &Shared, req: &Request, route: &Route) -> Response {
    if !authorized(shared, req) {
        return Response::error(&ApiError::unauthorized());
    }
    if let Some((attrs, qualified)) = attributes(req, route) {
        if lock(&shared.rbac).allows(&attrs).is_none() {
            return Response::error(&rbac::forbidden(&attrs, &qualified));
        }
    }
    dispatch(shared, req, route).unwrap_or_else(|e| Response::error(&e))
}

/// What a resource request asks to do, as RBAC sees it, and the resource as a 403 names it;
/// `None` for a non-resource request (always allowed, see [`super::rbac`]).
fn attributes(req: &Request, route: &Route) -> Option<(Attributes, String)> {
    let item_verb = || match req.method.as_str() {
        "GET" if req.is_watch() => "watch",
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    };
    let collection_verb = || match req.method.as_str() {
        "GET" if req.is_watch() => "watch",
        "GET" | "HEAD" => "list",
        "DELETE" => "deletecollection",
        _ => item_verb(),
    };
    let of = |verb: &str, ep: Endpoint, sub: &str, ns: &str, name: &str| {
        (
            Attributes {
                verb: verb.to_owned(),
                group: ep.group.to_owned(),
                resource: ep.res.plural().to_owned(),
                subresource: sub.to_owned(),
                name: name.to_owned(),
                namespace: ns.to_owned(),
            },
            ep.qualified(),
        )
    };
    let namespaces = |verb: &str, name: &str| {
        (
            Attributes {
                verb: verb.to_owned(),
                resource: "namespaces".into(),
                name: name.to_owned(),
                ..Attributes::default()
            },
            "namespaces".to_owned(),
        )
    };
    Some(match route {
        Route::Namespaces(None) => namespaces(collection_verb(), ""),
        Route::Namespaces(Some(name)) => namespaces(item_verb(), name),
        Route::Collection { ep, ns } => {
            of(collection_verb(), *ep, "", ns.as_deref().unwrap_or(""), "")
        }
        Route::Item { ep, ns, name } => of(item_verb(), *ep, "", ns, name),
        Route::Status { ep, ns, name } => of(item_verb(), *ep, "status", ns, name),
        Route::Discovery(_) | Route::Health | Route::AccessReview | Route::Unknown => {
            return None;
        }
    })
}

fn dispatch(shared: &Shared, req: &Request, route: &Route) -> Result<Response, ApiError> {
    let m = req.method.as_str();
    if m == "GET" && req.is_watch() && !matches!(route, Route::Unknown) {
        return Err(ApiError::new(
            405,
            "watch is not supported by the plexus API stand-in",
        ));
    }
    match (route, m) {
        (Route::Discovery(doc), "GET") => Ok(Response::json(200, doc)),
        (Route::Health, "GET") => Ok(Response {
            status: 200,
            content_type: "text/plain; charset=utf-8".into(),
            headers: Vec::new(),
            body: b"ok".to_vec(),
        }),
        (Route::Namespaces(name), "GET") => namespaces(shared, req, name.as_deref()),
        (Route::Collection { ep, ns }, "GET") => list(shared, req, *ep, ns.as_deref()),
        (Route::Collection { ep, ns: Some(ns) }, "POST") => create(shared, req, *ep, ns),
        (Route::Collection { ep, ns: None }, "POST") if !ep.res.namespaced() => {
            create(shared, req, *ep, "")
        }
        (Route::Item { ep, ns, name }, "GET") => get(shared, req, *ep, ns, name),
        (Route::Status { ep, ns, name }, "GET") => get(shared, req, *ep, ns, name),
        (Route::Item { ep, ns, name }, "PUT") => replace(shared, req, *ep, ns, name, false),
        (Route::Status { ep, ns, name }, "PUT") => replace(shared, req, *ep, ns, name, true),
        (Route::Item { ep, ns, name }, "PATCH") => patch(shared, req, *ep, ns, name, false),
        (Route::Status { ep, ns, name }, "PATCH") => patch(shared, req, *ep, ns, name, true),
        (Route::Item { ep, ns, name }, "DELETE") => delete(shared, req, *ep, ns, name),
        (Route::AccessReview, "POST") => {
            let review = rbac::review(&lock(&shared.rbac), &req.body)?;
            Ok(Response::json(201, &review))
        }
        (Route::Unknown, _) => Err(ApiError::unknown_path()),
        _ => Err(ApiError::method_not_allowed()),
    }
}

const WELL_KNOWN_NAMESPACES: [&str; 4] =
    ["default", "kube-node-lease", "kube-public", "kube-system"];

fn namespace_object(name: &str, created: &str) -> Value {
    json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {"kubernetes.io/metadata.name": name}
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    })
}

/// Every namespace exists implicitly; a list shows the well-known ones and those holding objects.
fn namespaces(shared: &Shared, req: &Request, name: Option<&str>) -> Result<Response, ApiError> {
    let store = lock(&shared.store);
    let rv = store.current_rv();
    let items: Vec<Value> = match name {
        Some(name) => vec![namespace_object(name, &shared.started)],
        None => {
            let mut names = store.namespaces();
            names.extend(WELL_KNOWN_NAMESPACES.iter().map(|s| s.to_string()));
            names
                .iter()
                .map(|n| namespace_object(n, &shared.started))
                .collect()
        }
    };
    drop(store);
    let include = req.param("includeObject").unwrap_or_default();
    if req.wants_table() {
        return Ok(Response::json(200, &table(None, &items, &rv, &include)));
    }
    Ok(match name {
        Some(_) => Response::json(200, &items[0]),
        None => Response::json(
            200,
            &json!({"kind": "NamespaceList", "apiVersion": "v1",
                    "metadata": {"resourceVersion": rv}, "items": strip_type(items)}),
        ),
    })
}

fn strip_type(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .map(|mut v| {
            if let Some(m) = v.as_object_mut() {
                m.shift_remove("kind");
                m.shift_remove("apiVersion");
            }
            v
        })
        .collect()
}

fn list(
    shared: &Shared,
    req: &Request,
    ep: Endpoint,
    ns: Option<&str>,
) -> Result<Response, ApiError> {
    let fields = req.param("fieldSelector").filter(|s| !s.is_empty());
    let labels = req.param("labelSelector").filter(|s| !s.is_empty());
    if let (Some(f), Some(allowed)) = (&fields, ep.res.selectable_fields()) {
        for term in f.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let label = term.split(['=', '!']).next().unwrap_or("").trim();
            if !allowed.contains(&label) {
                // The real server's answer to a field label the type does not support.
                return Err(ApiError::new(
                    400,
                    format!("field label not supported: {label}"),
                ));
            }
        }
    }
    let store = lock(&shared.store);
    let mut items = Vec::new();
    for obj in store.list(ep.res, ns) {
        if let Some(f) = &fields {
            if !field_selector_matches(obj, f).map_err(|e| ApiError::new(400, e))? {
                continue;
            }
        }
        if let Some(l) = &labels {
            if !label_selector_matches(obj, l).map_err(|e| ApiError::new(400, e))? {
                continue;
            }
        }
        items.push(obj.clone());
    }
    let rv = store.current_rv();
    drop(store);
    if req.wants_table() {
        let include = req.param("includeObject").unwrap_or_default();
        return Ok(Response::json(
            200,
            &table(Some(ep.res), &items, &rv, &include),
        ));
    }
    if ep.built_in() {
        items = strip_type(items);
    }
    Ok(Response::json(
        200,
        &json!({
            "kind": format!("{}List", ep.res.kind()),
            "apiVersion": ep.api_version(),
            "metadata": {"resourceVersion": rv},
            "items": items
        }),
    ))
}

fn get(
    shared: &Shared,
    req: &Request,
    ep: Endpoint,
    ns: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let store = lock(&shared.store);
    let found = if req.param("resourceVersion").as_deref() == Some("0") {
        store.get_cached(ep.res, ns, name)
    } else {
        store.get(ep.res, ns, name)
    };
    let obj = found
        .cloned()
        .ok_or_else(|| ApiError::not_found(ep, name))?;
    let rv = store.current_rv();
    drop(store);
    if req.wants_table() {
        let include = req.param("includeObject").unwrap_or_default();
        return Ok(Response::json(
            200,
            &table(Some(ep.res), &[obj], &rv, &include),
        ));
    }
    if req.wants_partial_metadata() {
        // What the real server sends for `Accept: ...;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`:
        // the metadata alone (kube's `get_metadata`).
        let metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
        return Ok(Response::json(
            200,
            &json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}),
        ));
    }
    Ok(Response::json(200, &obj))
}

/// Parses a create/update body (JSON, or YAML when sent as such) and checks its type.
fn parse_body(req: &Request, ep: Endpoint) -> Result<Value, ApiError> {
    let ct = media_type(req);
    let mut v: Value = if ct == "application/yaml" {
        serde_yaml::from_slice(&req.body)
            .map_err(|e| ApiError::new(400, format!("yaml parse error: {e}")))?
    } else if ct.is_empty() || ct == "application/json" || ct == "*/*" {
        serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::new(
                400,
                format!("couldn't get version/kind; json parse error: {e}"),
            )
        })?
    } else {
        return Err(ApiError::new(
            415,
            format!(
                "the body of the request was in an unknown format ({ct}) - accepted media types \
                 include: application/json, application/yaml"
            ),
        ));
    };
    let Some(map) = v.as_object_mut() else {
        return Err(ApiError::new(
            400,
            "the body of the request is not a JSON object",
        ));
    };
    let api_version = ep.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(api_version));
        }
        Some(av) if av == api_version => {}
        Some(av) => {
            return Err(ApiError::new(
                400,
                format!(
                    "the API version in the data ({av}) does not match the expected API version ({api_version})"
                ),
            ));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(ep.res.kind().into()));
        }
        Some(k) if k == ep.res.kind() => {}
        Some(k) => {
            return Err(ApiError::new(
                400,
                format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    ep.res.kind()
                ),
            ));
        }
    }
    Ok(v)
}

fn media_type(req: &Request) -> String {
    req.header("content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn check_namespace(obj: &mut Value, ns: &str) -> Result<(), ApiError> {
    let m = meta_mut(obj);
    if ns.is_empty() {
        // A cluster-scoped object: the real server drops a namespace sent with it.
        m.shift_remove("namespace");
        return Ok(());
    }
    match m.get("namespace").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != ns => Err(ApiError::new(
            400,
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            m.insert("namespace".into(), Value::String(ns.to_owned()));
            Ok(())
        }
    }
}

fn create(shared: &Shared, req: &Request, ep: Endpoint, ns: &str) -> Result<Response, ApiError> {
    let mut obj = parse_body(req, ep)?;
    check_namespace(&mut obj, ns)?;
    let mut store = lock(&shared.store);
    let m = meta_mut(&mut obj);
    let name = match m.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => {
            let prefix = m
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    ep,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            let name = loop {
                let candidate = format!("{prefix}{}", generate_name_suffix());
                if store.get(ep.res, ns, &candidate).is_none() {
                    break candidate;
                }
            };
            m.insert("name".into(), Value::String(name.clone()));
            name
        }
    };
    // The server owns these; what the client sent is dropped.
    for f in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
    ] {
        m.shift_remove(f);
    }
    if store.get(ep.res, ns, &name).is_some() {
        return Err(ApiError::already_exists(ep, &name));
    }
    if ep.res == Res::Pods {
        // podStrategy.PrepareForCreate: a new pod's status is the server's, not the client's.
        obj["status"] = json!({"phase": "Pending"});
    }
    let stored = store.insert(ep.res, obj, false);
    Ok(Response::json(201, &stored))
}

fn check_precondition(
    new: &Value,
    current: &Value,
    ep: Endpoint,
    name: &str,
) -> Result<(), ApiError> {
    match meta_str(new, "resourceVersion") {
        Some(rv) if !rv.is_empty() && Some(rv) != meta_str(current, "resourceVersion") => {
            Err(ApiError::conflict(ep, name))
        }
        _ => Ok(()),
    }
}

/// Applies the server's update strategy to `new` given the stored `current`.
///
/// * Identity (`name`, `namespace`, `uid`, `creationTimestamp`, `resourceVersion`) stays the
///   server's.
/// * The main resource of a pod cannot change `status` (podStrategy.PrepareForUpdate).
/// * The status subresource changes only `status` and metadata `labels`/`annotations`.
fn apply_strategy(ep: Endpoint, current: &Value, new: Value, status_sub: bool) -> Value {
    fn root(v: &mut Value) -> &mut serde_json::Map<String, Value> {
        v.as_object_mut().expect("stored objects are JSON objects")
    }
    if status_sub {
        let mut out = current.clone();
        set_or_remove(root(&mut out), "status", new.get("status").cloned());
        let nm = meta(&new).cloned().unwrap_or_default();
        let om = meta_mut(&mut out);
        for f in ["labels", "annotations"] {
            set_or_remove(om, f, nm.get(f).cloned());
        }
        return out;
    }
    let mut out = new;
    let cm = meta(current).cloned().unwrap_or_default();
    let om = meta_mut(&mut out);
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "resourceVersion",
    ] {
        set_or_remove(om, f, cm.get(f).cloned());
    }
    for f in ["apiVersion", "kind"] {
        set_or_remove(root(&mut out), f, current.get(f).cloned());
    }
    if ep.res == Res::Pods {
        set_or_remove(root(&mut out), "status", current.get("status").cloned());
    }
    out
}

fn replace(
    shared: &Shared,
    req: &Request,
    ep: Endpoint,
    ns: &str,
    name: &str,
    status_sub: bool,
) -> Result<Response, ApiError> {
    let mut obj = parse_body(req, ep)?;
    check_namespace(&mut obj, ns)?;
    let m = meta_mut(&mut obj);
    match m.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != name => {
            return Err(ApiError::new(
                400,
                format!("the name of the object ({n}) does not match the name on the URL ({name})"),
            ));
        }
        _ => {
            m.insert("name".into(), Value::String(name.to_owned()));
        }
    }
    let mut store = lock(&shared.store);
    let current = store
        .get(ep.res, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(ep, name))?;
    check_precondition(&obj, &current, ep, name)?;
    let new = apply_strategy(ep, &current, obj, status_sub);
    Ok(Response::json(200, &store.update(ep.res, new)))
}

fn patch(
    shared: &Shared,
    req: &Request,
    ep: Endpoint,
    ns: &str,
    name: &str,
    status_sub: bool,
) -> Result<Response, ApiError> {
    let ct = media_type(req);
    if !matches!(
        ct.as_str(),
        "application/merge-patch+json"
            | "application/strategic-merge-patch+json"
            | "application/json-patch+json"
    ) {
        return Err(ApiError::new(
            415,
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, \
             application/strategic-merge-patch+json",
        ));
    }
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::new(400, format!("error decoding patch: {e}")))?;
    let mut store = lock(&shared.store);
    let current = store
        .get(ep.res, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(ep, name))?;
    let mut patched = current.clone();
    match ct.as_str() {
        "application/merge-patch+json" => merge_patch(&mut patched, &body),
        "application/strategic-merge-patch+json" => strategic_merge_patch(&mut patched, &body),
        _ => json_patch(&mut patched, &body).map_err(|e| ApiError::new(422, e))?,
    }
    if !patched.is_object() {
        return Err(ApiError::new(
            400,
            "the patch does not leave a JSON object behind",
        ));
    }
    check_precondition(&patched, &current, ep, name)?;
    check_uid_unchanged(&patched, &current, ep, name)?;
    let new = apply_strategy(ep, &current, patched, status_sub);
    Ok(Response::json(200, &store.update(ep.res, new)))
}

/// rest.BeforeUpdate keeps a UID the request gives and validation refuses to change it: a
/// patch carrying the UID of a deleted pod fails against the pod recreated under its name.
fn check_uid_unchanged(
    patched: &Value,
    current: &Value,
    ep: Endpoint,
    name: &str,
) -> Result<(), ApiError> {
    match (meta_str(patched, "uid"), meta_str(current, "uid")) {
        (Some(given), Some(have)) if !given.is_empty() && given != have => Err(ApiError::invalid(
            ep,
            name,
            &format!("metadata.uid: Invalid value: \"{given}\": field is immutable"),
        )),
        _ => Ok(()),
    }
}

fn delete(
    shared: &Shared,
    req: &Request,
    ep: Endpoint,
    ns: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let options: Value = if req.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::new(400, format!("invalid DeleteOptions: {e}")))?
    };
    let mut store = lock(&shared.store);
    let current = store
        .get(ep.res, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(ep, name))?;
    let pre = &options["preconditions"];
    for field in ["uid", "resourceVersion"] {
        if let Some(want) = pre[field].as_str() {
            let have = meta_str(&current, field).unwrap_or("");
            if want != have {
                let field_name = if field == "uid" {
                    "UID"
                } else {
                    "ResourceVersion"
                };
                return Err(ApiError {
                    message: format!(
                        "Precondition failed: {field_name} in precondition: {want}, \
                         {field_name} in object meta: {have}"
                    ),
                    ..ApiError::conflict(ep, name)
                });
            }
        }
    }
    store.remove(ep.res, ns, name);
    drop(store);
    if ep.res == Res::Pods {
        // The pod registry returns the deleted object; other registries a Status.
        return Ok(Response::json(200, &current));
    }
    let details = Details {
        name: Some(name.to_owned()),
        group: (!ep.group.is_empty()).then(|| ep.group.to_owned()),
        kind: Some(ep.res.plural().to_owned()),
        uid: meta_str(&current, "uid").map(str::to_owned),
    };
    Ok(Response {
        status: 200,
        content_type: "application/json".into(),
        headers: Vec::new(),
        body: success_body(&details),
    })
}
