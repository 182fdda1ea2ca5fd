#!/usr/bin/env bash
# Installs what Fleet needs on Debian 12, as root, and nothing that is already there:
# PHP 8.2 (headers, CLI, FPM, phpredis for the interop test), clang for ext-php-rs, faketime
# (a node with a skewed clock in the run-once tests), python3-yaml (reads docker/compose.yaml in a test),
# python3-prometheus-client (parses fleet_metrics() in a test),
# redis-server, mariadb-server and nginx for the tests and demo, and cargo-nextest.
# Extra package names given as arguments are installed the same way.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

packages=(
  php8.2-dev php8.2-cli php8.2-fpm php8.2-redis php8.2-igbinary
  clang libclang-dev libssl-dev pkg-config
  redis-server mariadb-server mariadb-client nginx-light procps valgrind faketime python3-yaml
  python3-prometheus-client
)
# Callers may ask for more (bench/run.sh: wrk, memcached, …).
packages+=("$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: no Rust toolchain found; install one with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
