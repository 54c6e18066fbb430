//! ADD as a transaction.
//!
//! 1. Wait for the readiness indicator (bounded), lock the container (every later step runs
//!    under the lock, the listing of its interfaces included; see [`crate::state`]), read
//!    the pod (UID rule; or take its
//!    annotations from the runtime, see [`crate::k8s::pod`]), resolve the node's
//!    networks, the default-network annotation and the selected networks, read the interface
//!    names already in the pod, and [plan]; when a network names a device-plugin
//!    resource, ask the kubelet once for the pod's devices (and, when they do not serve every
//!    such network, read the pod's ResourceClaims: [`crate::devices::dra`]) and read their
//!    device-information files ([`crate::devices`]). Nothing is attached yet; any problem fails ADD here. The
//!    pod read was started before the journal directory was opened
//!    ([`KubeApi::prefetch_pod`], from [`crate::plugin`]), and the interface names are listed
//!    on the netns thread while the API is read: the connection to the API server, the
//!    slowest part of this step, overlaps with plexus's own work, and so does making the
//!    journal's file ahead ([`StateDir::reserve`]: created and flushed before its content is
//!    known, so that the plan's own flush in step 2 commits nothing of the file system's).
//! 2. Write the journal (every attachment `Planned`, with its exact
//!    delegate config bytes). A journal left by an earlier ADD that crashed is torn down first.
//!    The write and its disk flushes run on a thread of their
//!    own while the ADD thread starts the first delegates' processes ([`Ctx::expect_runs`],
//!    [`crate::delegate::ahead`]), and the first is given its config, the only input that
//!    tells it what to do, once the journal can no longer be lost: durable, or on ext4, XFS
//!    and btrfs flushed and renamed while the directory's flush overlaps the delegate's run
//!    (see [`crate::state`], "Telling the caller early")
//!    ([`Exec::run_gated`](crate::delegate::Exec::run_gated), `Plan`). If
//!    the write fails, the delegates, which have read nothing, are killed and ADD fails with
//!    the write's error, nothing attached. When the first attachment has a
//!    device-information copy to write, the journal is written before it, as the copy needs.
//! 3. For each attachment in order: write its device-information copy (when it has one; the
//!    journal already names it), run its delegate (whose process was started while the one
//!    before ran), then record it `Added` with its result.
//!    These records are atomic but not fsynced (a crash of plexus keeps them; a power loss
//!    falls back to the durable plan of step 2). DEL of a journal still in phase `Adding` tears
//!    down its `Planned` attachments too, which is why no record is written *before* a
//!    delegate runs: the plan is the one fsynced write of an ADD, and there is one more write
//!    per attachment.
//! 4. Move the pod's default route when an element asks for `default-route`.
//! 5. Write network-status (one merge patch on `pods/status`, each attachment's
//!    `device-info` included).
//! 6. Mark the journal `Added`, hand the best-effort `AddedInterface` Events (one per
//!    interface, as Multus; only now, so that a pod whose ADD rolls back never shows
//!    interfaces it did not keep) to a detached sender that nobody waits for
//!    ([`crate::k8s::events`]), and return the cluster network's result in the node
//!    config's version.
//!
//! A failed ADD of a known pod records one Warning Event, `AddFailed`, with the error (which
//! names the network and the delegate) and what became of the attachments: nothing was
//! attached, everything was rolled back, or what the rollback left for the runtime's DEL.
//!
//! Any failure after the journal is written (a delegate, the route, the status write, a
//! journal write) rolls back every started attachment, last first (see
//! [`teardown`](super::teardown)), and returns the original error. A fully rolled-back ADD
//! leaves no journal but a rollback marker: the runtime's DEL that always follows then has
//! nothing to redo and removes it (GC drops those the runtime forgets). A pod deleted from the API during
//! ADD makes the status write fail, which rolls everything back: the pod is gone anyway.
//!
//! When the default route moves to a secondary attachment, the status `gateway` of every
//! other attachment drops the gateways of that IP family, the moved attachment's first entry
//! gets the requested gateways, and the result returned to the runtime drops its default
//! routes of that family, so that what the runtime and the status say is what is in the
//! kernel.

use std::cell::RefCell;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::plan::{self, Attachment, Inputs};
use super::teardown::teardown;
use super::{Ctx, LOCK_TIMEOUT};
use crate::cni::{Command, DelegateFailure, Error, result};
use crate::delegate::Invocation;
use crate::delegate::exec::{FirstGated, OnStart};
use crate::delegate::orphans::{self, DelegateProc};
use crate::delegate::policy::{self, Source};
use crate::devices::{self, devinfo};
use crate::k8s::api::{KubeApi, PodMeta};
use crate::k8s::{events, networks, pod, status};
use crate::node::{NodeConfig, readiness, resolve};
use crate::state::{self, AttachmentState, Journal, Phase, Reservation, StateDir};
use crate::{fault, netns};

/// Runs ADD; returns the document for stdout.
pub fn add(ctx: &Ctx<'_>) -> Result<Value, Error> {
    let env = ctx.env;
    let node = ctx.node;
    if ctx.state.read_only() {
        return Err(Error::io(
            format!(
                "the plexus journal directory {}",
                ctx.state.path().display()
            ),
            "it is on a read-only file system: ADD records what it attaches there before the \
             first delegate runs, so nothing was attached (make cniDir writable)",
        ));
    }
    if let Some(f) = &node.readiness_file {
        readiness::wait(f, node.readiness_timeout)?;
    }
    let netns = env
        .netns
        .clone()
        .ok_or_else(|| Error::MissingEnv(vec!["CNI_NETNS"]))?;
    // Every call for this container waits here, so the interfaces listed below include those
    // of an ADD for another CNI_IFNAME of the same container that finished just before (see
    // "Concurrency" in `crate::state`).
    let _lock = ctx
        .state
        .lock(&env.container_id, &env.ifname, LOCK_TIMEOUT)?;
    // The journal's file is made, and the pod's current interfaces are listed, while the API
    // is read.
    let reservation = ctx.state.reserve(&env.container_id, &env.ifname);
    let listing = netns::start_interface_names(Path::new(&netns));
    let api = ctx.api()?;
    let pod = match (api, ctx.pod_ref()) {
        (Some(api), Some(r)) => Some(pod::find(api, &r, &ctx.node.runtime_config, Command::Add)?),
        _ => None,
    };
    let mut undone = None;
    let outcome = add_for(
        ctx,
        api,
        pod.as_ref(),
        reservation,
        listing,
        &netns,
        &mut undone,
    );
    if let (Err(e), Some(api), Some(pod)) = (&outcome, api, &pod) {
        events::add_failed(api, pod, e, undone.as_ref());
    }
    outcome
}

/// ADD once the pod is known (under the container's lock): steps 1 (from the networks on)
/// to 6. `undone` is set to the rollback's outcome when there was one.
fn add_for(
    ctx: &Ctx<'_>,
    api: Option<&dyn KubeApi>,
    pod: Option<&PodMeta>,
    reservation: Reservation,
    listing: netns::InNetns<Vec<String>>,
    netns: &str,
    undone: &mut Option<Result<(), Error>>,
) -> Result<Value, Error> {
    let env = ctx.env;
    let node = ctx.node;
    let inputs = inputs(ctx, api, pod)?;
    check_types(node, pod, &inputs)?;
    let existing = listing.wait()?;
    let mut atts = plan::plan(inputs, &existing)?;
    let pod_ref = ctx.pod_ref();
    let found = devices::assign(
        &plan::needs(&atts),
        &devices::Lookup {
            source: ctx.devices,
            api,
            pod: pod_ref
                .as_ref()
                .map(|p| (p.namespace.as_str(), p.name.as_str())),
            container_id: &env.container_id,
            device_info_dir: &node.device_info_dir,
        },
    )?;
    plan::with_devices(&mut atts, found)?;
    let invs: Vec<Invocation> = atts
        .iter()
        .map(|a| {
            ctx.invocation(
                &a.network,
                &a.ifname,
                &a.runtime_config,
                Some(netns.to_owned()),
            )
        })
        .collect();

    let had_journal = clear_leftovers(ctx, netns)?;
    let mut j = journal(ctx, netns, &atts)?;
    let started = RefCell::new(Vec::new());
    let outcome = std::thread::scope(|scope| {
        let plan = Plan::start(scope, ctx.state, j.clone(), reservation, !had_journal);
        // The delegates' processes start while the plan is flushed; they get their configs,
        // device IDs included, at their turns.
        ctx.expect_runs(Command::Add, atts.iter().map(|a| &a.config).zip(&invs));
        if atts.first().and_then(|a| a.device_info()).is_some() {
            // Its device-information copy is written before its delegate starts: plan first.
            plan.settle()?;
        }
        // Each delegate's process is recorded before it gets its config (the first's once the
        // plan is safe), so that a DEL after a crash can stop it (`delegate::orphans`).
        let recording = OnStart::new(ctx.exec, |pid| record_delegate(ctx, &started, pid));
        let gated = FirstGated::new(&recording, |_| {
            plan.safe().map_err(|()| DelegateFailure::Spawn {
                cause: "it was not given its config: the plan could not be saved".into(),
            })
        });
        let outcome = apply(
            &Ctx {
                exec: &gated,
                ..*ctx
            },
            &mut j,
            &atts,
            &invs,
            netns,
            api.zip(pod),
        );
        match plan.settle() {
            Ok(()) => Ok(outcome),
            // The first delegate may have run: roll back, with the journal's error.
            Err(e) if plan.told_safe.get() => Ok(Err(e)),
            // No plan means nothing was started (see `Plan::settle`).
            Err(e) => Err(e),
        }
    })?;
    match outcome {
        Ok(doc) => Ok(doc),
        Err(e) => {
            tracing::warn!(error = %e, "ADD failed; rolling back every started attachment");
            j.delegates = started.into_inner();
            *undone = Some(rollback(ctx, &mut j, netns));
            Err(e)
        }
    }
}

/// Records the delegate process `pid` in the journal's progress file (and in `started`)
/// before it is given its config; a failure keeps the config from it.
fn record_delegate(
    ctx: &Ctx<'_>,
    started: &RefCell<Vec<DelegateProc>>,
    pid: u32,
) -> Result<(), DelegateFailure> {
    if pid == 0 {
        return Ok(()); // a seam that runs no process
    }
    let not_given = |cause: String| DelegateFailure::Spawn {
        cause: format!("it was not given its config: recording its process failed: {cause}"),
    };
    let rec = orphans::identify(pid).map_err(not_given)?;
    ctx.state
        .record_delegate(&ctx.env.container_id, &ctx.env.ifname, rec)
        .map_err(|e| not_given(e.msg()))?;
    started.borrow_mut().push(rec);
    Ok(())
}

/// The plan (step 2), saved once, on a thread of its own started as soon as the journal is
/// made, into the file made for it ahead when there is one (the [`Reservation`], waited for
/// there): its disk flushes overlap with the start of the
/// delegates' processes on the ADD thread. The first delegate's gate waits until the plan can
/// no longer be lost ([`Plan::safe`]), so that delegate is given its config only then: when
/// the attachment had no journal before, that is once the temp file is flushed and renamed,
/// on a file system that keeps a flushed new file's name, and the directory's flush then
/// overlaps with the first delegate (see [`StateDir::save_notifying`]). [`Plan::settle`]
/// waits for the whole save before the first delegate when that attachment has a
/// device-information copy to write first, and after [`apply`] in any case.
struct Plan<'scope> {
    slot: RefCell<PlanSlot<'scope>>,
    /// Told by the plan's thread when the plan can no longer be lost.
    notice: std::sync::mpsc::Receiver<()>,
    /// [`Plan::safe`] has let the first delegate go.
    told_safe: std::cell::Cell<bool>,
}

enum PlanSlot<'scope> {
    /// Being written by the plan's thread.
    Saving(std::thread::ScopedJoinHandle<'scope, Result<(), Error>>),
    /// No thread could be started: written by the first [`Plan::wait`].
    Pending(&'scope StateDir, Arc<Journal>),
    Saved,
    Failed(Error),
}

impl<'scope> Plan<'scope> {
    /// `early`: the attachment had no journal before, so the first delegate may go before the
    /// directory's flush (see [`StateDir::save_notifying`]).
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        state: &'env StateDir,
        planned: Journal,
        into: Reservation,
        early: bool,
    ) -> Self
    where
        'env: 'scope,
    {
        let planned = Arc::new(planned);
        let (tell, notice) = std::sync::mpsc::channel();
        let slot = std::thread::Builder::new()
            .name("plexus-plan".into())
            .spawn_scoped(scope, {
                let planned = Arc::clone(&planned);
                move || {
                    state.save_notifying(&planned, into, early, &mut || {
                        fault::stop_at("add:planned");
                        let _ = tell.send(());
                    })
                }
            })
            .map_or_else(
                |e| {
                    tracing::debug!(error = %e, "no thread for the plan; writing it at the first delegate");
                    PlanSlot::Pending(state, planned)
                },
                PlanSlot::Saving,
            );
        Plan {
            slot: RefCell::new(slot),
            notice,
            told_safe: std::cell::Cell::new(false),
        }
    }

    /// Waits until the plan can no longer be lost, for the first delegate's gate; `Err(())`
    /// when saving it failed (the error is kept for [`Plan::settle`]).
    fn safe(&self) -> Result<(), ()> {
        let saving = matches!(*self.slot.borrow(), PlanSlot::Saving(_));
        // No message: the thread ended without reaching that point; its result says why.
        let told = (saving && self.notice.recv().is_ok()) || self.wait().is_ok();
        self.told_safe.set(told);
        if told { Ok(()) } else { Err(()) }
    }

    /// Waits until the plan is saved (or saves it); `Err(())` when saving failed (the error
    /// is kept for [`Plan::settle`]).
    fn wait(&self) -> Result<(), ()> {
        let mut slot = self.slot.borrow_mut();
        let done = match std::mem::replace(&mut *slot, PlanSlot::Saved) {
            PlanSlot::Saving(thread) => Some(
                thread
                    .join()
                    .unwrap_or_else(|_| Err(Error::Internal("the plan's thread panicked".into()))),
            ),
            PlanSlot::Pending(state, planned) => Some(save(state, &planned)),
            settled => {
                *slot = settled;
                None
            }
        };
        match done {
            Some(Ok(())) => *slot = PlanSlot::Saved,
            Some(Err(e)) => *slot = PlanSlot::Failed(e),
            None => {}
        }
        if matches!(*slot, PlanSlot::Failed(_)) {
            Err(())
        } else {
            Ok(())
        }
    }

    /// `Ok` once the plan is durable, waiting for it if needed; otherwise the error that
    /// saving it gave. A failed save in the first delegate's gate killed that delegate before
    /// it read its config, and no other was started: nothing is attached, nothing to undo.
    /// Every ADD starts at least one delegate (a network has at least one plugin), so `apply`
    /// reaching its end with the plan unsaved cannot happen; waiting for it then is still
    /// right.
    fn settle(&self) -> Result<(), Error> {
        let _ = self.wait();
        match std::mem::replace(&mut *self.slot.borrow_mut(), PlanSlot::Saved) {
            PlanSlot::Failed(e) => Err(e),
            _ => Ok(()),
        }
    }
}

/// Writes the plan durably (see [`StateDir::save`]), when no thread could be started for it.
fn save(state: &StateDir, planned: &Journal) -> Result<(), Error> {
    state.save(planned)?;
    fault::stop_at("add:planned");
    Ok(())
}

/// The networks of this pod, before interface names are given.
pub(crate) fn inputs(
    ctx: &Ctx<'_>,
    api: Option<&dyn KubeApi>,
    pod: Option<&PodMeta>,
) -> Result<Inputs, Error> {
    let node = ctx.node;
    let nets = resolve::node_networks(node, api)?;
    let mut cluster = nets.cluster;
    let mut cluster_from_pod = false;
    let mut defaults = nets.defaults;
    let mut selected = vec![];
    if let (Some(api), Some(pod)) = (api, pod) {
        let iso = node.isolation();
        if let Some(own) =
            networks::default_network(api, pod, &iso, &node.multus_namespace, &node.conf_dir)
                .map_err(|e| for_pod(pod, e))?
        {
            cluster = own;
            cluster_from_pod = true;
        }
        if node.is_system_namespace(&pod.namespace) {
            defaults.clear();
        }
        selected =
            networks::selected(api, pod, &iso, &node.conf_dir).map_err(|e| for_pod(pod, e))?;
        networks::check_total(pod, defaults.len(), selected.len())?;
    }
    let mut runtime_config = node.runtime_config.clone();
    let wants_annotations = cluster
        .config
        .plugins()
        .iter()
        .any(|p| p.capabilities().any(|c| c == pod::RUNTIME_ANNOTATIONS));
    if !wants_annotations {
        // Delegates get only the keys they declare anyway; dropping this one here keeps the
        // pod's annotations (possibly tens of KiB) out of the journal.
        runtime_config.remove(pod::RUNTIME_ANNOTATIONS);
    }
    Ok(Inputs {
        cluster,
        cluster_from_pod,
        defaults,
        selected,
        runtime_config,
        ifname: ctx.env.ifname.clone(),
    })
}

/// The plugin-type rules of [`policy`] for every network of the pod, before anything runs;
/// every refused network is named at once. (DEL without a journal does not ask: it runs
/// what it can, and a refused plugin is refused again when it would be run.)
pub(crate) fn check_types(
    node: &NodeConfig,
    pod: Option<&PodMeta>,
    inputs: &Inputs,
) -> Result<(), Error> {
    let cluster = if inputs.cluster_from_pod {
        Source::Pod
    } else {
        Source::Node
    };
    let networks = std::iter::once((&inputs.cluster, cluster))
        .chain(inputs.defaults.iter().map(|n| (n, Source::Node)))
        .chain(inputs.selected.iter().map(|s| (&s.network, Source::Pod)));
    let refused: Vec<String> = networks
        .filter_map(|(n, source)| {
            policy::check(&n.config, source, &node.type_policy)
                .err()
                .map(|why| format!("network {} ({}): {why}", plan::status_name(n), n.source))
        })
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let pod = pod.map_or_else(String::new, |p| format!("pod {}: ", p.key()));
    Err(Error::invalid_config(
        format!("{pod}{}", refused.join("; ")),
        "nothing was run; see docs/security.md for the plugin-type rules",
    ))
}

/// An API failure while resolving a pod's networks, with the pod named (the API's own message
/// names the object it was reading).
pub(crate) fn for_pod(pod: &PodMeta, e: Error) -> Error {
    match e {
        Error::Kubernetes {
            msg,
            details,
            transient,
        } => Error::Kubernetes {
            msg: format!("pod {}: {msg}", pod.key()),
            details,
            transient,
        },
        other => other,
    }
}

/// An earlier record of this attachment: a rollback marker and a DEL marker (the container
/// ID is reused: this ADD's DEL must undo it) are dropped, a crashed ADD is torn down, a completed one means the runtime asks for an interface that exists. True when there
/// was a journal: its removal is not flushed, so the new plan must be flushed whole, directory
/// included, before a delegate runs (a power loss could otherwise bring the old journal back
/// beside the new plan's temp file, which is then not recovered; see [`crate::state`]).
fn clear_leftovers(ctx: &Ctx<'_>, netns: &str) -> Result<bool, Error> {
    let env = ctx.env;
    ctx.state.take_rolled_back(&env.container_id, &env.ifname)?;
    ctx.state.take_deleted(&env.container_id, &env.ifname)?;
    let Some(mut old) = ctx.state.load(&env.container_id, &env.ifname)? else {
        return Ok(false);
    };
    match old.phase {
        Phase::Added => Err(Error::invalid_config(
            format!(
                "container {} already has interface {} from an earlier ADD",
                env.container_id, env.ifname
            ),
            "the runtime must DEL before adding the same interface again",
        )),
        Phase::Adding => {
            tracing::warn!(
                "an earlier ADD or DEL of this attachment did not finish; tearing it down first"
            );
            teardown(ctx, &mut old, Some(netns.to_owned()), true)?;
            ctx.state.remove(&env.container_id, &env.ifname)?;
            Ok(true)
        }
    }
}

fn journal(ctx: &Ctx<'_>, netns: &str, atts: &[Attachment]) -> Result<Journal, Error> {
    let env = ctx.env;
    let cni_args = env.args.for_delegate();
    let attachments = atts
        .iter()
        .map(|a| {
            let config = String::from_utf8(a.config.bytes().to_vec()).map_err(|_| {
                Error::invalid_config(
                    format!("network {}: the config is not UTF-8", a.network),
                    "",
                )
            })?;
            let mut att = state::Attachment::new(
                &a.network,
                &a.ifname,
                config,
                a.runtime_config.clone(),
                &cni_args,
                a.is_default,
            );
            att.device_info_file = a
                .device
                .as_ref()
                .and_then(|d| d.info.as_ref())
                .map(|i| i.copy.clone());
            Ok(att)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Journal::new(
        &env.container_id,
        &env.ifname,
        Some(netns.to_owned()),
        cni_args.clone(),
        ctx.pod_key(),
        attachments,
    ))
}

/// Steps 3 to 6 of the module docs.
fn apply(
    ctx: &Ctx<'_>,
    j: &mut Journal,
    atts: &[Attachment],
    invs: &[Invocation],
    netns: &str,
    pod: Option<(&dyn KubeApi, &PodMeta)>,
) -> Result<Value, Error> {
    let mut results = Vec::with_capacity(atts.len());
    let mut entries_per_att = Vec::with_capacity(atts.len());
    for (i, (att, inv)) in atts.iter().zip(invs).enumerate() {
        // In memory only: a journal read back after a crash in phase `Adding` counts its
        // `Planned` attachments as possibly started anyway, so a write here would buy nothing.
        j.mark(i, AttachmentState::Started, None)?;
        if let Some(info) = att.device.as_ref().and_then(|d| d.info.as_ref()) {
            devinfo::write_copy(info)
                .map_err(|e| Error::io(format!("network {}", att.network), e.msg()))?;
        }
        let res = ctx.chain().add(&att.config, inv)?;
        fault::stop_at_indexed("add", i, ":delegate-done");
        j.mark(i, AttachmentState::Added, Some(res.clone()))?;
        ctx.state.save_progress(j)?;
        fault::stop_at_indexed("add", i, ":recorded");
        let entries = status::entries(&att.network, &res, att.is_default, att.device_info())?;
        entries_per_att.push(entries);
        results.push(res);
    }
    let moved = move_default_route(atts, netns)?;
    if let Some((index, gws)) = &moved {
        fault::stop_at("add:route-moved");
        align_gateways(&mut entries_per_att, *index, gws);
    }
    let entries: Vec<Value> = entries_per_att.into_iter().flatten().collect();
    if let Some((api, pod)) = pod {
        // The Events' sender starts while the status is written (crate::k8s::events).
        api.prepare_events_after_exit();
        status::write(api, pod, &entries).map_err(|e| Error::Kubernetes {
            msg: format!(
                "writing network-status of pod {} failed: {}",
                pod.key(),
                e.msg()
            ),
            details: e.details(),
            transient: e.code().0 == 11,
        })?;
        fault::stop_at("add:status-written");
    }
    j.phase = Phase::Added;
    // Not fsynced either: after a power loss the durable plan (phase `Adding`) makes DEL tear
    // everything down, just without the strict rule.
    ctx.state.save_progress(j)?;
    fault::stop_at("add:done");
    if let Some((api, pod)) = pod {
        // Only now, with every attachment committed: one per interface, as Multus. Handed to
        // the detached sender: nobody waits for them (crate::k8s::events).
        events::added_interfaces(api, pod, &entries);
    }
    let mut cluster = results
        .first()
        .cloned()
        .ok_or_else(|| Error::Internal("ADD planned no attachment".into()))?;
    if let Some((_, gws)) = &moved {
        drop_default_routes(&mut cluster, gws);
    }
    result::convert(&cluster, ctx.node.version).map_err(|e| {
        Error::incompatible(
            format!(
                "the result of network {:?} cannot be returned as a {} result: {}",
                atts[0].network,
                ctx.node.version,
                e.msg()
            ),
            "use a node config cniVersion the cluster network's result can be expressed in",
        )
    })
}

/// Moves the pod's default route to the attachment that asks for it; returns its index and
/// gateways.
fn move_default_route(
    atts: &[Attachment],
    netns: &str,
) -> Result<Option<(usize, Vec<IpAddr>)>, Error> {
    let Some((i, att)) = atts
        .iter()
        .enumerate()
        .find(|(_, a)| !a.default_route.is_empty())
    else {
        return Ok(None);
    };
    for gw in &att.default_route {
        netns::set_default_route(Path::new(netns), &att.ifname, *gw).map_err(|e| {
            Error::invalid_config(
                format!(
                    "network {}: cannot move the pod's default route to {gw} via {}: {}",
                    att.network,
                    att.ifname,
                    e.msg()
                ),
                e.details(),
            )
        })?;
    }
    Ok(Some((i, att.default_route.clone())))
}

fn same_family(a: &IpAddr, b: &IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// Status gateways that agree with the kernel after the default route moved.
fn align_gateways(per_att: &mut [Vec<Value>], moved: usize, gws: &[IpAddr]) {
    for (i, entries) in per_att.iter_mut().enumerate() {
        for (k, entry) in entries.iter_mut().enumerate() {
            let Some(obj) = entry.as_object_mut() else {
                continue;
            };
            let mut kept: Vec<Value> = obj
                .get("gateway")
                .and_then(Value::as_array)
                .map(|g| {
                    g.iter()
                        .filter(|v| {
                            v.as_str()
                                .and_then(|s| s.parse::<IpAddr>().ok())
                                .is_none_or(|ip| !gws.iter().any(|m| same_family(m, &ip)))
                        })
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if i == moved && k == 0 {
                kept.extend(gws.iter().map(|g| Value::String(g.to_string())));
            }
            if kept.is_empty() {
                obj.remove("gateway");
            } else {
                let gw = Value::Array(kept);
                // Keep the reference's key order: gateway goes before device-info.
                let device = obj.remove("device-info");
                obj.insert("gateway".into(), gw);
                if let Some(d) = device {
                    obj.insert("device-info".into(), d);
                }
            }
        }
    }
}

/// Drops the result's default routes of the families that moved elsewhere.
fn drop_default_routes(res: &mut Value, gws: &[IpAddr]) {
    let Some(routes) = res.get_mut("routes").and_then(Value::as_array_mut) else {
        return;
    };
    routes.retain(|r| {
        let dst = r.get("dst").and_then(Value::as_str).unwrap_or("");
        let moved_v4 = dst == "0.0.0.0/0" && gws.iter().any(IpAddr::is_ipv4);
        let moved_v6 = dst == "::/0" && gws.iter().any(IpAddr::is_ipv6);
        !(moved_v4 || moved_v6)
    });
}

/// Undoes a failed ADD: when everything is undone the journal is replaced by a rollback
/// marker; otherwise it keeps what could not be undone, for the runtime's DEL.
fn rollback(ctx: &Ctx<'_>, j: &mut Journal, netns: &str) -> Result<(), Error> {
    match teardown(ctx, j, Some(netns.to_owned()), false) {
        Ok(()) => {
            fault::stop_at("add:rolled-back");
            if let Err(e) = ctx.state.mark_rolled_back(&j.container_id, &j.ifname) {
                tracing::warn!(error = %e, "cannot record the rollback; removing the journal");
                let _ = ctx.state.remove(&j.container_id, &j.ifname);
            }
            fault::stop_at("add:marked");
            Ok(())
        }
        Err(e) => {
            tracing::error!(
                error = %e,
                "rollback left attachments behind; they stay in the journal for the runtime's DEL"
            );
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateways_follow_the_moved_default_route() {
        let mut per = vec![
            vec![json!({"name":"c","interface":"eth0","dns":{},"gateway":["10.0.0.1","fd00::1"]})],
            vec![json!({"name":"n","interface":"net1","dns":{},"device-info":{"type":"pci"}})],
        ];
        align_gateways(&mut per, 1, &["10.9.0.1".parse().unwrap()]);
        assert_eq!(
            per[0][0],
            json!({"name":"c","interface":"eth0","dns":{},"gateway":["fd00::1"]})
        );
        assert_eq!(
            per[1][0],
            json!({"name":"n","interface":"net1","dns":{},"gateway":["10.9.0.1"],"device-info":{"type":"pci"}})
        );
        let keys: Vec<&String> = per[1][0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "interface", "dns", "gateway", "device-info"]);
    }

    #[test]
    fn result_drops_moved_default_routes_only() {
        let mut r = json!({"routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"},{"dst":"::/0"},{"dst":"10.1.0.0/16"}]});
        drop_default_routes(&mut r, &["10.9.0.1".parse().unwrap()]);
        assert_eq!(r, json!({"routes":[{"dst":"::/0"},{"dst":"10.1.0.0/16"}]}));
    }
}
