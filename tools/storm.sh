#!/usr/bin/env bash
# A hostile protocol storms one miniport while honest protocols run beside it; the long form of
# Tests/RingportMiniportTests/HostileStormTests (figures in RELIABILITY.md). Needs `swift build -c release`.
#
#   tools/storm.sh DRIVER ATTACK WRITES SECONDS      e.g. tools/storm.sh hub scribble 10000000 120
#
# DRIVER: null, resources or hub; ATTACK: flip or scribble. Exits non-zero if the miniport died or an honest
# protocol lost or failed anything.
set -euo pipefail
driver=${1:?driver} attack=${2:?attack} writes=${3:?writes} seconds=${4:?seconds}
bin="$(cd "$(dirname "$0")/.." && swift build -c release --show-bin-path)"
dir=$(mktemp -d /tmp/ringport-storm.XXXXXX)
adapter=storm$$
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
extra=()
[ "$driver" = hub ] && extra=(--stall-timeout-ms 2000)
"$bin/ringportd" --adapter "$adapter" --dir "$dir" --driver "$driver" "${extra[@]}" >/dev/null 2>"$dir/miniport.log" &
miniport=$!
pids+=("$miniport")
for _ in $(seq 100); do [ -S "$dir/$adapter.sock" ] && break; sleep 0.05; done
at=(--adapter "$adapter" --dir "$dir")
rate=10000
if [ "$driver" = hub ]; then
    frames=$((rate * (seconds - 2)))
    "$bin/ringport" recv "${at[@]}" --check --only-tag 1 --count "$frames" --idle-timeout 30 >"$dir/recv.out" 2>/dev/null &
    receiver=$!
    pids+=("$receiver")
    sleep 0.5
fi
"$bin/hostile-protocol" "${at[@]}" --attack "$attack" --writes "$writes" --seconds "$seconds" >"$dir/hostile.out" 2>&1 &
hostile=$!
pids+=("$hostile")
sleep 0.3
runs=0 failures=0
if [ "$driver" = hub ]; then
    "$bin/ringport" send "${at[@]}" --count "$frames" --rate "$rate" --tag 1 >"$dir/send.out" 2>/dev/null || failures=$((failures + 1))
    runs=1
    wait "$receiver" || failures=$((failures + 1))
    grep -q "received $frames .*errors=0.*senders=1:$frames " "$dir/recv.out" || failures=$((failures + 1))
    honest="$(cat "$dir/send.out"); $(cat "$dir/recv.out")"
else
    expect=success
    [ "$driver" = resources ] && expect=verified
    while kill -0 "$hostile" 2>/dev/null; do
        "$bin/ringport" stress "${at[@]}" --packets 100000 --max-buffers 4 --max-size 1500 --expect "$expect" \
            --timeout 60 >"$dir/stress.out" 2>&1 || failures=$((failures + 1))
        grep -q "^ok sent=100000 completed=100000 " "$dir/stress.out" || failures=$((failures + 1))
        runs=$((runs + 1))
    done
    honest="$runs stress runs of 100000 packets"
fi
wait "$hostile" || true
alive=dead
kill -0 "$miniport" 2>/dev/null && alive=alive
stat=$("$bin/ringport" stat "${at[@]}" 2>&1 || true)
echo "storm driver=$driver $(cat "$dir/hostile.out" | tail -1) honest_runs=$runs honest_failures=$failures miniport=$alive"
echo "  honest: $honest"
echo "  stat: $stat"
echo "  log lines: $(wc -l <"$dir/miniport.log")"
[ "$alive" = alive ] && [ "$failures" = 0 ]
