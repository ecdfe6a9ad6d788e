#!/usr/bin/env bash
# The multi-process tests under the address sanitizer: builds the executables (release) and the tests
# (debug) with -sanitize=address in a scratch path of their own, runs the suites that spawn miniports and
# protocols against the sanitized executables, and fails if a test failed or any process (test runner or
# spawned child) wrote a sanitizer report. Reports go to $scratch/asan-logs/ (one file per process).
#
#   tools/asan-test.sh [SUITE_REGEX]    (default: the hostile-protocol (ContractViolation), hostile-miniport, storm, hub,
#                                    send-path, receive-path, lifecycle and control-flood suites)
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=${ASAN_SCRATCH:-$PWD/.build-asan}
filter=${1:-"ContractViolation|HostileMiniport|HostileStorm|Hub|SendPath|BindingLifecycle|ReceivePath|ControlPlaneFlood"}
locked() { if command -v flock >/dev/null 2>&1; then flock /tmp/ringport-build.lock "$@"; else "$@"; fi; }

start=$(date +%s)
locked swift build -c release --sanitize address --scratch-path "$scratch" 2>&1 | tail -3
[ "${PIPESTATUS[0]}" = 0 ] || { echo "asan: the release build failed" >&2; exit 1; }
built_release=$(date +%s)
locked swift build --build-tests --sanitize address --scratch-path "$scratch" 2>&1 | tail -3
[ "${PIPESTATUS[0]}" = 0 ] || { echo "asan: the test build failed" >&2; exit 1; }
built_tests=$(date +%s)
echo "asan: release executables built in $((built_release - start)) s, tests in $((built_tests - built_release)) s"

logs="$scratch/asan-logs"
rm -rf "$logs"
mkdir -p "$logs"
# Every process the tests spawn inherits these. Leak checks are off (the Swift runtime keeps caches for
# good); Swift's crash backtracer is off (it reads memory the sanitizer would report).
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$logs/asan:malloc_context_size=30"
export SWIFT_BACKTRACE=enable=no
export RINGPORT_PRODUCTS
RINGPORT_PRODUCTS="$(swift build -c release --sanitize address --scratch-path "$scratch" --show-bin-path)"
export RINGPORT_CHECKED=1
set +e
locked swift test --skip-build --sanitize address --scratch-path "$scratch" --filter "$filter" >"$scratch/asan-test.log" 2>&1
status=$?
set -e
grep -E "✘|Test run with|tests? passed|XCTest|Executed" "$scratch/asan-test.log" | cut -c1-240 | tail -40 || true
echo "asan: tests ran in $(($(date +%s) - built_tests)) s (exit $status)"

reports=$(grep -l "ERROR: AddressSanitizer" "$logs"/asan.* 2>/dev/null || true)
if [ -n "$reports" ]; then
    echo "asan: sanitizer reports:" >&2
    for report in $reports; do
        echo "--- $report" >&2
        grep -E "ERROR: AddressSanitizer|^    #[0-9]+ |SUMMARY" "$report" | head -25 >&2
    done
    exit 1
fi
[ "$status" = 0 ] || { echo "asan: tests failed (see $scratch/asan-test.log)" >&2; exit 1; }
echo "asan: no sanitizer report"
