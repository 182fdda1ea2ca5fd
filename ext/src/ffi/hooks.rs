//! The session module's hooks (`ps_open` … `ps_update_timestamp`): each converts PHP's
//! arguments, calls [`crate::handler`], and converts back.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

use ext_php_rs::ffi::{zend_long, zend_string};
use ext_php_rs::types::ZendStr;

use crate::handler::{self, MemoryRoom, OpenSession};

use super::identity::{holder, user_agent};
use super::ini::{current_settings, ini_string};
use super::messages::{
    deliver, deliver_read_messages, guard, hook, notice, refuse_write_during_read, warn,
};
use super::{messages, FAILURE, SUCCESS};

extern "C" {
    fn php_session_create_id(mod_data: *mut *mut c_void) -> *mut zend_string;
    fn zend_memory_usage(real_usage: bool) -> usize;
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

/// `session.serialize_handler`'s format, if Fleet can cut its sessions into variables.
fn serialize_format() -> Option<fleet_core::codec::SessionFormat> {
    match ini_string(c"session.serialize_handler").as_str() {
        "php" => Some(fleet_core::codec::SessionFormat::Php),
        "php_serialize" => Some(fleet_core::codec::SessionFormat::PhpSerialize),
        _ => None,
    }
}

fn not_open() -> c_int {
    warn("the session storage is not open (session_start() failed earlier in this request)");
    FAILURE
}

pub(super) unsafe extern "C" fn ps_open(
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
            user_agent,
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

pub(super) unsafe extern "C" fn ps_close(mod_data: *mut *mut c_void) -> c_int {
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

pub(super) unsafe extern "C" fn ps_read(
    mod_data: *mut *mut c_void,
    key: *mut zend_string,
    val: *mut *mut zend_string,
    maxlifetime: zend_long,
) -> c_int {
    let result = guard(FAILURE, || {
        // SAFETY: PHP passes its PS(mod_data) slot and a live key.
        let (Some(session), id) = (unsafe { open_session(mod_data) }, unsafe { bytes(key) }) else {
            return not_open();
        };
        if val.is_null() {
            return FAILURE;
        }
        match session.read(id, memory_room(), maxlifetime) {
            Ok(data) => {
                if let Some(slow) = session.take_slow_wait_notice() {
                    notice(&slow);
                }
                // A session that did not decrypt: read as empty, with a warning.
                if let Some(unreadable) = session.take_notice() {
                    warn(&unreadable);
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
    messages::set_read_just_returned(result == SUCCESS);
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

pub(super) unsafe extern "C" fn ps_write(
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
        let outcome = session.write(id, data, maxlifetime, serialize_format);
        if let Some(merged) = session.take_merge_notice() {
            notice(&merged);
        }
        report_with_notice(session, outcome)
    })
}

pub(super) unsafe extern "C" fn ps_update_timestamp(
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

pub(super) unsafe extern "C" fn ps_destroy(
    mod_data: *mut *mut c_void,
    key: *mut zend_string,
) -> c_int {
    hook(FAILURE, || {
        // SAFETY: PHP passes its PS(mod_data) slot and a live key.
        let (Some(session), id) = (unsafe { open_session(mod_data) }, unsafe { bytes(key) }) else {
            return not_open();
        };
        let outcome = session.destroy(id);
        report_with_notice(session, outcome)
    })
}

pub(super) unsafe extern "C" fn ps_gc(
    mod_data: *mut *mut c_void,
    maxlifetime: zend_long,
    nrdels: *mut zend_long,
) -> zend_long {
    let after_read = messages::take_read_just_returned();
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

pub(super) unsafe extern "C" fn ps_create_sid(mod_data: *mut *mut c_void) -> *mut zend_string {
    guard(ptr::null_mut(), || {
        // PHP's own generator honours session.sid_length and session.sid_bits_per_character
        // and draws from the CSPRNG; with at least 128 random bits a collision is not a
        // practical event, so no round trip is spent checking for one.
        // SAFETY: php_session_create_id ignores mod_data and returns a new zend_string
        // that PHP owns.
        unsafe { php_session_create_id(mod_data) }
    })
}

pub(super) unsafe extern "C" fn ps_validate_sid(
    mod_data: *mut *mut c_void,
    key: *mut zend_string,
) -> c_int {
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
