//! plexus: a CNI meta-plugin for Kubernetes.
//!
//! The architecture, one room per concern, data flowing downwards:
//! - [`plugin`]: what the `plexus` binary does for one CNI call (validate, dispatch, answer);
//! - [`node`]: the node config (Multus-compatible keys) and the node's networks;
//! - [`k8s`]: the Kubernetes side (annotations, NADs, pod, network-status, Events);
//! - [`perms`]: who may read and change the journals and the API credentials;
//! - [`state`]: the per-attachment journal that lets DEL undo everything (atomic writes, locks);
//! - [`delegate`]: running other plugins (safe lookup, one process, conflist semantics);
//! - [`devices`]: SR-IOV and other devices (kubelet PodResources, device-information files);
//! - [`netns`]: inside a pod's network namespace (its interfaces, its default route), each
//!   call on a thread of its own;
//! - [`cni`]: the protocol (env, config, results, versions, errors), no side effects;
//! - [`log`]: tracing to stderr or the log file, never stdout;
//! - [`fault`]: named stop points for the crash tests (debug builds only);
//! - [`txn`]: what a CNI command does for a pod (plan, journal, apply, undo);
//! - [`install`]: `plexus install`, not a CNI command: what a DaemonSet pod runs to put the
//!   binary, a kubeconfig and the node config on its node and keep them current;
//! - [`commands`]: `plexus explain`, `plexus doctor`, `plexus ls`: read-only answers for the
//!   node's operator (the plan ADD would run, what is wrong with the node, what the journal
//!   holds).

pub mod cni;
pub mod commands;
pub mod delegate;
pub mod devices;
pub mod fault;
pub mod install;
pub mod k8s;
pub mod log;
pub mod netns;
pub mod node;
pub mod perms;
pub mod plugin;
pub mod state;
pub mod txn;
