dnl config.m4 for Fleet: `phpize && ./configure --enable-fleet && make && make install`.
dnl
dnl Fleet is written in Rust, so there is no C to compile: configure finds cargo, and the
dnl Makefile fragment (Makefile.frag) builds the extension with `cargo build --release
dnl --locked` against the PHP whose php-config this phpize belongs to, then leaves it at
dnl modules/fleet.so, where `make install` and `make test` expect a phpize build's module.

dnl Fleet is a Cargo workspace whose library crate is the directory core/. Autoconf's configure
dnl cleans up after every compiler check with `rm -f core …` (a core dump's name), which
dnl prints "cannot remove 'core': Is a directory" a dozen times. This shell function, put at
dnl the top of configure (the DEFAULTS diversion runs before any check), leaves that one
dnl directory alone and keeps every other rm as it is.
m4_divert_text([DEFAULTS], [
rm () {
  case " $* " in
    *" core "*) if test -d core && test -f core/Cargo.toml; then command rm "$@" 2>/dev/null; return 0; fi ;;
  esac
  command rm "$@"
}
])

PHP_ARG_ENABLE([fleet],
  [whether to enable Fleet, the shared session handler],
  [AS_HELP_STRING([--enable-fleet], [Enable Fleet (session.save_handler = fleet)])],
  [no])

if test "$PHP_FLEET" != "no"; then
  AC_PATH_PROG([CARGO], [cargo], [no], [$PATH:$HOME/.cargo/bin])
  if test "$CARGO" = "no"; then
    AC_MSG_ERROR([cargo not found: Fleet is written in Rust. Install a Rust toolchain (https://rustup.rs, or apt install cargo with Rust 1.88 or newer) and run configure again])
  fi
  AC_PATH_PROG([CLANG], [clang], [no])
  if test "$CLANG" = "no"; then
    AC_MSG_ERROR([clang not found: ext-php-rs reads PHP's headers with libclang (apt install clang libclang-dev)])
  fi
  AC_MSG_CHECKING([the PHP that Fleet is built for])
  dnl ext-php-rs wants a path, and phpize may have been given a bare name.
  FLEET_PHP_CONFIG=$(command -v "$PHP_CONFIG" || echo "$PHP_CONFIG")
  AC_MSG_RESULT([$FLEET_PHP_CONFIG ($($FLEET_PHP_CONFIG --version))])
  if test "$($FLEET_PHP_CONFIG --configure-options | grep -c -- '--enable-zts')" != "0"; then
    AC_MSG_ERROR([this PHP is thread-safe (ZTS); Fleet supports NTS builds only (PHP-FPM, CLI, mod_php with prefork)])
  fi
  PHP_SUBST([CARGO])
  PHP_SUBST([FLEET_PHP_CONFIG])
  PHP_ADD_MAKEFILE_FRAGMENT([$abs_srcdir/Makefile.frag])
fi
