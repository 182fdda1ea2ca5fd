//! End to end: two PHP-FPM app servers behind an nginx round-robin balancer, the built
//! extension, and a real Redis or MariaDB. Timings are printed for the record, never asserted.
//!
//! One test binary, `e2e`, one module per scenario group; `backend` is the servers the
//! scenarios run on and `common` the helpers they share.

/// One scenario on several backends: `matrix!(scenario => run: redis, cluster, mysql_advisory);`
/// is a module `scenario` with one `#[test] fn` per backend, named after it, that calls
/// `run(Backend::redis())` and so on. Each backend named is a constructor of `Backend` (see
/// backend.rs), so the test's full name is `<file>::<scenario>::<backend>`: keep `mysql` in
/// the name of every MySQL backend, as scripts/test.sh reruns the others on Valkey with
/// `!test(/mysql/)`. A backend may carry attributes (a doc comment, `#[ignore]`), and
/// `backend = expr` gives that one test its own `Backend` (extra save_path options) under
/// the backend's name.
macro_rules! matrix {
    (@backend $backend:ident) => {
        $crate::backend::Backend::$backend()
    };
    (@backend $backend:ident = $make:expr) => {
        $make
    };
    ($scenario:ident => $run:ident: $($(#[$attr:meta])* $backend:ident $(= $make:expr)?),+ $(,)?) => {
        mod $scenario {
            use super::*;

            $(
                $(#[$attr])*
                #[test]
                fn $backend() {
                    $run(matrix!(@backend $backend $(= $make)?));
                }
            )+
        }
    };
}

mod backend;
mod common;

mod at_rest;
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
mod merge;
mod metrics;
