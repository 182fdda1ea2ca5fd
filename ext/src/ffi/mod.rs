//! Everything that touches PHP's C API: the module entry, the session module table and its
//! hooks, INI registration, phpinfo(), the PHP functions, and warnings.
//!
//! Each hook converts PHP's arguments, calls `handler`, and converts back. No panic may
//! cross into PHP (it would abort the worker), so every hook runs under `catch_unwind`.
//!
//! **Re-entry.** A warning runs the user's error handler, which may call session functions:
//! `session_abort()` or `session_write_close()` make PHP call Fleet's hooks again, and free
//! the `OpenSession` the current hook was using. So no hook emits anything while it holds
//! Fleet's state: [`warn`] and [`notice`] only queue a message, and every entry point
//! ([`hook`]) delivers the queue once its body has returned and no reference into Fleet's
//! state is alive. A hook entered during that delivery finds the state as PHP left it, and
//! one case is refused outright: a write while a read's messages are delivered, when PHP
//! has the data but has not decoded it into `$_SESSION` yet (it would store an empty
//! session over the real one).

use std::ffi::{c_int, CString};

/// `fleet_stats()`, `fleet_metrics()`, `fleet_lease_*()`.
mod functions;
/// The session hooks.
mod hooks;
/// Who the request is (host, pid, page, User-Agent).
mod identity;
/// INI registration and reading.
mod ini;
/// The panic guard and the queue of warnings delivered after each hook.
mod messages;
/// The module entry, its startup hooks, phpinfo() and the session module table.
mod module;

const SUCCESS: c_int = 0;
const FAILURE: c_int = -1;

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}
