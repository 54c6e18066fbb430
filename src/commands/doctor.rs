//! `plexus doctor`: whether the node is set up right, and what to fix.
//!
//! Each check prints one line per finding, `ok|warn|FAIL <check>: <what was found>` (a warning
//! with a fix adds `(fix: ...)`), and gives one entry `{check, status, detail, fix?}` of the
//! JSON document's `checks` list (`status` is `ok`, `warn` or `fail`). Every FAIL, and only
//! FAILs, is also a problem (with its fix), so the exit status is 1 exactly when something must
//! be fixed. A check that cannot be made says why in a warning: `skipped (API unreachable)`,
//! `skipped (no usable node config)`, `skipped (no API client)`. The checks, in order:
//!
//! 1. `runtime config`: the config the runtime loads first from `--conf-dir` (the byte-order
//!    first `*.conf`, `*.conflist` or `*.json` regular file, as libcni sorts them) is plexus's
//!    node config; and the runtime's `CNI_PATH` (`--cni-path`) holds a `plexus` executable.
//! 2. `node config`: the node config parses, as plexus reads it (a conflist's first plugin with
//!    the list's `name` and `cniVersion`).
//! 3. `plugins`: binDir then `CNI_PATH` hold, by ADD's lookup rules ([`find::find`]: a bare
//!    name, an executable regular file inside the plugin directories, owned by root or plexus's
//!    user, not writable by others, not a meta-plugin), every plugin `type` and `ipam.type` of
//!    the cluster network, the default networks, and every NAD of the cluster (when the API is
//!    reachable). A `type` deeper in a config ([`policy::types`]: flannel's `delegate`, but also
//!    keys that are not plugins, such as Calico's `policy`) that is not found is a warning.
//! 4. `kubeconfig` and `token`: the kubeconfig of the node config and each `tokenFile` it names,
//!    by plexus's rules for them ([`crate::perms`]: a foreign owner or a mode writable by others
//!    is refused, a mode readable by others is set to 0600 by the next plexus); for a bound
//!    service-account token (a JWT, read without verification), its expiry (`exp`: FAIL when
//!    passed, warn with under 10 minutes left); and how fresh the installer's copy is (its
//!    mtime, see [`stale_after`]).
//! 5. `API` and `permissions`: one cheap authenticated request (`GET /version`), then a
//!    SelfSubjectAccessReview for each permission of plexus's ClusterRole
//!    (`examples/deploy/rbac.yaml`, [`NEEDED`]), a FAIL for each denied, and a warning for
//!    each of a few broader ones ([`BROADER`]) that is allowed.
//! 6. `readiness indicator`: `readinessindicatorfile`, when set, exists.
//! 7. `journal directory`, `journal space`, `journals`: `cniDir` is a directory of mode 0700
//!    owned by plexus's user (or does not exist yet), holds no journal file of another owner;
//!    its file system has 64 MiB free ([`MIN_FREE`]); no journal is left for a pod that no
//!    longer exists or was recreated under another UID (a FAIL with the runtime-style DEL that
//!    cleans it up); no ADD was left unfinished with nobody holding its lock (a warning: the
//!    runtime's DEL or GC undoes it).
//! 8. `PodResources`: when a NAD or a node network names a
//!    `k8s.v1.cni.cncf.io/resourceName`, the kubelet's PodResources socket answers `List`
//!    within `podResourcesTimeoutSeconds`.
//!
//! It writes nothing: no file, no mode, no annotation, no Event; the API is only read (the
//! access reviews are POSTs that store nothing), and no plugin is run.
//!
//! **Decision** (freshness of the token copy): the kubelet replaces a projected token when 80%
//! of its lifetime has passed (at most 24 h), so on a healthy node the installer's copy is up
//! to that old; the copy is flagged once it is 5 minutes older than that (1 h when the lifetime
//! is unknown). A JWT with `kubernetes.io.warnafter` (the API server's extended tokens) counts
//! its lifetime up to that claim, the one the kubelet rotates by.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::journals::{self, Found};
use super::{Common, Report, Usage};
use crate::cni::{DelegateFailure, Error, NetworkConfig};
use crate::delegate::{find, policy};
use crate::install::nodeconf;
use crate::k8s::api::{Access, EventType, KubeApi, Nad, PodMeta};
use crate::k8s::client::{self, Client};
use crate::k8s::nad::{self, RESOURCE_NAME_ANNOTATION};
use crate::k8s::pod;
use crate::node::{NodeConfig, resolve};
use crate::perms;
use crate::state::{Journal, Phase};

/// Free space under which the journal directory's file system is flagged.
pub const MIN_FREE: u64 = 64 * 1024 * 1024;

/// Time left on a token under which it is flagged.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(10 * 60);

/// The permissions plexus uses: exactly the rules of `examples/deploy/rbac.yaml`'s ClusterRole.
pub const NEEDED: &[Access<'static>] = &[
    access("get", "", "pods", ""),
    access("get", "", "pods", "status"),
    access("update", "", "pods", "status"),
    access("patch", "", "pods", "status"),
    access(
        "get",
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "",
    ),
    access(
        "list",
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "",
    ),
    access(
        "watch",
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "",
    ),
    access("create", "", "events", ""),
];

/// Broader permissions plexus never needs; each one granted is flagged.
pub const BROADER: &[Access<'static>] = &[
    access("delete", "", "pods", ""),
    access("create", "", "pods", ""),
    access("get", "", "secrets", ""),
    access("patch", "", "nodes", ""),
    access("*", "*", "*", ""),
];

const fn access<'a>(verb: &'a str, group: &'a str, resource: &'a str, sub: &'a str) -> Access<'a> {
    Access {
        verb,
        group,
        resource,
        subresource: sub,
    }
}

/// How a finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn text(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }

    fn json(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
struct Finding {
    check: &'static str,
    status: Status,
    detail: String,
    fix: Option<String>,
}

/// The findings, in order.
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, check: &'static str, status: Status, detail: String, fix: Option<String>) {
        self.0.push(Finding {
            check,
            status,
            detail,
            fix,
        });
    }

    fn ok(&mut self, check: &'static str, detail: impl Into<String>) {
        self.add(check, Status::Ok, detail.into(), None);
    }

    fn warn(&mut self, check: &'static str, detail: impl Into<String>, fix: Option<String>) {
        self.add(check, Status::Warn, detail.into(), fix);
    }

    fn fail(&mut self, check: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.add(check, Status::Fail, detail.into(), Some(fix.into()));
    }

    fn skipped(&mut self, check: &'static str, why: &str) {
        self.warn(check, format!("skipped ({why})"), None);
    }

    fn report(self, doc: Map<String, Value>) -> Report {
        let mut text = String::new();
        let mut problems = Vec::new();
        let mut checks = Vec::new();
        for f in &self.0 {
            text.push_str(&format!("{} {}: {}", f.status.text(), f.check, f.detail));
            if let (Status::Warn, Some(fix)) = (f.status, &f.fix) {
                text.push_str(&format!(" (fix: {fix})"));
            }
            text.push('\n');
            if f.status == Status::Fail {
                let detail = f.detail.trim_end_matches('.');
                problems.push(match &f.fix {
                    Some(fix) => format!("{}: {detail}. Fix: {fix}", f.check),
                    None => format!("{}: {detail}", f.check),
                });
            }
            let mut entry =
                json!({"check": f.check, "status": f.status.json(), "detail": f.detail});
            if let Some(fix) = &f.fix {
                entry["fix"] = json!(fix);
            }
            checks.push(entry);
        }
        let mut doc = doc;
        doc.insert("checks".into(), Value::Array(checks));
        Report {
            doc: Value::Object(doc),
            text,
            problems,
        }
    }
}

/// What doctor could do with the API.
enum Api {
    /// `GET /version` answered: the client, and the server's version.
    Reachable {
        client: Box<Client>,
        version: String,
    },
    /// It did not (or refused the credentials): the error.
    Unreachable(Error),
    /// plexus cannot build a client: the kubeconfig is refused or unusable.
    Unusable(Error),
    /// No kubeconfig, and not in a cluster.
    None,
}

impl Api {
    fn client(&self) -> Option<&Client> {
        match self {
            Api::Reachable { client, .. } => Some(client),
            _ => None,
        }
    }

    /// Why checks needing the API are skipped.
    fn why_not(&self) -> &'static str {
        match self {
            Api::Reachable { .. } => "",
            Api::Unreachable(Error::Kubernetes {
                transient: false, ..
            }) => "the API refuses plexus's credentials",
            Api::Unreachable(_) => "API unreachable",
            Api::Unusable(_) | Api::None => "no API client",
        }
    }
}

/// Runs `plexus doctor`.
pub fn run(common: &Common) -> Result<Report, Usage> {
    if let Some(extra) = common.rest.first() {
        return Err(Usage(format!("unexpected argument {extra:?}")));
    }
    let mut f = Findings::default();
    let mut doc = Map::new();
    doc.insert("confDir".into(), json!(common.conf_dir));
    doc.insert("cniPath".into(), json!(common.cni_path));
    let node = common.node_config();
    let conf_path = match &node {
        Ok((path, _)) => Some(path.clone()),
        Err(_) => common.conf.clone(),
    };
    if let Some(p) = &conf_path {
        doc.insert("nodeConfig".into(), json!(p));
    }
    let plexus = runtime_config(&mut f, common, conf_path.as_deref());
    let (conf_path, node) = match node {
        Ok(found) => {
            let (path, node) = &found;
            f.ok(
                "node config",
                format!(
                    "{} parses: network {:?}, cniVersion {}, binDir {}, cniDir {}",
                    path.display(),
                    node.name,
                    node.version,
                    node.bin_dir.display(),
                    node.cni_dir.display()
                ),
            );
            found
        }
        Err(e) => {
            f.fail(
                "node config",
                e,
                "fix it (the runtime hands it to plexus as it is), or name the node config with \
                 --conf FILE",
            );
            let why = "no usable node config";
            for check in [
                "plugins",
                "kubeconfig",
                "API",
                "permissions",
                "readiness indicator",
                "journal directory",
                "journals",
                "PodResources",
            ] {
                f.skipped(check, why);
            }
            return Ok(f.report(doc));
        }
    };
    let api = connect(&node);
    let nads = api.client().map(KubeApi::all_nads);
    let resources = plugins(&mut f, common, &node, &api, nads.as_ref());
    credentials(&mut f, &node);
    api_checks(&mut f, &node, &api);
    readiness(&mut f, &node);
    journal_dir(&mut f, &node);
    journal_entries(&mut f, common, &node, &conf_path, plexus.as_deref(), &api);
    pod_resources(&mut f, &node, &api, &resources);
    Ok(f.report(doc))
}

/// Check 1; returns where the runtime finds plexus.
fn runtime_config(f: &mut Findings, common: &Common, node_path: Option<&Path>) -> Option<PathBuf> {
    const CHECK: &str = "runtime config";
    let dir = &common.conf_dir;
    match nodeconf::config_files(dir) {
        Err(e) => f.fail(
            CHECK,
            format!("cannot read {}: {e}", dir.display()),
            format!(
                "give the runtime's CNI config directory with --conf-dir (containerd and CRI-O \
                 use {})",
                super::DEFAULT_CONF_DIR
            ),
        ),
        Ok(names) if names.is_empty() => f.fail(
            CHECK,
            format!(
                "{} holds no CNI config: the runtime has no network for pods",
                dir.display()
            ),
            "install plexus's config (plexus install writes 00-plexus.conflist there)",
        ),
        Ok(names) => {
            let first = dir.join(&names[0]);
            let same = |a: &Path, b: &Path| {
                fs::canonicalize(a)
                    .ok()
                    .is_some_and(|a| fs::canonicalize(b).ok() == Some(a))
            };
            let doc: Option<Value> = fs::read(&first)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let names_plexus = doc
                .as_ref()
                .is_some_and(|d| first_type(d) == Some("plexus"));
            if node_path.is_some_and(|p| same(p, &first)) {
                f.ok(
                    CHECK,
                    format!(
                        "the runtime loads {} first: plexus's node config",
                        first.display()
                    ),
                );
            } else if names_plexus {
                match super::read_node_config(&first) {
                    Err(e) => f.fail(
                        CHECK,
                        format!(
                            "the runtime loads {} first, a plexus config that does not parse: {e}",
                            first.display()
                        ),
                        format!("fix or remove {}", first.display()),
                    ),
                    Ok(_) => f.warn(
                        CHECK,
                        format!(
                            "the runtime loads {} first, a plexus config, but not the one checked \
                             ({})",
                            first.display(),
                            node_path.map_or_else(|| "none".into(), |p| p.display().to_string())
                        ),
                        Some(format!("check that one: --conf {}", first.display())),
                    ),
                }
            } else {
                let what = match &doc {
                    None => "not valid JSON, which the runtime cannot load".to_owned(),
                    Some(d) => format!(
                        "network {:?}, plugin {:?}",
                        d["name"].as_str().unwrap_or(""),
                        first_type(d).unwrap_or("")
                    ),
                };
                let ours = node_path.and_then(Path::file_name).map_or_else(
                    || "00-plexus.conflist".to_owned(),
                    |n| n.to_string_lossy().into_owned(),
                );
                f.fail(
                    CHECK,
                    format!(
                        "the runtime loads {} first ({what}), not plexus's config: pods never \
                         reach plexus",
                        first.display()
                    ),
                    format!(
                        "rename or remove {}, or give plexus's config a name that sorts before \
                         {:?} (plexus's is {ours:?})",
                        first.display(),
                        names[0]
                    ),
                );
            }
        }
    }
    let found = common.cni_path.iter().map(|d| d.join("plexus")).find(|p| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    });
    match &found {
        Some(p) => f.ok(
            CHECK,
            format!("the runtime's CNI_PATH has plexus at {}", p.display()),
        ),
        None => f.fail(
            CHECK,
            format!(
                "no plexus executable in the runtime's CNI_PATH ({}): the runtime cannot run it",
                join_dirs(&common.cni_path)
            ),
            "install it there (plexus install copies it to /opt/cni/bin), or give the \
             runtime's CNI_PATH with --cni-path",
        ),
    }
    found
}

/// The `type` of a single config, or of a conflist's first plugin.
fn first_type(doc: &Value) -> Option<&str> {
    match doc.get("plugins").and_then(Value::as_array) {
        Some(plugins) => plugins.first()?.get("type")?.as_str(),
        None => doc.get("type")?.as_str(),
    }
}

fn join_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Builds the client (without changing a file's mode) and asks `GET /version`.
fn connect(node: &NodeConfig) -> Api {
    match Client::new_read_only(&node.client_options()) {
        Ok(Some(client)) => match client.server_version() {
            Ok(version) => Api::Reachable {
                client: Box::new(client),
                version,
            },
            Err(e) => Api::Unreachable(e),
        },
        Ok(None) => Api::None,
        Err(e) => Api::Unusable(e),
    }
}

/// NADs served from a list already read, for [`nad::resolve`].
struct Listed<'a>(&'a [Nad]);

impl KubeApi for Listed<'_> {
    fn pod(&self, namespace: &str, name: &str) -> Result<PodMeta, Error> {
        Err(Error::Internal(format!(
            "doctor reads no pod here ({namespace}/{name})"
        )))
    }
    fn nad(&self, namespace: &str, name: &str) -> Result<Option<Nad>, Error> {
        Ok(self
            .0
            .iter()
            .find(|n| n.namespace == namespace && n.name == name)
            .cloned())
    }
    fn set_pod_annotation(&self, _: &PodMeta, _: &str, _: &str) -> Result<(), Error> {
        Err(Error::Internal("doctor writes nothing".into()))
    }
    fn event(&self, _: &PodMeta, _: EventType, _: &str, _: &str) {}
}

/// The plugin types ADD runs for a config: each plugin's `type` and its `ipam.type`, in order,
/// without repeats.
fn plugin_types(config: &NetworkConfig) -> Vec<&str> {
    let mut types: Vec<&str> = Vec::new();
    for p in config.plugins() {
        let ipam = p
            .as_map()
            .get("ipam")
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str);
        for t in std::iter::once(p.plugin_type()).chain(ipam) {
            if !types.contains(&t) {
                types.push(t);
            }
        }
    }
    types
}

/// Why a plugin lookup failed, after "plugin type X".
fn lookup_failure(f: &DelegateFailure, dirs: &[PathBuf]) -> String {
    match f {
        DelegateFailure::NotFound { .. } => {
            format!("is not found in {}", join_dirs(dirs))
        }
        DelegateFailure::UnsafeType => {
            "is not a bare file name (no '/', not empty, not '.' or '..')".into()
        }
        DelegateFailure::Untrusted { path, reason } => format!("is refused: {path} {reason}"),
        DelegateFailure::Refused { reason } => format!("is refused: {reason}"),
        other => format!("cannot be used: {other:?}"),
    }
}

/// A network whose plugins are checked, and whether it names a device resource.
struct Network {
    label: String,
    config: NetworkConfig,
    resource: Option<String>,
}

/// Check 3; returns the device resources named, with the network naming each.
fn plugins(
    f: &mut Findings,
    common: &Common,
    node: &NodeConfig,
    api: &Api,
    nads: Option<&Result<Vec<Nad>, Error>>,
) -> Vec<(String, String)> {
    const CHECK: &str = "plugins";
    let dirs = common.plugin_dirs(node);
    let mut networks = Vec::new();
    let client = api.client().map(|c| c as &dyn KubeApi);
    match resolve::node_networks(node, client) {
        Ok(n) => {
            networks.push(Network {
                label: format!(
                    "cluster network {:?} ({})",
                    n.cluster.name, n.cluster.source
                ),
                config: n.cluster.config,
                resource: n.cluster.resource_name,
            });
            for d in n.defaults {
                networks.push(Network {
                    label: format!("default network {:?} ({})", d.name, d.source),
                    config: d.config,
                    resource: d.resource_name,
                });
            }
        }
        Err(e) if client.is_none() && node_names_nads(node) => f.skipped(
            CHECK,
            &format!(
                "{}; the node's networks cannot be resolved without it: {}",
                api.why_not(),
                e.msg()
            ),
        ),
        Err(e) => f.fail(
            CHECK,
            format!("the node's networks cannot be resolved: {}", e.msg()),
            if e.details().is_empty() {
                "fix clusterNetwork, defaultNetworks or delegates in the node config".to_owned()
            } else {
                e.details().to_owned()
            },
        ),
    }
    let node_count = networks.len();
    match nads {
        None => f.skipped(CHECK, &format!("{}: the cluster's NADs", api.why_not())),
        Some(Err(e)) => f.fail(
            CHECK,
            format!("cannot list the cluster's NADs: {}", e.msg()),
            "grant plexus list on network-attachment-definitions (examples/deploy/rbac.yaml)",
        ),
        Some(Ok(nads)) => {
            let listed = Listed(nads);
            for n in nads {
                match nad::resolve(&listed, &n.namespace, &n.name, &node.conf_dir) {
                    Ok(r) => networks.push(Network {
                        label: format!("NAD {}/{}", n.namespace, n.name),
                        config: r.config,
                        resource: r.resource_name,
                    }),
                    Err(e) => f.warn(
                        CHECK,
                        format!(
                            "NAD {}/{} cannot be used: {} (ADD fails for pods selecting it)",
                            n.namespace,
                            n.name,
                            e.msg()
                        ),
                        None,
                    ),
                }
            }
        }
    }
    let mut all_types: Vec<&str> = Vec::new();
    let mut failed = false;
    for n in &networks {
        let required = plugin_types(&n.config);
        for t in &required {
            if let Err(e) = find::find(t, &dirs) {
                failed = true;
                f.fail(
                    CHECK,
                    format!(
                        "{}: plugin type {t:?} {}",
                        n.label,
                        lookup_failure(&e, &dirs)
                    ),
                    format!(
                        "install the {t:?} plugin in binDir ({}) or the runtime's CNI_PATH, or \
                         change the network",
                        node.bin_dir.display()
                    ),
                );
            }
        }
        for t in policy::types(&n.config) {
            if required.contains(&t) || all_types.contains(&t) {
                continue;
            }
            if policy::is_meta_plugin(t) {
                // ADD refuses a meta-plugin at any depth of a config.
                failed = true;
                f.fail(
                    CHECK,
                    format!("{}: {}", n.label, policy::meta_plugin_reason(t)),
                    "remove it from the network's config",
                );
            } else if find::find(t, &dirs).is_err() {
                f.warn(
                    CHECK,
                    format!(
                        "{}: a nested \"type\": {t:?} names no plugin in {} (fine if it is not a \
                         plugin, e.g. Calico's policy type; a plugin run by another one, e.g. \
                         flannel's delegate, must be installed)",
                        n.label,
                        join_dirs(&dirs)
                    ),
                    None,
                );
            }
        }
        for t in required {
            if !all_types.contains(&t) {
                all_types.push(t);
            }
        }
    }
    if !failed && !networks.is_empty() {
        all_types.sort_unstable();
        f.ok(
            CHECK,
            format!(
                "{} network(s) ({} of the node, {} NAD(s)) find every plugin in {}: {}",
                networks.len(),
                node_count,
                networks.len() - node_count,
                join_dirs(&dirs),
                all_types.join(", ")
            ),
        );
    }
    networks
        .into_iter()
        .filter_map(|n| Some((n.resource?, n.label)))
        .collect()
}

/// Whether a node network entry may name a NAD (not an absolute path).
fn node_names_nads(node: &NodeConfig) -> bool {
    node.cluster_network
        .iter()
        .chain(&node.default_networks)
        .any(|e| !e.trim().starts_with('/'))
}

/// Check 4: the kubeconfig and its token files.
fn credentials(f: &mut Findings, node: &NodeConfig) {
    let Some(kc) = &node.kubeconfig else {
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            f.ok(
                "kubeconfig",
                "none in the node config: plexus uses the in-cluster configuration",
            );
        } else {
            f.warn(
                "kubeconfig",
                "none in the node config, and not in a cluster: plexus reads no pod annotation \
                 and no NAD, and every pod gets only the node's networks",
                Some(
                    "set \"kubeconfig\" in the node config (plexus install writes \
                     plexus.d/plexus.kubeconfig)"
                        .into(),
                ),
            );
        }
        return;
    };
    if !secret_file(f, "kubeconfig", kc, "the kubeconfig") {
        return;
    }
    let config = match client::read_kubeconfig(kc) {
        Ok(c) => c,
        Err(e) => {
            f.fail(
                "kubeconfig",
                format!("{} cannot be read: {e}", kc.display()),
                "fix it, or run plexus install again",
            );
            return;
        }
    };
    // Through JSON: the token is a secret type that serialises as itself.
    let doc = serde_json::to_value(&config).unwrap_or_default();
    let server = doc["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let meta = fs::metadata(kc).ok();
    f.ok(
        "kubeconfig",
        format!(
            "{}: owner uid {}, mode {:04o}, server {server}",
            kc.display(),
            meta.as_ref().map_or(0, MetadataExt::uid),
            meta.as_ref().map_or(0, |m| m.mode() & 0o7777)
        ),
    );
    let users = doc["users"].as_array().cloned().unwrap_or_default();
    let mut any = false;
    for user in &users {
        let u = &user["user"];
        if let Some(file) = u["tokenFile"].as_str() {
            any = true;
            token_file(f, Path::new(file));
        } else if let Some(token) = u["token"].as_str() {
            any = true;
            token_expiry(f, token, "the kubeconfig's inline token", None);
        }
    }
    if !any {
        f.ok(
            "token",
            "the kubeconfig names no token (another kind of credential)",
        );
    }
}

/// The rules of [`perms::secret_file`] for `path`, reported under `check`; false when it is
/// refused or missing.
fn secret_file(f: &mut Findings, check: &'static str, path: &Path, what: &str) -> bool {
    if fs::metadata(path).is_err() {
        f.fail(
            check,
            format!(
                "{} ({what}) does not exist or cannot be read",
                path.display()
            ),
            "run plexus install again (or fix the node config's \"kubeconfig\")",
        );
        return false;
    }
    match perms::inspect_secret_file(path, what) {
        Err(e) => {
            let msg = e.msg();
            let (detail, fix) = match msg.split_once(" Fix: ") {
                Some((d, fix)) => (d.to_owned(), fix.replace('`', "")),
                None => (
                    msg,
                    "make it owned by root, mode 0600, in a directory only root may change"
                        .to_owned(),
                ),
            };
            f.fail(check, detail, fix);
            false
        }
        Ok(Some(mode)) => {
            f.warn(
                check,
                format!(
                    "{} has mode {mode:04o}: readable by group or others (the next plexus sets \
                     it to 0600)",
                    path.display()
                ),
                Some(format!("chmod 0600 {}", path.display())),
            );
            true
        }
        Ok(None) => true,
    }
}

/// The token file's rules, expiry and freshness.
fn token_file(f: &mut Findings, path: &Path) {
    if !secret_file(f, "token", path, "the token file of the kubeconfig") {
        return;
    }
    let token = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            f.fail(
                "token",
                format!("{} cannot be read: {e}", path.display()),
                "run plexus install again",
            );
            return;
        }
    };
    let age = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok());
    token_expiry(f, token.trim(), &path.display().to_string(), age);
}

/// The claims of a JWT's payload (unverified), `None` when `token` is not a JWT.
fn jwt_claims(token: &str) -> Option<Map<String, Value>> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return None;
    };
    match serde_json::from_slice(&base64url_decode(payload)?).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Decodes base64url (or standard base64), padding optional.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Seconds since the epoch, now.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An epoch second as RFC 3339.
fn rfc3339(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map_or_else(|_| secs.to_string(), |t| t.to_string())
}

/// `45s`, `12m`, `3h20m`, `4d`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d", s / 86_400),
    }
}

/// How old the installer's copy of a token may get before it is flagged (see the module
/// docs): 5 minutes past the kubelet's rotation point, 80% of the token's lifetime (at most
/// 24 h); 1 h when the lifetime is unknown.
pub fn stale_after(lifetime: Option<Duration>) -> Duration {
    match lifetime {
        Some(l) => (l.mul_f64(0.8)).min(Duration::from_secs(24 * 3600)) + Duration::from_secs(300),
        None => Duration::from_secs(3600),
    }
}

/// The expiry of `token` (named `what`), and the freshness of its file copy when `age` is
/// known.
fn token_expiry(f: &mut Findings, token: &str, what: &str, age: Option<Duration>) {
    const CHECK: &str = "token";
    let fix_copy = "the installer (plexus install, the plexus DaemonSet's pod on this node) \
                    keeps the copy fresh: check that it runs and what it logs";
    let claims = jwt_claims(token);
    let num = |k: &str| claims.as_ref()?.get(k)?.as_i64();
    let exp = num("exp");
    let iat = num("iat").or_else(|| num("nbf"));
    let warn_after = claims
        .as_ref()
        .and_then(|c| c.get("kubernetes.io")?.get("warnafter")?.as_i64());
    let now = now_secs();
    let mut lifetime = None;
    let mut healthy = true;
    match (&claims, exp) {
        (None, _) => f.ok(CHECK, format!("{what}: not a JWT, its expiry is unknown")),
        (Some(_), None) => f.ok(
            CHECK,
            format!("{what}: a service-account token that does not expire"),
        ),
        (Some(_), Some(exp)) => {
            let left = exp - now;
            if left <= 0 {
                healthy = false;
                f.fail(
                    CHECK,
                    format!(
                        "{what}: the token expired at {} ({} ago): the API server rejects it",
                        rfc3339(exp),
                        human(Duration::from_secs(left.unsigned_abs()))
                    ),
                    fix_copy,
                );
            } else if left < EXPIRY_WARNING.as_secs() as i64 {
                healthy = false;
                f.warn(
                    CHECK,
                    format!(
                        "{what}: the token expires in {} (at {})",
                        human(Duration::from_secs(left as u64)),
                        rfc3339(exp)
                    ),
                    Some(fix_copy.into()),
                );
            } else if let Some(w) = warn_after.filter(|w| *w <= now) {
                healthy = false;
                f.warn(
                    CHECK,
                    format!(
                        "{what}: the token is past its intended lifetime since {} (the API \
                         server still takes it until {}, and logs a warning)",
                        rfc3339(w),
                        rfc3339(exp)
                    ),
                    Some(fix_copy.into()),
                );
            }
            lifetime = iat
                .map(|iat| warn_after.unwrap_or(exp) - iat)
                .filter(|l| *l > 0)
                .map(|l| Duration::from_secs(l as u64));
            if healthy {
                f.ok(
                    CHECK,
                    format!(
                        "{what}: a bound token, expires in {} (at {})",
                        human(Duration::from_secs(left as u64)),
                        rfc3339(exp)
                    ),
                );
            }
        }
    }
    let Some(age) = age else { return };
    let limit = stale_after(lifetime);
    if age > limit {
        f.warn(
            CHECK,
            format!(
                "{what}: the copy was last written {} ago, longer than the {} after which \
                 {}",
                human(age),
                human(limit),
                if lifetime.is_some() {
                    "the kubelet has rotated the token it copies"
                } else {
                    "a rotated token would have been copied"
                }
            ),
            Some(fix_copy.into()),
        );
    } else {
        f.ok(
            CHECK,
            format!("{what}: the copy was last written {} ago", human(age)),
        );
    }
}

/// Check 5: the API and plexus's permissions.
fn api_checks(f: &mut Findings, node: &NodeConfig, api: &Api) {
    let client = match api {
        Api::Reachable { client, version } => {
            f.ok(
                "API",
                format!("the API server answers (Kubernetes {version})"),
            );
            client
        }
        Api::Unreachable(e) => {
            f.fail(
                "API",
                if e.details().is_empty() {
                    e.msg()
                } else {
                    format!("{} ({})", e.msg(), e.details())
                },
                format!(
                    "check the server in {} and that this node reaches it (routes, firewall, \
                     proxy); a 401 means the token is wrong or expired",
                    node.kubeconfig
                        .as_ref()
                        .map_or_else(|| "the kubeconfig".into(), |k| k.display().to_string())
                ),
            );
            f.skipped("permissions", api.why_not());
            return;
        }
        Api::Unusable(e) => {
            f.fail(
                "API",
                format!("plexus cannot use its API credentials: {}", e.msg()),
                if e.details().is_empty() {
                    "see the kubeconfig and token checks".to_owned()
                } else {
                    e.details().to_owned()
                },
            );
            f.skipped("permissions", api.why_not());
            return;
        }
        Api::None => {
            f.warn("API", "no client: see kubeconfig", None);
            f.skipped("permissions", api.why_not());
            return;
        }
    };
    const CHECK: &str = "permissions";
    let mut denied = 0;
    for a in NEEDED {
        match client.access_review(a) {
            Ok(d) if d.allowed => {}
            Ok(_) => {
                denied += 1;
                f.fail(
                    CHECK,
                    format!("plexus may not {} (SelfSubjectAccessReview)", a.describe()),
                    "grant it to plexus's service account: apply examples/deploy/rbac.yaml's \
                     ClusterRole and ClusterRoleBinding",
                );
            }
            Err(e) => {
                f.warn(
                    CHECK,
                    format!("cannot ask the API server: {}", e.msg()),
                    None,
                );
                return;
            }
        }
    }
    if denied == 0 {
        f.ok(CHECK, format!("plexus may {}", describe_all(NEEDED)));
    }
    let mut broader = 0;
    for a in BROADER {
        match client.access_review(a) {
            Ok(d) if d.allowed => {
                broader += 1;
                f.warn(
                    CHECK,
                    format!(
                        "plexus may also {}, which it never needs{}",
                        a.describe(),
                        if d.reason.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", d.reason)
                        }
                    ),
                    Some("remove the grant from the role bound to plexus's service account".into()),
                );
            }
            Ok(_) => {}
            Err(e) => {
                f.warn(
                    CHECK,
                    format!("cannot ask the API server: {}", e.msg()),
                    None,
                );
                return;
            }
        }
    }
    if broader == 0 {
        f.ok(
            CHECK,
            format!(
                "nothing broader than needed: plexus may not {}",
                describe_all(BROADER)
            ),
        );
    }
}

/// Check 6.
/// `get pods, patch pods/status, ...`.
fn describe_all(accesses: &[Access<'_>]) -> String {
    accesses
        .iter()
        .map(Access::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

fn readiness(f: &mut Findings, node: &NodeConfig) {
    const CHECK: &str = "readiness indicator";
    match &node.readiness_file {
        None => f.ok(CHECK, "readinessindicatorfile is not set"),
        Some(p) if p.exists() => f.ok(CHECK, format!("{} exists", p.display())),
        Some(p) => f.warn(
            CHECK,
            format!(
                "{} does not exist: ADD waits for it (up to {}s), then fails",
                p.display(),
                node.readiness_timeout.as_secs()
            ),
            Some(
                "the cluster network writes it when it is ready: check its pod on this node \
                 (or unset readinessindicatorfile)"
                    .into(),
            ),
        ),
    }
}

/// Check 7, the directory and its space.
fn journal_dir(f: &mut Findings, node: &NodeConfig) {
    const CHECK: &str = "journal directory";
    let dir = &node.cni_dir;
    let euid = perms::euid();
    let fix_owner = format!(
        "chown {euid} {p} && chmod 0700 {p}, or set cniDir to a directory of uid {euid}",
        p = dir.display()
    );
    let mut exists = false;
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => f.ok(
            CHECK,
            format!(
                "{} does not exist yet: the first ADD creates it (mode 0700)",
                dir.display()
            ),
        ),
        Err(e) => f.fail(
            CHECK,
            format!("{} cannot be read: {e}", dir.display()),
            fix_owner.clone(),
        ),
        Ok(m) if m.file_type().is_symlink() => f.fail(
            CHECK,
            format!(
                "{} is a symlink, which plexus does not follow for its journals",
                dir.display()
            ),
            format!(
                "replace it with a directory (mode 0700, owned by uid {euid}) or set cniDir to \
                 the real path"
            ),
        ),
        Ok(m) if !m.is_dir() => f.fail(
            CHECK,
            format!("{} is not a directory", dir.display()),
            "remove it or set cniDir to another path",
        ),
        Ok(m) if m.uid() != euid => f.fail(
            CHECK,
            format!(
                "{} is owned by uid {}, not by uid {euid} that plexus runs as: others could \
                 change what DEL undoes",
                dir.display(),
                m.uid()
            ),
            fix_owner.clone(),
        ),
        Ok(m) if m.mode() & 0o7777 != 0o700 => f.fail(
            CHECK,
            format!(
                "{} has mode {:04o}, not 0700: journals hold delegate configs and CNI_ARGS",
                dir.display(),
                m.mode() & 0o7777
            ),
            format!("chmod 0700 {}", dir.display()),
        ),
        Ok(_) => {
            exists = true;
            f.ok(
                CHECK,
                format!("{}: mode 0700, owner uid {euid}", dir.display()),
            );
        }
    }
    if exists {
        // What DEL refuses to read: a journal file of another owner.
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_file()
                && let perms::Verdict::Refuse(why) =
                    perms::file_verdict(&meta, &path, perms::Writable::Fix)
            {
                let (detail, fix) = why
                    .split_once(" Fix: ")
                    .map_or((why.clone(), fix_owner.clone()), |(d, x)| {
                        (d.to_owned(), x.replace('`', ""))
                    });
                f.fail(CHECK, format!("{}: {detail}", path.display()), fix);
            }
        }
    }
    // The nearest existing directory: where the journals would go.
    let mut at = dir.as_path();
    while !at.exists() {
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    match nix::sys::statvfs::statvfs(at) {
        Ok(s) => {
            // `fsblkcnt_t` and `c_ulong` are u64 here, not on every target.
            #[allow(clippy::useless_conversion)]
            let free = u64::from(s.blocks_available()) * u64::from(s.fragment_size());
            let text = format!("{} free on the file system of {}", mib(free), dir.display());
            if free < MIN_FREE {
                f.warn(
                    "journal space",
                    format!("only {text}: an ADD that cannot write its journal fails"),
                    Some("free some space on it".into()),
                );
            } else {
                f.ok("journal space", text);
            }
        }
        Err(e) => f.warn(
            "journal space",
            format!("cannot read the free space of {}: {e}", at.display()),
            None,
        ),
    }
}

fn mib(bytes: u64) -> String {
    if bytes >= 10 * 1024 * 1024 * 1024 {
        format!("{} GiB", bytes / (1024 * 1024 * 1024))
    } else {
        format!("{} MiB", bytes / (1024 * 1024))
    }
}

/// Quotes `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:=@%+-,".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command that runs the runtime's DEL for a journal, as the runtime would: the node config
/// on stdin (a conflist's first plugin with the list's `name` and `cniVersion`, as libcni
/// gives it), the journal's container ID, interface, network namespace (when it still
/// exists) and CNI_ARGS, the runtime's CNI_PATH.
fn del_command(conf: &Path, plexus: &Path, cni_path: &str, j: &Journal) -> String {
    let conflist = fs::read(conf)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|d| d.get("plugins").is_some());
    let sudo = if perms::euid() == 0 { "" } else { "sudo " };
    let mut env = format!(
        "{sudo}env CNI_COMMAND=DEL CNI_CONTAINERID={} CNI_IFNAME={}",
        sh_quote(&j.container_id),
        sh_quote(&j.ifname)
    );
    // The runtime gives the sandbox's namespace while it exists (the delegates then remove
    // what they put in it); once it is gone, none.
    if let Some(netns) = j.netns.as_deref().filter(|n| Path::new(n).exists()) {
        env.push_str(&format!(" CNI_NETNS={}", sh_quote(netns)));
    }
    if !j.cni_args.is_empty() {
        env.push_str(&format!(" CNI_ARGS={}", sh_quote(&j.cni_args)));
    }
    env.push_str(&format!(
        " CNI_PATH={} {}",
        sh_quote(cni_path),
        sh_quote(&plexus.display().to_string())
    ));
    let file = sh_quote(&conf.display().to_string());
    if conflist {
        format!("jq '.plugins[0] + {{name: .name, cniVersion: .cniVersion}}' {file} | {env}")
    } else {
        format!("{env} < {file}")
    }
}

/// What the API says about a journal's pod.
enum PodState {
    /// The pod exists (with the journal's UID, or the journal has none, or it is static).
    Here,
    /// Gone, or recreated: why.
    Gone(String),
    /// The journal names no pod.
    Unknown,
}

fn pod_state(client: &Client, j: &Journal) -> Result<PodState, Error> {
    let Some(key) = &j.pod else {
        return Ok(PodState::Unknown);
    };
    let who = format!("{}/{}", key.namespace, key.name);
    Ok(match client.find_pod(&key.namespace, &key.name)? {
        None => PodState::Gone(format!("pod {who} no longer exists")),
        Some(p) => match &key.uid {
            Some(uid) if *uid != p.uid && !pod::is_static(&p) => PodState::Gone(format!(
                "pod {who} was recreated: its UID is {}, the journal's {uid}",
                p.uid
            )),
            _ => PodState::Here,
        },
    })
}

/// Check 7, the journals.
fn journal_entries(
    f: &mut Findings,
    common: &Common,
    node: &NodeConfig,
    conf: &Path,
    plexus: Option<&Path>,
    api: &Api,
) {
    const CHECK: &str = "journals";
    let listing = match journals::read(&node.cni_dir) {
        Ok(l) => l,
        Err(e) => {
            f.fail(
                CHECK,
                e,
                format!("make {} readable by plexus's user", node.cni_dir.display()),
            );
            return;
        }
    };
    let plexus = plexus.map_or_else(
        || std::env::current_exe().unwrap_or_else(|_| PathBuf::from("plexus")),
        Path::to_path_buf,
    );
    let cni_path = join_dirs(&common.cni_path);
    let mut fine = 0;
    let mut in_progress = 0;
    let mut no_pod = 0;
    let mut unchecked = 0;
    let mut bad = 0;
    let mut api_error = None;
    for found in &listing.journals {
        let Found {
            container_id,
            ifname,
            journal,
            lock_holder,
            ..
        } = found;
        let key = format!("{container_id}:{ifname}");
        let j = match journal {
            Ok(j) => j,
            Err(e) => {
                bad += 1;
                f.fail(
                    CHECK,
                    format!(
                        "{key}: {e}: the runtime's DEL of this container fails until it is fixed"
                    ),
                    format!(
                        "look at {p}.json; once what it lists is gone (interfaces, IP \
                         leases), remove {p}.json and {p}.progress",
                        p = node.cni_dir.join(&key).display()
                    ),
                );
                continue;
            }
        };
        if let Some(pid) = lock_holder {
            in_progress += 1;
            f.ok(
                CHECK,
                format!("{key}: a plexus (pid {pid}) is working on it now"),
            );
            continue;
        }
        let pod_name = j.pod.as_ref().map_or_else(
            || "pod unknown".into(),
            |p| format!("pod {}/{}", p.namespace, p.name),
        );
        let state = match api.client() {
            Some(c) if api_error.is_none() => match pod_state(c, j) {
                Ok(s) => Some(s),
                Err(e) => {
                    api_error = Some(e.msg());
                    None
                }
            },
            _ => None,
        };
        let command = del_command(conf, &plexus, &cni_path, j);
        match state {
            Some(PodState::Gone(why)) => {
                bad += 1;
                f.fail(
                    CHECK,
                    format!(
                        "{key} is left over: {why}, but the journal still holds what it \
                         attached ({} attachment(s){})",
                        j.attachments.len(),
                        if j.phase == Phase::Adding {
                            ", ADD unfinished"
                        } else {
                            ""
                        }
                    ),
                    command,
                );
            }
            _ if j.phase == Phase::Adding => {
                bad += 1;
                f.warn(
                    CHECK,
                    format!(
                        "{key} ({pod_name}): an ADD that did not finish, and nobody holds its \
                         lock: the runtime's DEL or GC will undo it"
                    ),
                    Some(command),
                );
            }
            Some(PodState::Unknown) => no_pod += 1,
            Some(PodState::Here) => fine += 1,
            None => unchecked += 1,
        }
    }
    match (api.client(), api_error) {
        (_, Some(e)) => f.warn(
            CHECK,
            format!("cannot tell which pods still exist: {e}"),
            None,
        ),
        (None, _) if !listing.journals.is_empty() => f.skipped(
            CHECK,
            &format!("{}: whether the journals' pods still exist", api.why_not()),
        ),
        _ => {}
    }
    if bad == 0 {
        f.ok(
            CHECK,
            format!(
                "{} journal(s) in {}: {fine} of existing pods{}{}{}, {} rolled-back ADD \
                 marker(s)",
                listing.journals.len(),
                node.cni_dir.display(),
                if in_progress > 0 {
                    format!(", {in_progress} in progress")
                } else {
                    String::new()
                },
                if no_pod > 0 {
                    format!(", {no_pod} naming no pod")
                } else {
                    String::new()
                },
                if unchecked > 0 {
                    format!(", {unchecked} not checked")
                } else {
                    String::new()
                },
                listing.rolled_back.len()
            ),
        );
    }
}

/// Check 8.
fn pod_resources(f: &mut Findings, node: &NodeConfig, api: &Api, resources: &[(String, String)]) {
    const CHECK: &str = "PodResources";
    if resources.is_empty() {
        if api.client().is_some() {
            f.ok(
                CHECK,
                format!(
                    "no network names a {RESOURCE_NAME_ANNOTATION}: the kubelet is never asked"
                ),
            );
        } else {
            f.skipped(CHECK, api.why_not());
        }
        return;
    }
    let mut names: Vec<&str> = resources.iter().map(|(r, _)| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let who = resources
        .iter()
        .map(|(r, n)| format!("{n}: {r}"))
        .collect::<Vec<_>>()
        .join("; ");
    let socket = &node.pod_resources_socket;
    let fix = "start the kubelet's PodResources API (it serves it by default), or set \
               podResourcesSocket in the node config to its socket";
    match list(socket, node.pod_resources_timeout) {
        Ok(n) => f.ok(
            CHECK,
            format!(
                "{} answers List ({n} pod(s)) for {}",
                socket.display(),
                names.join(", ")
            ),
        ),
        Err(cause) => f.fail(
            CHECK,
            format!(
                "networks name a device resource ({who}), but the kubelet's PodResources \
                 socket {} {cause}",
                socket.display()
            ),
            fix,
        ),
    }
}

#[cfg(feature = "sriov")]
fn list(socket: &Path, timeout: Duration) -> Result<usize, String> {
    use crate::devices::LookupFailure;
    crate::devices::podresources::list_pods(socket, timeout).map_err(|e| match e {
        LookupFailure::Unreachable { cause, .. } => format!("cannot be reached: {cause}"),
        LookupFailure::Timeout { after, .. } => {
            format!("did not answer List within {:.1}s", after.as_secs_f64())
        }
        LookupFailure::Failed { cause, .. } => format!("answered, but not List: {cause}"),
        LookupFailure::Unsupported => "is not supported by this build".into(),
    })
}

#[cfg(not(feature = "sriov"))]
fn list(_socket: &Path, _timeout: Duration) -> Result<usize, String> {
    Err("is not asked: this plexus is built without the PodResources client (feature sriov)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Attachment, PodKey};

    fn b64(bytes: &[u8]) -> String {
        crate::install::kubeconfig::base64(bytes)
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_")
    }

    fn jwt(claims: Value) -> String {
        format!(
            "{}.{}.c2ln",
            b64(br#"{"alg":"RS256"}"#),
            b64(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn base64url_and_jwt_claims() {
        for s in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "\u{ff}\u{fe}?>",
        ] {
            assert_eq!(base64url_decode(&b64(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(base64url_decode("Zm9vYg==").unwrap(), b"foob");
        assert!(base64url_decode("a b").is_none());
        let c = jwt_claims(&jwt(json!({"exp": 5, "iat": 1}))).unwrap();
        assert_eq!(c["exp"], 5);
        assert!(jwt_claims("not-a-jwt").is_none());
        assert!(jwt_claims("a.b").is_none());
    }

    fn statuses(f: &Findings) -> Vec<(&'static str, Status)> {
        f.0.iter().map(|x| (x.check, x.status)).collect()
    }

    #[test]
    fn token_expiry_and_freshness() {
        let now = now_secs();
        let mut f = Findings::default();
        token_expiry(
            &mut f,
            &jwt(json!({"exp": now - 60, "iat": now - 3660})),
            "t",
            None,
        );
        assert_eq!(statuses(&f), [("token", Status::Fail)]);
        assert!(f.0[0].detail.contains("expired at"), "{:?}", f.0);

        let mut f = Findings::default();
        token_expiry(
            &mut f,
            &jwt(json!({"exp": now + 300, "iat": now - 3300})),
            "t",
            None,
        );
        assert_eq!(statuses(&f), [("token", Status::Warn)]);

        // Fresh for its lifetime, then stale after 80% of it plus 5 minutes.
        let good = jwt(json!({"exp": now + 3000, "iat": now - 600}));
        let mut f = Findings::default();
        token_expiry(&mut f, &good, "t", Some(Duration::from_secs(600)));
        assert_eq!(statuses(&f), [("token", Status::Ok), ("token", Status::Ok)]);
        let mut f = Findings::default();
        token_expiry(&mut f, &good, "t", Some(Duration::from_secs(3600)));
        assert_eq!(
            statuses(&f),
            [("token", Status::Ok), ("token", Status::Warn)]
        );
        assert_eq!(
            stale_after(Some(Duration::from_secs(3600))),
            Duration::from_secs(2880 + 300)
        );
        assert_eq!(stale_after(None), Duration::from_secs(3600));
        // An extended token counts its lifetime up to warnafter.
        let extended = jwt(json!({"exp": now + 365 * 86400, "iat": now - 600,
                                  "kubernetes.io": {"warnafter": now + 3000}}));
        let mut f = Findings::default();
        token_expiry(&mut f, &extended, "t", Some(Duration::from_secs(3500)));
        assert_eq!(
            statuses(&f),
            [("token", Status::Ok), ("token", Status::Warn)]
        );
        // Not a JWT: unknown lifetime, 1 h.
        let mut f = Findings::default();
        token_expiry(&mut f, "opaque", "t", Some(Duration::from_secs(1800)));
        assert_eq!(statuses(&f), [("token", Status::Ok), ("token", Status::Ok)]);
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 1200)), "3h20m");
        assert_eq!(human(Duration::from_secs(5 * 86400)), "5d");
    }

    #[test]
    fn the_del_command_quotes_what_needs_it() {
        let d = tempfile::tempdir().unwrap();
        let list = d.path().join("00-plexus.conflist");
        fs::write(&list, r#"{"name":"n","plugins":[{"type":"plexus"}]}"#).unwrap();
        let conf = d.path().join("00 plexus.conf");
        fs::write(&conf, r#"{"name":"n","type":"plexus"}"#).unwrap();
        let mut j = Journal::new(
            "c1",
            "eth0",
            None,
            "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p",
            Some(PodKey {
                namespace: "ns".into(),
                name: "p".into(),
                uid: None,
            }),
            vec![Attachment::new("n", "eth0", "{}", Map::new(), "", true)],
        );
        let sudo = if perms::euid() == 0 { "" } else { "sudo " };
        assert_eq!(
            del_command(&list, Path::new("/opt/cni/bin/plexus"), "/opt/cni/bin", &j),
            format!(
                "jq '.plugins[0] + {{name: .name, cniVersion: .cniVersion}}' {} | {sudo}env \
                 CNI_COMMAND=DEL CNI_CONTAINERID=c1 CNI_IFNAME=eth0 \
                 CNI_ARGS='K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p' CNI_PATH=/opt/cni/bin \
                 /opt/cni/bin/plexus",
                list.display()
            )
        );
        j.cni_args.clear();
        assert_eq!(
            del_command(&conf, Path::new("/x/plexus"), "/a:/b", &j),
            format!(
                "{sudo}env CNI_COMMAND=DEL CNI_CONTAINERID=c1 CNI_IFNAME=eth0 CNI_PATH=/a:/b \
                 /x/plexus < '{}'",
                conf.display()
            )
        );
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_first_config_decides_and_plexus_must_be_on_cni_path() {
        let d = tempfile::tempdir().unwrap();
        let ours = d.path().join("00-plexus.conflist");
        fs::write(
            &ours,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"plexus"}]}"#,
        )
        .unwrap();
        let common = Common {
            conf: Some(ours.clone()),
            conf_dir: d.path().to_owned(),
            cni_path: vec![d.path().to_owned()],
            format: super::super::Format::Text,
            rest: vec![],
        };
        let mut f = Findings::default();
        assert_eq!(runtime_config(&mut f, &common, Some(&ours)), None);
        assert_eq!(
            statuses(&f),
            [
                ("runtime config", Status::Ok),
                ("runtime config", Status::Fail)
            ]
        );
        let bin = d.path().join("plexus");
        fs::write(&bin, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            d.path().join("00-aaa.conflist"),
            r#"{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel"}]}"#,
        )
        .unwrap();
        let mut f = Findings::default();
        assert_eq!(runtime_config(&mut f, &common, Some(&ours)), Some(bin));
        assert_eq!(
            statuses(&f),
            [
                ("runtime config", Status::Fail),
                ("runtime config", Status::Ok)
            ]
        );
        assert!(
            f.0[0]
                .detail
                .contains("00-aaa.conflist first (network \"cbr0\", plugin \"flannel\")"),
            "{:?}",
            f.0[0]
        );
    }

    #[test]
    fn an_inline_token_is_read_for_its_expiry_and_a_token_file_for_its_copy() {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let kc = d.path().join("kc");
        let now = now_secs();
        let write = |user: Value| {
            let doc = json!({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443"}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            });
            fs::write(&kc, doc.to_string()).unwrap();
            fs::set_permissions(&kc, fs::Permissions::from_mode(0o600)).unwrap();
        };
        let node = |kc: &Path| {
            let m = json!({"name": "n", "type": "plexus", "kubeconfig": kc});
            NodeConfig::from_map(m.as_object().unwrap().clone()).unwrap()
        };
        write(json!({"token": jwt(json!({"exp": now - 5, "iat": now - 3600}))}));
        let mut f = Findings::default();
        credentials(&mut f, &node(&kc));
        assert_eq!(
            statuses(&f),
            [("kubeconfig", Status::Ok), ("token", Status::Fail)],
            "{:?}",
            f.0
        );
        assert!(f.0[0].detail.contains("server https://10.0.0.1:6443"));
        assert!(
            f.0[1]
                .detail
                .starts_with("the kubeconfig's inline token: the token expired")
        );

        let token = d.path().join("token");
        fs::write(&token, jwt(json!({"exp": now + 3000, "iat": now - 600}))).unwrap();
        fs::set_permissions(&token, fs::Permissions::from_mode(0o640)).unwrap();
        write(json!({"tokenFile": token}));
        let mut f = Findings::default();
        credentials(&mut f, &node(&kc));
        assert_eq!(
            statuses(&f),
            [
                ("kubeconfig", Status::Ok),
                ("token", Status::Warn),
                ("token", Status::Ok),
                ("token", Status::Ok)
            ],
            "{:?}",
            f.0
        );
        assert_eq!(
            f.0[1].fix.as_deref(),
            Some(format!("chmod 0600 {}", token.display()).as_str())
        );
        assert_eq!(fs::metadata(&token).unwrap().mode() & 0o777, 0o640);

        let mut f = Findings::default();
        credentials(&mut f, &node(&d.path().join("absent")));
        assert_eq!(statuses(&f), [("kubeconfig", Status::Fail)]);
    }

    #[test]
    fn fails_and_only_fails_are_problems() {
        let mut f = Findings::default();
        f.ok("a", "fine");
        f.warn("b", "hmm", Some("do x".into()));
        f.fail("c", "broken.", "do y");
        let r = f.report(Map::new());
        assert_eq!(
            r.text,
            "ok a: fine\nwarn b: hmm (fix: do x)\nFAIL c: broken.\n"
        );
        assert_eq!(r.problems, ["c: broken. Fix: do y"]);
        assert_eq!(
            r.doc["checks"][1],
            json!({"check": "b", "status": "warn", "detail": "hmm", "fix": "do x"})
        );
    }
}
