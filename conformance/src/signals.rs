//! Stopping the stand-in binaries (`plexus-apiserver`, `plexus-podresources`) on SIGTERM or
//! SIGINT: the signals are blocked before any thread starts, so that only [`Termination::wait`]
//! receives them (with `sigwait`), and the caller can then drop its server cleanly.

/// SIGTERM and SIGINT, blocked in the calling thread and every thread it starts afterwards.
pub struct Termination(libc::sigset_t);

impl Termination {
    /// Blocks the two signals; call it before starting any thread.
    pub fn block() -> Termination {
        // SAFETY: plain libc signal-mask calls on a local, initialised sigset_t.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Termination(set)
        }
    }

    /// Waits for one of them; returns its number (SIGTERM if `sigwait` fails).
    pub fn wait(&self) -> i32 {
        let mut sig = 0;
        // SAFETY: the set is initialised and `sig` is a valid out-pointer.
        let rc = unsafe { libc::sigwait(&self.0, &mut sig) };
        if rc != 0 { libc::SIGTERM } else { sig }
    }
}
