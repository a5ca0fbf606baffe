#!/usr/bin/env bash
# Checks the systemd units in deploy/systemd without a running systemd: `systemd-analyze verify` on each
# (in a scratch root where the executables they name exist) and `systemd-analyze security --offline`,
# whose exposure score must be at most 4.0 ("OK") for aurorad and cfcd. aetherd's score is printed only
# (a root job runner; see docs/systemd-security.md). Exits non-zero on any verify error or a score above
# the limit. Needs systemd-analyze (Debian: systemd); installs it with apt when run as root, else fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
units_dir="$root/deploy/systemd"
limit=4.0
units=(aetherd.service aurorad.service cfcd.service)
strict=(aurorad.service cfcd.service)

if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "verify-units: installing systemd (for systemd-analyze)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd >/dev/null
  else
    echo "verify-units: systemd-analyze not found; install the systemd package (apt-get install systemd)" >&2
    exit 1
  fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A scratch root with what the units refer to: the ExecStart executables, the helper binaries, and the
# users and groups of sysusers.d (User=/Group= are resolved in the root).
mkdir -p "$tmp/etc/systemd/system" "$tmp/usr/bin" "$tmp/bin" "$tmp/usr/lib/sysusers.d"
for exe in usr/bin/node bin/kill; do
  printf '#!/bin/sh\nexit 0\n' >"$tmp/$exe"
  chmod 755 "$tmp/$exe"
done
for d in aetherd aurorad cfcd; do
  mkdir -p "$tmp/usr/lib/aether/apps/$d/dist"
  : >"$tmp/usr/lib/aether/apps/$d/dist/main.js"
done
cp "$units_dir"/*.service "$tmp/etc/systemd/system/"
# The standard units the services are ordered after (sysinit.target, network.target, ...).
for dir in /usr/lib/systemd/system /lib/systemd/system; do
  if [ -d "$dir" ]; then
    mkdir -p "$tmp/usr/lib/systemd"
    cp -a "$dir" "$tmp/usr/lib/systemd/"
    break
  fi
done
touch "$tmp/etc/passwd" "$tmp/etc/group" "$tmp/etc/shadow" "$tmp/etc/gshadow"
if command -v systemd-sysusers >/dev/null 2>&1; then
  systemd-sysusers --root="$tmp" "$root/deploy/sysusers.d/aether.conf" >/dev/null 2>&1 || true
fi

status=0
for unit in "${units[@]}"; do
  out=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no --generators=no \
    --root="$tmp" "$tmp/etc/systemd/system/$unit" 2>&1) || {
    status=1
    echo "verify-units: $unit: systemd-analyze verify failed" >&2
  }
  # verify also complains about units it cannot find in the scratch root (e.g. network.target):
  # only messages about our own units count.
  problems=$(printf '%s\n' "$out" | grep -E "(aetherd|aurorad|cfcd)\.service" || true)
  if [ -n "$problems" ]; then
    status=1
    printf '%s\n' "$problems" | sed "s|^|verify-units: |" >&2
  fi
done
[ $status = 0 ] && echo "verify-units: systemd-analyze verify: ${units[*]} ok"

for unit in "${units[@]}"; do
  line=$(systemd-analyze security --offline=yes --root="$tmp" --no-pager "$tmp/etc/systemd/system/$unit" 2>&1 |
    grep -E 'Overall exposure level' || true)
  score=$(printf '%s\n' "$line" | sed -nE 's/.*Overall exposure level for [^:]*: ([0-9]+\.[0-9]+).*/\1/p')
  if [ -z "$score" ]; then
    echo "verify-units: $unit: no security score from systemd-analyze" >&2
    status=1
    continue
  fi
  verdict=$(printf '%s\n' "$line" | sed -nE 's/.*[0-9] ([A-Z]+).*/\1/p')
  echo "verify-units: $unit: exposure $score $verdict"
  for s in "${strict[@]}"; do
    if [ "$s" = "$unit" ] && awk -v a="$score" -v b="$limit" 'BEGIN { exit !(a > b) }'; then
      echo "verify-units: $unit: exposure $score is above $limit" >&2
      status=1
    fi
  done
done
exit $status
