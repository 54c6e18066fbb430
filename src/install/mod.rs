//! `plexus install`: puts plexus on a node and keeps its node config in step with the host.
//!
//! This is not a CNI command: a DaemonSet pod runs `plexus install` with the host's
//! `/opt/cni/bin` and `/etc/cni/net.d` mounted (by default under `/host`), and the binary's
//! `main` dispatches here when `argv[1]` is `install` (a runtime never passes arguments to a
//! CNI plugin).
//!
//! What it does, in this order, so that the runtime never sees a plexus config whose binary or
//! kubeconfig is not in place yet:
//! 1. [`binary`]: copies the running executable to `<cni-bin-dir>/plexus` (0755), atomically,
//!    unless the same bytes are already there;
//! 2. [`kubeconfig`]: copies the service-account token to `<cni-conf-dir>/plexus.d/token` and
//!    writes `<cni-conf-dir>/plexus.d/plexus.kubeconfig` (CA embedded, `tokenFile` naming the
//!    copy by its host path), both 0600 in a 0700 directory;
//! 3. [`nodeconf`]: finds the host's default CNI config, validates it, generates
//!    `<cni-conf-dir>/00-plexus.conflist` with that file as `clusterNetwork`, validates the
//!    result with plexus's own parsers and writes it atomically if it changed;
//! 4. [`watch`]: waits for a change (inotify, a bounded poll, SIGTERM) and repeats steps 2–3.
//!
//! Every file goes through [`atomic`] (temp file in the same directory, fsync, rename, fsync
//! of the directory): a reader sees the old or the new version, never a part. A default config
//! that is malformed is refused with an error naming the file and the problem, and the
//! existing plexus config is left exactly as it was.
//!
//! [`Installer::reconcile`] is one step (2–3) and returns what it changed;
//! [`Installer::run`] is the loop with a stop condition, so both can be tested without the
//! binary. With `--once` the installer does one step and exits: non-zero, with one line on
//! stderr, if anything failed or no default config exists. Without it, failures of a step
//! are logged (each distinct problem once) and the loop goes on: the next change may fix
//! them; SIGTERM or SIGINT ends the loop and the process exits 0.
//!
//! **Decision: the node config is not removed when the installer stops.** Pods keep working
//! across a DaemonSet update or a restart of the installer. It *is* removed when the host has
//! no default CNI config left, so that the runtime reports the node's network as not ready
//! instead of failing every pod on a cluster network that is gone.
//!
//! The installer logs with `tracing` to stderr (the container log), at info level; it never
//! writes to stdout except the usage text of `--help`.

pub mod atomic;
pub mod binary;
pub mod kubeconfig;
pub mod nodeconf;
pub mod options;
pub mod watch;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

pub use options::{Options, Parsed};
use watch::{Signals, Wake, Watcher};

/// Everything that can go wrong in `plexus install`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags.
    #[error("{0}")]
    Usage(String),
    /// A file system operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The mounted service account cannot be used.
    #[error("service account file {}: {problem}", path.display())]
    ServiceAccount { path: PathBuf, problem: String },
    /// The host's default CNI config is malformed.
    #[error(
        "default CNI config {} refused: {problem}; the plexus config was left as it was",
        path.display()
    )]
    DefaultConfig { path: PathBuf, problem: String },
    /// There is no default CNI config to delegate to.
    #[error(
        "no CNI config in {} to use as the cluster network (a *.conf, *.conflist or *.json \
         file that is not plexus's own): install the cluster network first",
        dir.display()
    )]
    NoDefaultConfig { dir: PathBuf },
    /// The generated node config does not pass plexus's own parsers (a bad flag value).
    #[error("the generated node config is invalid: {0}")]
    Generated(String),
}

/// What happened to the node config in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeConfigChange {
    /// Written (new or changed), delegating to this default config.
    Written { default: PathBuf },
    /// Already up to date for this default config.
    Unchanged { default: PathBuf },
    /// No default config any more: the plexus config was removed.
    Removed,
    /// No default config, and no plexus config either.
    NoDefault,
}

/// What one [`Installer::reconcile`] step changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// `None` with `--no-kubeconfig`.
    pub kubeconfig: Option<kubeconfig::Outcome>,
    pub node_config: NodeConfigChange,
}

/// The installer: options plus what it remembers between steps (to log each problem once).
pub struct Installer {
    opts: Options,
    layout: kubeconfig::Layout,
    last_problem: Option<String>,
    last_warning: Option<String>,
}

impl Installer {
    pub fn new(opts: Options) -> Installer {
        let layout = kubeconfig::Layout::under(&opts.cni_conf_dir, &opts.host_cni_conf_dir);
        Installer {
            opts,
            layout,
            last_problem: None,
            last_warning: None,
        }
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Start-up work: removes temp files that killed writers left behind, and installs the
    /// binary.
    pub fn prepare(&mut self) -> Result<binary::Outcome, Error> {
        let targets = [
            (self.opts.cni_bin_dir.as_path(), binary::NAME),
            (self.opts.cni_conf_dir.as_path(), nodeconf::OUTPUT_NAME),
            (self.layout.dir.as_path(), kubeconfig::TOKEN_NAME),
            (self.layout.dir.as_path(), kubeconfig::KUBECONFIG_NAME),
        ];
        for (dir, name) in targets {
            match atomic::remove_stale_temps(dir, name) {
                Ok(removed) => {
                    for p in removed {
                        tracing::info!(path = %p.display(), "removed a temp file an interrupted write left behind");
                    }
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot look for stale temp files")
                }
            }
        }
        let outcome =
            binary::install(&self.opts.binary, &self.opts.cni_bin_dir).map_err(|e| Error::Io {
                what: format!(
                    "installing {} as {}",
                    self.opts.binary.display(),
                    self.opts.cni_bin_dir.join(binary::NAME).display()
                ),
                source: e,
            })?;
        match outcome {
            binary::Outcome::Copied => tracing::info!(
                target = %self.opts.cni_bin_dir.join(binary::NAME).display(),
                "plexus binary installed"
            ),
            binary::Outcome::Unchanged => tracing::info!(
                target = %self.opts.cni_bin_dir.join(binary::NAME).display(),
                "plexus binary already up to date"
            ),
        }
        Ok(outcome)
    }

    /// One step: the kubeconfig and token, then the node config. The node config is not
    /// touched when the kubeconfig it would name cannot be written.
    pub fn reconcile(&mut self) -> Result<Changes, Error> {
        let kubeconfig = match &self.opts.kubernetes_server {
            None => None,
            Some(server) => {
                let sa = kubeconfig::ServiceAccount::read(&self.opts.service_account_dir)?;
                Some(kubeconfig::sync(&sa, server, &self.layout)?)
            }
        };
        let node_config = self.node_config()?;
        Ok(Changes {
            kubeconfig,
            node_config,
        })
    }

    fn node_config(&mut self) -> Result<NodeConfigChange, Error> {
        let dir = &self.opts.cni_conf_dir.clone();
        let io = |what: String| move |e| Error::Io { what, source: e };
        atomic::ensure_dir_exists(dir).map_err(io(format!("preparing {}", dir.display())))?;
        let Some(default) = nodeconf::find_default(dir)? else {
            let removed = atomic::remove(dir, nodeconf::OUTPUT_NAME).map_err(io(format!(
                "removing {}",
                dir.join(nodeconf::OUTPUT_NAME).display()
            )))?;
            return Ok(if removed {
                NodeConfigChange::Removed
            } else {
                NodeConfigChange::NoDefault
            });
        };
        self.warn_about_shadowing(dir);
        let host_path = self.opts.host_cni_conf_dir.join(&default.file_name);
        let kubeconfig = self
            .opts
            .kubernetes_server
            .as_ref()
            .map(|_| self.layout.host_kubeconfig());
        let bytes = nodeconf::generate(
            &default,
            &host_path,
            kubeconfig.as_deref(),
            &self.opts.extras,
        )?;
        let target = dir.join(nodeconf::OUTPUT_NAME);
        if atomic::same(&target, &bytes, nodeconf::MODE)
            .map_err(io(format!("reading {}", target.display())))?
        {
            return Ok(NodeConfigChange::Unchanged {
                default: default.path,
            });
        }
        atomic::replace(dir, nodeconf::OUTPUT_NAME, &bytes, nodeconf::MODE)
            .map_err(io(format!("writing {}", target.display())))?;
        Ok(NodeConfigChange::Written {
            default: default.path,
        })
    }

    /// Warns (once per distinct situation) when a config file sorts before plexus's own:
    /// the runtime would use that file and never call plexus.
    fn warn_about_shadowing(&mut self, dir: &Path) {
        let first = nodeconf::candidates(dir)
            .ok()
            .and_then(|c| c.into_iter().next())
            .filter(|n| n.as_bytes() < nodeconf::OUTPUT_NAME.as_bytes());
        let warning = first.map(|n| {
            format!(
                "{} sorts before {}: the runtime uses it and does not call plexus; rename it",
                dir.join(n).display(),
                nodeconf::OUTPUT_NAME
            )
        });
        if warning != self.last_warning {
            if let Some(w) = &warning {
                tracing::warn!("{w}");
            }
            self.last_warning = warning;
        }
    }

    /// Logs a step's outcome: changes at info level, each distinct problem once.
    pub fn log(&mut self, step: &Result<Changes, Error>) {
        match step {
            Ok(c) => {
                if let Some(p) = self.last_problem.take() {
                    tracing::info!(previous = %p, "recovered");
                }
                if let Some(k) = &c.kubeconfig {
                    if k.token_written {
                        tracing::info!(path = %self.layout.dir.join(kubeconfig::TOKEN_NAME).display(), "service account token copied");
                    }
                    if k.kubeconfig_written {
                        tracing::info!(path = %self.layout.dir.join(kubeconfig::KUBECONFIG_NAME).display(), "kubeconfig written");
                    }
                }
                let out = self.opts.cni_conf_dir.join(nodeconf::OUTPUT_NAME);
                match &c.node_config {
                    NodeConfigChange::Written { default } => tracing::info!(
                        path = %out.display(), default = %default.display(),
                        "plexus node config written"
                    ),
                    NodeConfigChange::Unchanged { .. } => {}
                    NodeConfigChange::Removed => tracing::warn!(
                        path = %out.display(),
                        "no default CNI config left; plexus node config removed"
                    ),
                    NodeConfigChange::NoDefault => {
                        let e = Error::NoDefaultConfig {
                            dir: self.opts.cni_conf_dir.clone(),
                        };
                        self.problem(e.to_string(), false);
                    }
                }
            }
            Err(e) => self.problem(e.to_string(), true),
        }
    }

    fn problem(&mut self, text: String, error: bool) {
        if self.last_problem.as_deref() != Some(text.as_str()) {
            if error {
                tracing::error!("{text}");
            } else {
                tracing::info!("waiting: {text}");
            }
            self.last_problem = Some(text);
        }
    }

    /// Reconciles, then waits for a change and reconciles again, until `stop` says so after
    /// a step or the watcher reports a signal (returned).
    pub fn run(
        &mut self,
        watcher: &mut Watcher,
        mut stop: impl FnMut(&Result<Changes, Error>) -> bool,
    ) -> Option<nix::sys::signal::Signal> {
        loop {
            let step = self.reconcile();
            self.log(&step);
            if stop(&step) {
                return None;
            }
            if let Wake::Signal(s) = watcher.wait() {
                return Some(s);
            }
        }
    }
}

/// `plexus install ARGS…`: the process's exit status. `args` are those after `install`.
pub fn main(args: &[OsString]) -> u8 {
    let args: Result<Vec<String>, _> = args.iter().map(|a| a.clone().into_string()).collect();
    let Ok(args) = args else {
        eprintln!("plexus install: arguments must be UTF-8 (see plexus install --help)");
        return 2;
    };
    let opts = match options::parse(&args, |k| std::env::var(k).ok()) {
        Ok(Parsed::Help) => {
            print!("{}", options::USAGE);
            return 0;
        }
        Ok(Parsed::Run(o)) => *o,
        Err(e) => {
            eprintln!("plexus install: {e}");
            return 2;
        }
    };
    crate::log::init(Some("info"), None, true);
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("plexus install: {e}");
        1
    };
    // Before anything else (and before any thread exists): SIGTERM must not stop a write.
    let signals = if opts.once {
        None
    } else {
        match Signals::block() {
            Ok(s) => Some(s),
            Err(e) => return fail(&format!("cannot set up signal handling: {e}")),
        }
    };
    let mut installer = Installer::new(opts);
    if let Err(e) = installer.prepare() {
        return fail(&e);
    }
    if installer.options().once {
        return match installer.reconcile() {
            Ok(c) if c.node_config == NodeConfigChange::NoDefault => {
                fail(&Error::NoDefaultConfig {
                    dir: installer.options().cni_conf_dir.clone(),
                })
            }
            Ok(c) => {
                let removed = c.node_config == NodeConfigChange::Removed;
                installer.log(&Ok(c));
                if removed {
                    fail(&Error::NoDefaultConfig {
                        dir: installer.options().cni_conf_dir.clone(),
                    })
                } else {
                    0
                }
            }
            Err(e) => fail(&e),
        };
    }
    let o = installer.options();
    let dirs = [o.cni_conf_dir.clone(), o.service_account_dir.clone()];
    let mut watcher = Watcher::new(
        &[dirs[0].as_path(), dirs[1].as_path()],
        o.poll_interval,
        signals,
    );
    tracing::info!(
        dir = %o.cni_conf_dir.display(),
        inotify = watcher.uses_inotify(),
        poll_interval = ?o.poll_interval,
        "watching for changes"
    );
    if let Some(sig) = installer.run(&mut watcher, |_| false) {
        tracing::info!(signal = %sig, "stopping; the plexus node config stays in place");
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    struct Host {
        root: tempfile::TempDir,
    }

    impl Host {
        fn new() -> Host {
            let root = tempfile::tempdir().unwrap();
            for d in ["bin", "net.d", "sa"] {
                fs::create_dir(root.path().join(d)).unwrap();
            }
            fs::write(root.path().join("sa/token"), "tok").unwrap();
            fs::write(root.path().join("sa/ca.crt"), CA).unwrap();
            fs::write(root.path().join("plexus-src"), "binary").unwrap();
            Host { root }
        }
        fn p(&self, rel: &str) -> PathBuf {
            self.root.path().join(rel)
        }
        fn options(&self) -> Options {
            let a: Vec<String> = [
                "--cni-bin-dir",
                "bin",
                "--cni-conf-dir",
                "net.d",
                "--host-cni-conf-dir",
                "net.d",
                "--service-account-dir",
                "sa",
                "--binary",
                "plexus-src",
            ]
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i % 2 == 1 {
                    self.p(s).display().to_string()
                } else {
                    s.to_string()
                }
            })
            .chain(["--kubernetes-server=https://10.96.0.1:443".to_string()])
            .collect();
            match options::parse(&a, |_| None).unwrap() {
                Parsed::Run(o) => *o,
                Parsed::Help => unreachable!(),
            }
        }
        fn conf(&self, name: &str, v: &str) {
            fs::write(self.p("net.d").join(name), v).unwrap();
        }
    }

    fn bridge(name: &str, caps: &str) -> String {
        format!(
            r#"{{"cniVersion":"1.0.0","name":"{name}","plugins":[{{"type":"bridge"}},{{"type":"portmap","capabilities":{caps}}}]}}"#
        )
    }

    #[test]
    fn reconcile_reports_what_it_did() {
        let h = Host::new();
        let mut inst = Installer::new(h.options());
        assert_eq!(inst.prepare().unwrap(), binary::Outcome::Copied);
        assert_eq!(inst.prepare().unwrap(), binary::Outcome::Unchanged);
        let c = inst.reconcile().unwrap();
        assert_eq!(c.node_config, NodeConfigChange::NoDefault);
        assert!(c.kubeconfig.unwrap().kubeconfig_written);

        h.conf("20-b.conflist", &bridge("b", r#"{"portMappings":true}"#));
        let c = inst.reconcile().unwrap();
        let b = h.p("net.d/20-b.conflist");
        assert_eq!(
            c.node_config,
            NodeConfigChange::Written { default: b.clone() }
        );
        assert_eq!(c.kubeconfig, Some(kubeconfig::Outcome::default()));
        assert_eq!(
            inst.reconcile().unwrap().node_config,
            NodeConfigChange::Unchanged { default: b }
        );
        // An earlier file takes over.
        h.conf("10-a.conflist", &bridge("a", r#"{"bandwidth":true}"#));
        let a = h.p("net.d/10-a.conflist");
        assert_eq!(
            inst.reconcile().unwrap().node_config,
            NodeConfigChange::Written { default: a.clone() }
        );
        let out: serde_json::Value =
            serde_json::from_slice(&fs::read(h.p("net.d/00-plexus.conflist")).unwrap()).unwrap();
        assert_eq!(out["plugins"][0]["clusterNetwork"], a.display().to_string());
        assert_eq!(
            out["plugins"][0]["capabilities"],
            serde_json::json!({"bandwidth": true, "io.kubernetes.cri.pod-annotations": true})
        );
        // Malformed: refused, old file kept.
        let before = fs::read(h.p("net.d/00-plexus.conflist")).unwrap();
        h.conf("10-a.conflist", "{\"cniVersion\":");
        let e = inst.reconcile().unwrap_err().to_string();
        assert!(e.contains("10-a.conflist") && e.contains("refused"), "{e}");
        assert_eq!(fs::read(h.p("net.d/00-plexus.conflist")).unwrap(), before);
        // Gone: falls back to the next one; all gone: removed.
        fs::remove_file(&a).unwrap();
        assert!(matches!(
            inst.reconcile().unwrap().node_config,
            NodeConfigChange::Written { .. }
        ));
        fs::remove_file(h.p("net.d/20-b.conflist")).unwrap();
        assert_eq!(
            inst.reconcile().unwrap().node_config,
            NodeConfigChange::Removed
        );
        assert!(!h.p("net.d/00-plexus.conflist").exists());
    }

    #[test]
    fn a_broken_service_account_leaves_the_node_config_alone() {
        let h = Host::new();
        h.conf("10-a.conflist", &bridge("a", "{}"));
        let mut inst = Installer::new(h.options());
        inst.reconcile().unwrap();
        h.conf("05-b.conflist", &bridge("b", "{}"));
        fs::remove_file(h.p("sa/token")).unwrap();
        let e = inst.reconcile().unwrap_err().to_string();
        assert!(e.contains("sa/token"), "{e}");
        let out = fs::read_to_string(h.p("net.d/00-plexus.conflist")).unwrap();
        assert!(out.contains("10-a.conflist"), "{out}");
    }

    #[test]
    fn the_loop_follows_changes_until_stopped() {
        let h = Host::new();
        h.conf("10-a.conflist", &bridge("a", "{}"));
        let mut inst = Installer::new(h.options());
        let mut watcher = Watcher::new(&[h.p("net.d").as_path()], Duration::from_secs(30), None);
        let mut steps = Vec::new();
        let net_d = h.p("net.d");
        let stopped = inst.run(&mut watcher, |step| {
            let change = step.as_ref().unwrap().node_config.clone();
            steps.push(change);
            // Each step's file change is what wakes the next step.
            match steps.len() {
                1 => fs::write(net_d.join("05-b.conflist"), bridge("b", "{}")).unwrap(),
                2 => fs::remove_file(net_d.join("05-b.conflist")).unwrap(),
                _ => {}
            }
            steps.len() == 3
        });
        assert_eq!(stopped, None);
        assert_eq!(
            steps,
            [
                NodeConfigChange::Written {
                    default: net_d.join("10-a.conflist")
                },
                NodeConfigChange::Written {
                    default: net_d.join("05-b.conflist")
                },
                NodeConfigChange::Written {
                    default: net_d.join("10-a.conflist")
                },
            ]
        );
    }
}
