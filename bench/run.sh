#!/usr/bin/env bash
# The benchmark, in one command: installs what is missing (the test prerequisites plus wrk,
# php-memcached, memcached, PDO MySQL and gnuplot), builds Fleet in release mode, and runs
# every handler side by side. Results: bench/results/results.md, results.csv, chart.png.
# Extra arguments go to fleet-bench (e.g. --duration 5 --rss-requests 20000).
#
#   bench/run.sh --baseline [COMMIT]   # Fleet Redis now beside the same built from COMMIT
#                                      # (default f4c0d3d), phpredis and no session
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh wrk memcached php-memcached php-mysql gnuplot-nox
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --release -p fleet -p fleetctl -p fleet-bench
# Where cargo put them: scripts/platform.sh gives each root a CARGO_TARGET_DIR of its own.
target="${CARGO_TARGET_DIR:-$PWD/target}"

if [ "${1:-}" = --baseline ]; then
  rev=f4c0d3d
  if [ -n "${2:-}" ] && [ "${2#--}" = "$2" ]; then
    rev="$2"
    set -- "$1" "${@:3}"
  fi
  FLEET_BASELINE_EXT="$(bench/baseline.sh "$rev")"
  FLEET_BASELINE_REV="$(git log -1 --format='%h (%cs): %s' "$rev")"
  export FLEET_BASELINE_EXT FLEET_BASELINE_REV
fi
FLEET_EXT="$target/release/libfleet.so" exec "$target/release/fleet-bench" "$@"
