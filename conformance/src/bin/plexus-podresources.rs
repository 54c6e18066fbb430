//! Runs plexus's kubelet PodResources stand-in until SIGTERM or SIGINT, for demos and manual
//! testing.
//!
//! ```text
//! plexus-podresources --socket PATH [--load FILE.json] [--no-get] [--delay-ms N]
//! ```
//!
//! Serves gRPC `v1.PodResourcesLister` on the unix socket `PATH` (point plexus's
//! `podResourcesSocket` at it) with the pods of `FILE.json`:
//! `{"pods":[{"namespace":"default","name":"web","containers":[{"name":"app",
//! "devices":{"example.com/sriov_vf":["0000:af:00.1","0000:af:00.2"]}}]}]}`.
//! `--no-get` answers `Get` with `Unimplemented` (a kubelet before 1.27), `--delay-ms` delays
//! every answer. Prints the socket path on stdout once it accepts connections.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use plexus_conformance::podresources::PodResourcesServer;
use plexus_conformance::signals::Termination;

const USAGE: &str =
    "usage: plexus-podresources --socket PATH [--load FILE.json] [--no-get] [--delay-ms N]";

#[derive(Default)]
struct Args {
    socket: Option<PathBuf>,
    load: Option<PathBuf>,
    no_get: bool,
    delay: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--socket" => args.socket = Some(value()?.into()),
            "--load" => args.load = Some(value()?.into()),
            "--no-get" => args.no_get = true,
            "--delay-ms" => {
                let v = value()?;
                let ms: u64 = v.parse().map_err(|_| format!("bad --delay-ms {v:?}"))?;
                args.delay = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("plexus-podresources: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(socket) = args.socket else {
        eprintln!("plexus-podresources: --socket is required\n{USAGE}");
        return ExitCode::from(2);
    };
    let signals = Termination::block();
    let server = match PodResourcesServer::try_start(&socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("plexus-podresources: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.load {
        let loaded = std::fs::read(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))
            .and_then(|b| {
                serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display()))
            })
            .and_then(|doc| server.load(&doc));
        if let Err(e) = loaded {
            eprintln!("plexus-podresources: {e}");
            return ExitCode::FAILURE;
        }
    }
    server.serve_get(!args.no_get);
    server.set_delay(args.delay);
    println!("{}", socket.display());
    let _ = std::io::stdout().flush();
    let sig = signals.wait();
    eprintln!("plexus-podresources: signal {sig}, stopping");
    drop(server);
    ExitCode::SUCCESS
}
