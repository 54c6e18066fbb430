//! plexus: a CNI meta-plugin for Kubernetes.
//!
//! The architecture, one room per concern, data flowing downwards:
//! - [`plugin`]: what the `plexus` binary does for one CNI call (validate, dispatch, answer);
//! - [`node`]: the node config (Multus-compatible keys);
//! - [`delegate`]: running other plugins (safe lookup, one process, conflist semantics);
//! - [`cni`]: the protocol (env, config, results, versions, errors), no side effects;
//! - [`log`]: tracing to stderr or the log file, never stdout.

pub mod cni;
pub mod delegate;
pub mod k8s;
pub mod log;
pub mod node;
pub mod plugin;
