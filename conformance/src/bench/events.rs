//! What plexus's `AddedInterface` Events cost the node, now that ADD no longer waits for them:
//! the detached sender (`plexus __send-events`, see `plexus::k8s::events`) runs after ADD has
//! answered, so its time is off the pod's path, but its CPU is still the node's. Measured here
//! against the API stand-in (with the process's latencies, [`super::api_latencies`]): its wall
//! time from start to exit and its CPU time (user + system), for three Events.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;

use super::{Stats, header, row};
use crate::apiserver::ApiServer;

/// Wall and CPU time (ms) of the sender recording three Events, `runs` times.
pub fn measure_sender(binary: &Path, runs: usize) -> (Stats, Stats) {
    let server = ApiServer::start();
    server.set_latencies(super::api_latencies());
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig);
    let doc = json!({
        "kubeconfig": kubeconfig, "connectTimeoutMs": 5000,
        "namespace": "default", "name": "bench", "uid": "u-bench",
        "events": [
            ["Normal", "AddedInterface", "Add eth0 [10.1.0.2] from cluster"],
            ["Normal", "AddedInterface", "Add net1 [10.1.1.2] from default/macvlan-1"],
            ["Normal", "AddedInterface", "Add net2 [10.1.2.2] from default/bridge-2"],
        ],
    })
    .to_string();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for i in 0..runs / 10 + runs {
        let before = children_cpu_ms();
        let start = Instant::now();
        let mut child = Command::new(binary)
            .arg("__send-events")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        if let Some(mut s) = child.stdin.take() {
            s.write_all(doc.as_bytes())
                .expect("write the sender's input");
        }
        let status = child.wait().expect("wait for the sender");
        let took = start.elapsed().as_secs_f64() * 1000.0;
        assert!(status.success(), "the Event sender failed: {status}");
        if i >= runs / 10 {
            wall.push(took);
            cpu.push(children_cpu_ms() - before);
        }
    }
    let recorded = server.list("events", "default").len();
    assert_eq!(recorded, 3 * (runs / 10 + runs), "every Event recorded");
    (Stats::of(wall), Stats::of(cpu))
}

/// User + system CPU time of this process's waited-for children so far, in ms.
fn children_cpu_ms() -> f64 {
    // SAFETY: getrusage(2) fills the struct it is given and touches nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

/// Prints the table.
pub fn report(wall: &Stats, cpu: &Stats, runs: usize) {
    header(&format!(
        "the detached Event sender, 3 Events, {runs} runs (off the pod's path)"
    ));
    row("wall time, start to exit", wall);
    row("CPU time (user + system)", cpu);
}
