#!/bin/sh
# The .phpt suite against the compose stack's Redis and MariaDB containers, with PHP's
# run-tests.php, as harness/tests/phpt.rs runs it natively.
set -eu
ext="$(php-config --extension-dir)/fleet.so"
suite() {
    php /usr/local/lib/php/build/run-tests.php -n -q -j2 --show-diff \
        -d "extension=$ext" -d output_buffering=1 -d session.use_cookies=0 -d session.cache_limiter= \
        /fleet/php-tests
}
export FLEET_EXT="$ext" NO_INTERACTION=1 REPORT_EXIT_STATUS=1
FLEET_BACKEND=redis FLEET_HOST=redis FLEET_PORT=6379 suite
FLEET_BACKEND=mysql FLEET_HOST=mariadb FLEET_PORT=3306 \
    FLEET_MYSQL_PASSWORD="$MARIADB_PASSWORD" FLEET_MYSQL_ROOT_PASSWORD="$MARIADB_ROOT_PASSWORD" suite
