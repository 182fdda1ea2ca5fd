#!/usr/bin/env bash
# Runs the whole test suite again on another Debian release, in a debootstrap root of it:
#   scripts/platform.sh trixie      # Debian 13: PHP 8.4, Redis 8.0, Valkey 8.1, MariaDB 11.8
#   scripts/platform.sh bookworm    # Debian 12: PHP 8.2, Redis 7.0, Valkey 8.0, MariaDB 10.11
#   scripts/platform.sh trixie --prepare   # only make the root and install its packages
#   scripts/platform.sh trixie --run bench/run.sh --only …   # another command in the root
# scripts/test.sh calls it for the release this machine is not. The root is made once
# (scripts/debian-root.sh, then scripts/setup.sh inside it) and kept under /var/lib/fleet/roots;
# the repository is mounted in it at /fleet and builds into target/platform-SUITE, with this
# machine's own Rust toolchain (~/.cargo, ~/.rustup mounted; nothing is downloaded but by apt
# and cargo). The root shares this machine's network and process table: the tests' servers
# listen on free loopback ports as on the host, and every process left in the root is stopped
# when the run ends.
set -euo pipefail
suite="${1:?usage: platform.sh SUITE [nextest args]}"
shift
repo="$(cd "$(dirname "$0")/.." && pwd)"
roots=/var/lib/fleet/roots
base="$roots/$suite-base"
root="$roots/$suite-test"

if [ "$(id -u)" != 0 ]; then
  echo "platform: run as root (debootstrap, chroot and mounts)" >&2
  exit 1
fi
"$repo/scripts/debian-root.sh" "$suite" "$base"
if [ ! -f "$root/.fleet-root-complete" ]; then
  rm -rf "$root"
  cp -a "$base" "$root"
  rm -f "$root/.fleet-root-complete" "$root/.fleet-packages-installed"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
[ -s "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

mounts=()
mount_in() { # mount_in TARGET mount-args…
  local target="$root$1"
  shift
  mkdir -p "$target"
  mount "$@" "$target"
  mounts=("$target" "${mounts[@]}")
}
cleanup() {
  # Whatever the tests left running in the root (a server a killed test did not stop).
  local pid
  for pid in /proc/[0-9]*; do
    if [ "$(readlink "$pid/root" 2>/dev/null)" = "$root" ]; then
      kill -KILL "${pid#/proc/}" 2>/dev/null || true
    fi
  done
  local m
  for m in "${mounts[@]}"; do
    umount -l "$m" 2>/dev/null || true
  done
}
trap cleanup EXIT

mount_in /proc -t proc proc
mount_in /sys -t sysfs sysfs
mount_in /dev --bind /dev
mount_in /dev/pts --bind /dev/pts
mount_in /dev/shm -t tmpfs tmpfs
mount_in /run -t tmpfs tmpfs
mount_in /fleet --bind "$repo"
mount_in /root/.cargo --bind "$HOME/.cargo"
mount_in /root/.rustup --bind "$HOME/.rustup"
# This machine's cargo-nextest where it is not under ~/.cargo (an image's /usr/local/bin).
nextest="$(command -v cargo-nextest || true)"
if [ -n "$nextest" ] && [ "${nextest#"$HOME/.cargo/"}" = "$nextest" ]; then
  touch "$root/usr/local/bin/cargo-nextest"
  mount --bind "$nextest" "$root/usr/local/bin/cargo-nextest"
  mounts=("$root/usr/local/bin/cargo-nextest" "${mounts[@]}")
fi
# The root trusts what this machine trusts (a site's own CA for crates.io, say), for cargo.
host_ca=/etc/ssl/certs/ca-certificates.crt
if [ ! -f "$host_ca" ]; then
  host_ca=
else
  mkdir -p "$root/etc/fleet"
  cp "$host_ca" "$root/etc/fleet/host-ca.crt"
fi

in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CI="${CI:-}" CARGO_TARGET_DIR="/fleet/target/platform-$suite" \
    ${host_ca:+CARGO_HTTP_CAINFO=/etc/fleet/host-ca.crt} FLEET_PLATFORM_INNER=1 "$@"
}

# Every run: setup.sh installs only what is missing (a kept root gets what a newer
# setup.sh asks for) and costs a dpkg query per package when nothing is.
in_root bash /fleet/scripts/setup.sh
touch "$root/.fleet-packages-installed"
touch "$root/.fleet-root-complete"
echo "platform: $(in_root sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), $(in_root php -r 'echo "PHP ", PHP_VERSION;'), $(in_root redis-server --version | cut -d' ' -f1-3), $(in_root valkey-server --version | cut -d' ' -f1-3), $(in_root mariadbd --version | cut -d' ' -f2-4)"
case "${1:-}" in
  --prepare) exit 0 ;;
  --run) # any command in the root, from the repository (e.g. bench/run.sh)
    shift
    in_root bash -c 'cd /fleet && exec "$@"' run "$@"
    exit $? ;;
esac
in_root bash -c 'cd /fleet && exec scripts/test.sh "$@"' test.sh "$@"
