#!/usr/bin/env bash
# Makes a minimal Debian root (debootstrap's minbase) for SUITE in DIR, from the mirror this
# machine's apt already uses, for the Debian 13 test platform (scripts/platform.sh) and the
# Docker base images (scripts/docker-base.sh):
#   scripts/debian-root.sh trixie /var/lib/fleet/roots/trixie-base
# A root that is already complete is left as it is. A debootstrap root shares the host's
# process table, and Debian's package scripts stop services by executable name: so before any
# package is installed in it, /usr/sbin/policy-rc.d refuses every service action (exit 101,
# as in Debian's own container images), or installing redis-server or mariadb-server there
# would stop the host's.
set -euo pipefail
suite="${1:?usage: debian-root.sh SUITE DIR}"
root="${2:?usage: debian-root.sh SUITE DIR}"

if [ -f "$root/.fleet-root-complete" ]; then
  exit 0
fi

command -v debootstrap >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

# The host's Debian mirror (deb822 or one-line sources), not the security archive.
mirror="$(
  { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
  } | grep -v security | grep '/debian/\?$' | head -n1 || true
)"

rm -rf "$root"
mkdir -p "$root"
echo "debian-root: debootstrap $suite into $root${mirror:+ from $mirror}"
# Only debootstrap's own scripts run here, and minbase has no service to start.
debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" ${mirror:+"$mirror"} \
  >"$root.debootstrap.log" 2>&1 || {
  tail -n 20 "$root.debootstrap.log" >&2
  echo "debian-root: debootstrap $suite failed (log: $root.debootstrap.log)" >&2
  exit 1
}

printf '#!/bin/sh\n# No service starts or stops in this root: it shares the host'"'"'s processes.\nexit 101\n' \
  >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
if [ -n "$mirror" ]; then
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
EOF
fi
# As in Debian's container images: no recommends, no documentation.
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
  >"$root/etc/apt/apt.conf.d/90fleet-no-recommends"
printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' \
  >"$root/etc/dpkg/dpkg.cfg.d/90fleet-nodoc"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
touch "$root/.fleet-root-complete"
