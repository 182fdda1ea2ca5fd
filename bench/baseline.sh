#!/usr/bin/env bash
# bench/baseline.sh [COMMIT]: builds the release extension of COMMIT (default f4c0d3d, before
# the topologies, lock renewal, the holder record, the busy-session cap, short lifetimes and
# metrics landed) from its own sources and Cargo.lock, once per commit, and prints the path
# of its libfleet.so. bench/run.sh --baseline and bench/instructions.sh compare with it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target="${CARGO_TARGET_DIR:-$PWD/target}"
commit="$(git rev-parse --verify "${1:-f4c0d3d}^{commit}")"
src="$target/baseline/$commit/src"
built="$target/baseline/$commit/target/release/libfleet.so"
if [ ! -f "$built" ]; then
  rm -rf "$src" && mkdir -p "$src"
  git archive "$commit" | tar -x -C "$src"
  (cd "$src" && CARGO_TARGET_DIR="$target/baseline/$commit/target" cargo build --locked --release -p fleet) >&2
fi
echo "$built"
