#!/usr/bin/env bash
# bench/instructions.sh [COMMIT]: the instructions one request costs, counted by callgrind,
# today's build beside COMMIT's (default f4c0d3d; see bench/baseline.sh). A count, not a
# timing: the same on a busy machine, so a per-request regression shows even where req/s is
# noise. php-cgi runs harness/www/counter.php (session_start, one increment) N times in one
# process against a redis-server started here; (Ir of 250 requests - Ir of 50) / 200 is the
# cost of one request with its startup taken out. Writes bench/results/instructions.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh php-cgi valgrind
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --release -p fleet >&2
target="${CARGO_TARGET_DIR:-$PWD/target}"
rev="${1:-f4c0d3d}"
baseline="$(bench/baseline.sh "$rev")"
current="$target/release/libfleet.so"

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log"
trap 'kill "$(cat "$work/redis.pid")" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/redis.pid" ] && redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

ext_dir="$(php-config --extension-dir)"
# instructions SO N: callgrind's total for N requests in one php-cgi.
instructions() {
  local out="$work/callgrind.$RANDOM"
  env -i PATH="$PATH" REDIRECT_STATUS=1 REQUEST_METHOD=GET REQUEST_URI=/counter.php \
    HTTP_HOST=localhost HTTP_USER_AGENT='Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0' \
    HTTP_COOKIE="PHPSESSID=ir$RANDOM$RANDOM" SCRIPT_FILENAME="$PWD/harness/www/counter.php" \
    valgrind --tool=callgrind --callgrind-out-file="$out" \
    php-cgi -n -d "zend_extension=$ext_dir/opcache.so" -d opcache.enable=1 -d opcache.enable_cli=1 \
      -d "extension=$1" -d session.save_handler=fleet -d "session.save_path=redis://127.0.0.1:$port" \
      -T "$2" "$PWD/harness/www/counter.php" >/dev/null 2>"$out.log"
  grep -E '^summary:' "$out" | awk '{print $2}'
}
per_request() {
  local few many
  few="$(instructions "$1" 50)"
  many="$(instructions "$1" 250)"
  echo $(((many - few) / 200))
}
old="$(per_request "$baseline")"
new="$(per_request "$current")"
report="# Instructions per request: Fleet Redis now and at ${rev}

callgrind, php-cgi -T (request startup and shutdown included), harness/www/counter.php, one
session, $(php -r 'echo PHP_VERSION;'), $(redis-server --version | cut -d' ' -f1-3).

| build | instructions per request | ratio |
|---|---|---|
| $(git log -1 --format='%h (%cs)' "$rev") | $old | 1.00 |
| now ($(git log -1 --format='%h (%cs)')) | $new | $(python3 -c "print(f'{$new/$old:.3f}')") |
"
mkdir -p bench/results
echo "$report" > bench/results/instructions.md
echo "$report"
