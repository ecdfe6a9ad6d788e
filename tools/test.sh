#!/usr/bin/env bash
# The test command: builds the executables in release mode and runs `swift test` against them, with every
# ring transition verified in every process (RINGPORT_CHECKED=1). Plain `swift test` runs the same tests
# against the debug executables (correct, but the multi-process stress runs many times slower).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release
export RINGPORT_PRODUCTS="$(swift build -c release --show-bin-path)"
export RINGPORT_CHECKED=1
swift test "$@"
