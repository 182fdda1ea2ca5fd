//! End to end: two PHP-FPM app servers behind an nginx round-robin balancer, the built
//! extension, and a real Redis or MariaDB. Timings are printed for the record, never asserted.
//!
//! One test binary, `e2e`, one module per scenario group; `backend` is the servers the
//! scenarios run on and `common` the helpers they share.

mod backend;
mod common;

mod busy;
mod cookies;
mod dead_backend;
mod holder;
mod hot_session;
mod increments;
mod leases;
mod lifetimes;
mod locks;
mod max_execution_time;
mod metrics;
