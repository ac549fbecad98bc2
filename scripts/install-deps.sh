#!/usr/bin/env bash
# Installs the Debian 12 packages Kagami needs to build, test and demo,
# skipping those already present. Needs root (or sudo) only when something
# is missing.
set -euo pipefail

PKGS=(build-essential cmake pkg-config
      libpcap-dev libndpi-dev libmaxminddb-dev libhiredis-dev libssl-dev libyaml-dev libjansson-dev
      python3)
if [ "${1:-}" = "--test" ]; then
  # Test-only: a real Redis (plain, TLS, Sentinel), the openssl CLI for test
  # certificates and signed feeds, iproute2 + tcpreplay for the live-capture
  # test in a network namespace, and the MaxMind writer to build test .mmdb files.
  PKGS+=(redis-server redis-tools openssl iproute2 tcpreplay libmaxmind-db-writer-perl)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "[deps] installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
