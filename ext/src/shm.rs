//! Memory shared by all workers of one PHP-FPM master, and the facts every process of the
//! machine agrees on: one monotonic clock, and whether a PID is alive.
//!
//! Mappings are made once, at module startup, before FPM forks its workers, so every
//! worker of that master sees the same pages (an anonymous shared mapping; a PHP CLI process
//! has one of its own). They hold atomics only: the request path stores and adds, never
//! locks, never does I/O.

/// `count` zeroed values of `T` in an anonymous shared mapping that is never unmapped (so
/// it lives for the process, and a fork shares it); empty if the mapping fails.
///
/// # Safety
/// `T` must be made of atomics only, for which all-zero bytes are a valid value and which
/// are sound to share between processes.
pub unsafe fn map_zeroed<T>(count: usize) -> &'static [T] {
    let bytes = count * std::mem::size_of::<T>();
    // SAFETY: an anonymous shared mapping of `bytes` zeroed bytes, never unmapped, so the
    // slice lives for the process; zeroed memory is a valid `T` by this function's contract.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            &[][..]
        } else {
            std::slice::from_raw_parts(p.cast::<T>(), count)
        }
    }
}

/// Now, in the milliseconds of `CLOCK_MONOTONIC` the board's times are in (one clock for
/// every process of the machine).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the one we pass; CLOCK_MONOTONIC
    // always exists on Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if r != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1000).saturating_add(nanos / 1_000_000)
}

/// Whether process `pid` exists.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 sends nothing; it only reports whether the process
    // exists (EPERM also means it does).
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
