//! What a CNI command does for a pod: plan, then apply with a journal, and undo.
//!
//! - [`plan`]: every attachment decided before anything is attached (pure).

pub mod plan;
