#!/usr/bin/env bash
# Installs what is missing, builds Kagami, and runs the sensor on a bundled
# capture (pcaps/demo.pcap) with bundled indicators
# (config/indicators/demo.intel), printing the alerts: first as the JSON
# lines the SOC receives, then as a table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "== building (build/)"
scripts/build.sh build >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== build/sensor/kagami -r pcaps/demo.pcap --indicators config/indicators/demo.intel -o stdout"
build/sensor/kagami -r pcaps/demo.pcap --indicators config/indicators/demo.intel -o stdout \
  -o "file:$out/alerts.json"
echo
echo "== the same alerts as a table"
python3 scripts/alerts_table.py < "$out/alerts.json"
