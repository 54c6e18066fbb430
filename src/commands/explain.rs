//! `plexus explain NAMESPACE/POD`: the plan ADD would run for a pod, or why ADD would refuse it.
//!
//! It reads the pod and its NADs through the same functions ADD uses (the node's networks,
//! the default-network annotation, the selection, namespace isolation, the plugin-type policy,
//! [`plan::plan_all`], the kubelet's devices, the plugin lookup) and prints, in ADD's order,
//! for each attachment: the network and where its config comes from, the interface name, each
//! plugin of its chain with the file it would be run from (and its IPAM plugin), the runtime
//! values offered to it (`ips`, `mac`, `portMappings`, `bandwidth`, `deviceID`...), the
//! `cni-args` merged into it, the default route it takes and the device it gets. With
//! `--config`, each plugin's config as ADD would give it (the plugins after the first also get
//! the previous one's result as `prevResult`, which only running them can tell).
//!
//! Where ADD stops at its first problem, explain goes on and lists every one, each with ADD's
//! own message: a missing NAD, an isolation denial, a malformed annotation, a missing
//! capability, a plugin absent from this node, two networks with one interface name, a
//! refused plugin type. A network that cannot be resolved is left out of the plan (so later
//! unnamed interfaces are numbered as if it were not there); the plan is then what ADD would
//! run once the others are fixed.
//!
//! What it cannot know: the interfaces already in the pod's namespace (ADD refuses a name that
//! exists; explain has no namespace), and the `runtimeConfig` the runtime adds to the cluster
//! network (port mappings, bandwidth from the pod spec). It writes nothing, sends no Event and
//! runs no plugin.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::{Common, Report, Usage};
use crate::cni::{Command, DelegateError, Error, NetworkConfig};
use crate::delegate::{chain, find, policy};
use crate::devices;
use crate::k8s::api::{KubeApi, PodMeta};
use crate::k8s::client::Client;
use crate::k8s::networks;
use crate::k8s::pod::{self, PodRef, RUNTIME_ANNOTATIONS};
use crate::node::{NodeConfig, resolve};
use crate::txn::add;
use crate::txn::plan::{self, Attachment, Inputs};

/// What `explain` was asked.
#[derive(Debug)]
struct Args {
    namespace: String,
    name: String,
    /// `--config`: print each plugin's config.
    configs: bool,
    /// `--ifname`: the runtime's CNI_IFNAME.
    ifname: String,
    /// `--container-id`: the runtime's CNI_CONTAINERID (names device-information copies).
    container_id: String,
}

fn parse(rest: &[String]) -> Result<Args, Usage> {
    let mut pod = None;
    let mut configs = false;
    let mut ifname = "eth0".to_owned();
    let mut container_id = "<container-id>".to_owned();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = super::split_flag(a);
        let mut value = |name: &str| super::flag_value(inline, &mut it, name);
        match flag {
            "--config" => configs = true,
            "--ifname" => ifname = value("--ifname")?,
            "--container-id" => container_id = value("--container-id")?,
            f if f.starts_with('-') => return Err(Usage(format!("unknown flag {f}"))),
            _ if pod.is_some() => return Err(Usage(format!("unexpected argument {a:?}"))),
            _ => pod = Some(a.clone()),
        }
    }
    let pod = pod.ok_or_else(|| Usage("which pod? give NAMESPACE/POD".into()))?;
    let (namespace, name) = pod
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| Usage(format!("{pod:?} is not NAMESPACE/POD")))?;
    crate::cni::env::validate_ifname(&ifname)
        .map_err(|e| Usage(format!("--ifname {ifname:?}: {}", e.msg())))?;
    Ok(Args {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        configs,
        ifname,
        container_id,
    })
}

/// Runs `plexus explain`.
pub fn run(common: &Common) -> Result<Report, Usage> {
    let args = parse(&common.rest)?;
    let stop = |problem: String| Report {
        doc: json!({"pod": format!("{}/{}", args.namespace, args.name), "attachments": []}),
        text: String::new(),
        problems: vec![problem],
    };
    let (conf, node) = match common.node_config() {
        Ok(found) => found,
        Err(e) => return Ok(stop(e)),
    };
    // Read-only: a kubeconfig or token readable by others is reported, not tightened.
    let client = Client::new_read_only(&node.client_options());
    let api: &dyn KubeApi = match &client {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Ok(stop(format!(
                "the node config {} names no kubeconfig and plexus is not in a cluster: ADD \
                 reads no pod and runs only the node's networks",
                conf.display()
            )));
        }
        Err(e) => return Ok(stop(e.msg())),
    };
    let pod_ref = PodRef {
        namespace: args.namespace.clone(),
        name: args.name.clone(),
        uid: None,
    };
    let pod = match pod::find(api, &pod_ref, &Map::new(), Command::Add) {
        Ok(p) => p,
        Err(e) => return Ok(stop(e.msg())),
    };
    Ok(explain(common, &args, &conf, &node, api, &pod))
}

/// One attachment as explain shows it.
struct Shown {
    att: Attachment,
    /// Where the network's config comes from (`NetworkAttachmentDefinition ns/name`, a file).
    source: String,
    /// The element's `cni-args`, merged into the config.
    cni_args: Option<Map<String, Value>>,
}

fn explain(
    common: &Common,
    args: &Args,
    conf: &Path,
    node: &NodeConfig,
    api: &dyn KubeApi,
    pod: &PodMeta,
) -> Report {
    let mut problems: Vec<Error> = Vec::new();
    let (inputs, sources, cni_args) = match inputs(node, api, pod, &args.ifname, &mut problems) {
        Some(found) => found,
        None => return report(args, conf, pod, vec![], &[], problems),
    };
    if let Err(e) = add::check_types(node, Some(pod), &inputs) {
        problems.push(e);
    }
    let (mut atts, plan_problems) = plan::plan_all(inputs, &[]);
    problems.extend(plan_problems);
    match devices::assign(
        &plan::needs(&atts),
        &devices::Lookup {
            source: &node.device_source(),
            api: Some(api),
            pod: Some((&pod.namespace, &pod.name)),
            container_id: &args.container_id,
            device_info_dir: &node.device_info_dir,
        },
    )
    .and_then(|found| plan::with_devices(&mut atts, found))
    {
        Ok(()) => {}
        Err(e) => problems.push(e),
    }
    let shown: Vec<Shown> = atts
        .into_iter()
        .zip(sources)
        .zip(cni_args)
        .map(|((att, source), cni_args)| Shown {
            att,
            source,
            cni_args,
        })
        .collect();
    let dirs = common.plugin_dirs(node);
    report(args, conf, pod, shown, &dirs, problems)
}

/// The pod's networks as ADD's `inputs` finds them, with every problem instead of the first;
/// also each attachment's config source and `cni-args`, in attachment order. `None` when not
/// even the node's own networks resolve.
#[allow(clippy::type_complexity)]
fn inputs(
    node: &NodeConfig,
    api: &dyn KubeApi,
    pod: &PodMeta,
    ifname: &str,
    problems: &mut Vec<Error>,
) -> Option<(Inputs, Vec<String>, Vec<Option<Map<String, Value>>>)> {
    let nets = match resolve::node_networks(node, Some(api)) {
        Ok(n) => n,
        Err(e) => {
            problems.push(e);
            return None;
        }
    };
    let iso = node.isolation();
    let mut cluster = nets.cluster;
    let mut cluster_from_pod = false;
    match networks::default_network(api, pod, &iso, &node.multus_namespace, &node.conf_dir) {
        Ok(Some(own)) => {
            cluster = own;
            cluster_from_pod = true;
        }
        Ok(None) => {}
        Err(e) => problems.push(add::for_pod(pod, e)),
    }
    let mut defaults = nets.defaults;
    if node.is_system_namespace(&pod.namespace) {
        defaults.clear();
    }
    let (selected, refused) = networks::selected_all(api, pod, &iso, &node.conf_dir);
    problems.extend(refused.into_iter().map(|e| add::for_pod(pod, e)));
    if let Err(e) = networks::check_total(pod, defaults.len(), selected.len()) {
        problems.push(e);
    }
    let mut runtime_config = node.runtime_config.clone();
    runtime_config.remove(RUNTIME_ANNOTATIONS);
    let sources: Vec<String> = std::iter::once(&cluster)
        .chain(&defaults)
        .chain(selected.iter().map(|s| &s.network))
        .map(|n| n.source.clone())
        .collect();
    let cni_args: Vec<Option<Map<String, Value>>> = std::iter::repeat_n(None, 1 + defaults.len())
        .chain(selected.iter().map(|s| s.selection.cni_args.clone()))
        .collect();
    Some((
        Inputs {
            cluster,
            cluster_from_pod,
            defaults,
            selected,
            runtime_config,
            ifname: ifname.to_owned(),
        },
        sources,
        cni_args,
    ))
}

/// One plugin of an attachment's chain, found (or not) as ADD would find it.
fn plugin_doc(
    net: &NetworkConfig,
    index: usize,
    att: &Attachment,
    dirs: &[std::path::PathBuf],
    problems: &mut Vec<Error>,
) -> Value {
    let plugin = &net.plugins()[index];
    let t = plugin.plugin_type();
    let path = match find::find(t, dirs) {
        Ok(p) => Some(p.display().to_string()),
        Err(failure) => {
            problems.push(Error::Delegate(Box::new(DelegateError {
                plugin: t.to_owned(),
                network: att.network.clone(),
                command: Command::Add.as_str().to_owned(),
                failure,
            })));
            None
        }
    };
    let ipam = plugin
        .as_map()
        .get("ipam")
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        .map(|it| {
            let found = dirs
                .iter()
                .map(|d| d.join(it))
                .find(|p| p.is_file() && !it.contains('/'));
            if found.is_none() && !policy::is_meta_plugin(it) {
                problems.push(Error::invalid_config(
                    format!(
                        "network {}: plugin {t:?} runs the IPAM plugin {it:?}, which is not in \
                         the plugin directories",
                        att.network
                    ),
                    format!(
                        "searched: {}",
                        dirs.iter()
                            .map(|d| d.display().to_string())
                            .collect::<Vec<_>>()
                            .join(":")
                    ),
                ));
            }
            json!({"type": it, "path": found.map(|p| p.display().to_string())})
        });
    let capabilities: Vec<&str> = plugin.capabilities().collect();
    let offered: Map<String, Value> = att
        .runtime_config
        .iter()
        .filter(|(k, _)| capabilities.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let stdin = chain::add_stdin(net, index, &att.runtime_config)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok();
    json!({
        "type": t,
        "path": path,
        "ipam": ipam,
        "runtimeConfig": offered,
        "stdin": stdin,
    })
}

fn report(
    args: &Args,
    conf: &Path,
    pod: &PodMeta,
    shown: Vec<Shown>,
    dirs: &[std::path::PathBuf],
    mut problems: Vec<Error>,
) -> Report {
    let mut atts_doc = Vec::new();
    let mut text = format!(
        "pod {} (uid {}), node config {}\n",
        pod.key(),
        if pod.uid.is_empty() { "?" } else { &pod.uid },
        conf.display()
    );
    text.push_str(&format!(
        "ADD would make {} attachment(s), in this order:\n",
        shown.len()
    ));
    for (i, s) in shown.iter().enumerate() {
        let att = &s.att;
        let plugins: Vec<Value> = (0..att.config.plugins().len())
            .map(|p| plugin_doc(&att.config, p, att, dirs, &mut problems))
            .collect();
        let device = att.device.as_ref().map(|d| {
            json!({
                "resource": d.resource,
                "deviceID": d.id,
                "deviceInfo": d.info.as_ref().map(|i| i.content.clone()),
                "deviceInfoCopy": d.info.as_ref().map(|i| i.copy.display().to_string()),
            })
        });
        let gws: Vec<String> = att.default_route.iter().map(|g| g.to_string()).collect();
        atts_doc.push(json!({
            "index": i,
            "network": att.network,
            "source": s.source,
            "interface": att.ifname,
            "default": att.is_default,
            "config": String::from_utf8_lossy(att.config.bytes()),
            "plugins": plugins,
            "runtimeConfig": att.runtime_config,
            "cniArgs": s.cni_args,
            "defaultRoute": gws,
            "resourceName": att.resource_name,
            "device": device,
        }));
        let role = if att.is_default {
            "  [cluster network]"
        } else {
            ""
        };
        text.push_str(&format!(
            "\n{i}  {}  {}  ({}){role}\n",
            att.ifname, att.network, s.source
        ));
        for p in &plugins {
            let path = p["path"].as_str().unwrap_or("NOT FOUND");
            text.push_str(&format!(
                "     plugin {}  {path}\n",
                p["type"].as_str().unwrap_or("")
            ));
            if let Some(ipam) = p["ipam"].as_object() {
                text.push_str(&format!(
                    "       ipam {}  {}\n",
                    ipam["type"].as_str().unwrap_or(""),
                    ipam["path"].as_str().unwrap_or("NOT FOUND")
                ));
            }
            if args.configs {
                text.push_str(&format!(
                    "       config: {}\n",
                    p["stdin"].as_str().unwrap_or("(cannot be built)")
                ));
            }
        }
        if !att.runtime_config.is_empty() {
            text.push_str(&format!(
                "     runtime values: {}\n",
                Value::Object(att.runtime_config.clone())
            ));
        }
        if att.is_default {
            text.push_str(
                "     (and the runtimeConfig the runtime adds: port mappings, bandwidth)\n",
            );
        }
        if let Some(a) = &s.cni_args {
            text.push_str(&format!(
                "     cni-args (in args.cni): {}\n",
                Value::Object(a.clone())
            ));
        }
        if !gws.is_empty() {
            text.push_str(&format!(
                "     default route: via {} (moved here from the cluster network)\n",
                gws.join(", ")
            ));
        }
        if let Some(d) = &att.device {
            text.push_str(&format!("     device: {} of {}\n", d.id, d.resource));
        } else if let Some(r) = &att.resource_name {
            text.push_str(&format!("     device: one of {r} (not known)\n"));
        }
    }
    if args.configs && !shown.iter().all(|s| s.att.config.plugins().len() == 1) {
        text.push_str(
            "\n(plugins after the first of a conflist also get the previous one's result as \
             prevResult)\n",
        );
    }
    let doc = json!({
        "pod": pod.key(),
        "uid": pod.uid,
        "nodeConfig": conf,
        "attachments": atts_doc,
        "problemDetails": problems.iter().map(|e| json!({
            "code": e.code().0, "msg": e.msg(), "details": e.details(),
        })).collect::<Vec<_>>(),
    });
    Report {
        doc,
        text,
        problems: problems.iter().map(Error::msg).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments() {
        let p = parse(&a(&["default/web", "--config", "--ifname=eth1"])).unwrap();
        assert_eq!((p.namespace.as_str(), p.name.as_str()), ("default", "web"));
        assert!(p.configs);
        assert_eq!(p.ifname, "eth1");
        for (bad, want) in [
            (&[][..], "which pod?"),
            (&["web"][..], "is not NAMESPACE/POD"),
            (&["a/b/c"][..], "is not NAMESPACE/POD"),
            (&["a/b", "c/d"][..], "unexpected argument"),
            (&["a/b", "--frob"][..], "unknown flag --frob"),
            (&["a/b", "--ifname", "a b"][..], "--ifname"),
        ] {
            let e = parse(&a(bad)).unwrap_err();
            assert!(e.0.contains(want), "{bad:?}: {}", e.0);
        }
    }
}
