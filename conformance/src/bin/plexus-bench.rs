//! plexus benchmarks: figures for the README, never assertions in tests.
//!
//! ```text
//! cargo build --release
//! cargo run --release -p plexus-conformance --bin plexus-bench            # VERSION + size
//! sudo cargo run --release -p plexus-conformance --bin plexus-bench -- cycle   # ADD+DEL
//! ```
//!
//! `version` (the default) measures, on this machine:
//! - wall time of `plexus` answering VERSION as runtimes probe it (dummy env, stdout read to
//!   the end), over many runs: median, p90, min, max;
//! - the same for `/bin/true`, the floor any exec'd binary pays;
//! - the size of the release binary.
//!
//! `cycle` (root; it runs itself in a private network and mount namespace) measures the
//! ADD+DEL cycle of a pod with three networks (cluster network bridge, a macvlan NAD on a veth
//! master, a bridge NAD) through plexus against the API stand-in over HTTPS, and the same three
//! delegates run directly in the same order with the same configs (the floor), interleaved run
//! by run, and the API requests plexus made per pod.
//!
//! Options: `--runs N` (default 2000 for version, 60 for cycle), `--binary PATH` (default
//! `target/release/plexus`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plexus_conformance::apiserver::ApiServer;
use plexus_conformance::netns::{Netns, veth_pair};
use plexus_conformance::sandbox;
use serde_json::{Value, json};

/// Runs `bin` with exactly `env`, `stdin`; returns wall time, exit status and stdout.
fn run(bin: &Path, env: &[(&str, &str)], stdin: &[u8]) -> (Duration, bool, Vec<u8>) {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin);
    }
    let mut out = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut out);
    }
    let status = child.wait().expect("wait");
    (start.elapsed(), status.success(), out)
}

struct Stats {
    median: f64,
    p90: f64,
    min: f64,
    max: f64,
}

fn stats(mut ms: Vec<f64>) -> Stats {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p90: at(0.9),
        min: ms[0],
        max: ms[ms.len() - 1],
    }
}

fn row(name: &str, s: &Stats) {
    println!(
        "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
        s.median, s.p90, s.min, s.max
    );
}

fn version(binary: &Path, runs: usize) {
    let env = [
        ("CNI_COMMAND", "VERSION"),
        ("CNI_NETNS", "dummy"),
        ("CNI_IFNAME", "dummy"),
        ("CNI_PATH", "dummy"),
    ];
    let size = std::fs::metadata(binary)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo build --release` first",
                binary.display()
            )
        })
        .len();
    let measure = |bin: &Path, env: &[(&str, &str)]| {
        for _ in 0..runs / 20 {
            run(bin, env, b"");
        }
        stats(
            (0..runs)
                .map(|_| run(bin, env, b"").0.as_secs_f64() * 1000.0)
                .collect(),
        )
    };
    let plexus = measure(binary, &env);
    let floor = measure(Path::new("/bin/true"), &[]);
    println!("| measurement | median | p90 | min | max |");
    println!("|---|---|---|---|---|");
    row(&format!("plexus VERSION ({runs} runs)"), &plexus);
    row(&format!("/bin/true, the exec floor ({runs} runs)"), &floor);
    println!(
        "| release binary size | {:.2} MB ({size} bytes) | | | |",
        size as f64 / 1e6
    );
}

const PLUGINS: &str = "/usr/lib/cni";

/// The three networks: (status name, interface, config).
fn networks() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "cluster",
            "eth0",
            json!({"cniVersion":"1.0.0","name":"cluster","plugins":[{"type":"bridge","bridge":"plxb0","isGateway":true,
                   "ipam":{"type":"host-local","subnet":"10.200.0.0/16","routes":[{"dst":"0.0.0.0/0"}]}}]}),
        ),
        (
            "default/macvlan-a",
            "net1",
            json!({"cniVersion":"1.0.0","name":"macvlan-a","type":"macvlan","master":"plx-up0","mode":"bridge",
                   "ipam":{"type":"host-local","subnet":"10.201.0.0/16"}}),
        ),
        (
            "default/bridge-b",
            "net2",
            json!({"cniVersion":"1.0.0","name":"bridge-b","type":"bridge","bridge":"plxb1",
                   "ipam":{"type":"host-local","subnet":"10.202.0.0/16"}}),
        ),
    ]
}

/// What a delegate receives for a single-plugin view of `config` (conflists: the plugin with
/// the list's name and version injected, as plexus and libcni do).
fn plugin_stdin(config: &Value) -> Vec<u8> {
    match config.get("plugins").and_then(Value::as_array) {
        Some(plugins) => {
            let mut p = plugins[0].clone();
            p["name"] = config["name"].clone();
            p["cniVersion"] = config["cniVersion"].clone();
            p.to_string().into_bytes()
        }
        None => config.to_string().into_bytes(),
    }
}

fn cycle(binary: &Path, runs: usize) {
    sandbox::enter();
    veth_pair("plx-up0", "plx-up0p");
    let work = tempfile::tempdir().expect("tempdir");
    let server = ApiServer::start();
    let kubeconfig = work.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig);
    let nets = networks();
    let cluster_file = work.path().join("cluster.conflist");
    std::fs::write(&cluster_file, nets[0].2.to_string()).expect("write cluster conflist");
    for (name, _, config) in &nets[1..] {
        let nad = name.trim_start_matches("default/");
        server.put(
            json!({"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
            "metadata":{"namespace":"default","name":nad},"spec":{"config":config.to_string()}}),
        );
    }
    server.put(json!({"apiVersion":"v1","kind":"Pod",
        "metadata":{"namespace":"default","name":"bench","uid":"u-bench",
                    "annotations":{"k8s.v1.cni.cncf.io/networks":"macvlan-a,bridge-b"}}}));
    let node = json!({"cniVersion":"1.0.0","name":"plexus","type":"plexus",
        "kubeconfig": kubeconfig, "clusterNetwork": cluster_file,
        "cniDir": std::env::var("BENCH_CNI_DIR").map(PathBuf::from).unwrap_or_else(|_| work.path().join("state")), "binDir": "/nonexistent", "confDir": work.path()});
    let mut node = node;
    if let Ok(log) = std::env::var("BENCH_LOG") {
        // For profiling: plexus's debug log (timestamps per step) in that file.
        node["logLevel"] = json!("debug");
        node["logFile"] = json!(log);
        node["logToStderr"] = json!(false);
    }
    let node_text = node.to_string();

    let mut through = Vec::with_capacity(runs);
    let mut direct = Vec::with_capacity(runs);
    let mut requests = Vec::new();
    for i in 0..runs + 3 {
        // plexus
        let ns = Netns::new("bench");
        let netns = ns.path().display().to_string();
        let cid = format!("bench{i}");
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench;K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID=u-bench"
        );
        let env = |cmd: &'static str| {
            vec![
                ("CNI_COMMAND", cmd),
                ("CNI_CONTAINERID", cid.as_str()),
                ("CNI_NETNS", netns.as_str()),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", PLUGINS),
                ("CNI_ARGS", args.as_str()),
            ]
        };
        server.reset_counters();
        let (t_add, ok, out) = run(binary, &env("ADD"), node_text.as_bytes());
        assert!(ok, "plexus ADD failed: {}", String::from_utf8_lossy(&out));
        let mut del_conf = node.clone();
        del_conf["prevResult"] = serde_json::from_slice(&out).expect("ADD result");
        let (t_del, ok, out) = run(binary, &env("DEL"), del_conf.to_string().as_bytes());
        assert!(ok, "plexus DEL failed: {}", String::from_utf8_lossy(&out));
        if i >= 3 {
            if std::env::var_os("BENCH_SPLIT").is_some() {
                eprintln!(
                    "ADD {:.2} ms DEL {:.2} ms",
                    t_add.as_secs_f64() * 1000.0,
                    t_del.as_secs_f64() * 1000.0
                );
            }
            through.push((t_add + t_del).as_secs_f64() * 1000.0);
            requests.push(server.counters());
        }
        drop(ns);

        // the same delegates, directly
        let ns = Netns::new("direct");
        let netns = ns.path().display().to_string();
        let mut total = Duration::ZERO;
        let mut results = Vec::new();
        for (_, ifname, config) in &nets {
            let plugin = config
                .get("type")
                .or_else(|| config["plugins"][0].get("type"))
                .and_then(Value::as_str)
                .expect("type");
            let env = [
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", cid.as_str()),
                ("CNI_NETNS", netns.as_str()),
                ("CNI_IFNAME", ifname),
                ("CNI_PATH", PLUGINS),
                ("CNI_ARGS", args.as_str()),
            ];
            let (t, ok, out) = run(
                &PathBuf::from(PLUGINS).join(plugin),
                &env,
                &plugin_stdin(config),
            );
            assert!(
                ok,
                "direct {plugin} ADD failed: {}",
                String::from_utf8_lossy(&out)
            );
            total += t;
            results.push((plugin, ifname, config, out));
        }
        for (plugin, ifname, config, out) in results.iter().rev() {
            let mut stdin: Value = serde_json::from_slice(&plugin_stdin(config)).expect("json");
            stdin["prevResult"] = serde_json::from_slice(out).expect("result");
            let env = [
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", cid.as_str()),
                ("CNI_NETNS", netns.as_str()),
                ("CNI_IFNAME", **ifname),
                ("CNI_PATH", PLUGINS),
                ("CNI_ARGS", args.as_str()),
            ];
            let (t, ok, _) = run(
                &PathBuf::from(PLUGINS).join(plugin),
                &env,
                stdin.to_string().as_bytes(),
            );
            assert!(ok, "direct {plugin} DEL failed");
            total += t;
        }
        if i >= 3 {
            direct.push(total.as_secs_f64() * 1000.0);
        }
    }
    let (p, d) = (stats(through), stats(direct));
    println!("| ADD+DEL of a 3-network pod ({runs} runs) | median | p90 | min | max |");
    println!("|---|---|---|---|---|");
    row("through plexus (API stand-in over HTTPS)", &p);
    row("the same delegates run directly", &d);
    println!(
        "| overhead of plexus (medians) | {:.2} ms | ratio {:.2} | | |",
        p.median - d.median,
        p.median / d.median
    );
    let per_pod = &requests[requests.len() - 1];
    let shown: Vec<String> = per_pod.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("\nAPI requests per pod (ADD+DEL): {}", shown.join(", "));
}

fn main() {
    let mut mode = String::from("version");
    let mut runs: Option<usize> = None;
    let mut binary = PathBuf::from("target/release/plexus");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()),
            "--binary" => binary = PathBuf::from(args.next().expect("--binary PATH")),
            "version" | "cycle" => mode = a,
            other => panic!("unknown argument {other:?}; see the doc comment of plexus-bench"),
        }
    }
    let binary = std::fs::canonicalize(&binary).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo build --release` first",
            binary.display()
        )
    });
    match mode.as_str() {
        "cycle" => cycle(&binary, runs.unwrap_or(60)),
        _ => version(&binary, runs.unwrap_or(2000)),
    }
}
