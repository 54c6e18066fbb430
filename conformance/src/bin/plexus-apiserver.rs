//! Runs plexus's Kubernetes API stand-in until SIGTERM or SIGINT, for demos and manual testing.
//!
//! ```text
//! plexus-apiserver [--load DIR_OR_FILE]... [--kubeconfig PATH] [--port N] [--token T]
//! ```
//!
//! Loads every `.yaml`/`.yml` under each `--load` path (e.g. `examples/`), writes a kubeconfig
//! (mode 0600) with the generated CA and token when `--kubeconfig` is given, prints the URL on
//! stdout and serves on `127.0.0.1` until signalled. Then
//! `kubectl --kubeconfig PATH get pods,net-attach-def` works against it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use plexus_conformance::apiserver::{ApiServer, Options};
use plexus_conformance::flags::Flags;
use plexus_conformance::signals::Termination;

const USAGE: &str =
    "usage: plexus-apiserver [--load DIR_OR_FILE]... [--kubeconfig PATH] [--port N] [--token T]";

struct Args {
    load: Vec<PathBuf>,
    kubeconfig: Option<PathBuf>,
    options: Options,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        load: Vec::new(),
        kubeconfig: None,
        options: Options::default(),
    };
    let mut flags = Flags::from_env(USAGE);
    while let Some(flag) = flags.next_flag() {
        match flag.name.as_str() {
            "--load" => args.load.push(flags.value(&flag)?.into()),
            "--kubeconfig" => args.kubeconfig = Some(flags.value(&flag)?.into()),
            "--port" => args.options.port = flags.parsed(&flag)?,
            "--token" => args.options.token = Some(flags.value(&flag)?),
            _ => return Err(flags.unknown(&flag)),
        }
    }
    Ok(args)
}

/// What `ApiServer::write_kubeconfig` does, with the error returned instead of a panic.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("plexus-apiserver: {e}");
            return ExitCode::from(2);
        }
    };
    let signals = Termination::block();
    let api = match ApiServer::try_start_with(args.options) {
        Ok(api) => api,
        Err(e) => {
            eprintln!("plexus-apiserver: {e}");
            return ExitCode::FAILURE;
        }
    };
    for path in &args.load {
        let loaded = api.load_yaml_path(path);
        match loaded {
            Ok(n) => eprintln!(
                "plexus-apiserver: loaded {n} objects from {}",
                path.display()
            ),
            Err(e) => {
                eprintln!("plexus-apiserver: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(path) = &args.kubeconfig {
        if let Err(e) = write_private(path, &api.kubeconfig()) {
            eprintln!("plexus-apiserver: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("plexus-apiserver: wrote {}", path.display());
    }
    println!("{}", api.url());
    let _ = std::io::stdout().flush();
    let sig = signals.wait();
    eprintln!("plexus-apiserver: signal {sig}, stopping");
    drop(api);
    ExitCode::SUCCESS
}
