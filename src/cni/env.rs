//! The CNI_* environment: which variables each command needs, their validation, CNI_ARGS.
//!
//! Parsing takes a lookup function instead of reading the process environment, so every rule
//! is unit-tested without touching the real environment.
//!
//! Rules (CNI spec 1.1 and libcni's skel, which runtimes are tested against):
//! - `CNI_COMMAND` is always required; ADD and CHECK need every variable but `CNI_ARGS`;
//!   DEL may lack `CNI_NETNS` (the namespace may already be gone); STATUS and GC only need
//!   `CNI_PATH`; VERSION needs nothing else. All missing variables are reported at once:
//!   `required env variables [CNI_NETNS,CNI_IFNAME] missing` (code 4).
//! - An unknown command is `unknown CNI_COMMAND: X` (code 4).
//! - For ADD, CHECK and DEL the container ID must match `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` and the
//!   interface name must be a valid Linux name (1–15 bytes, not `.`/`..`, no `/`, `:` or
//!   whitespace); both are code 4.
//! - `CNI_ARGS` is `K=V;K=V`. plexus knows `IgnoreUnknown` and the `K8S_POD_*` keys; any other
//!   key is refused unless `IgnoreUnknown` is true (`1`/`true`), which every Kubernetes
//!   runtime sends.

use std::path::PathBuf;

use super::error::Error;

/// A CNI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    /// Parses the `CNI_COMMAND` value (exact, upper case, as the spec writes it).
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// Whether this command concerns one container attachment (and so needs a container ID
    /// and an interface name).
    pub fn is_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The variables in the order libcni's skel reports them.
const VARS: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

fn required(var: &str, cmd: Option<Command>) -> bool {
    use Command::*;
    match var {
        "CNI_COMMAND" => true,
        "CNI_CONTAINERID" | "CNI_IFNAME" => matches!(cmd, Some(Add | Check | Del)),
        "CNI_NETNS" => matches!(cmd, Some(Add | Check)),
        "CNI_PATH" => matches!(cmd, Some(Add | Check | Del | Status | Gc)),
        _ => false,
    }
}

/// The keys of CNI_ARGS plexus itself understands.
pub const KNOWN_ARGS: [&str; 5] = [
    "IgnoreUnknown",
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// Parsed `CNI_ARGS`, order kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Parses `K=V;K2=V2`. Empty segments are skipped; a segment without `=` or with an empty
    /// key is refused; unknown keys are refused unless `IgnoreUnknown` is true.
    pub fn parse(s: &str) -> Result<CniArgs, Error> {
        let mut pairs = Vec::new();
        for seg in s.split(';') {
            if seg.is_empty() {
                continue;
            }
            match seg.split_once('=') {
                Some((k, v)) if !k.is_empty() => pairs.push((k.to_owned(), v.to_owned())),
                _ => {
                    return Err(Error::invalid_env(
                        format!("CNI_ARGS: invalid pair {seg:?}"),
                        "CNI_ARGS must be KEY=VALUE pairs separated by ';'",
                    ));
                }
            }
        }
        let args = CniArgs { pairs };
        let ignore = match args.get("IgnoreUnknown") {
            None => false,
            Some(v) if v == "1" || v.eq_ignore_ascii_case("true") => true,
            Some(v) if v == "0" || v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(Error::invalid_env(
                    format!("CNI_ARGS: IgnoreUnknown={v:?} is not a boolean"),
                    "use IgnoreUnknown=true or IgnoreUnknown=1",
                ));
            }
        };
        if !ignore {
            if let Some((k, _)) = args
                .pairs
                .iter()
                .find(|(k, _)| !KNOWN_ARGS.contains(&k.as_str()))
            {
                return Err(Error::invalid_env(
                    format!("CNI_ARGS: unknown key {k:?}"),
                    "plexus knows IgnoreUnknown and K8S_POD_*; add IgnoreUnknown=true to pass other keys",
                ));
            }
        }
        Ok(args)
    }

    /// The value of `key`, the last one if it appears twice.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs in their original order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The CNI_ARGS a delegate gets: `IgnoreUnknown=true` first (delegates reject keys they do
    /// not know without it), then every pair the runtime sent (K8S_POD_* included) in order,
    /// except the runtime's own `IgnoreUnknown`.
    pub fn for_delegate(&self) -> String {
        let mut out = String::from("IgnoreUnknown=true");
        for (k, v) in self.pairs.iter().filter(|(k, _)| k != "IgnoreUnknown") {
            out.push(';');
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }
}

/// The validated CNI environment of one plexus run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    /// Empty for STATUS, GC and VERSION when the runtime does not send one.
    pub container_id: String,
    /// `None` when absent (DEL after the namespace is gone, STATUS, GC).
    pub netns: Option<String>,
    /// Empty for STATUS, GC and VERSION when the runtime does not send one.
    pub ifname: String,
    pub args: CniArgs,
    /// `CNI_PATH` split on `:`, empty entries dropped.
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Reads and validates the environment through `get` (which returns `None` for unset).
    /// An empty value counts as unset, as in libcni.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Env, Error> {
        let val = |k: &str| get(k).filter(|v| !v.is_empty());
        let cmd_text = val("CNI_COMMAND");
        let cmd = cmd_text.as_deref().and_then(Command::parse);
        let missing: Vec<&'static str> = VARS
            .iter()
            .copied()
            .filter(|v| required(v, cmd) && val(v).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingEnv(missing));
        }
        let command = match (cmd, cmd_text) {
            (Some(c), _) => c,
            (None, text) => return Err(Error::UnknownCommand(text.unwrap_or_default())),
        };
        let container_id = val("CNI_CONTAINERID").unwrap_or_default();
        let ifname = val("CNI_IFNAME").unwrap_or_default();
        if command.is_attachment() {
            validate_container_id(&container_id)?;
            validate_ifname(&ifname)?;
        }
        let args = match command {
            // VERSION touches nothing: not even CNI_ARGS can make it fail.
            Command::Version => CniArgs::default(),
            _ => CniArgs::parse(&val("CNI_ARGS").unwrap_or_default())?,
        };
        let path = val("CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Env {
            command,
            container_id,
            netns: val("CNI_NETNS"),
            ifname,
            args,
            path,
        })
    }
}

/// Validates a container ID: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub fn validate_container_id(id: &str) -> Result<(), Error> {
    let mut chars = id.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_env("invalid characters in containerID", id))
    }
}

/// Maximum length of a Linux interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Validates a Linux interface name (the kernel's `dev_valid_name` rules).
pub fn validate_ifname(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::invalid_env("interface name is empty", ""));
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(Error::invalid_env(
            "interface name is too long",
            format!(
                "interface name {name:?} is {} bytes; at most {MAX_IFNAME_LEN} are allowed",
                name.len()
            ),
        ));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid_env("interface name is . or ..", name));
    }
    // The kernel tests each byte with its `isspace`, which also counts 0xA0 (a byte inside
    // UTF-8 characters such as "à"); a NUL would end the name early, other control bytes have
    // no place in it either.
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
        || name.bytes().any(|b| b.is_ascii_control() || b == 0xA0)
    {
        return Err(Error::invalid_env(
            "interface name contains / or : or whitespace characters",
            name,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::error::Code;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Env, Error> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_lookup(|k| map.get(k).cloned())
    }

    const FULL: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
    ];

    fn with(over: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| !over.iter().any(|(o, _)| o == k))
            .collect();
        v.extend(over.iter().copied().filter(|(_, val)| !val.is_empty()));
        v
    }

    #[test]
    fn full_add_env_parses() {
        let e = env(&FULL).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(
            e.path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        assert_eq!(e.netns.as_deref(), Some("/run/netns/x"));
    }

    #[test]
    fn all_missing_named_together_in_skel_order() {
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "a")]).unwrap_err();
        assert_eq!(
            e.msg(),
            "required env variables [CNI_NETNS,CNI_IFNAME,CNI_PATH] missing"
        );
        assert_eq!(e.code(), Code::INVALID_ENV);
        let e = env(&[]).unwrap_err();
        assert_eq!(e.msg(), "required env variables [CNI_COMMAND] missing");
    }

    #[test]
    fn del_without_netns_is_fine_status_and_gc_need_only_path() {
        let e = env(&with(&[("CNI_COMMAND", "DEL"), ("CNI_NETNS", "")])).unwrap();
        assert_eq!(e.netns, None);
        assert!(env(&[("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/x")]).is_ok());
        assert_eq!(
            env(&[("CNI_COMMAND", "GC")]).unwrap_err().msg(),
            "required env variables [CNI_PATH] missing"
        );
        assert!(env(&[("CNI_COMMAND", "VERSION")]).is_ok());
    }

    #[test]
    fn unknown_command() {
        let e = env(&[("CNI_COMMAND", "FROB")]).unwrap_err();
        assert_eq!(e.msg(), "unknown CNI_COMMAND: FROB");
        assert_eq!(e.code(), Code::INVALID_ENV);
    }

    #[test]
    fn ifname_rules() {
        for (name, msg) in [
            ("abcdefghijklmnop", "interface name is too long"),
            (".", "interface name is . or .."),
            ("..", "interface name is . or .."),
            (
                "a/b",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "a:b",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "a b",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "e\0",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "e\x1b[0m",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "voil\u{e0}",
                "interface name contains / or : or whitespace characters",
            ),
        ] {
            let e = validate_ifname(name).unwrap_err();
            assert_eq!(
                (e.msg().as_str(), e.code()),
                (msg, Code::INVALID_ENV),
                "{name}"
            );
        }
        assert!(validate_ifname("abcdefghijklmno").is_ok());
        // Other UTF-8 is the kernel's business as long as no byte is 0xA0.
        assert!(validate_ifname("n\u{e9}t1").is_ok());
    }

    #[test]
    fn container_id_rules() {
        let e = env(&with(&[("CNI_CONTAINERID", "-abc")])).unwrap_err();
        assert_eq!(e.msg(), "invalid characters in containerID");
        assert_eq!(e.details(), "-abc");
        assert!(validate_container_id("a-b_c.9").is_ok());
        assert!(validate_container_id("a/b").is_err());
        assert!(validate_container_id("é").is_err());
    }

    #[test]
    fn cni_args_known_unknown_and_delegate_form() {
        let a = CniArgs::parse("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p").unwrap();
        assert_eq!(a.get("K8S_POD_NAME"), Some("p"));
        assert_eq!(
            a.for_delegate(),
            "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p"
        );
        let e = CniArgs::parse("FOO=1").unwrap_err();
        assert_eq!(e.code(), Code::INVALID_ENV);
        assert!(e.msg().contains("FOO"));
        let a = CniArgs::parse("IgnoreUnknown=1;FOO=1;K8S_POD_UID=u;").unwrap();
        assert_eq!(a.for_delegate(), "IgnoreUnknown=true;FOO=1;K8S_POD_UID=u");
        assert!(CniArgs::parse("IgnoreUnknown=maybe").is_err());
        assert!(CniArgs::parse("novalue").is_err());
        assert!(CniArgs::parse("=v").is_err());
        assert_eq!(
            CniArgs::parse("A=b=c;IgnoreUnknown=true").unwrap().get("A"),
            Some("b=c")
        );
    }
}
