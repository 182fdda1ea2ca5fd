#!/usr/bin/env bash
# Fuzzes Fleet's parsers of untrusted input, each for a bounded time (default 60 s):
#   session_decode  any bytes through the PHP session decoder (fleetctl sessions, read_session)
#   save_path       any text as session.save_path
#   stored_blob     any stored bytes through a read: the compression frame, then the decoder
#   session_merge   the per-variable split and three-way merge
#   sealed_frame    any stored bytes through decryption (never panics, never unauthenticated bytes)
# Uses cargo-fuzz (libFuzzer), which needs a nightly toolchain; not part of the test command.
# The corpus grows in fuzz/corpus/<target> (commit what it adds); a crash is saved in
# fuzz/artifacts/<target> and fails this command.
#   scripts/fuzz.sh [seconds per target] [target…]
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(session_decode save_path stored_blob session_merge sealed_frame)
cd "$(dirname "$0")/.."
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
for target in "${targets[@]}"; do
  echo "fuzz: $target for ${seconds} s"
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536
done
