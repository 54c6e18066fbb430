//! Running other CNI plugins: finding them safely, running one process, running a config.
//!
//! - [`find`]: lookup of a plugin binary by `type` in binDir then CNI_PATH.
//! - [`exec`]: one process with env, stdin, timeout and process-group kill (the seam).
//! - [`ahead`]: the real seam as plexus runs it: the next plugin started while one runs.
//! - [`chain`]: conflist semantics on top: injections, prevResult, capabilities, order.
//! - [`orphans`]: the delegates a killed plexus left running, recorded and stopped.
//! - [`policy`]: which plugins a network may make plexus run (no meta-plugin, the node's
//!   policy for the networks pods select).

pub mod ahead;
pub mod chain;
pub mod exec;
pub mod find;
pub mod orphans;
pub mod policy;

pub use ahead::Ahead;
pub use chain::{Chain, Invocation};
pub use exec::{
    Exec, ExecRequest, Gate, Launch, OnStart, Output, ProcessExec, StartAhead, Termination,
};
