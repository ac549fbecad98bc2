#!/usr/bin/env bash
# Installs what is missing (including redis-server), builds Kagami and runs
# every test with ctest: once in a normal build, once under AddressSanitizer
# + UndefinedBehaviorSanitizer, and the threaded tests (pcap, real, live)
# once under ThreadSanitizer. The live tests need root (network namespaces). Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test

jobs=$(nproc)
echo "== build (RelWithDebInfo)"
scripts/build.sh build
echo "== tests"
(cd build && ctest --output-on-failure -j"$jobs")

echo "== build (ASan + UBSan)"
scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DKG_SANITIZE=address,undefined
echo "== tests under ASan + UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$jobs")

echo "== build (TSan)"
scripts/build.sh build-tsan -DCMAKE_BUILD_TYPE=Debug -DKG_SANITIZE=thread
echo "== threaded tests under TSan"
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
(cd build-tsan && ctest --output-on-failure -j"$jobs" -L 'pcap|real|live')
echo "== all tests passed"
