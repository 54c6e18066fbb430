//! What the `plexus` binary does for one CNI call: validate, dispatch, answer.
//!
//! [`run`] takes the environment through a lookup function, stdin through a reader and the
//! process runner through the [`Exec`] seam, and returns the one document for stdout with the
//! exit status; `main` only prints it. The order of checks follows libcni's skel: missing
//! variables, unknown command, VERSION (which reads nothing else), then stdin (JSON, `name`),
//! `cniVersion`, the command's version gate, and finally the command.
//!
//! The commands themselves are the transaction in [`crate::txn`]; this module only wires the
//! seams: the journal directory, the lazily built API client, the kubelet (asked only when a
//! network needs a device) and the process runner.

use std::io::Read;

use serde_json::Value;

use crate::cni::{Command, Env, Error, Version};
use crate::delegate::{Exec, policy};
use crate::k8s::pod::{self, PodRef};
use crate::node::{NodeConfig, decode_stdin};
use crate::state::StateDir;
use crate::txn::{self, ApiSource, Ctx, LazyClient};

/// What to print and how to exit.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The one JSON document for stdout (`None`: print nothing, e.g. a successful DEL).
    pub stdout: Option<Value>,
    /// 0 on success, 1 on error.
    pub exit_code: u8,
}

impl Response {
    fn ok(doc: Option<Value>) -> Response {
        Response {
            stdout: doc,
            exit_code: 0,
        }
    }

    fn error(e: &Error, version: Version) -> Response {
        Response {
            stdout: Some(e.to_json(version.as_str())),
            exit_code: 1,
        }
    }
}

/// Runs one CNI call.
pub fn run(
    get: impl Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    exec: &dyn Exec,
) -> Response {
    let env = match Env::from_lookup(&get) {
        Ok(env) => env,
        Err(e) => return Response::error(&e, Version::LATEST),
    };
    if env.command == Command::Version {
        return Response::ok(Some(crate::cni::version::version_answer()));
    }
    if let Some(parent) = get(policy::NESTED_ENV).filter(|p| !p.is_empty()) {
        return Response::error(&nested(&parent), Version::LATEST);
    }
    let mut bytes = Vec::new();
    if let Err(e) = stdin.read_to_end(&mut bytes) {
        return Response::error(&Error::io("error reading from stdin", e), Version::LATEST);
    }
    let raw = match decode_stdin(&bytes) {
        Ok(raw) => raw,
        Err(e) => return Response::error(&e, Version::LATEST),
    };
    // Errors are reported in the config's own version once it is known and valid.
    let version = raw
        .get("cniVersion")
        .and_then(Value::as_str)
        .and_then(Version::parse)
        .unwrap_or(Version::LATEST);
    let node = match NodeConfig::from_map(raw) {
        Ok(n) => n,
        Err(e) => return Response::error(&e, version),
    };
    crate::log::init(
        node.log_level.as_deref(),
        node.log_file.as_deref(),
        node.log_to_stderr,
    );
    let unknown = node.unknown_keys();
    if !unknown.is_empty() {
        tracing::info!(keys = ?unknown, "node config keys plexus does not use (ignored)");
    }
    if let Err(e) = crate::cni::version::gate(env.command.as_str(), node.version) {
        return Response::error(&e, version);
    }
    let span = tracing::info_span!("plexus", command = %env.command, container = %env.container_id, ifname = %env.ifname);
    let _g = span.enter();
    tracing::debug!("call received");
    let response = match dispatch(&env, &node, exec) {
        Ok(doc) => Response::ok(doc),
        Err(e) => {
            tracing::error!(error = %e, details = %e.details(), "failed");
            Response::error(&e, version)
        }
    };
    tracing::debug!(exit_code = response.exit_code, "answer ready");
    response
}

/// The refusal of a plexus started below another plexus's delegate (see
/// [`crate::delegate::policy`]): its stdin would be a network's config, not the node's.
fn nested(parent: &str) -> Error {
    Error::invalid_config(
        format!(
            "plexus refuses to run as a delegate of another plexus (pid {parent}): a network's \
             config names plexus, or a copy of it, as a plugin or IPAM type, and its config \
             would be read as a node config, letting whoever wrote the network choose what runs \
             as root"
        ),
        format!("{} is set in the environment", policy::NESTED_ENV),
    )
}

fn dispatch(env: &Env, node: &NodeConfig, exec: &dyn Exec) -> Result<Option<Value>, Error> {
    let apis = LazyClient::new(node.client_options());
    if env.command == Command::Add {
        prefetch_pod(env, node, &apis);
    }
    let state = StateDir::open(&node.cni_dir)?;
    let kubelet = node.device_source();
    let ctx = Ctx {
        env,
        node,
        exec,
        apis: &apis,
        devices: &kubelet,
        state: &state,
    };
    match env.command {
        Command::Add => txn::add::add(&ctx).map(Some),
        Command::Del => txn::del::del(&ctx).map(|()| None),
        Command::Check => txn::check::check(&ctx).map(|()| None),
        Command::Status => txn::status::status(&ctx).map(|()| None),
        Command::Gc => txn::gc::gc(&ctx).map(|()| None),
        Command::Version => Ok(Some(crate::cni::version::version_answer())),
    }
}

/// ADD's first API call is the pod read, and the first call pays for connecting (TCP and the
/// TLS handshake). Building the client here, before the journal directory is opened, starts
/// the connection (see [`crate::k8s::transport`]), and the pod read is sent at once: both
/// overlap with plexus's own start (opening the journal directory, starting the interface
/// listing); ADD then takes the answer where it reads the pod, with the same retries, budget
/// and errors. When the runtime passed the pod's annotations there is no pod read, only the
/// connection ([`pod::from_runtime`]). Not when ADD is going to wait for the readiness
/// indicator first (the pod is read after the wait then), and nothing here fails: a client
/// that cannot be built is reported by ADD itself.
fn prefetch_pod(env: &Env, node: &NodeConfig, apis: &LazyClient) {
    if node.readiness_file.as_ref().is_some_and(|f| !f.exists()) {
        return;
    }
    let Some(pod) = PodRef::from_args(&env.args) else {
        return;
    };
    if let Ok(Some(api)) = apis.api() {
        if pod::from_runtime(&pod, &node.runtime_config).is_none() {
            api.prefetch_pod(&pod.namespace, &pod.name);
        }
    }
}
