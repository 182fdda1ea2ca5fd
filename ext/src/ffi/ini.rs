//! The `fleet.*` INI entries as PHP holds them: registered from [`crate::settings::ENTRIES`],
//! and read back, with `max_execution_time`, into the request's [`Settings`].

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CStr};

use ext_php_rs::ffi::{zend_ini_entry, zend_long, zend_string};
use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::zend::{IniEntryDef, IniEntryDefs};

use crate::settings::{RawIni, Settings, ENTRIES};

use super::messages::warn;

extern "C" {
    fn zend_ini_string_ex(
        name: *const c_char,
        name_length: usize,
        orig: c_int,
        exists: *mut bool,
    ) -> *mut c_char;
    fn zend_ini_long(name: *const c_char, name_length: usize, orig: c_int) -> zend_long;
}

/// [`ENTRIES`] as PHP's table, ended by the empty entry PHP stops at. PHP keeps the table
/// itself (PHP 8.5's `zend_ini_entry.def`), so it is a static.
pub(super) static INI: IniEntryDefs<{ ENTRIES.len() + 1 }> = IniEntryDefs::new(ini_table());

const fn ini_table() -> [IniEntryDef; ENTRIES.len() + 1] {
    let mut table = [const { IniEntryDef::end() }; ENTRIES.len() + 1];
    let mut i = 0;
    while i < ENTRIES.len() {
        table[i] = IniEntryDef::new(ENTRIES[i].name, ENTRIES[i].default, IniEntryPermission::All);
        table[i].on_modify = Some(on_modify);
        i += 1;
    }
    table
}

/// Reads an INI entry's current value as a string ("" when unset).
pub(super) fn ini_string(name: &CStr) -> String {
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

thread_local! {
    /// Bumped whenever PHP changes a `fleet.*` value (php.ini at startup, a pool's
    /// `php_value`, `.user.ini`, `ini_set()`, and the restore at the end of a request that
    /// changed one): the parsed settings below are current while it stays the same.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    /// The last parse: for which generation and `max_execution_time`, its settings, and the
    /// problems it found (warned about again on every request that uses them, as before
    /// the parse was kept).
    static PARSED: RefCell<Option<Parsed>> = const { RefCell::new(None) };
}

struct Parsed {
    generation: u64,
    max_execution_time: zend_long,
    settings: Settings,
    problems: Vec<String>,
}

/// PHP's `on_modify` for every `fleet.*` entry: notes that a value changed and lets PHP
/// store it (returning SUCCESS is what `on_modify = NULL` means).
unsafe extern "C" fn on_modify(
    _entry: *mut zend_ini_entry,
    _new_value: *mut zend_string,
    _mh_arg1: *mut c_void,
    _mh_arg2: *mut c_void,
    _mh_arg3: *mut c_void,
    _stage: c_int,
) -> c_int {
    // `try_with`: during thread teardown there is nothing left to keep current.
    let _ = GENERATION.try_with(|g| g.set(g.get().wrapping_add(1)));
    0
}

/// The request's settings: the `fleet.*` entries and `max_execution_time`, parsed once per
/// change of either rather than on every request (13 entries read and parsed cost about
/// 10 000 instructions a request).
pub(super) fn current_settings() -> Settings {
    let max_execution_time = {
        let name = c"max_execution_time";
        // SAFETY: NUL-terminated name, length without the NUL.
        unsafe { zend_ini_long(name.as_ptr(), name.count_bytes(), 0) }
    };
    let generation = GENERATION.with(Cell::get);
    let kept = PARSED.with(|p| {
        p.borrow()
            .as_ref()
            .filter(|p| p.generation == generation && p.max_execution_time == max_execution_time)
            .map(|p| (p.settings, p.problems.clone()))
    });
    let (settings, problems) = match kept {
        Some(kept) => kept,
        None => {
            let (settings, problems) =
                Settings::from_ini(&RawIni::read(ini_string, max_execution_time));
            PARSED.with(|p| {
                *p.borrow_mut() = Some(Parsed {
                    generation,
                    max_execution_time,
                    settings,
                    problems: problems.clone(),
                })
            });
            (settings, problems)
        }
    };
    for problem in problems {
        warn(&problem);
    }
    settings
}
