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

use plexus_conformance::flags::Flags;
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
    let mut flags = Flags::from_env(USAGE);
    while let Some(flag) = flags.next_flag() {
        match flag.name.as_str() {
            "--socket" => args.socket = Some(flags.value(&flag)?.into()),
            "--load" => args.load = Some(flags.value(&flag)?.into()),
            "--no-get" => args.no_get = true,
            "--delay-ms" => args.delay = Duration::from_millis(flags.parsed(&flag)?),
            _ => return Err(flags.unknown(&flag)),
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
