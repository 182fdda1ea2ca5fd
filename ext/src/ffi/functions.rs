//! The PHP functions Fleet defines: `fleet_stats()`, `fleet_metrics()` and the
//! `fleet_lease_*()` family, with their arguments converted from zvals.

use ext_php_rs::args::Arg;
use ext_php_rs::flags::DataType;
use ext_php_rs::types::{ZendHashTable, Zval};
use ext_php_rs::zend::ExecuteData;

use crate::handler::{self};
use crate::leases;
use crate::metrics::{self, Stat};
use crate::settings;

use super::ini::{current_settings, ini_string};
use super::messages::{guard, hook, warn};

/// A PHP function's arguments as Rust values: strings, and numbers (int or float) as f64.
/// A wrong type gets a warning naming the function and parameter, and the call returns
/// false, as PHP's own functions do with non-strict types.
enum PhpArg {
    Str(String),
    Num(f64),
}

fn php_args(
    ex: &mut ExecuteData,
    spec: &[(&str, DataType)],
    required: usize,
) -> Option<Vec<Option<PhpArg>>> {
    let mut args: Vec<Arg> = spec.iter().map(|(n, t)| Arg::new(*n, *t)).collect();
    let mut parser = ex.parser();
    for (i, arg) in args.iter_mut().enumerate() {
        if i == required {
            parser = parser.not_required();
        }
        parser = parser.arg(arg);
    }
    // On a wrong count PHP has already thrown its ArgumentCountError.
    parser.parse().ok()?;
    let mut values = Vec::with_capacity(args.len());
    for (arg, (name, kind)) in args.iter_mut().zip(spec) {
        let value = match arg.zval() {
            None => None,
            Some(z) => {
                let z: &Zval = z;
                let converted = match kind {
                    DataType::String => z
                        .string()
                        .or_else(|| z.long().map(|l| l.to_string()))
                        .map(PhpArg::Str),
                    _ => z
                        .double()
                        .or_else(|| z.long().map(|l| l as f64))
                        .or_else(|| z.str().and_then(|s| s.trim().parse().ok()))
                        .map(PhpArg::Num),
                };
                if converted.is_none() {
                    let wanted = if *kind == DataType::String {
                        "a string"
                    } else {
                        "a number"
                    };
                    warn(&format!("${name} must be {wanted}"));
                    return None;
                }
                converted
            }
        };
        values.push(value);
    }
    Some(values)
}

fn arg_str(args: &[Option<PhpArg>], i: usize) -> &str {
    match args.get(i) {
        Some(Some(PhpArg::Str(s))) => s,
        _ => "",
    }
}

fn arg_num(args: &[Option<PhpArg>], i: usize, default: f64) -> f64 {
    match args.get(i) {
        Some(Some(PhpArg::Num(n))) => *n,
        _ => default,
    }
}

/// The lease store for this request, or a warning.
fn lease_store() -> Option<leases::StoreAt> {
    let url = leases::store_url(
        &ini_string(settings::names::lease_store),
        &ini_string(c"session.save_handler"),
        &ini_string(c"session.save_path"),
    );
    match url {
        Ok(url) => Some(leases::StoreAt {
            url,
            timeouts: current_settings().timeouts,
            open_basedir: ini_string(c"open_basedir"),
        }),
        Err(problem) => {
            warn(&problem);
            None
        }
    }
}

/// Sets `retval` to what a lease function's `outcome` says, warning on an error.
fn lease_reply<T>(
    retval: &mut Zval,
    outcome: Result<T, handler::Problem>,
    set: impl FnOnce(&mut Zval, T),
) {
    match outcome {
        Ok(value) => set(retval, value),
        Err(problem) => {
            warn(&problem);
            retval.set_bool(false);
        }
    }
}

/// `fleet_stats(): array`: the counters of every worker of this PHP-FPM master (of this
/// process in the CLI).
pub(super) extern "C" fn fleet_stats(ex: &mut ExecuteData, retval: &mut Zval) {
    guard((), || {
        retval.set_bool(false);
        if ex.parser().parse().is_err() {
            return;
        }
        let mut table = ZendHashTable::new();
        for (key, stat) in metrics::stats(&metrics::snapshot()) {
            let _ = match stat {
                Stat::Count(n) => table.insert(key, i64::try_from(n).unwrap_or(i64::MAX)),
                Stat::Seconds(seconds) => table.insert(key, seconds),
                Stat::Buckets(buckets) => {
                    let mut inner = ZendHashTable::new();
                    for (bound, n) in buckets {
                        let _ = inner.insert(bound.as_str(), i64::try_from(n).unwrap_or(i64::MAX));
                    }
                    table.insert(key, inner)
                }
            };
        }
        retval.set_hashtable(table);
    })
}

/// `fleet_metrics(): string`: the same counters in Prometheus's text format.
pub(super) extern "C" fn fleet_metrics(ex: &mut ExecuteData, retval: &mut Zval) {
    guard((), || {
        retval.set_bool(false);
        if ex.parser().parse().is_err() {
            return;
        }
        let text = metrics::prometheus(&metrics::snapshot());
        if retval.set_string(&text, false).is_err() {
            retval.set_bool(false);
        }
    })
}

/// `fleet_lease_acquire(string $name, float $ttl, float $wait = 0): string|false`
pub(super) extern "C" fn fleet_lease_acquire(ex: &mut ExecuteData, retval: &mut Zval) {
    hook((), || {
        retval.set_bool(false);
        let spec = [
            ("name", DataType::String),
            ("ttl", DataType::Double),
            ("wait", DataType::Double),
        ];
        let Some(args) = php_args(ex, &spec, 2) else {
            return;
        };
        let Some(at) = lease_store() else {
            return;
        };
        let outcome = leases::acquire(
            &at,
            arg_str(&args, 0),
            arg_num(&args, 1, 0.0),
            arg_num(&args, 2, 0.0),
        );
        lease_reply(retval, outcome, |rv, ticket| match ticket {
            Some(t) => {
                if rv.set_string(&t, false).is_err() {
                    rv.set_bool(false);
                }
            }
            None => rv.set_bool(false),
        });
    })
}

/// `fleet_lease_renew(string $name, string $token, float $ttl): bool`
pub(super) extern "C" fn fleet_lease_renew(ex: &mut ExecuteData, retval: &mut Zval) {
    hook((), || {
        retval.set_bool(false);
        let spec = [
            ("name", DataType::String),
            ("token", DataType::String),
            ("ttl", DataType::Double),
        ];
        let Some(args) = php_args(ex, &spec, 3) else {
            return;
        };
        let Some(at) = lease_store() else {
            return;
        };
        let outcome = leases::renew(
            &at,
            arg_str(&args, 0),
            arg_str(&args, 1),
            arg_num(&args, 2, 0.0),
        );
        lease_reply(retval, outcome, |rv, renewed| rv.set_bool(renewed));
    })
}

/// `fleet_lease_release(string $name, string $token): bool`
pub(super) extern "C" fn fleet_lease_release(ex: &mut ExecuteData, retval: &mut Zval) {
    hook((), || {
        retval.set_bool(false);
        let spec = [("name", DataType::String), ("token", DataType::String)];
        let Some(args) = php_args(ex, &spec, 2) else {
            return;
        };
        let Some(at) = lease_store() else {
            return;
        };
        let outcome = leases::release(&at, arg_str(&args, 0), arg_str(&args, 1));
        lease_reply(retval, outcome, |rv, released| rv.set_bool(released));
    })
}
