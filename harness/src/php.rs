//! The PHP of this machine, found through its `php-config`: no PHP version is written in
//! Fleet's scripts, harness or bench. `$PHP_CONFIG` names it (a path, or a name looked up on
//! PATH such as `php-config8.4`), else `php-config` on PATH (Debian's alternatives point it
//! at the newest PHP installed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `php-config` to ask, as a path.
pub fn php_config() -> PathBuf {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let named = std::env::var("PHP_CONFIG")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "php-config".to_owned());
            on_path(&named).unwrap_or_else(|| PathBuf::from(named))
        })
        .clone()
}

/// `name` if it is a path, else where PATH finds it.
pub fn on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn ask(flag: &str) -> String {
    let config = php_config();
    let out = Command::new(&config).arg(flag).output().unwrap_or_else(|e| {
        panic!(
            "{} {flag}: {e} (install Debian's php-dev, or set PHP_CONFIG to the php-config of the PHP to test)",
            config.display()
        )
    });
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The CLI binary of this PHP (`php-config --php-binary`).
pub fn binary() -> PathBuf {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND
        .get_or_init(|| PathBuf::from(ask("--php-binary")))
        .clone()
}

/// Where this PHP loads extensions from (`php-config --extension-dir`).
pub fn extension_dir() -> PathBuf {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND
        .get_or_init(|| PathBuf::from(ask("--extension-dir")))
        .clone()
}

/// This PHP's version, e.g. "8.4.11".
pub fn version() -> String {
    static FOUND: OnceLock<String> = OnceLock::new();
    FOUND.get_or_init(|| ask("--version")).clone()
}

/// "8.4" of "8.4.11".
pub fn major_minor() -> String {
    version().split('.').take(2).collect::<Vec<_>>().join(".")
}

/// PHP's own test runner, which php-dev installs beside the build files: under the
/// extension dir's `build/` on Debian, else under the prefix's `lib/php/build/`.
pub fn run_tests() -> PathBuf {
    let candidates = [
        extension_dir().join("build/run-tests.php"),
        Path::new(&ask("--prefix")).join("lib/php/build/run-tests.php"),
    ];
    match candidates.iter().find(|p| p.is_file()) {
        Some(found) => found.clone(),
        None => candidates[0].clone(),
    }
}

/// The FPM binary of this PHP: Debian's `php-fpm<major.minor>`, else `php-fpm`.
pub fn fpm() -> PathBuf {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let versioned = format!("php-fpm{}", major_minor());
            on_path(&versioned)
                .or_else(|| on_path("php-fpm"))
                .unwrap_or_else(|| PathBuf::from(versioned))
        })
        .clone()
}
