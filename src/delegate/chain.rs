//! Running a network configuration (one plugin or a conflist) the way libcni does.
//!
//! Per plugin of a conflist, the config a plugin receives is its own object with these
//! injections and nothing else changed (key order and values kept):
//! - `name` and `cniVersion` of the list;
//! - `prevResult`: on ADD the previous plugin's result (the first plugin gets none); on DEL and
//!   CHECK the final ADD result, when the caller has it;
//! - `runtimeConfig`: only the keys of the runtime values that this plugin declares in
//!   `capabilities` as `true` (replacing any `runtimeConfig` of its own); omitted when none;
//! - on GC, `cni.dev/valid-attachments`.
//!
//! A single plugin config with nothing to inject is passed as its original bytes.
//!
//! Order and failure rules:
//! - ADD runs the plugins in order and stops at the first failure (the caller rolls back).
//!   Each result is checked ([`crate::cni::result::validate`]: interface names, MACs, sizes,
//!   the requested interface present; a result that fails is the plugin's failure) and
//!   converted to the config's `cniVersion` (as libcni does) before it becomes the next
//!   `prevResult`; the last one is the network's result.
//! - DEL runs the plugins in reverse order. **Decision**: it goes on past a failing plugin so
//!   that, for example, an IPAM release still happens when a later plugin's DEL fails; the
//!   first error is returned after all have run.
//! - CHECK runs in order and stops at the first failure.
//! - STATUS and GC are forwarded only for configs of version 1.1.0 or newer (older plugins do
//!   not know them). STATUS stops at the first failure; GC runs every plugin and reports all
//!   failures.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::exec::{Exec, ExecRequest, Launch, interpret};
use super::find::find;
use super::policy;
use crate::cni::{
    Command, DelegateError, DelegateFailure, Error, NetworkConfig, PluginConf, Version, result,
};

/// Everything about one call of a network config except the config itself.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// A label for errors and logs: the network this config serves (e.g. `default/macvlan-a`).
    pub network: String,
    pub container_id: String,
    pub netns: Option<String>,
    pub ifname: String,
    /// CNI_ARGS for the delegate (see [`crate::cni::CniArgs::for_delegate`]).
    pub cni_args: String,
    /// Plugin directories in lookup order (binDir, then the runtime's CNI_PATH); also the
    /// delegate's own CNI_PATH so that it finds its IPAM plugin.
    pub plugin_dirs: Vec<PathBuf>,
    /// Runtime values offered to plugins by capability (`runtimeConfig`).
    pub runtime_config: Map<String, Value>,
    /// Timeout for each plugin process.
    pub timeout: Duration,
}

/// Runs network configs through an [`Exec`].
pub struct Chain<'e> {
    exec: &'e dyn Exec,
}

/// Which extra keys one plugin call gets.
struct Inject<'a> {
    prev_result: Option<&'a Value>,
    extra: Option<(&'static str, &'a Value)>,
}

impl<'e> Chain<'e> {
    pub fn new(exec: &'e dyn Exec) -> Self {
        Chain { exec }
    }

    /// ADD: returns the network's final result in the config's version.
    pub fn add(&self, net: &NetworkConfig, inv: &Invocation) -> Result<Value, Error> {
        let version = net.validate(&inv.network)?;
        let mut prev: Option<Value> = None;
        for (i, plugin) in net.plugins().iter().enumerate() {
            let inject = Inject {
                prev_result: prev.as_ref(),
                extra: None,
            };
            let doc = self.call(Command::Add, net, i, plugin, inv, &inject)?;
            let Some(doc) = doc else {
                return Err(fail(
                    plugin,
                    inv,
                    Command::Add,
                    DelegateFailure::Garbage {
                        exit: Some(0),
                        output: String::new(),
                        cause: "ADD succeeded but printed no result".into(),
                    },
                ));
            };
            // Checked before anything reads it: names, MACs and sizes that network-status,
            // the journal and the runtime would otherwise take as they come.
            result::validate::check(&doc, &inv.ifname).map_err(|cause| {
                fail(
                    plugin,
                    inv,
                    Command::Add,
                    DelegateFailure::BadResult { cause },
                )
            })?;
            let converted = result::convert(&doc, version).map_err(|e| {
                fail(
                    plugin,
                    inv,
                    Command::Add,
                    DelegateFailure::Garbage {
                        exit: Some(0),
                        output: doc.to_string(),
                        cause: format!(
                            "its result cannot be used as a {version} result: {}",
                            e.msg()
                        ),
                    },
                )
            })?;
            prev = Some(converted);
        }
        prev.ok_or_else(|| Error::Internal("ADD ran no plugin".into()))
    }

    /// DEL: every plugin in reverse order, past failures; the first error is returned.
    pub fn del(
        &self,
        net: &NetworkConfig,
        inv: &Invocation,
        prev_result: Option<&Value>,
    ) -> Result<(), Error> {
        net.validate(&inv.network)?;
        let mut first: Option<Error> = None;
        for (i, plugin) in net.plugins().iter().enumerate().rev() {
            let inject = Inject {
                prev_result,
                extra: None,
            };
            if let Err(e) = self.call(Command::Del, net, i, plugin, inv, &inject) {
                tracing::warn!(network = %inv.network, error = %e, "DEL failed; continuing with the remaining plugins");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// CHECK: every plugin in order with the final ADD result; stops at the first failure.
    pub fn check(
        &self,
        net: &NetworkConfig,
        inv: &Invocation,
        prev_result: &Value,
    ) -> Result<(), Error> {
        let version = net.validate(&inv.network)?;
        crate::cni::version::gate("CHECK", version)?;
        for (i, plugin) in net.plugins().iter().enumerate() {
            let inject = Inject {
                prev_result: Some(prev_result),
                extra: None,
            };
            self.call(Command::Check, net, i, plugin, inv, &inject)?;
        }
        Ok(())
    }

    /// STATUS: forwarded to every plugin of a 1.1.0+ config; stops at the first failure.
    pub fn status(&self, net: &NetworkConfig, inv: &Invocation) -> Result<(), Error> {
        if net.validate(&inv.network)? < Version::V1_1_0 {
            return Ok(());
        }
        for (i, plugin) in net.plugins().iter().enumerate() {
            let inject = Inject {
                prev_result: None,
                extra: None,
            };
            self.call(Command::Status, net, i, plugin, inv, &inject)?;
        }
        Ok(())
    }

    /// GC: forwarded to every plugin of a 1.1.0+ config with the valid attachments; all
    /// failures are collected.
    pub fn gc(
        &self,
        net: &NetworkConfig,
        inv: &Invocation,
        valid_attachments: &Value,
    ) -> Result<(), Vec<Error>> {
        match net.validate(&inv.network) {
            Ok(v) if v < Version::V1_1_0 => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(vec![e]),
        }
        let errors: Vec<Error> = net
            .plugins()
            .iter()
            .enumerate()
            .filter_map(|(i, plugin)| {
                let inject = Inject {
                    prev_result: None,
                    extra: Some(("cni.dev/valid-attachments", valid_attachments)),
                };
                self.call(Command::Gc, net, i, plugin, inv, &inject).err()
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The processes [`add`](Chain::add) (in order) or [`del`](Chain::del) (in reverse) of
    /// `net` start when every plugin runs, as far as their binaries are found; for
    /// [`Exec::expect`]. Other commands: none.
    pub fn launches(command: Command, net: &NetworkConfig, inv: &Invocation) -> Vec<Launch> {
        let plugins = net.plugins().iter();
        let ordered: Vec<&PluginConf> = match command {
            Command::Add => plugins.collect(),
            Command::Del => plugins.rev().collect(),
            _ => vec![],
        };
        ordered
            .into_iter()
            .map_while(|p| launch(command, p, inv).ok())
            .collect()
    }

    fn call(
        &self,
        command: Command,
        net: &NetworkConfig,
        index: usize,
        plugin: &PluginConf,
        inv: &Invocation,
        inject: &Inject<'_>,
    ) -> Result<Option<Value>, Error> {
        let launch = launch(command, plugin, inv).map_err(|f| fail(plugin, inv, command, f))?;
        let stdin = plugin_config(net, index, inject, &inv.runtime_config)?;
        let req = ExecRequest {
            launch,
            stdin: &stdin,
            timeout: inv.timeout,
        };
        let started = Instant::now();
        let out = self
            .exec
            .run(&req)
            .map_err(|f| fail(plugin, inv, command, f))?;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            tracing::debug!(plugin = plugin.plugin_type(), network = %inv.network, "{line}");
        }
        let doc = interpret(&out, inv.timeout).map_err(|f| fail(plugin, inv, command, f));
        match &doc {
            Ok(_) => {
                tracing::debug!(plugin = plugin.plugin_type(), network = %inv.network, %command, elapsed_ms, "delegate done")
            }
            Err(e) => {
                tracing::warn!(plugin = plugin.plugin_type(), network = %inv.network, %command, elapsed_ms, error = %e, "delegate failed")
            }
        }
        doc
    }
}

/// The process one plugin call starts: the binary found for its `type`, and the CNI
/// variables of the call.
fn launch(
    command: Command,
    plugin: &PluginConf,
    inv: &Invocation,
) -> Result<Launch, DelegateFailure> {
    let path = find(plugin.plugin_type(), &inv.plugin_dirs)?;
    let mut env: Vec<(&'static str, String)> = vec![
        ("CNI_COMMAND", command.as_str().to_owned()),
        ("CNI_PATH", join_dirs(&inv.plugin_dirs)),
        // A plexus started anywhere below this delegate refuses to run (see `policy`).
        (policy::NESTED_ENV, std::process::id().to_string()),
    ];
    let mut env_remove = vec![];
    if command.is_attachment() {
        env.push(("CNI_CONTAINERID", inv.container_id.clone()));
        env.push(("CNI_IFNAME", inv.ifname.clone()));
        env.push(("CNI_ARGS", inv.cni_args.clone()));
        match &inv.netns {
            Some(ns) => env.push(("CNI_NETNS", ns.clone())),
            None => env_remove.push("CNI_NETNS"),
        }
    } else {
        env_remove.extend(["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS", "CNI_ARGS"]);
    }
    Ok(Launch {
        path,
        env,
        env_remove,
    })
}

fn fail(
    plugin: &PluginConf,
    inv: &Invocation,
    command: Command,
    failure: DelegateFailure,
) -> Error {
    Error::Delegate(Box::new(DelegateError {
        plugin: plugin.plugin_type().to_owned(),
        network: inv.network.clone(),
        command: command.as_str().to_owned(),
        failure,
    }))
}

fn join_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// The runtimeConfig this plugin gets: the runtime values whose key it declares as a
/// capability.
fn runtime_config_for(plugin: &PluginConf, runtime: &Map<String, Value>) -> Map<String, Value> {
    plugin
        .capabilities()
        .filter_map(|cap| runtime.get(cap).map(|v| (cap.to_owned(), v.clone())))
        .collect()
}

/// The exact stdin of plugin `index` of `net` on ADD, without the `prevResult` the plugins
/// after the first get from the one before: what `plexus explain --config` shows.
pub fn add_stdin(
    net: &NetworkConfig,
    index: usize,
    runtime: &Map<String, Value>,
) -> Result<Vec<u8>, Error> {
    let inject = Inject {
        prev_result: None,
        extra: None,
    };
    plugin_config(net, index, &inject, runtime)
}

/// The exact stdin bytes of plugin `index` of `net` (see the module docs for the rules).
fn plugin_config(
    net: &NetworkConfig,
    index: usize,
    inject: &Inject<'_>,
    runtime: &Map<String, Value>,
) -> Result<Vec<u8>, Error> {
    let plugin = &net.plugins()[index];
    let rc = runtime_config_for(plugin, runtime);
    let is_list = matches!(net, NetworkConfig::List { .. });
    if !is_list && rc.is_empty() && inject.prev_result.is_none() && inject.extra.is_none() {
        return Ok(net.bytes().to_vec());
    }
    let mut obj = plugin.as_map().clone();
    if is_list {
        obj.insert("name".into(), Value::String(net.name().to_owned()));
        obj.insert(
            "cniVersion".into(),
            Value::String(net.cni_version_str().to_owned()),
        );
    }
    if let Some(prev) = inject.prev_result {
        obj.insert("prevResult".into(), prev.clone());
    }
    if !rc.is_empty() {
        obj.insert("runtimeConfig".into(), Value::Object(rc));
    }
    if let Some((k, v)) = inject.extra {
        obj.insert(k.into(), v.clone());
    }
    serde_json::to_vec(&obj)
        .map_err(|e| Error::Internal(format!("serialising a delegate config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delegate::exec::{Output, Termination};
    use serde_json::json;
    use std::cell::RefCell;

    /// How a fake answers: (command, plugin, call number) -> output.
    type Answer = Box<dyn Fn(&str, &str, usize) -> Output>;

    /// A fake Exec: records each request and answers from a script of outputs.
    struct Fake {
        calls: RefCell<Vec<(String, String, Value)>>,
        answer: Answer,
    }

    impl Exec for Fake {
        fn run(&self, req: &ExecRequest<'_>) -> Result<Output, DelegateFailure> {
            let cmd = req
                .launch
                .env
                .iter()
                .find(|(k, _)| *k == "CNI_COMMAND")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let plugin = req
                .launch
                .path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let n = self.calls.borrow().len();
            let stdin: Value = serde_json::from_slice(req.stdin).unwrap();
            self.calls
                .borrow_mut()
                .push((cmd.clone(), plugin.clone(), stdin));
            Ok((self.answer)(&cmd, &plugin, n))
        }
    }

    fn ok(doc: &str) -> Output {
        Output {
            termination: Termination::Exited(0),
            stdout: doc.as_bytes().to_vec(),
            stderr: vec![],
        }
    }

    fn inv(dirs: Vec<PathBuf>) -> Invocation {
        Invocation {
            network: "ns/net".into(),
            container_id: "c1".into(),
            netns: Some("/run/netns/p".into()),
            ifname: "net1".into(),
            cni_args: "IgnoreUnknown=true".into(),
            plugin_dirs: dirs,
            runtime_config: json!({"mac": "aa:bb:cc:dd:ee:ff", "ips": ["10.0.0.5/24"]})
                .as_object()
                .unwrap()
                .clone(),
            timeout: Duration::from_secs(5),
        }
    }

    fn bin_dir(names: &[&str]) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        for n in names {
            let p = d.path().join(n);
            std::fs::write(&p, "").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        d
    }

    const LIST: &str = r#"{"cniVersion":"1.0.0","name":"l","plugins":[{"type":"a","keep":{"z":1,"a":2}},{"type":"b","capabilities":{"mac":true},"runtimeConfig":{"stale":1}}]}"#;

    #[test]
    fn add_injects_name_version_prev_result_and_capabilities_only() {
        let d = bin_dir(&["a", "b"]);
        let fake = Fake {
            calls: RefCell::new(vec![]),
            answer: Box::new(|_, p, _| {
                ok(&format!(
                    r#"{{"cniVersion":"1.0.0","interfaces":[{{"name":"{p}"}}],"ips":[{{"address":"10.0.0.2/24","interface":0}}]}}"#
                ))
            }),
        };
        let net = NetworkConfig::parse(LIST.as_bytes()).unwrap();
        let res = Chain::new(&fake)
            .add(&net, &inv(vec![d.path().into()]))
            .unwrap();
        assert_eq!(res["interfaces"][0]["name"], "b");
        let calls = fake.calls.borrow();
        assert_eq!(
            calls[0].2,
            json!({"type":"a","keep":{"z":1,"a":2},"name":"l","cniVersion":"1.0.0"})
        );
        // Key order of the plugin's own object is kept.
        assert_eq!(
            calls[0].2.as_object().unwrap().keys().collect::<Vec<_>>(),
            vec!["type", "keep", "name", "cniVersion"]
        );
        assert_eq!(calls[1].2["prevResult"]["interfaces"][0]["name"], "a");
        assert_eq!(
            calls[1].2["runtimeConfig"],
            json!({"mac":"aa:bb:cc:dd:ee:ff"})
        );
    }

    #[test]
    fn del_runs_reverse_past_failures_with_final_result() {
        let d = bin_dir(&["a", "b"]);
        let fake = Fake {
            calls: RefCell::new(vec![]),
            answer: Box::new(|_, p, _| {
                if p == "b" {
                    Output {
                        termination: Termination::Exited(1),
                        stdout: br#"{"code":5,"msg":"boom"}"#.to_vec(),
                        stderr: vec![],
                    }
                } else {
                    ok("")
                }
            }),
        };
        let net = NetworkConfig::parse(LIST.as_bytes()).unwrap();
        let prev = json!({"cniVersion":"1.0.0","interfaces":[]});
        let e = Chain::new(&fake)
            .del(&net, &inv(vec![d.path().into()]), Some(&prev))
            .unwrap_err();
        assert_eq!(e.code().0, 5);
        assert!(
            e.msg()
                .contains(r#"delegate plugin "b" for network "ns/net" (DEL) failed: boom"#)
        );
        let calls = fake.calls.borrow();
        let order: Vec<_> = calls.iter().map(|c| c.1.as_str()).collect();
        assert_eq!(order, vec!["b", "a"]);
        assert!(calls.iter().all(|c| c.2["prevResult"] == prev));
    }

    #[test]
    fn single_conf_without_injection_is_passed_byte_exact() {
        let d = bin_dir(&["a"]);
        let raw = br#"{ "cniVersion" : "1.0.0", "name":"x", "type":"a" }"#;
        let net = NetworkConfig::parse(raw).unwrap();
        struct Bytes(RefCell<Vec<u8>>);
        impl Exec for Bytes {
            fn run(&self, req: &ExecRequest<'_>) -> Result<Output, DelegateFailure> {
                *self.0.borrow_mut() = req.stdin.to_vec();
                Ok(ok(r#"{"cniVersion":"1.0.0"}"#))
            }
        }
        let b = Bytes(RefCell::new(vec![]));
        let mut i = inv(vec![d.path().into()]);
        i.runtime_config.clear();
        Chain::new(&b).add(&net, &i).unwrap();
        assert_eq!(&*b.0.borrow(), raw);
    }

    #[test]
    fn unsafe_type_is_refused_before_any_exec() {
        for t in ["../../bin/sh", "/bin/sh", "", ".."] {
            let fake = Fake {
                calls: RefCell::new(vec![]),
                answer: Box::new(|_, _, _| ok("{}")),
            };
            let raw = json!({"cniVersion":"1.0.0","name":"x","plugins":[{"type": t}]}).to_string();
            let net = NetworkConfig::parse(raw.as_bytes()).unwrap();
            let e = Chain::new(&fake)
                .add(&net, &inv(vec!["/usr/bin".into(), "/bin".into()]))
                .unwrap_err();
            assert_eq!(e.code().0, 7, "{t:?}: {e}");
            assert!(fake.calls.borrow().is_empty(), "{t:?} executed something");
        }
    }

    #[test]
    fn launches_are_the_processes_add_and_del_start_in_their_order() {
        let d = bin_dir(&["a", "b"]);
        let net = NetworkConfig::parse(LIST.as_bytes()).unwrap();
        let i = inv(vec![d.path().into()]);
        let fake = Fake {
            calls: RefCell::new(vec![]),
            answer: Box::new(|_, _, _| ok(r#"{"cniVersion":"1.0.0"}"#)),
        };
        // What each run starts, as the fake saw it (path and environment).
        struct Seen<'f>(&'f Fake, RefCell<Vec<Launch>>);
        impl Exec for Seen<'_> {
            fn run(&self, req: &ExecRequest<'_>) -> Result<Output, DelegateFailure> {
                self.1.borrow_mut().push(req.launch.clone());
                self.0.run(req)
            }
        }
        for command in [Command::Add, Command::Del] {
            let seen = Seen(&fake, RefCell::new(vec![]));
            let chain = Chain::new(&seen);
            if command == Command::Add {
                chain.add(&net, &i).unwrap();
            } else {
                chain.del(&net, &i, None).unwrap();
            }
            let expected = Chain::launches(command, &net, &i);
            assert_eq!(expected, seen.1.into_inner(), "{command}");
            let names: Vec<_> = expected
                .iter()
                .map(|l| l.path.file_name().unwrap())
                .collect();
            let want = if command == Command::Add {
                ["a", "b"]
            } else {
                ["b", "a"]
            };
            assert_eq!(names, want, "{command}");
        }
        assert!(Chain::launches(Command::Check, &net, &i).is_empty());
        // A plugin that is not found ends the list: its run reports it.
        let missing = bin_dir(&["a"]);
        let only_a = Chain::launches(Command::Add, &net, &inv(vec![missing.path().into()]));
        assert_eq!(only_a.len(), 1);
    }

    #[test]
    fn status_and_gc_only_for_1_1_configs() {
        let d = bin_dir(&["a", "b"]);
        let fake = Fake {
            calls: RefCell::new(vec![]),
            answer: Box::new(|_, _, _| ok("")),
        };
        let old = NetworkConfig::parse(LIST.as_bytes()).unwrap();
        let i = inv(vec![d.path().into()]);
        Chain::new(&fake).status(&old, &i).unwrap();
        Chain::new(&fake).gc(&old, &i, &json!([])).unwrap();
        assert!(fake.calls.borrow().is_empty());
        let new = NetworkConfig::parse(LIST.replace("1.0.0", "1.1.0").as_bytes()).unwrap();
        let valid = json!([{"containerID":"c","ifname":"eth0"}]);
        Chain::new(&fake).gc(&new, &i, &valid).unwrap();
        let calls = fake.calls.borrow();
        assert_eq!(calls.len(), 2);
        assert!(
            calls
                .iter()
                .all(|c| c.0 == "GC" && c.2["cni.dev/valid-attachments"] == valid)
        );
    }
}
