#!/usr/bin/env bash
# Makes the base images docker/Dockerfile and docker/services.Dockerfile name, from Debian's
# packages and this machine's own Rust toolchain, for an engine that cannot pull from a
# registry. They carry the public names, so the same Dockerfiles build here and for anyone
# who pulls:
#   debian:bookworm-slim, debian:trixie-slim   a debootstrap minbase root (scripts/debian-root.sh)
#                                              imported without docs, man pages and locales
#   rust:1.95-bookworm, rust:1.95-trixie       that image plus this machine's toolchain (cargo,
#                                              rustc; no docs) where the official image has it:
#                                              /usr/local/rustup, cargo on PATH in /usr/local/cargo/bin
#   scripts/docker-base.sh [SUITE...]          bookworm and trixie unless SUITEs are named
# The Rust version is the one docker/Dockerfile pins (ARG RUST_VERSION); the host must have a
# toolchain of that version under ~/.rustup. Nothing is downloaded but by debootstrap from
# the host's Debian mirror. The crates of Cargo.lock are vendored from this machine's cargo into
# docker/crates/vendor (git ignores it), which docker/Dockerfile builds from when present: a
# container here cannot reach crates.io (TLS is intercepted by a CA only the host trusts).
# An image that exists is kept, so every layer built on it stays
# cached (FLEET_DOCKER_REBASE=1 makes them again); the roots are kept in /var/lib/fleet/roots.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
roots=/var/lib/fleet/roots
work=/var/lib/fleet/docker
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)

if ! docker info >/dev/null 2>&1; then
  echo "docker-base: no Docker engine answers (docker info failed)" >&2
  exit 1
fi

rust="$(sed -n 's/^ARG RUST_VERSION=\([0-9.]*\).*/\1/p' "$repo/docker/Dockerfile")"
[ -n "$rust" ] || { echo "docker-base: no ARG RUST_VERSION= in docker/Dockerfile" >&2; exit 1; }

have() { [ -z "${FLEET_DOCKER_REBASE:-}" ] && docker image inspect "$1" >/dev/null 2>&1; }

# The host toolchain of version $rust (x.y): the first under ~/.rustup whose rustc says so.
toolchain() {
  local t
  for t in "${RUSTUP_HOME:-$HOME/.rustup}"/toolchains/*/; do
    if "$t/bin/rustc" --version 2>/dev/null | grep -q "^rustc $rust\."; then
      readlink -f "$t"
      return
    fi
  done
  echo "docker-base: no Rust $rust toolchain under ${RUSTUP_HOME:-$HOME/.rustup}/toolchains (docker/Dockerfile pins it)" >&2
  return 1
}

# import_root SUITE: debian:SUITE-slim from the root, as Debian's slim images are made: no
# documentation but the copyright files, no man pages, locales, apt lists, caches or logs, and
# apt set to keep none (the official images' docker-clean). The root itself is not changed:
# the image is made from a copy of it in hard links, trimmed (unlinking, adding new files).
import_root() {
  local suite="$1" root="$roots/$1-base" stage
  "$repo/scripts/debian-root.sh" "$suite" "$root"
  echo "docker-base: debian:$suite-slim from $root"
  mkdir -p "$work"
  stage="$(mktemp -d "$work/root-$suite.XXXXXX")"
  cp -al "$root/." "$stage/"
  rm -f "$stage/.fleet-root-complete"
  (
    cd "$stage"
    find proc sys dev run tmp var/log var/cache/apt var/lib/apt/lists usr/share/man \
      usr/share/locale usr/share/info -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    find usr/share/doc ! -type d ! -name copyright -delete
    cat >etc/apt/apt.conf.d/docker-clean <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >etc/apt/apt.conf.d/docker-no-languages
  )
  tar -C "$stage" --sort=name --numeric-owner -c . | docker import \
    -c 'CMD ["bash"]' \
    -c "LABEL org.opencontainers.image.description=\"Debian $suite minbase, made by Fleet's scripts/docker-base.sh\"" \
    -m "debootstrap --variant=minbase $suite (scripts/debian-root.sh)" \
    - "debian:$suite-slim" >/dev/null || { rm -rf "$stage"; return 1; }
  rm -rf "$stage"
}

# rust_image SUITE: rust:$rust-SUITE, the host's toolchain on debian:SUITE-slim.
rust_image() {
  local suite="$1" from ctx name
  from="$(toolchain)"
  name="$("$from/bin/rustc" --version | awk '{print $2}')-x86_64-unknown-linux-gnu"
  mkdir -p "$work"
  ctx="$(mktemp -d "$work/rust-context.XXXXXX")"
  mkdir -p "$ctx/toolchain/bin"
  # Hard links where the filesystem allows (the context is read once by the engine).
  cp -al "$from/lib" "$ctx/toolchain/" 2>/dev/null || cp -a "$from/lib" "$ctx/toolchain/"
  cp -a "$from/bin/cargo" "$from/bin/rustc" "$from/bin/rustdoc" "$ctx/toolchain/bin/"
  cat >"$ctx/Dockerfile" <<EOF
FROM debian:$suite-slim
LABEL org.opencontainers.image.description="Rust $rust on Debian $suite: the host's toolchain, made by Fleet's scripts/docker-base.sh"
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=${name%%-*}
COPY toolchain /usr/local/rustup/toolchains/$name
RUN mkdir -p /usr/local/cargo/bin \\
    && for t in cargo rustc rustdoc; do ln -s /usr/local/rustup/toolchains/$name/bin/\$t /usr/local/cargo/bin/\$t; done \\
    && cargo --version && rustc --version
EOF
  echo "docker-base: rust:$rust-$suite from $from"
  docker build -q -t "rust:$rust-$suite" "$ctx" >/dev/null || { rm -rf "$ctx"; return 1; }
  rm -rf "$ctx"
}

# vendor: docker/crates/vendor for this Cargo.lock (kept while the lock is unchanged). The
# Windows-only crates (winapi's import libraries are most of the size) keep their manifest
# and empty sources: nothing on Linux builds them (their checksums are dropped to match).
vendor() {
  local dir="$repo/docker/crates/vendor" lock
  lock="$(sha256sum "$repo/Cargo.lock" | cut -d' ' -f1)"
  [ "$(cat "$dir/.fleet-cargo-lock" 2>/dev/null)" = "$lock" ] && return
  echo "docker-base: vendoring the crates of Cargo.lock into docker/crates/vendor"
  rm -rf "$dir"
  (cd "$repo" && cargo vendor --locked --quiet "$dir" >/dev/null)
  local crate
  for crate in "$dir"/winapi* "$dir"/windows*; do
    [ -d "$crate" ] || continue
    find "$crate" -mindepth 1 -maxdepth 1 ! -name Cargo.toml ! -name .cargo-checksum.json -exec rm -rf {} +
    # A manifest names a target: an empty one, never compiled here.
    mkdir -p "$crate/src" && : >"$crate/src/lib.rs" && : >"$crate/build.rs"
    sed -i 's/"files":{[^}]*}/"files":{}/' "$crate/.cargo-checksum.json"
  done
  echo "$lock" >"$dir/.fleet-cargo-lock"
}
vendor

for suite in "${suites[@]}"; do
  have "debian:$suite-slim" || import_root "$suite"
  have "rust:$rust-$suite" || rust_image "$suite"
done
alternatives="$(IFS='|'; echo "${suites[*]}")"
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
  grep -E "^(debian:($alternatives)-slim|rust:$rust-($alternatives)) " | sed 's/^/docker-base: /'
