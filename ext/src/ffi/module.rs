//! The module entry PHP loads (`get_module`), its startup and request hooks, phpinfo(), and
//! the session module table registered with ext/session, whose layout is checked against
//! the installed `php_session.h` at build time.

use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr;

use ext_php_rs::args::Arg;
use ext_php_rs::builders::{FunctionBuilder, ModuleBuilder};
use ext_php_rs::ffi::{
    php_info_print_table_end, php_info_print_table_row, php_info_print_table_start, zend_long,
    zend_string,
};
use ext_php_rs::flags::DataType;
use ext_php_rs::zend::{IniEntryDef, ModuleEntry, StaticModuleEntry};

use crate::busy;
use crate::handler::{self};
use crate::metrics::{self};

use super::functions::{
    fleet_lease_acquire, fleet_lease_release, fleet_lease_renew, fleet_metrics, fleet_stats,
};
use super::hooks::{
    ps_close, ps_create_sid, ps_destroy, ps_gc, ps_open, ps_read, ps_update_timestamp,
    ps_validate_sid, ps_write,
};
use super::ini::INI;
use super::messages::guard;
use super::{c_string, messages, FAILURE, SUCCESS};

extern "C" {
    fn php_session_register_module(module: *const PsModule) -> c_int;
    fn display_ini_entries(module: *mut ModuleEntry);
    fn php_check_open_basedir_ex(path: *const c_char, warn: c_int) -> c_int;
}

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
    "ext/src/ffi/module.rs's PsModule (size, then each field's offset) differs from ps_module in the installed php_session.h: this PHP's session module table is not the one Fleet declares"
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
        messages::clear_left_over();
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
        busy::init();
        metrics::init();
        // SAFETY: called during MINIT, after the session extension has started (declared in
        // DEPS); SESSION_MODULE is a static that outlives the process's use of it.
        unsafe { php_session_register_module(&SESSION_MODULE) }
    })
}

unsafe extern "C" fn module_info(module: *mut ModuleEntry) {
    guard((), || {
        let version = c_string(env!("CARGO_PKG_VERSION"));
        let figures: Vec<(CString, CString)> = metrics::summary(&metrics::snapshot())
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
            "ext/src/ffi/module.rs's PsModule (size, then each field's offset) differs from ps_module in the installed php_session.h"
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
