//! The CNI protocol: environment, configuration, results, versions and errors.
//!
//! Nothing in here has side effects beyond parsing and rendering JSON.

pub mod config;
pub mod env;
pub mod error;
pub mod result;
pub mod version;

pub use config::{NetworkConfig, PluginConf};
pub use env::{CniArgs, Command, Env};
pub use error::{Code, DelegateError, DelegateFailure, Error};
pub use version::Version;
