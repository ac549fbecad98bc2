#!/usr/bin/env bash
# Installs what is missing, builds Kagami, and runs the sensor on a bundled
# capture with bundled indicators, printing the alerts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build >/dev/null
echo "== kagami -r pcaps/demo.pcap --indicators config/indicators/demo.intel"
build/sensor/kagami -r pcaps/demo.pcap --indicators config/indicators/demo.intel -o stdout
