//! Who the current request is, for the lock it takes and the lifetimes it gets: host, pid,
//! method and path, and its User-Agent, from the SAPI's environment.

use std::ffi::{c_char, CStr};

extern "C" {
    fn sapi_getenv(name: *const c_char, name_len: usize) -> *mut c_char;
}

/// The request's User-Agent: the SAPI's `HTTP_USER_AGENT` (FastCGI under FPM), else the
/// process environment (the CLI, where tests set it).
pub(super) fn user_agent() -> Option<String> {
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
/// script for the CLI. The URI is cut at 200 characters and its query string dropped (it
/// may carry tokens). Built on every request that opens a session, so into one buffer.
pub(super) fn holder() -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(128);
    let _ = write!(out, "{} pid {} (", host_name(), fleet_core::process_id());
    match (sapi_env(c"REQUEST_METHOD"), sapi_env(c"REQUEST_URI")) {
        (Some(method), Some(uri)) => {
            out.push_str(&method);
            out.push(' ');
            let path = uri.split('?').next().unwrap_or_default();
            let cut = path
                .char_indices()
                .nth(200)
                .map_or(path.len(), |(at, _)| at);
            out.push_str(&path[..cut]);
        }
        _ => {
            out.push_str("CLI ");
            out.push_str(&std::env::args().nth(1).unwrap_or_default());
        }
    }
    out.push(')');
    out
}
