//! The floor under any meta-plugin that is exec'd per call, reads its NADs over HTTPS and
//! writes the network-status annotation, measured on this machine: what the absolute
//! overhead target has to be read against.
//!
//! A runtime execs the plugin twice per pod (ADD and DEL), and the direct runs of the
//! delegates exec nothing in their place, so two process starts are overhead whatever the
//! plugin does; `/bin/true` is the cheapest process there is, plexus's `VERSION` the cheapest
//! plexus call. ADD cannot start a NAD's delegate before the NAD is read, and cannot answer
//! before the status is written: a connection to the API (TCP and a TLS handshake: processes
//! share no TLS session), one NAD read and one status patch are on its critical path. They
//! are measured here from a warm process (this one, after warm-up rounds), over HTTP/1.1 with
//! one request at a time, against the API stand-in: a lower bound for a process that has just
//! started, whose handshake code is still cold.
//!
//! An exec'd plugin pays its connection cold (a new process: the TLS code and the
//! certificates not yet in its memory), so the floor is also measured that way: `plexus-bench
//! floor-child` ([`child_main`]) is a fresh process that connects, reads the NAD, writes the
//! status and exits; its wall time plus one `/bin/true` (the DEL's exec) is the **cold floor**,
//! what `plexus-bench api` compares plexus with.
//!
//! Not counted, although plexus pays them: the durable plan (one fsync of a file and of its
//! directory; plexus overlaps it with the first delegate's start), the Events, reading the
//! node config and kubeconfig, and handing configs to and results from the delegates.

use std::path::Path;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use super::proc::{VERSION_ENV, wall_times};
use super::{Stats, header, row};
use crate::apiserver::{ApiServer, http1_connector};

/// The medians this module measured, in ms.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// `/bin/true`.
    pub exec: Stats,
    /// plexus `VERSION`.
    pub version: Stats,
    /// TCP connect and TLS handshake.
    pub connect: Stats,
    /// One NAD GET on that connection.
    pub get: Stats,
    /// One status PATCH on that connection.
    pub patch: Stats,
    /// A fresh process that connects, reads the NAD, writes the status and exits (wall
    /// time), plus a `/bin/true`: the cold floor of an ADD+DEL.
    pub cold: Stats,
}

impl Floor {
    /// Two process starts, one connection, one NAD read and one status write (medians).
    pub fn sum(&self, start: &Stats) -> f64 {
        2.0 * start.median + self.connect.median + self.get.median + self.patch.median
    }
}

/// Measures the floor, `runs` times each part.
pub fn measure(binary: &Path, runs: usize) -> Floor {
    let exec = wall_times(Path::new("/bin/true"), &[], runs / 10, runs);
    let version = wall_times(binary, &VERSION_ENV, runs / 10, runs);

    let server = ApiServer::start();
    server.set_latencies(super::api_latencies());
    server.put(
        json!({"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition",
        "metadata":{"namespace":"default","name":"floor"},
        "spec":{"config":"{\"cniVersion\":\"1.0.0\",\"name\":\"floor\",\"type\":\"macvlan\"}"}}),
    );
    server.put(json!({"apiVersion":"v1","kind":"Pod",
        "metadata":{"namespace":"default","name":"floor","uid":"u-floor"}}));
    let connector = http1_connector(server.ca_pem()).unwrap_or_else(|e| panic!("floor: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut parts = [Vec::new(), Vec::new(), Vec::new()];
    for i in 0..runs / 10 + runs {
        let t = rt
            .block_on(api_round(&server, &connector))
            .unwrap_or_else(|e| panic!("floor: {e}"));
        if i >= runs / 10 {
            for (part, d) in parts.iter_mut().zip(t) {
                part.push(d.as_secs_f64() * 1000.0);
            }
        }
    }
    let [connect, get, patch] = parts.map(Stats::of);
    let ca = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(ca.path(), server.ca_pem()).expect("write the CA");
    let me = std::env::current_exe().expect("the bench's own path");
    let port = server.port().to_string();
    let ca_path = ca.path().display().to_string();
    let token = server.token().to_owned();
    let child_env = [
        (CHILD_PORT, port.as_str()),
        (CHILD_CA, ca_path.as_str()),
        (CHILD_TOKEN, token.as_str()),
    ];
    let true_runs = wall_times(Path::new("/bin/true"), &[], 0, runs);
    let children = wall_times_with_arg(&me, "floor-child", &child_env, runs / 10, runs);
    let cold = Stats::of(children.iter().map(|c| c + true_runs.median).collect());
    Floor {
        exec,
        version,
        connect,
        get,
        patch,
        cold,
    }
}

const CHILD_PORT: &str = "FLOOR_PORT";
const CHILD_CA: &str = "FLOOR_CA";
const CHILD_TOKEN: &str = "FLOOR_TOKEN";

/// Wall times (ms) of `bin arg` with `env`, after `warmup` untimed runs; panics on a failure.
fn wall_times_with_arg(
    bin: &Path,
    arg: &str,
    env: &[(&str, &str)],
    warmup: usize,
    runs: usize,
) -> Vec<f64> {
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let start = Instant::now();
        let out = std::process::Command::new(bin)
            .arg(arg)
            .envs(env.iter().copied())
            .output()
            .expect("start the floor child");
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "floor child: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if i >= warmup {
            times.push(took.as_secs_f64() * 1000.0);
        }
    }
    times
}

/// `plexus-bench floor-child`: one cold connection, NAD read and status write against the
/// stand-in named by the environment, then exit (status 1 with the reason on failure).
pub fn child_main() -> u8 {
    let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
    let run = || -> Result<(), String> {
        let port: u16 = var(CHILD_PORT)?
            .parse()
            .map_err(|_| "bad port".to_string())?;
        let ca = std::fs::read_to_string(var(CHILD_CA)?).map_err(|e| e.to_string())?;
        let token = var(CHILD_TOKEN)?;
        let connector = http1_connector(&ca)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(api_round_to(port, &token, &connector))
            .map(drop)
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("floor-child: {e}");
            1
        }
    }
}

/// One fresh connection, one NAD GET and one status PATCH: the time of each.
async fn api_round(server: &ApiServer, connector: &TlsConnector) -> Result<[Duration; 3], String> {
    api_round_to(server.port(), server.token(), connector).await
}

/// [`api_round`] against the stand-in at `port`.
async fn api_round_to(
    port: u16,
    token: &str,
    connector: &TlsConnector,
) -> Result<[Duration; 3], String> {
    let auth = format!("Bearer {token}");

    let start = Instant::now();
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let connected = start.elapsed();

    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let request = |method: &str, path: &str, content_type: &str, body: Vec<u8>| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("authorization", &auth)
            .header("accept", "application/json")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())
    };
    let mut send = async |req: http::Request<Full<Bytes>>| -> Result<Duration, String> {
        let t = Instant::now();
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        resp.into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("status {status}"));
        }
        Ok(t.elapsed())
    };
    let get = send(request(
        "GET",
        "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/floor?resourceVersion=0",
        "application/json",
        Vec::new(),
    )?)
    .await?;
    let patch_body = json!({"metadata":{"uid":"u-floor","annotations":{
        "k8s.v1.cni.cncf.io/network-status":"[{\"name\":\"cluster\",\"interface\":\"eth0\",\"default\":true}]"}}});
    let patch = send(request(
        "PATCH",
        "/api/v1/namespaces/default/pods/floor/status",
        "application/merge-patch+json",
        patch_body.to_string().into_bytes(),
    )?)
    .await?;
    drop(sender);
    let _ = driver.await;
    Ok([connected, get, patch])
}

/// Prints the table and the sums.
pub fn report(floor: &Floor, runs: usize) {
    header(&format!("floor of an exec'd plugin, {runs} runs each"));
    row("process start and exit: /bin/true", &floor.exec);
    row("process start and exit: plexus VERSION", &floor.version);
    row("TCP connect + TLS handshake (warm process)", &floor.connect);
    row("NAD GET on that connection", &floor.get);
    row("status PATCH on that connection", &floor.patch);
    row(
        "cold: a fresh process connects, reads, writes and exits, + /bin/true",
        &floor.cold,
    );
    println!();
    println!(
        "Floor of the overhead per pod (2 starts + connection + NAD read + status write, medians): \
         {:.2} ms with /bin/true's start, {:.2} ms with plexus's",
        floor.sum(&floor.exec),
        floor.sum(&floor.version)
    );
    println!(
        "Cold floor (a fresh process for the connection, the NAD read and the status write, + \
         one /bin/true): {:.2} ms",
        floor.cold.median
    );
}
