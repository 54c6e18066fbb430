//! What a CNI command does for a pod: plan, then apply with a journal, and undo.
//!
//! - [`plan`]: every attachment decided before anything is attached (pure);
//! - [`add`]: ADD as a transaction (journal first, apply in order, default route,
//!   network-status, rollback of everything started on any failure);
//! - [`teardown`]: undoing a journal (DEL, rollback, GC), with the strict/lenient rule;
//! - [`del`]: DEL from the journal, else from the API, else the node's networks;
//! - [`check`], [`gc`], [`status`]: the other commands.
//!
//! Every side effect goes through a seam held by [`Ctx`]: delegates through
//! [`crate::delegate::Exec`], the API through [`crate::k8s::api::KubeApi`], the kubelet's
//! device allocations through [`crate::devices::DeviceSource`], state through
//! [`crate::state::StateDir`], the pod namespace through [`crate::netns`].

use std::cell::OnceCell;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cni::{Command, Env, Error, NetworkConfig};
use crate::delegate::{Chain, Exec, Invocation, StartAhead};
use crate::devices::DeviceSource;
use crate::k8s::api::KubeApi;
use crate::k8s::client::{Client, ClientOptions};
use crate::k8s::pod::PodRef;
use crate::node::NodeConfig;
use crate::state::{PodKey, StateDir};

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod plan;
pub mod status;
pub mod teardown;

/// How long a call waits for another plexus working on the same attachment.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the API client comes from: built on first use, so that a DEL served from the
/// journal never builds one.
pub trait ApiSource {
    /// The client; `None` without a kubeconfig and outside a cluster.
    fn api(&self) -> Result<Option<&dyn KubeApi>, Error>;
}

/// The real source: a [`Client`] built once, when first asked for.
pub struct LazyClient {
    options: ClientOptions,
    cell: OnceCell<Option<Client>>,
}

impl LazyClient {
    pub fn new(options: ClientOptions) -> LazyClient {
        LazyClient {
            options,
            cell: OnceCell::new(),
        }
    }
}

impl ApiSource for LazyClient {
    fn api(&self) -> Result<Option<&dyn KubeApi>, Error> {
        if self.cell.get().is_none() {
            let client = Client::new(&self.options)?;
            let _ = self.cell.set(client);
        }
        Ok(self
            .cell
            .get()
            .and_then(Option::as_ref)
            .map(|c| c as &dyn KubeApi))
    }
}

/// A fixed API (or none): for tests and callers that already hold one.
pub struct FixedApi<'a>(pub Option<&'a dyn KubeApi>);

impl ApiSource for FixedApi<'_> {
    fn api(&self) -> Result<Option<&dyn KubeApi>, Error> {
        Ok(self.0)
    }
}

/// Everything a command needs, every side effect behind a seam.
pub struct Ctx<'a> {
    pub env: &'a Env,
    pub node: &'a NodeConfig,
    pub exec: &'a dyn Exec,
    pub apis: &'a dyn ApiSource,
    /// The kubelet's device allocations; asked only by an ADD with a network naming a
    /// device-plugin resource.
    pub devices: &'a dyn DeviceSource,
    pub state: &'a StateDir,
}

impl Ctx<'_> {
    /// The API client, built on first use.
    pub fn api(&self) -> Result<Option<&dyn KubeApi>, Error> {
        self.apis.api()
    }

    /// binDir, then the runtime's CNI_PATH (without repeating binDir).
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.node.bin_dir.clone()];
        dirs.extend(
            self.env
                .path
                .iter()
                .filter(|p| **p != self.node.bin_dir)
                .cloned(),
        );
        dirs
    }

    /// The delegate invocation of one attachment.
    pub fn invocation(
        &self,
        network: &str,
        ifname: &str,
        runtime_config: &Map<String, Value>,
        netns: Option<String>,
    ) -> Invocation {
        Invocation {
            network: network.to_owned(),
            container_id: self.env.container_id.clone(),
            netns,
            ifname: ifname.to_owned(),
            cni_args: self.env.args.for_delegate(),
            plugin_dirs: self.plugin_dirs(),
            runtime_config: runtime_config.clone(),
            timeout: self.node.delegate_timeout,
        }
    }

    /// The delegate runner.
    pub fn chain(&self) -> Chain<'_> {
        Chain::new(self.exec)
    }

    /// Tells the exec seam which plugins the coming runs of `command` start, in order, so that
    /// it can start the next ones while one runs ([`crate::delegate::ahead`]), as the node
    /// config allows (`startDelegatesAhead`).
    pub fn expect_runs<'n>(
        &self,
        command: Command,
        runs: impl IntoIterator<Item = (&'n NetworkConfig, &'n Invocation)>,
    ) {
        let when = self.node.start_delegates_ahead;
        if when != StartAhead::Never {
            self.exec.expect(
                runs.into_iter()
                    .flat_map(|(config, inv)| Chain::launches(command, config, inv))
                    .collect(),
                when,
            );
        }
    }

    /// The pod named by CNI_ARGS.
    pub fn pod_ref(&self) -> Option<PodRef> {
        PodRef::from_args(&self.env.args)
    }

    /// The pod named by CNI_ARGS, as the journal records it.
    pub fn pod_key(&self) -> Option<PodKey> {
        self.pod_ref().map(|p| PodKey {
            namespace: p.namespace,
            name: p.name,
            uid: p.uid,
        })
    }
}

/// Parses a config kept in the journal.
pub(crate) fn journal_config(network: &str, config: &str) -> Result<NetworkConfig, Error> {
    NetworkConfig::parse(config.as_bytes()).map_err(|e| {
        Error::decode(
            format!(
                "journal: the config of network {network} is not valid: {}",
                e.msg()
            ),
            e.details(),
        )
    })
}

/// Several errors as one: the first's code, every message.
pub(crate) fn combine(mut errors: Vec<Error>) -> Result<(), Error> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => {
            let code = errors[0].code();
            let msgs: Vec<String> = errors.iter().map(Error::msg).collect();
            let msg = format!("{n} failures: {}", msgs.join("; "));
            Err(match code.0 {
                11 => Error::Kubernetes {
                    msg,
                    details: String::new(),
                    transient: true,
                },
                _ => Error::Internal(msg),
            })
        }
    }
}
