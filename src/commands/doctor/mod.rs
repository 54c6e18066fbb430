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

mod api;
mod credentials;
mod journals;
mod kubelet;
mod plugins;
mod readiness;
mod runtime;

use std::path::PathBuf;

use serde_json::{Map, Value, json};

pub use api::{BROADER, NEEDED};
pub use credentials::{EXPIRY_WARNING, stale_after};
pub use journals::MIN_FREE;

use api::{api_checks, connect};
use credentials::credentials;
use journals::{journal_dir, journal_entries};
use kubelet::pod_resources;
use plugins::plugins;
use readiness::readiness;
use runtime::runtime_config;

use super::{Common, Report, Usage};
use crate::cni::Error;
#[cfg(doc)] // for the links of the module docs
use crate::delegate::{find, policy};
use crate::k8s::api::KubeApi;
use crate::k8s::client::Client;

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

fn join_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn statuses(f: &Findings) -> Vec<(&'static str, Status)> {
        f.0.iter().map(|x| (x.check, x.status)).collect()
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
