#!/bin/sh
# The .phpt suite against the compose stack's Redis and MariaDB containers, with PHP's
# run-tests.php, as harness/tests/phpt.rs runs it natively (TCP to the containers, and their
# unix sockets on volumes shared with them). REPORT_EXIT_STATUS makes
# run-tests.php exit non-zero on a failed test; both backends run, and this script exits
# non-zero if either failed. FLEET_PHPT_DIR names another directory of tests.
set -u
ext="$(php -n -r 'echo PHP_EXTENSION_DIR;')/fleet.so"
dir="${FLEET_PHPT_DIR:-/fleet/php-tests}"
export FLEET_EXT="$ext" NO_INTERACTION=1 REPORT_EXIT_STATUS=1
suite() {
    echo "=== .phpt on $FLEET_BACKEND ($FLEET_HOST:$FLEET_PORT), PHP $(php -n -r 'echo PHP_VERSION;')"
    php -n /fleet/run-tests.php -n -q -j2 --no-color --show-diff -p "$(command -v php)" \
        -d "extension=$ext" -d output_buffering=1 -d session.use_cookies=0 -d session.cache_limiter= \
        "$dir"
}
status=0
FLEET_BACKEND=redis FLEET_HOST=redis FLEET_PORT=6379 FLEET_SOCKET=/run/redis/redis.sock suite || status=1
# Over the socket the tests' SQL runs as root by unix_socket authentication (uid 0 here).
FLEET_BACKEND=mysql FLEET_HOST=mariadb FLEET_PORT=3306 FLEET_SOCKET=/run/mysqld/mysqld.sock \
    FLEET_MYSQL_PASSWORD="$MARIADB_PASSWORD" FLEET_MYSQL_ROOT_PASSWORD="$MARIADB_ROOT_PASSWORD" \
    suite || status=1
[ "$status" = 0 ] && echo "run-tests: every suite passed" || echo "run-tests: a suite failed" >&2
exit "$status"
