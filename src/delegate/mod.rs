//! Running other CNI plugins: finding them safely, running one process, running a config.
//!
//! - [`find`]: lookup of a plugin binary by `type` in binDir then CNI_PATH.
//! - [`exec`]: one process with env, stdin, timeout and process-group kill (the seam).
//! - [`chain`]: conflist semantics on top: injections, prevResult, capabilities, order.

pub mod chain;
pub mod exec;
pub mod find;

pub use chain::{Chain, Invocation};
pub use exec::{Exec, ExecRequest, Output, ProcessExec, Termination};
