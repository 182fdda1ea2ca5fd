//! Reads the layout of `ps_module` (PHP's session module table) from the `php_session.h` of
//! the PHP being built for, so that `ffi/module.rs` can check its hand-declared table against it at
//! compile time: a PHP whose table differs fails the build, never a worker.
//!
//! The header is compiled into a small C program with `php-config --includes` (the
//! `php-config` in `PHP_CONFIG`, as ext-php-rs and `./configure` use), which prints the
//! table's size and each field's offset; they become `PS_MODULE_LAYOUT` in
//! `$OUT_DIR/ps_module_layout.rs`.

use std::path::PathBuf;
use std::process::Command;

const LAYOUT_C: &str = r#"#include "php.h"
#include "ext/session/php_session.h"
#include <stddef.h>
#include <stdio.h>
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n", sizeof(ps_module),
        offsetof(ps_module, s_name), offsetof(ps_module, s_open), offsetof(ps_module, s_close),
        offsetof(ps_module, s_read), offsetof(ps_module, s_write), offsetof(ps_module, s_destroy),
        offsetof(ps_module, s_gc), offsetof(ps_module, s_create_sid),
        offsetof(ps_module, s_validate_sid), offsetof(ps_module, s_update_timestamp));
    return 0;
}
"#;

fn run(command: &mut Command) -> String {
    match command.output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => fail(&format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => fail(&format!("{command:?} does not run: {e}")),
    }
}

fn fail(why: &str) -> ! {
    eprintln!("fleet: cannot read ps_module's layout from php_session.h: {why}");
    std::process::exit(1)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PHP_CONFIG");
    let php_config = std::env::var("PHP_CONFIG").unwrap_or_else(|_| "php-config".to_owned());
    let includes = run(Command::new(&php_config).arg("--includes"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_else(|| fail("no OUT_DIR")));
    let source = out.join("ps_module_layout.c");
    let program = out.join("ps_module_layout");
    if let Err(e) = std::fs::write(&source, LAYOUT_C) {
        fail(&format!("write {}: {e}", source.display()));
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    run(Command::new(cc)
        .args(includes.split_whitespace())
        .arg(&source)
        .arg("-o")
        .arg(&program));
    let layout: Vec<usize> = run(&mut Command::new(&program))
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    if layout.len() != 11 {
        fail(&format!("expected 11 numbers, got {layout:?}"));
    }
    let rust = format!(
        "/// `ps_module`'s size, then the offsets of s_name … s_update_timestamp, in the\n/// installed php_session.h (from build.rs).\npub const PS_MODULE_LAYOUT: [usize; 11] = {layout:?};\n"
    );
    if let Err(e) = std::fs::write(out.join("ps_module_layout.rs"), rust) {
        fail(&format!("write ps_module_layout.rs: {e}"));
    }
}
