#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Fuzz/Sources) with the address sanitizer, in a scratch path of their own,
# and runs each over its seed corpus (Fuzz/Corpus/<harness>) for a bounded time. Exits non-zero if one
# crashed or a sanitizer reported, leaving the input in Fuzz/Crashes/<harness>/.
#
#   tools/fuzz.sh [--time SECONDS] [--build-only] [HARNESS...]     (default: 60 s each, all harnesses)
#   tools/fuzz.sh --minimize HARNESS CRASH_FILE                     (writes CRASH_FILE.min)
#   tools/fuzz.sh --seeds                                           (rewrites Fuzz/Corpus from the harnesses)
#
# Harnesses: control-message, miniport-segment, library-segment. In a normal `swift build` each harness is
# a replay executable (`swift run fuzz-<harness> FILE...` reproduces a crash without the fuzzer).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
scratch=${FUZZ_SCRATCH:-$PWD/.build-fuzz}
all=(control-message miniport-segment library-segment)
mode=run
harnesses=()
while [ $# -gt 0 ]; do
    case "$1" in
    --time) seconds=$2; shift 2 ;;
    --build-only) mode=build; shift ;;
    --minimize) mode=minimize; shift ;;
    --seeds) mode=seeds; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) harnesses+=("$1"); shift ;;
    esac
done

# Builds share the machine: take the team's build lock when there is one (flock is there on CI too).
locked() { if command -v flock >/dev/null 2>&1; then flock /tmp/ringport-build.lock "$@"; else "$@"; fi; }

if [ "$mode" = seeds ]; then
    # The replay executables (a normal build), in a scratch path of their own.
    replay=(--scratch-path "$scratch-replay")
    for h in "${all[@]}"; do locked swift build "${replay[@]}" --product "fuzz-$h" >/dev/null; done
    bin=$(swift build "${replay[@]}" --show-bin-path)
    for h in "${all[@]}"; do
        rm -rf "Fuzz/Corpus/$h"
        "$bin/fuzz-$h" --write-seeds "Fuzz/Corpus/$h"
    done
    exit 0
fi

if [ "$mode" = minimize ]; then
    [ ${#harnesses[@]} = 2 ] || { echo "usage: tools/fuzz.sh --minimize HARNESS CRASH_FILE" >&2; exit 2; }
    set -- "${harnesses[@]}"
    harnesses=("$1")
    crash=$2
fi
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${all[@]}")
for h in "${harnesses[@]}"; do
    [ -d "Fuzz/Sources/fuzz-$h" ] || { echo "fuzz: no harness $h (have: ${all[*]})" >&2; exit 2; }
done

# SwiftPM's --sanitize fuzzer links libFuzzer's main in place of the executable's; the swiftc flag (one
# -sanitize with both, since a later -sanitize replaces an earlier one) instruments every module for
# coverage and for the address sanitizer. FUZZING leaves out the harnesses' replay entry points.
flags=(--scratch-path "$scratch" --sanitize fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING)
start=$(date +%s)
for h in "${harnesses[@]}"; do
    locked swift build "${flags[@]}" --product "fuzz-$h" 2>&1 | grep -v "Cannot export local symbol" | tail -3
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "fuzz: building fuzz-$h failed" >&2; exit 1; }
done
echo "fuzz: built ${harnesses[*]} in $(($(date +%s) - start)) s"
bin=$(swift build "${flags[@]}" --show-bin-path)
[ "$mode" = build ] && exit 0

# Swift's own crash backtracer would read memory the address sanitizer then reports; libFuzzer prints
# the stack. Leak checks are off: the Swift runtime keeps its metadata caches for good.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:quarantine_size_mb=64:malloc_context_size=20}

if [ "$mode" = minimize ]; then
    h=${harnesses[0]}
    "$bin/fuzz-$h" -minimize_crash=1 -max_total_time="$seconds" -exact_artifact_path="$crash.min" "$crash" || true
    [ -f "$crash.min" ] && echo "fuzz: minimized to $crash.min ($(wc -c <"$crash.min") bytes)"
    "$bin/fuzz-$h" "${crash}.min" 2>&1 | grep -E "ERROR|Fatal|SUMMARY|#[0-9]+ " | head -40 || true
    exit 0
fi

failed=()
for h in "${harnesses[@]}"; do
    work="$scratch/corpus/$h"
    crashes="Fuzz/Crashes/$h"
    mkdir -p "$work" "$crashes"
    log="$scratch/fuzz-$h.log"
    echo "== fuzz $h: ${seconds} s (log $log)"
    status=0
    # New inputs go to the working corpus (first directory), not into the committed seeds.
    "$bin/fuzz-$h" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=6144 -max_len=4096 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "Fuzz/Corpus/$h" >"$log" 2>&1 || status=$?
    grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::new_units_added|cov: " "$log" | tail -3 || true
    if [ "$status" != 0 ]; then
        echo "fuzz: $h FAILED (exit $status); the input is in $crashes/:" >&2
        grep -E "ERROR|Fatal error|SUMMARY|Test unit written|Base64" "$log" | head -10 >&2 || true
        grep -E "^ +#[0-9]+ " "$log" | head -30 >&2 || true
        failed+=("$h")
    fi
done
# A harness killed mid-input may leave a named segment behind.
rm -f /dev/shm/ringport=fuzz=* 2>/dev/null || true
rm -rf /tmp/ringport-fuzz-* 2>/dev/null || true
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: every harness ran its time with no crash: ${harnesses[*]}"
