//! Entry points' guard against panics, and the queue of warnings and notices delivered
//! once a hook no longer holds Fleet's state (see the module's notes on re-entry).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::{c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use ext_php_rs::ffi::{php_error_docref, E_NOTICE, E_WARNING};

use super::{c_string, FAILURE};

/// Runs `body`, turning a panic into `fallback` so it never unwinds into PHP.
pub(super) fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// An entry point from PHP: runs `body` under [`guard`], then delivers the messages it
/// queued, when nothing of Fleet's is borrowed any more (see the module's notes on
/// re-entry).
pub(super) fn hook<T>(fallback: T, body: impl FnOnce() -> T) -> T {
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
pub(super) fn deliver() {
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
pub(super) fn deliver_read_messages() {
    let outer = READ_BEING_REPORTED.with(|r| r.replace(true));
    deliver();
    READ_BEING_REPORTED.with(|r| r.set(outer));
}

/// A write or touch entered from an error handler that runs while a read reports a problem
/// (`session_write_close()` there): PHP has not put the data read into `$_SESSION` yet, so
/// what it asks to store is not the session. Refused: the session is released as stored.
pub(super) fn refuse_write_during_read() -> Option<c_int> {
    if !READ_BEING_REPORTED.with(Cell::get) {
        return None;
    }
    warn("the session was not written: session_write_close() (or a write) ran in an error handler while session_start() was still reading the session, before PHP had put the data into $_SESSION. The session is kept as stored");
    Some(FAILURE)
}

/// Queues a message for delivery when the running hook returns, with the "Fleet: " every
/// message of the extension starts with (added here, and nowhere else).
fn emit(level: u32, message: &str) {
    let Ok(level) = c_int::try_from(level) else {
        return;
    };
    let message = c_string(&format!("Fleet: {message}"));
    OUTBOX.with(|q| q.borrow_mut().push_back((level, message)));
}

pub(super) fn warn(message: &str) {
    emit(E_WARNING, message);
}

pub(super) fn notice(message: &str) {
    emit(E_NOTICE, message);
}

/// RINIT: drops what a fatal error in an error handler left in the queues when it ended the
/// last request's delivery by longjmp.
pub(super) fn clear_left_over() {
    OUTBOX.with(|q| q.borrow_mut().clear());
    DELIVERING.with(|d| d.borrow_mut().clear());
    READ_BEING_REPORTED.with(|r| r.set(false));
}

/// Records whether the read that just returned succeeded (see `READ_JUST_RETURNED`).
pub(super) fn set_read_just_returned(succeeded: bool) {
    READ_JUST_RETURNED.with(|r| r.set(succeeded));
}

/// Whether the hook before this one was a successful read; clears it.
pub(super) fn take_read_just_returned() -> bool {
    READ_JUST_RETURNED.with(|r| r.replace(false))
}
