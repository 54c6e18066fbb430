//! The flags of `plexus install`, parsed by hand (no argument-parsing crate: the same binary
//! is exec'd for every CNI call, so its size and start-up time matter more than a fancy CLI).
//!
//! `--flag value` and `--flag=value` are both accepted; a flag given twice, an unknown flag, a
//! missing value or a relative path is a usage error (exit status 2) with one line saying
//! which. The flags that end in node config keys are checked here for their form and then,
//! with the whole generated config, by plexus's own node config parser.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::Error;
use super::kubeconfig;
use super::nodeconf::Extras;

/// Default `--cni-bin-dir`: the host's `/opt/cni/bin` mounted into the installer's pod.
pub const DEFAULT_CNI_BIN_DIR: &str = "/host/opt/cni/bin";
/// Default `--cni-conf-dir`: the host's `/etc/cni/net.d` mounted into the installer's pod.
pub const DEFAULT_CNI_CONF_DIR: &str = "/host/etc/cni/net.d";
/// Default `--host-cni-conf-dir`: the same directory as the host sees it.
pub const DEFAULT_HOST_CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// Default `--service-account-dir`: where Kubernetes mounts the pod's service account.
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Default `--binary`: the running executable.
pub const DEFAULT_BINARY: &str = "/proc/self/exe";
/// Default `--poll-interval`.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// Longest `--poll-interval`.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(3600);

/// The usage text of `plexus install --help`.
pub const USAGE: &str = "\
Usage: plexus install [flags]

Installs plexus on this node, from a DaemonSet pod with the host's CNI directories mounted:
copies this binary to <cni-bin-dir>/plexus, writes a kubeconfig for the pod's service account
to <cni-conf-dir>/plexus.d/, and generates <cni-conf-dir>/00-plexus.conflist from the host's
default CNI config (the lexically first *.conf, *.conflist or *.json there that is not
plexus's own), with that file as plexus's clusterNetwork. Then keeps watching and regenerates
when the default config, the token or the CA change, until SIGTERM (exit 0).

Paths:
  --cni-bin-dir DIR             host's CNI plugin dir as mounted here [/host/opt/cni/bin]
  --cni-conf-dir DIR            host's CNI config dir as mounted here [/host/etc/cni/net.d]
  --host-cni-conf-dir DIR       the same dir as the host sees it [/etc/cni/net.d]
  --binary FILE                 the binary to install [/proc/self/exe]
  --service-account-dir DIR     token and ca.crt to copy
                                [/var/run/secrets/kubernetes.io/serviceaccount]

API access:
  --kubernetes-server URL       API server for plexus on the host
                                [https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT]
  --no-kubeconfig               write no kubeconfig; plexus then reads no pod annotations

Node config keys (written only when given):
  --bin-dir DIR                 binDir: where plexus finds delegate plugins
  --cni-dir DIR                 cniDir: plexus's journal directory
  --conf-dir DIR                confDir: configs of NADs without spec.config
  --log-level LEVEL             logLevel: error, warn, info, verbose, debug, trace
  --log-file FILE               logFile
  --readiness-indicator-file F  readinessindicatorfile: ADD waits for this file
  --default-networks A,B        defaultNetworks: networks every pod gets
  --namespace-isolation         namespaceIsolation: pods use NADs of their namespace only
  --global-namespaces A,B       globalNamespaces: NADs usable from every namespace
  --system-namespaces A,B       systemNamespaces: namespaces without defaultNetworks
  --multus-namespace NS         multusNamespace: namespace of clusterNetwork/defaultNetworks NADs
  --allowed-plugin-types A,B    allowedPluginTypes: the only plugin types networks pods
                                select may use (see docs/security.md)
  --denied-plugin-types A,B     deniedPluginTypes: plugin types they may not use

Behaviour:
  --once                        one pass, then exit (non-zero if the default config is
                                missing or refused); for an init container
  --poll-interval SECONDS       rescan at least this often besides inotify [10]
  -h, --help                    this text
";

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Print [`USAGE`].
    Help,
    /// Install with these options.
    Run(Box<Options>),
}

/// The installer's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub cni_bin_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub host_cni_conf_dir: PathBuf,
    pub binary: PathBuf,
    pub service_account_dir: PathBuf,
    /// The API server for the kubeconfig; `None` with `--no-kubeconfig`.
    pub kubernetes_server: Option<String>,
    pub once: bool,
    pub poll_interval: Duration,
    /// Node config keys from flags.
    pub extras: Extras,
}

/// A flag's kind: where its value goes.
#[derive(Clone, Copy)]
enum Kind {
    Path(fn(&mut Options) -> &mut PathBuf),
    Server,
    NoKubeconfig,
    Once,
    PollInterval,
    /// A node config key with a string value (`abs`: must be an absolute path).
    Key(&'static str, bool),
    /// A node config key with a list value, given comma-separated.
    ListKey(&'static str),
    /// A node config key set to `true`.
    TrueKey(&'static str),
    LogLevel,
}

const FLAGS: &[(&str, Kind)] = &[
    ("cni-bin-dir", Kind::Path(|o| &mut o.cni_bin_dir)),
    ("cni-conf-dir", Kind::Path(|o| &mut o.cni_conf_dir)),
    (
        "host-cni-conf-dir",
        Kind::Path(|o| &mut o.host_cni_conf_dir),
    ),
    ("binary", Kind::Path(|o| &mut o.binary)),
    (
        "service-account-dir",
        Kind::Path(|o| &mut o.service_account_dir),
    ),
    ("kubernetes-server", Kind::Server),
    ("no-kubeconfig", Kind::NoKubeconfig),
    ("once", Kind::Once),
    ("poll-interval", Kind::PollInterval),
    ("bin-dir", Kind::Key("binDir", true)),
    ("cni-dir", Kind::Key("cniDir", true)),
    ("conf-dir", Kind::Key("confDir", true)),
    ("log-level", Kind::LogLevel),
    ("log-file", Kind::Key("logFile", true)),
    (
        "readiness-indicator-file",
        Kind::Key("readinessindicatorfile", true),
    ),
    ("default-networks", Kind::ListKey("defaultNetworks")),
    ("namespace-isolation", Kind::TrueKey("namespaceIsolation")),
    ("global-namespaces", Kind::ListKey("globalNamespaces")),
    ("system-namespaces", Kind::ListKey("systemNamespaces")),
    ("multus-namespace", Kind::Key("multusNamespace", false)),
    ("allowed-plugin-types", Kind::ListKey("allowedPluginTypes")),
    ("denied-plugin-types", Kind::ListKey("deniedPluginTypes")),
];

fn takes_value(kind: Kind) -> bool {
    !matches!(kind, Kind::NoKubeconfig | Kind::Once | Kind::TrueKey(_))
}

/// Parses the arguments after `install`; `env` looks up environment variables (the API
/// server's address comes from `KUBERNETES_SERVICE_HOST`/`_PORT` unless a flag gives it).
pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Parsed, Error> {
    let mut o = Options {
        cni_bin_dir: DEFAULT_CNI_BIN_DIR.into(),
        cni_conf_dir: DEFAULT_CNI_CONF_DIR.into(),
        host_cni_conf_dir: DEFAULT_HOST_CNI_CONF_DIR.into(),
        binary: DEFAULT_BINARY.into(),
        service_account_dir: DEFAULT_SERVICE_ACCOUNT_DIR.into(),
        kubernetes_server: None,
        once: false,
        poll_interval: DEFAULT_POLL_INTERVAL,
        extras: Extras::default(),
    };
    let usage = |msg: String| Error::Usage(format!("{msg} (see plexus install --help)"));
    let mut seen: Vec<&str> = Vec::new();
    let mut no_kubeconfig = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(usage(format!("unexpected argument {arg:?}")));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        let Some(&(name, kind)) = FLAGS.iter().find(|(n, _)| *n == name) else {
            return Err(usage(format!("unknown flag --{name}")));
        };
        if seen.contains(&name) {
            return Err(usage(format!("--{name} given twice")));
        }
        seen.push(name);
        let value = if takes_value(kind) {
            match inline.or_else(|| args.next().cloned()) {
                Some(v) if !v.is_empty() => v,
                _ => return Err(usage(format!("--{name} needs a value"))),
            }
        } else if inline.is_some() {
            return Err(usage(format!("--{name} takes no value")));
        } else {
            String::new()
        };
        let absolute = |v: &str| -> Result<(), Error> {
            if v.starts_with('/') {
                Ok(())
            } else {
                Err(usage(format!(
                    "--{name} must be an absolute path, not {v:?}"
                )))
            }
        };
        match kind {
            Kind::Path(field) => {
                absolute(&value)?;
                *field(&mut o) = PathBuf::from(value);
            }
            Kind::Server => {
                if !(value.starts_with("https://") || value.starts_with("http://")) {
                    return Err(usage(format!(
                        "--kubernetes-server must be an http(s):// URL, not {value:?}"
                    )));
                }
                o.kubernetes_server = Some(value);
            }
            Kind::NoKubeconfig => no_kubeconfig = true,
            Kind::Once => o.once = true,
            Kind::PollInterval => {
                o.poll_interval = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && *s <= MAX_POLL_INTERVAL.as_secs_f64())
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        usage(format!(
                            "--poll-interval must be a number of seconds in (0, 3600], not {value:?}"
                        ))
                    })?;
            }
            Kind::Key(key, abs) => {
                if abs {
                    absolute(&value)?;
                }
                o.extras.keys.insert(key.into(), Value::String(value));
            }
            Kind::LogLevel => {
                if crate::log::parse_level(&value).is_none() {
                    return Err(usage(format!(
                        "--log-level must be one of error, warn, info, verbose, debug, trace, panic, not {value:?}"
                    )));
                }
                o.extras
                    .keys
                    .insert("logLevel".into(), Value::String(value));
            }
            Kind::ListKey(key) => {
                let items: Vec<Value> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Value::from)
                    .collect();
                if items.is_empty() {
                    return Err(usage(format!("--{name} needs at least one name")));
                }
                o.extras.keys.insert(key.into(), Value::Array(items));
            }
            Kind::TrueKey(key) => {
                o.extras.keys.insert(key.into(), Value::Bool(true));
            }
        }
    }
    if no_kubeconfig {
        if o.kubernetes_server.is_some() {
            return Err(usage(
                "--no-kubeconfig and --kubernetes-server exclude each other".into(),
            ));
        }
    } else if o.kubernetes_server.is_none() {
        o.kubernetes_server = Some(kubeconfig::server_from_env(env).ok_or_else(|| {
            usage(
                "KUBERNETES_SERVICE_HOST is not set (not running in a pod?): pass \
                 --kubernetes-server URL, or --no-kubeconfig"
                    .into(),
            )
        })?);
    }
    Ok(Parsed::Run(Box::new(o)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn in_pod(k: &str) -> Option<String> {
        match k {
            "KUBERNETES_SERVICE_HOST" => Some("10.96.0.1".into()),
            "KUBERNETES_SERVICE_PORT" => Some("443".into()),
            _ => None,
        }
    }

    fn run(a: &[&str]) -> Options {
        match parse(&args(a), in_pod).unwrap() {
            Parsed::Run(o) => *o,
            Parsed::Help => panic!("help"),
        }
    }

    fn err(a: &[&str]) -> String {
        parse(&args(a), in_pod).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let o = run(&[]);
        assert_eq!(o.cni_bin_dir, PathBuf::from("/host/opt/cni/bin"));
        assert_eq!(o.cni_conf_dir, PathBuf::from("/host/etc/cni/net.d"));
        assert_eq!(o.host_cni_conf_dir, PathBuf::from("/etc/cni/net.d"));
        assert_eq!(o.binary, PathBuf::from("/proc/self/exe"));
        assert_eq!(
            o.service_account_dir,
            PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount")
        );
        assert_eq!(
            o.kubernetes_server.as_deref(),
            Some("https://10.96.0.1:443")
        );
        assert!(!o.once);
        assert_eq!(o.poll_interval, Duration::from_secs(10));
        assert!(o.extras.keys.is_empty());
    }

    #[test]
    fn every_flag_both_forms() {
        let o = run(&[
            "--cni-bin-dir=/b",
            "--cni-conf-dir",
            "/c",
            "--host-cni-conf-dir=/h",
            "--binary",
            "/bin/x",
            "--service-account-dir=/sa",
            "--kubernetes-server",
            "https://api:6443",
            "--once",
            "--poll-interval=0.25",
            "--bin-dir=/opt/cni/bin",
            "--cni-dir=/var/lib/cni/plexus",
            "--conf-dir=/etc/cni/multus/net.d",
            "--log-level=debug",
            "--log-file=/var/log/plexus.log",
            "--readiness-indicator-file=/run/ready",
            "--default-networks=a, kube-system/b",
            "--namespace-isolation",
            "--global-namespaces=default,shared",
            "--system-namespaces=kube-system",
            "--multus-namespace=plexus",
            "--allowed-plugin-types=bridge, macvlan,host-local",
            "--denied-plugin-types",
            "host-device",
        ]);
        assert_eq!(o.cni_bin_dir, PathBuf::from("/b"));
        assert_eq!(o.cni_conf_dir, PathBuf::from("/c"));
        assert_eq!(o.host_cni_conf_dir, PathBuf::from("/h"));
        assert_eq!(o.binary, PathBuf::from("/bin/x"));
        assert_eq!(o.service_account_dir, PathBuf::from("/sa"));
        assert_eq!(o.kubernetes_server.as_deref(), Some("https://api:6443"));
        assert!(o.once);
        assert_eq!(o.poll_interval, Duration::from_millis(250));
        assert_eq!(
            Value::Object(o.extras.keys),
            json!({
                "binDir": "/opt/cni/bin",
                "cniDir": "/var/lib/cni/plexus",
                "confDir": "/etc/cni/multus/net.d",
                "logLevel": "debug",
                "logFile": "/var/log/plexus.log",
                "readinessindicatorfile": "/run/ready",
                "defaultNetworks": ["a", "kube-system/b"],
                "namespaceIsolation": true,
                "globalNamespaces": ["default", "shared"],
                "systemNamespaces": ["kube-system"],
                "multusNamespace": "plexus",
                "allowedPluginTypes": ["bridge", "macvlan", "host-local"],
                "deniedPluginTypes": ["host-device"]
            })
        );
    }

    #[test]
    fn help_wins() {
        assert_eq!(
            parse(&args(&["--once", "--help"]), in_pod).unwrap(),
            Parsed::Help
        );
        assert_eq!(parse(&args(&["-h"]), |_| None).unwrap(), Parsed::Help);
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        for (a, want) in [
            (&["--frobnicate"][..], "unknown flag --frobnicate"),
            (&["extra"][..], "unexpected argument \"extra\""),
            (&["--once", "--once"][..], "--once given twice"),
            (&["--once=yes"][..], "--once takes no value"),
            (&["--cni-bin-dir"][..], "--cni-bin-dir needs a value"),
            (&["--cni-bin-dir="][..], "--cni-bin-dir needs a value"),
            (&["--cni-conf-dir", "etc"][..], "must be an absolute path"),
            (&["--poll-interval=0"][..], "--poll-interval must be"),
            (&["--poll-interval=nan"][..], "--poll-interval must be"),
            (&["--poll-interval=7200"][..], "--poll-interval must be"),
            (&["--log-level=loud"][..], "--log-level must be one of"),
            (&["--kubernetes-server=api:443"][..], "http(s):// URL"),
            (&["--global-namespaces=,"][..], "at least one name"),
            (
                &["--no-kubeconfig", "--kubernetes-server=https://a"][..],
                "exclude each other",
            ),
        ] {
            let e = err(a);
            assert!(e.contains(want), "{a:?}: {e}");
            assert!(e.ends_with("(see plexus install --help)"), "{e}");
        }
    }

    #[test]
    fn api_server_from_env_or_flag_or_none() {
        let e = parse(&args(&[]), |_| None).unwrap_err().to_string();
        assert!(e.contains("KUBERNETES_SERVICE_HOST is not set"), "{e}");
        let Parsed::Run(o) = parse(&args(&["--no-kubeconfig"]), |_| None).unwrap() else {
            panic!()
        };
        assert_eq!(o.kubernetes_server, None);
        let Parsed::Run(o) = parse(&args(&["--kubernetes-server=https://x:1"]), |_| None).unwrap()
        else {
            panic!()
        };
        assert_eq!(o.kubernetes_server.as_deref(), Some("https://x:1"));
    }
}
