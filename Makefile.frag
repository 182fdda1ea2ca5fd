# Fleet: the module is built by cargo (see config.m4), not from C objects.

FLEET_TARGET_DIR = $${CARGO_TARGET_DIR:-$(top_srcdir)/target}

all: $(top_builddir)/modules/fleet.so
build-modules: $(top_builddir)/modules/fleet.so

$(top_builddir)/modules/fleet.so: fleet-cargo-build
	@$(mkinstalldirs) $(top_builddir)/modules
	cp "$(FLEET_TARGET_DIR)/release/libfleet.so" $@

# Always asked: cargo itself knows whether anything changed.
fleet-cargo-build:
	cd $(top_srcdir) && PHP_CONFIG="$(FLEET_PHP_CONFIG)" PHP="$(PHP_EXECUTABLE)" \
		$(CARGO) build --release --locked -p fleet

.PHONY: fleet-cargo-build

# `make test`: the .phpt suite against a Redis on 127.0.0.1:6379 by default (FLEET_PORT=…,
# or FLEET_BACKEND=mysql with FLEET_PORT and FLEET_MYSQL_PASSWORD for MariaDB).
TESTS = $(top_srcdir)/php-tests
# As PHP's own session tests (and harness/tests/phpt.rs) run: no cookies or cache headers
# in the CLI, and output buffered so printing does not count as "headers sent".
# phpredis (and igbinary, which Debian's phpredis needs) come from PHP's own extension dir
# when installed, by full path: run-tests.php looks for a test's --EXTENSIONS-- in modules/,
# where only fleet.so is, so phpredis_interop.phpt would be skipped.
PHP_TEST_SHARED_EXTENSIONS = -d extension=fleet.so -d output_buffering=1 \
	-d session.use_cookies=0 -d session.cache_limiter= \
	`for e in igbinary redis; do test -f "$(EXTENSION_DIR)/$$e.so" && printf -- '-d extension=%s ' "$(EXTENSION_DIR)/$$e.so"; done`
export FLEET_EXT = $(top_builddir)/modules/fleet.so
