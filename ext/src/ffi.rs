//! Everything that touches PHP's C API: the module entry, the session module table and its
//! hooks, INI registration, phpinfo(), and warnings.
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

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use ext_php_rs::args::Arg;
use ext_php_rs::builders::{FunctionBuilder, ModuleBuilder};
use ext_php_rs::ffi::{
    php_error_docref, php_info_print_table_end, php_info_print_table_row,
    php_info_print_table_start, zend_long, zend_string, E_NOTICE, E_WARNING,
};
use ext_php_rs::flags::DataType;
use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::types::ZendStr;
use ext_php_rs::types::{ZendHashTable, Zval};
use ext_php_rs::zend::ExecuteData;
use ext_php_rs::zend::{IniEntryDef, IniEntryDefs, ModuleEntry, StaticModuleEntry};

use crate::handler::{self, MemoryRoom, OpenSession};
use crate::leases;
use crate::metrics::{self, Stat};
use crate::settings::{RawIni, Settings};
use crate::shared;

const SUCCESS: c_int = 0;
const FAILURE: c_int = -1;

/// PHP's `ps_module` (ext/session/php_session.h, PHP 8.x), field for field.
#[repr(C)]
struct PsModule {
    name: *const c_char,
    open: unsafe extern "C" fn(*mut *mut c_void, *const c_char, *const c_char) -> c_int,
    close: unsafe extern "C" fn(*mut *mut c_void) -> c_int,
    read: unsafe extern "C" fn(
        *mut *mut c_void,
        *mut zend_string,
        *mut *mut zend_string,
        zend_long,
    ) -> c_int,
    write: unsafe extern "C" fn(
        *mut *mut c_void,
        *mut zend_string,
        *mut zend_string,
        zend_long,
    ) -> c_int,
    destroy: unsafe extern "C" fn(*mut *mut c_void, *mut zend_string) -> c_int,
    gc: unsafe extern "C" fn(*mut *mut c_void, zend_long, *mut zend_long) -> zend_long,
    create_sid: unsafe extern "C" fn(*mut *mut c_void) -> *mut zend_string,
    validate_sid: unsafe extern "C" fn(*mut *mut c_void, *mut zend_string) -> c_int,
    update_timestamp: unsafe extern "C" fn(
        *mut *mut c_void,
        *mut zend_string,
        *mut zend_string,
        zend_long,
    ) -> c_int,
}

include!(concat!(env!("OUT_DIR"), "/ps_module_layout.rs"));

/// `PsModule`'s size, then the offsets of its fields, in `ps_module`'s order.
const PS_MODULE_OURS: [usize; 11] = [
    std::mem::size_of::<PsModule>(),
    std::mem::offset_of!(PsModule, name),
    std::mem::offset_of!(PsModule, open),
    std::mem::offset_of!(PsModule, close),
    std::mem::offset_of!(PsModule, read),
    std::mem::offset_of!(PsModule, write),
    std::mem::offset_of!(PsModule, destroy),
    std::mem::offset_of!(PsModule, gc),
    std::mem::offset_of!(PsModule, create_sid),
    std::mem::offset_of!(PsModule, validate_sid),
    std::mem::offset_of!(PsModule, update_timestamp),
];

/// Whether a table of `layout` (size, then offsets) is the installed `ps_module`.
const fn matches_php_session_h(layout: [usize; 11]) -> bool {
    let mut i = 0;
    while i < layout.len() {
        if layout[i] != PS_MODULE_LAYOUT[i] {
            return false;
        }
        i += 1;
    }
    true
}

// A PHP whose session module table differs from `PsModule` fails the build here, never a
// worker at run time.
const _: () = assert!(
    matches_php_session_h(PS_MODULE_OURS),
    "ext/src/ffi.rs's PsModule (size, then each field's offset) differs from ps_module in the installed php_session.h: this PHP's session module table is not the one Fleet declares"
);

// SAFETY: the table is immutable and its one pointer is to a static C string.
unsafe impl Sync for PsModule {}

static SESSION_MODULE: PsModule = PsModule {
    name: c"fleet".as_ptr(),
    open: ps_open,
    close: ps_close,
    read: ps_read,
    write: ps_write,
    destroy: ps_destroy,
    gc: ps_gc,
    create_sid: ps_create_sid,
    validate_sid: ps_validate_sid,
    update_timestamp: ps_update_timestamp,
};

/// PHP's `zend_module_dep`.
#[repr(C)]
struct ModuleDep {
    name: *const c_char,
    rel: *const c_char,
    version: *const c_char,
    kind: u8,
}

struct ModuleDeps([ModuleDep; 2]);

// SAFETY: immutable, pointing only at static C strings.
unsafe impl Sync for ModuleDeps {}

const MODULE_DEP_REQUIRED: u8 = 1;

/// The session extension must start before Fleet registers itself with it.
static DEPS: ModuleDeps = ModuleDeps([
    ModuleDep {
        name: c"session".as_ptr(),
        rel: ptr::null(),
        version: ptr::null(),
        kind: MODULE_DEP_REQUIRED,
    },
    ModuleDep {
        name: ptr::null(),
        rel: ptr::null(),
        version: ptr::null(),
        kind: 0,
    },
]);

static INI: IniEntryDefs<14> = IniEntryDefs::new([
    IniEntryDef::new(c"fleet.metrics", c"1", IniEntryPermission::All),
    IniEntryDef::new(c"fleet.slow_lock_wait", c"0", IniEntryPermission::All),
    IniEntryDef::new(c"fleet.lease_store", c"", IniEntryPermission::All),
    // settings::MaxWaiters::Auto and DEFAULT_MAX_WAITERS_WINDOW.
    IniEntryDef::new(c"fleet.max_waiters", c"auto", IniEntryPermission::All),
    IniEntryDef::new(c"fleet.max_waiters_window", c"1", IniEntryPermission::All),
    IniEntryDef::new(c"fleet.busy_status", c"0", IniEntryPermission::All),
    IniEntryDef::new(c"fleet.locking", c"1", IniEntryPermission::All),
    IniEntryDef::new(c"fleet.lock_ttl", c"0", IniEntryPermission::All),
    IniEntryDef::new(c"fleet.lock_renewal", c"1", IniEntryPermission::All),
    IniEntryDef::new(c"fleet.lock_max_hold", c"0", IniEntryPermission::All),
    IniEntryDef::new(c"fleet.lock_wait_timeout", c"10", IniEntryPermission::All),
    IniEntryDef::new(c"fleet.connect_timeout", c"1", IniEntryPermission::All),
    IniEntryDef::new(c"fleet.read_timeout", c"1", IniEntryPermission::All),
    IniEntryDef::end(),
]);

extern "C" {
    fn php_session_register_module(module: *const PsModule) -> c_int;
    fn php_session_create_id(mod_data: *mut *mut c_void) -> *mut zend_string;
    fn zend_ini_string_ex(
        name: *const c_char,
        name_length: usize,
        orig: c_int,
        exists: *mut bool,
    ) -> *mut c_char;
    fn zend_ini_long(name: *const c_char, name_length: usize, orig: c_int) -> zend_long;
    fn display_ini_entries(module: *mut ModuleEntry);
    fn zend_memory_usage(real_usage: bool) -> usize;
    fn php_check_open_basedir_ex(path: *const c_char, warn: c_int) -> c_int;
    fn sapi_getenv(name: *const c_char, name_len: usize) -> *mut c_char;
    fn sapi_header_op(op: c_int, arg: *mut c_void) -> c_int;
}

/// PHP's `sapi_header_line` (main/SAPI.h).
#[repr(C)]
struct SapiHeaderLine {
    line: *const c_char,
    line_len: usize,
    response_code: zend_long,
}

/// `SAPI_HEADER_REPLACE`, the first of PHP's `sapi_header_op_enum`.
const SAPI_HEADER_REPLACE: c_int = 0;

static MODULE: StaticModuleEntry = StaticModuleEntry::new();

/// The entry point PHP looks up when it loads `fleet.so`.
#[no_mangle]
pub extern "C" fn get_module() -> *mut ModuleEntry {
    let built = ModuleBuilder::new("fleet", env!("CARGO_PKG_VERSION"))
        .startup_function(module_startup)
        .request_startup_function(request_startup)
        .request_shutdown_function(request_shutdown)
        .info_function(module_info)
        .function(
            FunctionBuilder::new("fleet_lease_acquire", fleet_lease_acquire)
                .arg(Arg::new("name", DataType::String))
                .arg(Arg::new("ttl", DataType::Double))
                .not_required()
                .arg(Arg::new("wait", DataType::Double).default("0"))
                .returns(DataType::Mixed, false, false),
        )
        .function(
            FunctionBuilder::new("fleet_lease_renew", fleet_lease_renew)
                .arg(Arg::new("name", DataType::String))
                .arg(Arg::new("token", DataType::String))
                .arg(Arg::new("ttl", DataType::Double))
                .returns(DataType::Bool, false, false),
        )
        .function(FunctionBuilder::new("fleet_stats", fleet_stats).returns(
            DataType::Array,
            false,
            false,
        ))
        .function(
            FunctionBuilder::new("fleet_metrics", fleet_metrics).returns(
                DataType::String,
                false,
                false,
            ),
        )
        .function(
            FunctionBuilder::new("fleet_lease_release", fleet_lease_release)
                .arg(Arg::new("name", DataType::String))
                .arg(Arg::new("token", DataType::String))
                .returns(DataType::Bool, false, false),
        )
        .try_into();
    match built {
        // Fleet registers no classes or constants, so the startup half has nothing to do.
        Ok((mut entry, _startup, allocations)) => {
            entry.deps = DEPS.0.as_ptr().cast();
            MODULE.get_or_init(move || (entry, allocations))
        }
        Err(e) => {
            // Only reachable if the constant name or version held a NUL byte. PHP
            // dereferences whatever get_module returns, so there is no safe way to decline.
            eprintln!("fleet: cannot build the PHP module entry: {e}");
            std::process::abort()
        }
    }
}

/// RINIT: a new request has read no session yet.
unsafe extern "C" fn request_startup(_type: c_int, _module_number: c_int) -> c_int {
    guard(SUCCESS, || {
        // Left over only if a fatal error in an error handler ended the last delivery.
        OUTBOX.with(|q| q.borrow_mut().clear());
        DELIVERING.with(|d| d.borrow_mut().clear());
        READ_BEING_REPORTED.with(|r| r.set(false));
        handler::request_starts();
        SUCCESS
    })
}

/// RSHUTDOWN: this worker has served a request (for `fleet.max_waiters`' view of who else
/// is being served).
unsafe extern "C" fn request_shutdown(_type: c_int, _module_number: c_int) -> c_int {
    guard(SUCCESS, || {
        handler::request_ends();
        SUCCESS
    })
}

unsafe extern "C" fn module_startup(_type: c_int, module_number: c_int) -> c_int {
    guard(FAILURE, || {
        IniEntryDef::register(INI.as_slice(), module_number);
        fleet_core::config::set_file_guard(php_may_open);
        // Before FPM forks its workers, so they share it.
        shared::init();
        shared::init_counters();
        // SAFETY: called during MINIT, after the session extension has started (declared in
        // DEPS); SESSION_MODULE is a static that outlives the process's use of it.
        unsafe { php_session_register_module(&SESSION_MODULE) }
    })
}

unsafe extern "C" fn module_info(module: *mut ModuleEntry) {
    guard((), || {
        let version = c_string(env!("CARGO_PKG_VERSION"));
        let figures: Vec<(CString, CString)> = metrics::summary(&shared::snapshot())
            .into_iter()
            .map(|(label, value)| (c_string(label), c_string(&value)))
            .collect();
        let connections = handler::describe_connections();
        let connections = c_string(&if connections.is_empty() {
            "none".to_owned()
        } else {
            connections.join(", ")
        });
        // SAFETY: called by phpinfo(); every argument is a NUL-terminated string that lives
        // until the call returns, and the row counts match the argument counts.
        unsafe {
            php_info_print_table_start();
            php_info_print_table_row(2, c"Fleet session handler".as_ptr(), c"enabled".as_ptr());
            php_info_print_table_row(2, c"Version".as_ptr(), version.as_ptr());
            php_info_print_table_row(
                2,
                c"Save path schemes".as_ptr(),
                c"redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster://, rediss+cluster://, mysql://".as_ptr(),
            );
            php_info_print_table_row(
                2,
                c"Connections of this worker".as_ptr(),
                connections.as_ptr(),
            );
            for (label, value) in &figures {
                php_info_print_table_row(2, label.as_ptr(), value.as_ptr());
            }
            php_info_print_table_end();
            display_ini_entries(module);
        }
    })
}

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
                    warn(&format!("Fleet: ${name} must be {wanted}"));
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
        &ini_string(c"fleet.lease_store"),
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
extern "C" fn fleet_stats(ex: &mut ExecuteData, retval: &mut Zval) {
    guard((), || {
        retval.set_bool(false);
        if ex.parser().parse().is_err() {
            return;
        }
        let mut table = ZendHashTable::new();
        for (key, stat) in metrics::stats(&shared::snapshot()) {
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
extern "C" fn fleet_metrics(ex: &mut ExecuteData, retval: &mut Zval) {
    guard((), || {
        retval.set_bool(false);
        if ex.parser().parse().is_err() {
            return;
        }
        let text = metrics::prometheus(&shared::snapshot());
        if retval.set_string(&text, false).is_err() {
            retval.set_bool(false);
        }
    })
}

/// `fleet_lease_acquire(string $name, float $ttl, float $wait = 0): string|false`
extern "C" fn fleet_lease_acquire(ex: &mut ExecuteData, retval: &mut Zval) {
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
extern "C" fn fleet_lease_renew(ex: &mut ExecuteData, retval: &mut Zval) {
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
extern "C" fn fleet_lease_release(ex: &mut ExecuteData, retval: &mut Zval) {
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

/// Runs `body`, turning a panic into `fallback` so it never unwinds into PHP.
fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// An entry point from PHP: runs `body` under [`guard`], then delivers the messages it
/// queued, when nothing of Fleet's is borrowed any more (see the module's notes on
/// re-entry).
fn hook<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    READ_JUST_RETURNED.with(|r| r.set(false));
    let result = guard(fallback, body);
    deliver();
    result
}

thread_local! {
    /// Messages queued by the running hook, delivered by [`deliver`].
    static OUTBOX: RefCell<VecDeque<(c_int, CString)>> = const { RefCell::new(VecDeque::new()) };
    /// The messages being delivered. They live here rather than on the delivering frame, so
    /// that a fatal error in the user's error handler, which leaves by longjmp, skips no
    /// destructor of ours; RINIT clears what such an exit left.
    static DELIVERING: RefCell<Vec<CString>> = const { RefCell::new(Vec::new()) };
    /// Whether a read's messages are being delivered: PHP holds the data but has not
    /// decoded it into `$_SESSION`.
    static READ_BEING_REPORTED: Cell<bool> = const { Cell::new(false) };
    /// Whether the last hook PHP called was a successful read. PHP calls gc between the read
    /// and decoding the data into `$_SESSION`, so a gc right after a read reports its
    /// problems as the read does ([`deliver_read_messages`]).
    static READ_JUST_RETURNED: Cell<bool> = const { Cell::new(false) };
}

/// Delivers the queued messages through `php_error_docref`, each of which may run user code
/// that re-enters Fleet (and queues and delivers messages of its own).
fn deliver() {
    loop {
        let Some((level, message)) = OUTBOX.with(|q| q.borrow_mut().pop_front()) else {
            return;
        };
        let text = DELIVERING.with(|d| {
            let mut d = d.borrow_mut();
            let text = message.as_ptr();
            // Moving the CString keeps its heap buffer where `text` points.
            d.push(message);
            text
        });
        // SAFETY: a "%s" format with one NUL-terminated string, owned by DELIVERING until
        // the call returns (PHP formats it before it runs any handler).
        unsafe { php_error_docref(ptr::null(), level, c"%s".as_ptr(), text) };
        DELIVERING.with(|d| d.borrow_mut().pop());
    }
}

/// Delivers the messages of a read, refusing writes meanwhile ([`refuse_write_during_read`]).
fn deliver_read_messages() {
    let outer = READ_BEING_REPORTED.with(|r| r.replace(true));
    deliver();
    READ_BEING_REPORTED.with(|r| r.set(outer));
}

/// A write or touch entered from an error handler that runs while a read reports a problem
/// (`session_write_close()` there): PHP has not put the data read into `$_SESSION` yet, so
/// what it asks to store is not the session. Refused: the session is released as stored.
fn refuse_write_during_read() -> Option<c_int> {
    if !READ_BEING_REPORTED.with(Cell::get) {
        return None;
    }
    warn("Fleet: the session was not written: session_write_close() (or a write) ran in an error handler while session_start() was still reading the session, before PHP had put the data into $_SESSION. The session is kept as stored");
    Some(FAILURE)
}

/// `open_basedir` for files named by settings (password_file=, tls_ca_file=, …): the same
/// check PHP's own file functions make, without its warning (Fleet names the setting).
fn php_may_open(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path that outlives the call; warn = 0 makes PHP report
    // nothing, so no user code runs. It reads PG(open_basedir) of the current request.
    unsafe { php_check_open_basedir_ex(path.as_ptr(), 0) == 0 }
}

/// What PHP can still allocate in this request, under `memory_limit`.
fn memory_room() -> MemoryRoom {
    // SAFETY: zend_memory_usage reads the request heap's counters; real = true counts the
    // chunks PHP holds, which is what memory_limit is checked against.
    let in_use = unsafe { zend_memory_usage(true) };
    // SAFETY: core_globals is PHP's process-wide PG() in an NTS build (configure refuses
    // ZTS); memory_limit is the limit the allocator enforces, set by PHP's INI handler.
    let memory_limit = unsafe { (*ptr::addr_of!(ext_php_rs::ffi::core_globals)).memory_limit };
    MemoryRoom::new(memory_limit, in_use)
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Queues a message for delivery when the running hook returns.
fn emit(level: u32, message: &str) {
    let Ok(level) = c_int::try_from(level) else {
        return;
    };
    let message = c_string(message);
    OUTBOX.with(|q| q.borrow_mut().push_back((level, message)));
}

fn warn(message: &str) {
    emit(E_WARNING, message);
}

fn notice(message: &str) {
    emit(E_NOTICE, message);
}

/// Reads an INI entry's current value as a string ("" when unset).
fn ini_string(name: &CStr) -> String {
    let mut exists = false;
    // SAFETY: `name` is NUL-terminated and its length excludes the NUL; PHP returns a
    // pointer to its own copy of the value, valid during this request, or NULL.
    let value = unsafe { zend_ini_string_ex(name.as_ptr(), name.count_bytes(), 0, &mut exists) };
    if value.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL INI values are NUL-terminated strings owned by PHP.
    unsafe { CStr::from_ptr(value) }
        .to_string_lossy()
        .into_owned()
}

fn current_settings() -> Settings {
    let [locking, max_waiters, max_waiters_window, busy_status, lock_ttl, lock_renewal, lock_max_hold, lock_wait_timeout, connect_timeout, read_timeout, slow_lock_wait, metrics] =
        [
            c"fleet.locking",
            c"fleet.max_waiters",
            c"fleet.max_waiters_window",
            c"fleet.busy_status",
            c"fleet.lock_ttl",
            c"fleet.lock_renewal",
            c"fleet.lock_max_hold",
            c"fleet.lock_wait_timeout",
            c"fleet.connect_timeout",
            c"fleet.read_timeout",
            c"fleet.slow_lock_wait",
            c"fleet.metrics",
        ]
        .map(ini_string);
    let max_execution_time = {
        let name = c"max_execution_time";
        // SAFETY: NUL-terminated name, length without the NUL.
        unsafe { zend_ini_long(name.as_ptr(), name.count_bytes(), 0) }
    };
    let raw = RawIni {
        locking: &locking,
        max_waiters: &max_waiters,
        max_waiters_window: &max_waiters_window,
        busy_status: &busy_status,
        lock_ttl: &lock_ttl,
        lock_renewal: &lock_renewal,
        lock_max_hold: &lock_max_hold,
        lock_wait_timeout: &lock_wait_timeout,
        connect_timeout: &connect_timeout,
        read_timeout: &read_timeout,
        slow_lock_wait: &slow_lock_wait,
        metrics: &metrics,
        max_execution_time,
    };
    let (settings, problems) = Settings::from_ini(&raw);
    for problem in problems {
        warn(&format!("Fleet: {problem}"));
    }
    settings
}

/// The request's User-Agent: the SAPI's `HTTP_USER_AGENT` (FastCGI under FPM), else the
/// process environment (the CLI, where tests set it).
fn user_agent() -> Option<String> {
    sapi_env(c"HTTP_USER_AGENT")
}

/// A variable of the request's environment: the SAPI's (FastCGI parameters under FPM), else
/// the process's.
fn sapi_env(name: &CStr) -> Option<String> {
    // SAFETY: a NUL-terminated name and its length without the NUL; sapi_getenv returns NULL
    // or an emalloc'd NUL-terminated copy, which we own and free below.
    let value = unsafe { sapi_getenv(name.as_ptr(), name.count_bytes()) };
    if value.is_null() {
        return std::env::var(name.to_string_lossy().as_ref()).ok();
    }
    // SAFETY: non-NULL: a NUL-terminated string, live until the efree below.
    let text = unsafe { CStr::from_ptr(value) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: `value` came from PHP's allocator (estrdup) and is not used after this.
    unsafe { ext_php_rs::alloc::efree(value.cast()) };
    Some(text)
}

/// This machine's host name, read once per process.
fn host_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
        let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        match ok {
            true => String::from_utf8_lossy(&buf[..end]).into_owned(),
            false => "unknown-host".to_owned(),
        }
    })
}

/// Who this request is, for the lock it takes: "web2 pid 1234 (GET /report.php)", or the
/// script for the CLI. The URI is cut at 200 bytes and its query string dropped (it may
/// carry tokens).
fn holder() -> String {
    let host = host_name();
    let pid = std::process::id();
    let page = match (sapi_env(c"REQUEST_METHOD"), sapi_env(c"REQUEST_URI")) {
        (Some(method), Some(uri)) => {
            let path = uri.split('?').next().unwrap_or_default();
            let path: String = path.chars().take(200).collect();
            format!("{method} {path}")
        }
        _ => format!("CLI {}", std::env::args().nth(1).unwrap_or_default()),
    };
    format!("{host} pid {pid} ({page})")
}

/// # Safety
/// `s` must be NULL or point to a live `zend_string`.
unsafe fn bytes<'a>(s: *const zend_string) -> &'a [u8] {
    // SAFETY: per this function's contract; ZendStr is zend_string.
    match unsafe { s.as_ref() } {
        Some(s) => ZendStr::as_bytes(s),
        None => &[],
    }
}

/// # Safety
/// `mod_data` must be PHP's `PS(mod_data)` slot: NULL, or holding what `ps_open` stored.
unsafe fn open_session<'a>(mod_data: *mut *mut c_void) -> Option<&'a mut OpenSession> {
    // SAFETY: per this function's contract, a non-NULL slot value is a Box<OpenSession>
    // leaked by ps_open and not yet reclaimed by ps_close.
    unsafe {
        mod_data
            .as_ref()
            .and_then(|slot| slot.cast::<OpenSession>().as_mut())
    }
}

fn not_open() -> c_int {
    warn("Fleet: the session storage is not open (session_start() failed earlier in this request)");
    FAILURE
}

unsafe extern "C" fn ps_open(
    mod_data: *mut *mut c_void,
    save_path: *const c_char,
    _name: *const c_char,
) -> c_int {
    hook(FAILURE, || {
        if mod_data.is_null() {
            return FAILURE;
        }
        // SAFETY: the slot is PHP's PS(mod_data). It is non-NULL here only when PHP opens
        // again without closing: session_reset() does (php_session_reset →
        // php_session_initialize → s_open). The session open before is closed first, which
        // releases its lock and hands back its connection; left in place it would be leaked
        // with its lock, and the new read would wait for that lock until it timed out.
        let previous = unsafe { std::mem::replace(&mut *mod_data, ptr::null_mut()) };
        if !previous.is_null() {
            // SAFETY: a non-NULL slot holds the Box<OpenSession> leaked by an earlier ps_open.
            let previous = unsafe { Box::from_raw(previous.cast::<OpenSession>()) };
            if let Err(problem) = previous.close() {
                notice(&problem);
            }
        }
        let save_path = if save_path.is_null() {
            String::new()
        } else {
            // SAFETY: PHP passes PS(save_path), a NUL-terminated string.
            unsafe { CStr::from_ptr(save_path) }
                .to_string_lossy()
                .into_owned()
        };
        let open_basedir = ini_string(c"open_basedir");
        match handler::open(
            &save_path,
            &open_basedir,
            current_settings(),
            user_agent(),
            holder(),
        ) {
            Ok(session) => {
                // SAFETY: mod_data is PHP's writable PS(mod_data) slot; the Box is reclaimed
                // by ps_close, which PHP calls whenever the slot is non-NULL.
                unsafe { *mod_data = Box::into_raw(Box::new(session)).cast() };
                SUCCESS
            }
            Err(problem) => {
                warn(&problem);
                FAILURE
            }
        }
    })
}

unsafe extern "C" fn ps_close(mod_data: *mut *mut c_void) -> c_int {
    hook(FAILURE, || {
        if mod_data.is_null() {
            return SUCCESS;
        }
        // SAFETY: the slot is PHP's PS(mod_data); we empty it before reclaiming so PHP never
        // sees a dangling pointer.
        let raw = unsafe { std::mem::replace(&mut *mod_data, ptr::null_mut()) };
        if raw.is_null() {
            return SUCCESS;
        }
        // SAFETY: a non-NULL slot holds the Box<OpenSession> leaked by ps_open.
        let session = unsafe { Box::from_raw(raw.cast::<OpenSession>()) };
        if let Err(problem) = session.close() {
            notice(&problem);
        }
        SUCCESS
    })
}

unsafe extern "C" fn ps_read(
    mod_data: *mut *mut c_void,
    key: *mut zend_string,
    val: *mut *mut zend_string,
    _maxlifetime: zend_long,
) -> c_int {
    let result = guard(FAILURE, || {
        // SAFETY: PHP passes its PS(mod_data) slot and a live key.
        let (Some(session), id) = (unsafe { open_session(mod_data) }, unsafe { bytes(key) }) else {
            return not_open();
        };
        if val.is_null() {
            return FAILURE;
        }
        match session.read(id, memory_room()) {
            Ok(data) => {
                if let Some(slow) = session.take_slow_wait_notice() {
                    notice(&slow);
                }
                // SAFETY: PHP takes ownership of *val; the string comes from PHP's request
                // allocator (ZendStr::new with persistent = false), as it expects. Its size
                // is within what memory_limit leaves (handler::MemoryRoom).
                unsafe { *val = ZendStr::new(&data, false).into_raw() };
                SUCCESS
            }
            Err(problem) => {
                if let Some(status) = session.busy_status() {
                    send_busy_status(status);
                }
                warn(&problem);
                FAILURE
            }
        }
    });
    deliver_read_messages();
    // After delivery: a handler that re-entered Fleet meanwhile has cleared it.
    READ_JUST_RETURNED.with(|r| r.set(result == SUCCESS));
    result
}

/// Answers a request refused as busy with `status` and `Retry-After: 1`, so browsers and
/// proxies back off (nothing happens if output has already started).
fn send_busy_status(status: u16) {
    let line = c"Retry-After: 1";
    let mut header = SapiHeaderLine {
        line: line.as_ptr(),
        line_len: line.count_bytes(),
        response_code: zend_long::from(status),
    };
    // SAFETY: sapi_header_op with SAPI_HEADER_REPLACE takes a sapi_header_line, which
    // SapiHeaderLine lays out; the line is a static NUL-terminated string that PHP copies.
    // It runs no user code (header callbacks run when headers are sent).
    unsafe { sapi_header_op(SAPI_HEADER_REPLACE, (&raw mut header).cast()) };
}

unsafe extern "C" fn ps_write(
    mod_data: *mut *mut c_void,
    key: *mut zend_string,
    val: *mut zend_string,
    maxlifetime: zend_long,
) -> c_int {
    hook(FAILURE, || {
        if let Some(refused) = refuse_write_during_read() {
            return refused;
        }
        // SAFETY: PHP passes its PS(mod_data) slot and live key and value strings.
        let (Some(session), id, data) = (
            unsafe { open_session(mod_data) },
            unsafe { bytes(key) },
            unsafe { bytes(val) },
        ) else {
            return not_open();
        };
        let outcome = session.write(id, data, maxlifetime);
        report_with_notice(session, outcome)
    })
}

unsafe extern "C" fn ps_update_timestamp(
    mod_data: *mut *mut c_void,
    key: *mut zend_string,
    _val: *mut zend_string,
    maxlifetime: zend_long,
) -> c_int {
    hook(FAILURE, || {
        if let Some(refused) = refuse_write_during_read() {
            return refused;
        }
        // SAFETY: PHP passes its PS(mod_data) slot and a live key.
        let (Some(session), id) = (unsafe { open_session(mod_data) }, unsafe { bytes(key) }) else {
            return not_open();
        };
        let outcome = session.touch(id, maxlifetime);
        report_with_notice(session, outcome)
    })
}

unsafe extern "C" fn ps_destroy(mod_data: *mut *mut c_void, key: *mut zend_string) -> c_int {
    hook(FAILURE, || {
        // SAFETY: PHP passes its PS(mod_data) slot and a live key.
        let (Some(session), id) = (unsafe { open_session(mod_data) }, unsafe { bytes(key) }) else {
            return not_open();
        };
        let outcome = session.destroy(id);
        report_with_notice(session, outcome)
    })
}

unsafe extern "C" fn ps_gc(
    mod_data: *mut *mut c_void,
    maxlifetime: zend_long,
    nrdels: *mut zend_long,
) -> zend_long {
    let after_read = READ_JUST_RETURNED.with(|r| r.replace(false));
    let result = guard(-1, || {
        // SAFETY: PHP passes its PS(mod_data) slot.
        let Some(session) = (unsafe { open_session(mod_data) }) else {
            return -1;
        };
        let deleted = match session.gc(maxlifetime) {
            Ok(n) => zend_long::try_from(n).unwrap_or(zend_long::MAX),
            Err(problem) => {
                warn(&problem);
                -1
            }
        };
        // SAFETY: nrdels is NULL or PHP's writable counter.
        if let Some(nrdels) = unsafe { nrdels.as_mut() } {
            *nrdels = deleted;
        }
        deleted
    });
    // PHP's gc inside session_start() runs before the data read is decoded: a handler that
    // writes then would store an empty session over the real one (see ps_read).
    if after_read {
        deliver_read_messages();
    } else {
        deliver();
    }
    result
}

unsafe extern "C" fn ps_create_sid(mod_data: *mut *mut c_void) -> *mut zend_string {
    guard(ptr::null_mut(), || {
        // PHP's own generator honours session.sid_length and session.sid_bits_per_character
        // and draws from the CSPRNG; with at least 128 random bits a collision is not a
        // practical event, so no round trip is spent checking for one.
        // SAFETY: php_session_create_id ignores mod_data and returns a new zend_string
        // that PHP owns.
        unsafe { php_session_create_id(mod_data) }
    })
}

unsafe extern "C" fn ps_validate_sid(mod_data: *mut *mut c_void, key: *mut zend_string) -> c_int {
    hook(FAILURE, || {
        // SAFETY: PHP passes its PS(mod_data) slot and a live key.
        let (Some(session), id) = (unsafe { open_session(mod_data) }, unsafe { bytes(key) }) else {
            return FAILURE;
        };
        match session.exists(id) {
            Ok(true) => SUCCESS,
            Ok(false) => FAILURE,
            Err(problem) => {
                warn(&problem);
                FAILURE
            }
        }
    })
}

/// Like `report`, after queueing a warning about what went wrong without failing the step
/// (a write fewer replicas acknowledged than `wait_replicas` asks).
fn report_with_notice(session: &mut OpenSession, outcome: Result<(), handler::Problem>) -> c_int {
    if let Some(notice) = session.take_notice() {
        warn(&notice);
    }
    report(outcome)
}

fn report(outcome: Result<(), handler::Problem>) -> c_int {
    match outcome {
        Ok(()) => SUCCESS,
        Err(problem) => {
            warn(&problem);
            FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    /// The table the build checked is the installed header's (build.rs read it); this
    /// test and the build's assertion would both fail on a PHP whose table differs.
    #[test]
    fn the_session_module_table_matches_php_session_h() {
        assert_eq!(
            super::PS_MODULE_OURS,
            super::PS_MODULE_LAYOUT,
            "ext/src/ffi.rs's PsModule (size, then each field's offset) differs from ps_module in the installed php_session.h"
        );
        assert!(super::matches_php_session_h(super::PS_MODULE_OURS));
    }

    /// The check catches a wrong table: one with a hook more than this PHP's (as a later PHP
    /// might add) shows the same fields at other offsets and another size.
    #[test]
    fn a_table_of_another_layout_fails_the_check() {
        #[repr(C)]
        #[allow(dead_code)]
        struct OtherPsModule {
            name: *const u8,
            open: usize,
            close: usize,
            read: usize,
            write: usize,
            destroy: usize,
            gc: usize,
            create_sid: usize,
            validate_sid: usize,
            another_hook: usize,
            update_timestamp: usize,
        }
        let other = [
            size_of::<OtherPsModule>(),
            offset_of!(OtherPsModule, name),
            offset_of!(OtherPsModule, open),
            offset_of!(OtherPsModule, close),
            offset_of!(OtherPsModule, read),
            offset_of!(OtherPsModule, write),
            offset_of!(OtherPsModule, destroy),
            offset_of!(OtherPsModule, gc),
            offset_of!(OtherPsModule, create_sid),
            offset_of!(OtherPsModule, validate_sid),
            offset_of!(OtherPsModule, update_timestamp),
        ];
        assert!(
            !super::matches_php_session_h(other),
            "a table with another hook passed the check"
        );
    }
}
