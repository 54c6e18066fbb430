//! The `plexus` binary: read env + stdin, dispatch, print exactly one JSON document, exit.
//!
//! `plexus install …` (the only use with arguments: runtimes pass none to a CNI plugin) is the
//! node installer instead, see [`plexus::install`]; it prints no JSON document.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use plexus::cni::{Error, Version};
use plexus::delegate::ProcessExec;

/// Set once a document went to stdout, so a later panic cannot print a second one.
static PRINTED: AtomicBool = AtomicBool::new(false);

fn print_doc(doc: &serde_json::Value) {
    if PRINTED.swap(true, Ordering::SeqCst) {
        return;
    }
    let mut out = std::io::stdout().lock();
    // Nothing sensible can be done if stdout is gone.
    let _ = serde_json::to_writer(&mut out, doc);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == "install") {
        let rest: Vec<_> = args.collect();
        return ExitCode::from(plexus::install::main(&rest));
    }
    std::panic::set_hook(Box::new(|info| {
        let e = Error::Internal(format!("plexus bug: {info}"));
        print_doc(&e.to_json(Version::LATEST.as_str()));
        eprintln!("plexus panicked: {info}");
    }));
    // Debug builds only: lets the tests prove the hook's one-document guarantee.
    #[cfg(debug_assertions)]
    if std::env::var_os("PLEXUS_DEBUG_PANIC").is_some() {
        panic!("PLEXUS_DEBUG_PANIC is set");
    }
    let response = plexus::plugin::run(
        |k| std::env::var(k).ok(),
        &mut std::io::stdin().lock(),
        &ProcessExec::default(),
    );
    if let Some(doc) = &response.stdout {
        print_doc(doc);
    }
    ExitCode::from(response.exit_code)
}
