#!/usr/bin/env bash
# The benchmark, in one command: installs what is missing (the test prerequisites plus wrk,
# php-memcached, memcached, PDO MySQL and gnuplot), builds Fleet in release mode, and runs
# every handler side by side. Results: bench/results/results.md, results.csv, chart.png.
# Extra arguments go to fleet-bench (e.g. --duration 5 --rss-requests 20000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
packages=(wrk memcached php8.2-memcached php8.2-mysql gnuplot-nox)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --release -p fleet -p fleetctl -p fleet-bench
FLEET_EXT="$PWD/target/release/libfleet.so" exec target/release/fleet-bench "$@"
