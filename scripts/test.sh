#!/usr/bin/env bash
# The whole test suite: unit tests, fleet-core against a real redis-server, the .phpt tests
# under PHP's run-tests.php, and end-to-end tests with two php-fpm pools behind nginx.
# Every server is started by the tests themselves on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh
cargo build --locked -p fleet -p fleetctl
# nextest does not run doc tests: the documented examples (read_session) must compile.
cargo test --locked --doc -p fleet-core
cargo nextest run --workspace --locked --no-fail-fast
