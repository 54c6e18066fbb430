//! The one error type of plexus and its CNI wire form.
//!
//! Every failure in plexus is an [`Error`]. Each variant knows its CNI error code
//! ([`Error::code`]), its short message ([`Error::msg`]) and its details
//! ([`Error::details`]); [`Error::to_json`] renders the document a runtime reads from stdout:
//! `{"cniVersion":"…","code":N,"msg":"…","details":"…"}`.
//!
//! Messages are written for the operator reading `kubectl describe pod`: they name the
//! network, the delegate plugin and the cause.

use std::fmt;

/// The reserved CNI error codes (CNI spec, "Error" section) plus the Go convention 999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code(pub u32);

impl Code {
    /// 1: incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: Code = Code(1);
    /// 2: unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: Code = Code(2);
    /// 3: container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: Code = Code(3);
    /// 4: invalid necessary environment variables.
    pub const INVALID_ENV: Code = Code(4);
    /// 5: I/O failure.
    pub const IO: Code = Code(5);
    /// 6: failed to decode content.
    pub const DECODE: Code = Code(6);
    /// 7: invalid network config.
    pub const INVALID_CONFIG: Code = Code(7);
    /// 11: try again later.
    pub const TRY_AGAIN_LATER: Code = Code(11);
    /// 50: STATUS, the plugin is not available.
    pub const NOT_AVAILABLE: Code = Code(50);
    /// 51: STATUS, not available and limited connectivity.
    pub const NOT_AVAILABLE_LIMITED: Code = Code(51);
    /// 999: internal error (Go convention, used by libcni and the reference plugins).
    pub const INTERNAL: Code = Code(999);
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a delegate plugin run failed. Carried inside [`Error::Delegate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DelegateFailure {
    /// The plugin printed a CNI error document; its code and texts are kept.
    Reported {
        code: Code,
        msg: String,
        details: String,
    },
    /// The plugin exited non-zero without printing anything on stdout.
    SilentExit { status: i32, stderr: String },
    /// The plugin was killed by a signal (not by plexus's timeout).
    Signaled { signal: i32, stderr: String },
    /// The plugin printed something that is neither a result nor a CNI error.
    Garbage {
        exit: Option<i32>,
        output: String,
        cause: String,
    },
    /// The plugin did not finish within the timeout; its process group was killed.
    Timeout { after: std::time::Duration },
    /// No executable of that name in binDir or CNI_PATH.
    NotFound { searched: Vec<String> },
    /// The `type` would build a path outside the plugin directories.
    UnsafeType,
    /// The executable found for the type is not one plexus may run: it resolves (through
    /// symlinks) outside every plugin directory, or someone other than root or plexus's user
    /// could change it.
    Untrusted { path: String, reason: String },
    /// The network may not run this plugin: a meta-plugin (plexus itself, Multus), or a type
    /// the node's policy does not allow for networks a pod selects
    /// ([`crate::delegate::policy`]). Nothing was run.
    Refused { reason: String },
    /// The plugin succeeded but its result is not acceptable (an invalid interface name or
    /// MAC, too many entries, not the interface it was asked for): see
    /// [`crate::cni::result::validate`]. Its ADD is rolled back like a failure.
    BadResult { cause: String },
    /// The plugin could not be started at all (permissions, ENOEXEC, text file busy…).
    Spawn { cause: String },
    /// Reading or writing its pipes failed.
    Io { cause: String },
}

/// A failed delegate run: which plugin, for which network, doing what, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegateError {
    /// The plugin `type`.
    pub plugin: String,
    /// The network the config serves (e.g. `default/macvlan-a`).
    pub network: String,
    /// The CNI command that was run.
    pub command: String,
    pub failure: DelegateFailure,
}

/// Everything that can go wrong in plexus. One enum, one mapping to CNI codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Required CNI_* variables are absent; all of them are named at once.
    #[error("required env variables [{}] missing", .0.join(","))]
    MissingEnv(Vec<&'static str>),
    /// CNI_COMMAND names no command plexus knows.
    #[error("unknown CNI_COMMAND: {0}")]
    UnknownCommand(String),
    /// A CNI_* variable is present but malformed (container ID, interface name, CNI_ARGS).
    #[error("{msg}")]
    InvalidEnv { msg: String, details: String },
    /// Content could not be decoded (stdin, a plugin result, a file).
    #[error("{msg}")]
    Decode { msg: String, details: String },
    /// The network configuration is invalid.
    #[error("{msg}")]
    InvalidConfig { msg: String, details: String },
    /// The configuration or result version is not one that allows the operation.
    #[error("{msg}")]
    IncompatibleVersion { msg: String, details: String },
    /// A result cannot be expressed in the requested version (`cannot convert: …`).
    #[error("{0}")]
    Conversion(String),
    /// An I/O operation of plexus itself failed.
    #[error("{context}: {cause}")]
    Io { context: String, cause: String },
    /// A delegate plugin failed; names the plugin and the network it served. Boxed: errors
    /// are the cold path and the `Result`s of the hot path stay small.
    #[error("{}", delegate_msg(.0))]
    Delegate(Box<DelegateError>),
    /// The Kubernetes API failed or refused a request. `transient` failures (unreachable,
    /// timeouts, 429, 5xx) are code 11, "try again later"; the others (401, 403, 404, bad
    /// answers) are code 5.
    #[error("{msg}")]
    Kubernetes {
        msg: String,
        details: String,
        transient: bool,
    },
    /// The container or attachment is unknown to plexus (code 3), e.g. CHECK without an ADD.
    #[error("{msg}")]
    UnknownContainer { msg: String, details: String },
    /// STATUS: plexus cannot take ADDs now (code 50).
    #[error("{msg}")]
    Unavailable { msg: String, details: String },
    /// A bug or an unexpected state inside plexus.
    #[error("{0}")]
    Internal(String),
}

fn delegate_msg(d: &DelegateError) -> String {
    let (plugin, network, command, f) = (&d.plugin, &d.network, &d.command, &d.failure);
    let who = format!("delegate plugin {plugin:?} for network {network:?} ({command})");
    match f {
        DelegateFailure::Reported { msg, .. } => format!("{who} failed: {msg}"),
        DelegateFailure::SilentExit { status, .. } => {
            format!("{who} exited with status {status} and printed no error")
        }
        DelegateFailure::Signaled { signal, .. } => {
            format!(
                "{who} was killed by signal {signal} ({})",
                signal_name(*signal)
            )
        }
        DelegateFailure::Garbage { .. } => {
            format!("{who} printed output that is neither a CNI result nor a CNI error")
        }
        DelegateFailure::Timeout { after } => format!(
            "{who} did not finish within {:.1}s and was killed with its process group",
            after.as_secs_f64()
        ),
        DelegateFailure::NotFound { .. } => {
            format!("{who} not found: no executable named {plugin:?} in the plugin directories")
        }
        DelegateFailure::UnsafeType => format!(
            "{who} refused: a plugin type must be a bare file name (not empty, no '/', no NUL, not '.' or '..')"
        ),
        DelegateFailure::Untrusted { path, reason } => {
            format!("{who} refused: {path} {reason}")
        }
        DelegateFailure::Refused { reason } => format!("{who} refused: {reason}"),
        DelegateFailure::BadResult { cause } => {
            format!("{who} returned a result plexus does not accept: {cause}")
        }
        DelegateFailure::Spawn { cause } => format!("{who} could not be started: {cause}"),
        DelegateFailure::Io { cause } => format!("{who}: I/O error talking to the plugin: {cause}"),
    }
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| "unknown signal".to_owned())
}

/// Stderr is kept in error details only up to this many bytes (the end of it: the cause is last).
const STDERR_TAIL: usize = 2048;

fn tail(s: &str) -> &str {
    if s.len() <= STDERR_TAIL {
        return s;
    }
    let mut start = s.len() - STDERR_TAIL;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

impl Error {
    /// Shorthand for [`Error::InvalidEnv`].
    pub fn invalid_env(msg: impl Into<String>, details: impl Into<String>) -> Self {
        Error::InvalidEnv {
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// Shorthand for [`Error::Decode`].
    pub fn decode(msg: impl Into<String>, details: impl Into<String>) -> Self {
        Error::Decode {
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// Shorthand for [`Error::InvalidConfig`].
    pub fn invalid_config(msg: impl Into<String>, details: impl Into<String>) -> Self {
        Error::InvalidConfig {
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// Shorthand for [`Error::IncompatibleVersion`].
    pub fn incompatible(msg: impl Into<String>, details: impl Into<String>) -> Self {
        Error::IncompatibleVersion {
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(context: impl Into<String>, cause: impl fmt::Display) -> Self {
        Error::Io {
            context: context.into(),
            cause: cause.to_string(),
        }
    }

    /// The CNI error code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            Error::MissingEnv(_) | Error::UnknownCommand(_) | Error::InvalidEnv { .. } => {
                Code::INVALID_ENV
            }
            Error::Decode { .. } => Code::DECODE,
            Error::InvalidConfig { .. } => Code::INVALID_CONFIG,
            Error::IncompatibleVersion { .. } => Code::INCOMPATIBLE_VERSION,
            Error::Conversion(_) => Code::INCOMPATIBLE_VERSION,
            Error::Io { .. } => Code::IO,
            Error::Internal(_) => Code::INTERNAL,
            Error::UnknownContainer { .. } => Code::UNKNOWN_CONTAINER,
            Error::Unavailable { .. } => Code::NOT_AVAILABLE,
            Error::Kubernetes { transient, .. } => {
                if *transient {
                    Code::TRY_AGAIN_LATER
                } else {
                    Code::IO
                }
            }
            Error::Delegate(d) => match &d.failure {
                // A delegate's own code is kept, so "try again later" (11) and friends reach
                // the runtime unchanged.
                // ... except 0, which is no error code: such a document is a broken plugin's.
                DelegateFailure::Reported { code, .. } if code.0 != 0 => *code,
                DelegateFailure::Reported { .. } => Code::INTERNAL,
                DelegateFailure::Garbage { .. } => Code::DECODE,
                DelegateFailure::Timeout { .. } => Code::TRY_AGAIN_LATER,
                DelegateFailure::NotFound { .. }
                | DelegateFailure::UnsafeType
                | DelegateFailure::Untrusted { .. }
                | DelegateFailure::Refused { .. } => Code::INVALID_CONFIG,
                DelegateFailure::BadResult { .. } => Code::DECODE,
                DelegateFailure::Spawn { .. } | DelegateFailure::Io { .. } => Code::IO,
                DelegateFailure::SilentExit { .. } | DelegateFailure::Signaled { .. } => {
                    Code::INTERNAL
                }
            },
        }
    }

    /// The `msg` field of the CNI error document.
    pub fn msg(&self) -> String {
        self.to_string()
    }

    /// The `details` field of the CNI error document (may be empty).
    pub fn details(&self) -> String {
        match self {
            Error::InvalidEnv { details, .. }
            | Error::Decode { details, .. }
            | Error::InvalidConfig { details, .. }
            | Error::IncompatibleVersion { details, .. }
            | Error::Kubernetes { details, .. }
            | Error::UnknownContainer { details, .. }
            | Error::Unavailable { details, .. } => details.clone(),
            Error::Delegate(d) => match &d.failure {
                DelegateFailure::Reported { details, .. } => details.clone(),
                DelegateFailure::SilentExit { stderr, .. }
                | DelegateFailure::Signaled { stderr, .. } => {
                    if stderr.trim().is_empty() {
                        "the plugin wrote nothing on stderr".to_owned()
                    } else {
                        format!("plugin stderr: {}", tail(stderr.trim()))
                    }
                }
                DelegateFailure::Garbage {
                    exit,
                    output,
                    cause,
                } => {
                    let exit = exit.map_or("killed".to_owned(), |c| c.to_string());
                    let shown: String = output.chars().take(512).collect();
                    format!("exit status {exit}; {cause}; stdout was: {shown:?}")
                }
                DelegateFailure::NotFound { searched } => {
                    format!("searched: {}", searched.join(":"))
                }
                _ => String::new(),
            },
            _ => String::new(),
        }
    }

    /// The CNI error document for this error, in the given `cniVersion`.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        let mut doc = serde_json::Map::new();
        doc.insert("cniVersion".into(), cni_version.into());
        doc.insert("code".into(), self.code().0.into());
        doc.insert("msg".into(), self.msg().into());
        let details = self.details();
        if !details.is_empty() {
            doc.insert("details".into(), details.into());
        }
        serde_json::Value::Object(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_env_names_all_variables() {
        let e = Error::MissingEnv(vec!["CNI_NETNS", "CNI_IFNAME"]);
        assert_eq!(e.code(), Code::INVALID_ENV);
        assert_eq!(
            e.msg(),
            "required env variables [CNI_NETNS,CNI_IFNAME] missing"
        );
        assert_eq!(
            e.to_json("1.1.0").to_string(),
            r#"{"cniVersion":"1.1.0","code":4,"msg":"required env variables [CNI_NETNS,CNI_IFNAME] missing"}"#
        );
    }

    #[test]
    fn delegate_errors_name_plugin_and_network_and_keep_reported_code() {
        let e = Error::Delegate(Box::new(DelegateError {
            plugin: "macvlan".into(),
            network: "default/macvlan-a".into(),
            command: "ADD".into(),
            failure: DelegateFailure::Reported {
                code: Code(11),
                msg: "busy".into(),
                details: "d".into(),
            },
        }));
        assert_eq!(e.code(), Code::TRY_AGAIN_LATER);
        assert_eq!(
            e.msg(),
            r#"delegate plugin "macvlan" for network "default/macvlan-a" (ADD) failed: busy"#
        );
        assert_eq!(e.details(), "d");
    }

    #[test]
    fn stderr_tail_keeps_the_end_on_a_char_boundary() {
        let long = format!("{}é{}", "x".repeat(3000), "cause");
        let t = tail(&long);
        assert!(t.len() <= STDERR_TAIL);
        assert!(t.ends_with("cause"));
    }

    #[test]
    fn signal_death_names_the_signal() {
        let e = Error::Delegate(Box::new(DelegateError {
            plugin: "p".into(),
            network: "n".into(),
            command: "DEL".into(),
            failure: DelegateFailure::Signaled {
                signal: 9,
                stderr: String::new(),
            },
        }));
        assert!(e.msg().contains("signal 9 (SIGKILL)"), "{}", e.msg());
        assert_eq!(e.code(), Code::INTERNAL);
    }
}
