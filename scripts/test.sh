#!/usr/bin/env bash
# The whole test suite: unit tests, fleet-core against real redis-server and mariadbd, the
# .phpt tests under PHP's run-tests.php, and end-to-end tests with php-fpm pools behind nginx.
# Every server is started by the tests themselves on free loopback ports.
#
# It runs on this machine, then the Redis suites again on Valkey (FLEET_REDIS_SERVER=valkey),
# then all of it once more on the other supported Debian release in a debootstrap root
# (scripts/platform.sh): Debian 12 and 13 both, whichever this machine is.
#   FLEET_PLATFORMS=host scripts/test.sh    # this machine only
# Arguments go to every nextest run (e.g. a filter). It ends with one line counting all runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed_steps=()

# run NAME command…: runs one step, its output shown and kept for the summary.
run() {
  local name="$1"
  shift
  echo "=== $name"
  if "$@" 2>&1 | tee "$logs/$name.log"; then :; else failed_steps+=("$name"); fi
}

here="$(. /etc/os-release && echo "Debian ${VERSION_ID:-?} (${VERSION_CODENAME:-?})")"
# CI builds and runs the Docker stack for Debian 13 (PHP 8.4) only: each release's cold
# build is a release compile in a container (480 s alone, 833 s beside the rest of the
# suite on 2 cores), and both would take CI past its 40 minutes. A run outside CI does both.
if [ "${CI:-}" = true ] && [ -z "${FLEET_DOCKER_SUITES+set}" ]; then
  export FLEET_DOCKER_SUITES=trixie
fi
scripts/setup.sh
cargo build --locked -p fleet -p fleetctl
# nextest does not run doc tests: the documented examples (read_session) must compile.
cargo test --locked --doc -p fleet-core
# The habits that keep the code as it is (CONTRIBUTING.md): formatted, and clippy clean with
# the lints the manifests deny (no unwrap or expect where PHP reaches, every unsafe block
# justified). Once per run: the other platform's root builds the same sources.
if [ -z "${FLEET_PLATFORM_INNER:-}" ]; then
  run "fmt and clippy" bash -c 'cargo fmt --all --check && cargo clippy --workspace --all-targets --locked -- -D warnings'
fi
run "$here" cargo nextest run --workspace --locked --no-fail-fast "$@"

# The suites that talk to a Redis server, on Valkey.
redis_suites='(package(fleet-harness) & (binary(phpt) | binary(e2e) | binary(failover)) & !test(/mysql/))
  | (package(fleet-core) & (binary(redis_store) | binary(redis_cluster) | binary(redis_failover) | binary(redis_renewal) | binary(merge_store) | binary(at_rest)))'
run "$here, Valkey" env FLEET_REDIS_SERVER=valkey \
  cargo nextest run --workspace --locked --no-fail-fast -E "$redis_suites" "$@"

if [ -z "${FLEET_PLATFORM_INNER:-}" ] && [ "${FLEET_PLATFORMS:-all}" != host ]; then
  case "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" in
    bookworm) other=trixie ;;
    trixie) other=bookworm ;;
    *) other= ;;
  esac
  if [ -n "$other" ]; then
    run "other platform ($other)" scripts/platform.sh "$other" "$@"
  else
    echo "test.sh: not Debian 12 or 13; the other platform's run is skipped"
  fi
fi

# One line for all the runs above (nextest prints one per run; the other platform's own
# total is the last line of its log).
passed=0 failed=0 skipped=0
for log in "$logs"/*.log; do
  line="$(grep -E '^fleet suite: [0-9]+ passed' "$log" | tail -n1 || true)"
  [ -n "$line" ] || line="$(grep -E '^\s*Summary \[' "$log" | tail -n1 || true)"
  count() { grep -oE "[0-9]+ $1" <<<"$line" | grep -oE '[0-9]+' | head -n1 || echo 0; }
  p="$(count passed)" f="$(count failed)" t="$(count 'timed out')" s="$(count skipped)"
  passed=$((passed + p)) failed=$((failed + f + t)) skipped=$((skipped + s))
done
if [ ${#failed_steps[@]} -gt 0 ]; then
  echo "test.sh: failed: ${failed_steps[*]}"
  [ "$failed" -gt 0 ] || failed=${#failed_steps[@]}
fi
echo "fleet suite: $passed passed, $failed failed, $skipped skipped"
[ ${#failed_steps[@]} -eq 0 ]
