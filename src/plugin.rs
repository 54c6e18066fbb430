//! What the `plexus` binary does for one CNI call: validate, dispatch, answer.
//!
//! [`run`] takes the environment through a lookup function, stdin through a reader and the
//! process runner through the [`Exec`] seam, and returns the one document for stdout with the
//! exit status; `main` only prints it. The order of checks follows libcni's skel: missing
//! variables, unknown command, VERSION (which reads nothing else), then stdin (JSON, `name`),
//! `cniVersion`, the command's version gate, and finally the command.
//!
//! **Current scope**: the cluster network (`clusterNetwork` as a path or a config name in
//! `confDir`, or the first entry of `delegates`) is run through [`Chain`] for ADD, DEL, CHECK,
//! STATUS and GC. A failed ADD is undone
//! at once with a DEL of that network (see [`undo_add`]). Secondary networks
//! from NetworkAttachmentDefinitions, the journal and rollback build on this.

use std::io::Read;

use serde_json::Value;

use crate::cni::result;
use crate::cni::{Command, Env, Error, Version};
use crate::delegate::{Chain, Exec, Invocation};
use crate::node::{NodeConfig, decode_stdin};

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
    let env = match Env::from_lookup(get) {
        Ok(env) => env,
        Err(e) => return Response::error(&e, Version::LATEST),
    };
    if env.command == Command::Version {
        return Response::ok(Some(crate::cni::version::version_answer()));
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
    if let Err(e) = crate::cni::version::gate(env.command.as_str(), node.version) {
        return Response::error(&e, version);
    }
    let span = tracing::info_span!("plexus", command = %env.command, container = %env.container_id, ifname = %env.ifname);
    let _g = span.enter();
    match dispatch(&env, &node, exec) {
        Ok(doc) => Response::ok(doc),
        Err(e) => {
            tracing::error!(error = %e, details = %e.details(), "failed");
            Response::error(&e, version)
        }
    }
}

fn dispatch(env: &Env, node: &NodeConfig, exec: &dyn Exec) -> Result<Option<Value>, Error> {
    // The API joins in with the per-pod transaction; until then the cluster network resolves
    // from the node config and confDir alone.
    let cluster = crate::node::resolve::node_networks(node, None)?.cluster;
    let (label, net) = (cluster.name, cluster.config);
    let delegate_version = net.validate(&label)?;
    let mut plugin_dirs = vec![node.bin_dir.clone()];
    plugin_dirs.extend(env.path.iter().filter(|p| **p != node.bin_dir).cloned());
    let inv = Invocation {
        network: label,
        container_id: env.container_id.clone(),
        netns: env.netns.clone(),
        ifname: env.ifname.clone(),
        cni_args: env.args.for_delegate(),
        plugin_dirs,
        runtime_config: node.runtime_config.clone(),
        timeout: node.delegate_timeout,
    };
    let chain = Chain::new(exec);
    // The runtime's prevResult is in plexus's config version; the delegate wants its own.
    let prev = node
        .prev_result
        .as_ref()
        .map(|p| result::convert(p, delegate_version).unwrap_or_else(|_| p.clone()));
    match env.command {
        Command::Add => {
            let res = chain
                .add(&net, &inv)
                .inspect_err(|_| undo_add(&chain, &net, &inv))?;
            result::convert(&res, node.version).map(Some).map_err(|e| {
                Error::incompatible(
                    format!(
                        "the result of network {:?} cannot be returned as a {} result: {}",
                        inv.network,
                        node.version,
                        e.msg()
                    ),
                    "use a node config cniVersion the cluster network's result can be expressed in",
                )
            })
        }
        Command::Del => chain.del(&net, &inv, prev.as_ref()).map(|()| None),
        Command::Check => {
            let prev = prev.ok_or_else(|| {
                Error::invalid_config("CHECK needs prevResult", "the runtime sent no prevResult")
            })?;
            chain.check(&net, &inv, &prev).map(|()| None)
        }
        Command::Status => chain.status(&net, &inv).map(|()| None),
        Command::Gc => {
            let valid = node
                .valid_attachments
                .clone()
                .unwrap_or(Value::Array(vec![]));
            chain.gc(&net, &inv, &valid).map(|()| None).map_err(combine)
        }
        Command::Version => Ok(Some(crate::cni::version::version_answer())),
    }
}

/// Undoes a failed ADD of one network: DEL of the whole config (every plugin, in reverse,
/// past failures), so that plugins which succeeded before the failing one release what they
/// took. Runtimes also call DEL after a failed ADD, and DEL is idempotent, so this is safe to
/// repeat. Its own failures are logged; the ADD error is what the runtime gets.
fn undo_add(chain: &Chain<'_>, net: &crate::cni::NetworkConfig, inv: &Invocation) {
    tracing::warn!(network = %inv.network, "ADD failed; undoing it with DEL");
    if let Err(e) = chain.del(net, inv, None) {
        tracing::error!(network = %inv.network, error = %e, "undoing the failed ADD also failed");
    }
}

/// Several failures as one error (code 999) listing every message; a single one is kept as is.
fn combine(mut errors: Vec<Error>) -> Error {
    if errors.len() == 1 {
        return errors.remove(0);
    }
    let msgs: Vec<String> = errors.iter().map(Error::msg).collect();
    Error::Internal(format!("{} failures: {}", errors.len(), msgs.join("; ")))
}
