//! The `fleet.*` INI entries as PHP holds them: registered from [`crate::settings::ENTRIES`],
//! and read back, with `max_execution_time`, into the request's [`Settings`].

use std::ffi::{c_char, c_int, CStr};

use ext_php_rs::ffi::zend_long;
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

pub(super) fn current_settings() -> Settings {
    let max_execution_time = {
        let name = c"max_execution_time";
        // SAFETY: NUL-terminated name, length without the NUL.
        unsafe { zend_ini_long(name.as_ptr(), name.count_bytes(), 0) }
    };
    let (settings, problems) = Settings::from_ini(&RawIni::read(ini_string, max_execution_time));
    for problem in problems {
        warn(&problem);
    }
    settings
}
