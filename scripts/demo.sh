#!/usr/bin/env bash
# Installs what is missing, builds Fleet in release mode, and runs the demo: a local Redis,
# two PHP-FPM app servers behind an nginx round-robin balancer, one visitor's ten requests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh
cargo build --locked --release -p fleet -p fleet-harness
FLEET_EXT="$PWD/target/release/libfleet.so" target/release/fleet-demo
