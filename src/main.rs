//! The `plexus` binary: read env + stdin, dispatch, print exactly one JSON document, exit.
//!
//! With arguments (runtimes pass none to a CNI plugin) it is not a CNI plugin: `plexus install
//! …` is the node installer ([`plexus::install`]), `plexus explain|doctor|ls …` are the
//! operator's read-only commands ([`plexus::commands`]).
//!
//! # No Rust runtime start-up
//!
//! The binary defines the C `main` itself (`#![no_main]`) instead of going through std's
//! runtime start-up, because that start-up costs every exec (twice per pod, and every VERSION
//! probe) work plexus does not need: to place the main thread's stack-overflow guard it has
//! glibc read and `sscanf` all of `/proc/self/maps`, and it installs a SIGSEGV handler and an
//! alternate signal stack for the main thread and for every thread plexus starts. What plexus
//! does need from it is done here: SIGPIPE is ignored (a delegate that closes its stdin early must be an
//! `EPIPE` error, not the death of plexus), a closed stdin, stdout or stderr is reopened on
//! `/dev/null` (so no file plexus opens can take their place), and stdout is flushed before
//! exit. std's argument and environment access work without it (glibc hands them to std at
//! load time). What is lost: a stack overflow ends plexus with SIGSEGV instead of a message
//! (the guard page is the kernel's and still there); plexus does not recurse on input depth
//! beyond serde_json's limit of 128.
//!
//! # The heap, present at start
//!
//! The heap glibc set up before `main` (most of which an ADD or DEL uses) is made present with
//! one `madvise(MADV_POPULATE_WRITE)` instead of a page fault per page. Populating more than
//! that (a larger heap, stack pages) made VERSION slower: a page the process never touches
//! still costs its allocation.

#![no_main]

use std::ffi::{c_char, c_int};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use plexus::cni::{Error, Version};
use plexus::delegate::{Ahead, ProcessExec};

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

/// The process entry point, called by the C runtime (see the module docs).
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    prepare_process();
    // A panic must not unwind out of an `extern "C"` function. Release builds abort on panic
    // (after the hook printed the error document); this only matters in debug builds.
    let code = std::panic::catch_unwind(run).unwrap_or(1);
    let _ = std::io::stdout().flush();
    c_int::from(code)
}

/// The part of std's runtime start-up plexus needs (see the module docs).
fn prepare_process() {
    // SAFETY: plain libc calls on this process's own signal disposition and descriptors 0-2,
    // made before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        for fd in 0..=2 {
            if libc::fcntl(fd, libc::F_GETFD) == -1
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
            {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null != fd {
                    // Not the lowest free descriptor: nothing sensible is left to do.
                    libc::abort();
                }
            }
        }
    }
    populate_heap();
}

/// Makes the heap glibc set up at start-up present in one call instead of one page fault per
/// page (see the module docs).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn populate_heap() {
    // SAFETY: `mallinfo2` and `sbrk(0)` only read the allocator's state and the current
    // break; `madvise(MADV_POPULATE_WRITE)` only makes pages of this process's own heap
    // present (their contents, zero or already written, are unchanged), and fails harmlessly
    // on kernels before 5.14.
    unsafe {
        // The heap starts where the break was before the main arena took its bytes.
        let heap = libc::mallinfo2().arena;
        let end = libc::sbrk(0) as usize;
        let start = end.saturating_sub(heap) & !(PAGE - 1);
        if heap > 0 && start > 0 {
            libc::madvise(
                start as *mut libc::c_void,
                end - start,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn populate_heap() {}

/// The page size of the platforms plexus runs on (a smaller value only populates less).
const PAGE: usize = 4096;

fn run() -> u8 {
    let mut args = std::env::args_os().skip(1);
    if let Some(first) = args.next() {
        let rest: Vec<_> = args.collect();
        if first == "install" {
            return plexus::install::main(&rest);
        }
        if first == plexus::k8s::events::SEND_EVENTS_ARG {
            return plexus::k8s::events::sender_main();
        }
        if let Some(name) = first
            .to_str()
            .filter(|n| plexus::commands::is_subcommand(n))
        {
            return plexus::commands::main(name, &rest);
        }
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
        &Ahead::new(ProcessExec::default()),
    );
    if let Some(doc) = &response.stdout {
        print_doc(doc);
    }
    response.exit_code
}
