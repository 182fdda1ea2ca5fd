#!/usr/bin/env bash
# Installs what Fleet needs on Debian, as root, and nothing that is already there:
# the distribution's PHP through its unversioned packages (headers, CLI, FPM, phpredis for the
# interop test; no PHP version is named here), clang for ext-php-rs, faketime
# (a node with a skewed clock in the run-once tests), python3-yaml (reads docker/compose.yaml in a test),
# python3-prometheus-client (parses fleet_metrics() in a test), git (the install test copies the tree as a clone has it),
# redis-server, valkey-server (the Redis suites run on both), mariadb-server and nginx for
# the tests and demo, debootstrap (the second Debian platform, the Docker base images),
# make (phpize builds need it, and Debian 13's php-dev does not pull it in), and cargo-nextest.
# Extra package names given as arguments are installed the same way.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

packages=(
  php-dev php-cli php-fpm php-redis php-igbinary make
  clang libclang-dev libssl-dev pkg-config
  redis-server valkey-server mariadb-server mariadb-client procps valgrind faketime python3-yaml
  python3-prometheus-client debootstrap git
)
# Callers may ask for more (bench/run.sh: wrk, memcached, …).
packages+=("$@")
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
# (Not `dpkg-query | grep -q`: under pipefail grep's early exit can fail the pipeline.)
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

# Debian 12 has Valkey only in bookworm-backports: add that suite of the mirror apt already
# uses (backports are never preferred over the release; only valkey-server is taken from it).
backports=()
if [ "$codename" = bookworm ] && ! installed valkey-server; then
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror="$(
      { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
        grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
      } | grep -v security | grep '/debian/\?$' | head -n1 || true
    )"
    echo "deb ${mirror:-http://deb.debian.org/debian} bookworm-backports main" \
      >/etc/apt/sources.list.d/fleet-bookworm-backports.list
  fi
  backports=(-t bookworm-backports)
fi

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
# nginx-light is Debian 12's small nginx; Debian 13 has only nginx (its modules are separate).
if ! installed nginx-light && ! installed nginx; then
  missing+=(nginx-web)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  for i in "${!missing[@]}"; do
    if [ "${missing[$i]}" = nginx-web ]; then
      if apt-cache show nginx-light >/dev/null 2>&1; then missing[$i]=nginx-light; else missing[$i]=nginx; fi
    fi
  done
  echo "setup: installing ${missing[*]}"
  # The tests start every server themselves on free ports: the packages' own services are
  # not started (and so do not take 6379 or 3306). A policy-rc.d already there is kept.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  trap '[ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
  # Only valkey-server (and what it needs that the release lacks) comes from backports.
  rest=()
  for p in "${missing[@]}"; do [ "$p" = valkey-server ] || rest+=("$p"); done
  if [ ${#rest[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${rest[@]}" >/dev/null
  fi
  if [[ " ${missing[*]} " == *" valkey-server "* ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${backports[@]}" valkey-server >/dev/null
  fi
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi

if ! command -v cargo >/dev/null; then
  echo "setup: no Rust toolchain found; install one with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
