//! This process's id, without a system call each time it is asked.
//!
//! Fleet asks often (every step checks that its connection, its renewer and its lock are
//! this process's and not a forked parent's): 14 `getpid()` calls a request, a measurable
//! part of its cost. The id is kept, and forgotten in the child of every `fork()` (PHP's
//! `pcntl_fork()` included) by a `pthread_atfork` handler, so the child asks again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// The kept id; 0 until asked, and again in a child just forked.
static PID: AtomicU32 = AtomicU32::new(0);
static FORGET_IN_CHILDREN: Once = Once::new();

extern "C" fn forget_pid() {
    PID.store(0, Ordering::Relaxed);
}

/// The id of the calling process (as `std::process::id()`).
pub fn id() -> u32 {
    FORGET_IN_CHILDREN.call_once(|| {
        // SAFETY: registers a child handler that only stores to an atomic (async-signal
        // safe, as handlers run in the child of a multithreaded process must be); the
        // handler is a plain function that lives as long as the process.
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid)) };
    });
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kept_id_is_this_processs_and_a_forked_child_gets_its_own() {
        assert_eq!(super::id(), std::process::id());
        let mut pipe = [0; 2];
        // SAFETY: a two-element array for pipe(2) to fill.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: the child only calls async-signal-safe functions (getpid, write, _exit)
        // and reads an atomic.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let ok = super::id() == std::process::id() && super::id() != 0;
            let byte = [u8::from(ok)];
            // SAFETY: writes one byte from a live buffer, then ends the child at once.
            unsafe {
                libc::write(pipe[1], byte.as_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        let mut byte = [0u8];
        // SAFETY: reads one byte into a live buffer; waits for the child.
        unsafe {
            libc::read(pipe[0], byte.as_mut_ptr().cast(), 1);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
        assert_eq!(byte[0], 1, "the child saw its own id, not the parent's");
        assert_ne!(child as u32, super::id());
    }
}
