#!/usr/bin/env bash
# The benchmark, in one command: installs what is missing (the test prerequisites plus wrk,
# php-memcached, memcached, PDO MySQL and gnuplot), builds Fleet in release mode, and runs
# every handler side by side. Results: bench/results/results.md, results.csv, chart.png.
# Extra arguments go to fleet-bench (e.g. --duration 5 --rss-requests 20000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh wrk memcached php-memcached php-mysql gnuplot-nox
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --release -p fleet -p fleetctl -p fleet-bench
# Where cargo put them: scripts/platform.sh gives each root a CARGO_TARGET_DIR of its own.
target="${CARGO_TARGET_DIR:-$PWD/target}"
FLEET_EXT="$target/release/libfleet.so" exec "$target/release/fleet-bench" "$@"
