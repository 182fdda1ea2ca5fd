//! The `fleet` PHP extension: a native session save handler (`session.save_handler = fleet`).
//!
//! Thin glue over `fleet-core`:
//! - [`ffi`]: the only module that touches PHP's C API: `module` (the module entry, its
//!   startup hooks, phpinfo() and the checked `ps_module` table), `hooks` (the session
//!   hooks), `functions` (the PHP functions), `ini`, `identity` (who the request is) and
//!   `messages` (the panic guard and the warnings delivered after each hook).
//! - [`handler`]: what each session hook does, in safe Rust.
//! - [`advice`]: what an admin can do about a store error, in terms of PHP's settings.
//! - [`leases`]: `fleet_lease_acquire()`, `fleet_lease_renew()`, `fleet_lease_release()`.
//! - [`busy`]: the busy-session cap (`fleet.max_waiters`): the setting, the board of who
//!   waits for which session, and the admission decision.
//! - [`metrics`]: the shared counters, what each means; `fleet_stats()` and `fleet_metrics()`.
//! - [`settings`]: the one table of `fleet.*` INI entries, and their validation.
//! - [`shm`]: memory shared by the workers of one FPM master, the monotonic clock, PID
//!   liveness.

mod advice;
mod busy;
mod ffi;
mod handler;
mod leases;
mod metrics;
mod settings;
mod shm;
