#!/usr/bin/env bash
# Bare-ring benchmark: descriptors/s between two processes through the NET_RING (batch 1 and 32), beside
# the same 32-byte records through a pipe, in the same run, with the cache-line floor of shared/peers
# (floor.c) probed before and after every figure. Busy-polling: run nothing else meanwhile.
#   tools/bench.sh                 REPS=5 tools/bench.sh        PACKETS=50000000 tools/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-3}
packets=${PACKETS:-20000000}
pipe_packets=${PIPE_PACKETS:-2000000}   # batch 1; batch 32 sends ten times as many
peers=${PEERS:-../shared/peers}
mkdir -p tools/out
swift build -c release --product ringport-peer >/dev/null
peer=.build/release/ringport-peer
if [ -f "$peers/floor.c" ]; then
    gcc -O2 -std=gnu11 -I"$peers" -o tools/out/floor "$peers/floor.c"
fi
floor() {
    # one-way cache-line transfer in ns (PAUSE spin, mean, no timer): ~25 near placement, ~200 far
    [ -x tools/out/floor ] || { echo nan; return; }
    tools/out/floor 2000000 1 | awk '/mode=batch/ { for (i = 1; i <= NF; i++) if ($i ~ /^mean=/) print substr($i, 6) }'
}
echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for rep in $(seq "$reps"); do
    for batch in 1 32; do
        for transport in ring pipe; do
            n=$packets
            [ "$transport" = pipe ] && n=$pipe_packets
            [ "$transport" = pipe ] && [ "$batch" = 32 ] && n=$((pipe_packets * 10))
            before=$(floor)
            line=$($peer bench --transport "$transport" --batch "$batch" --packets "$n")
            after=$(floor)
            echo "$line floor_ns=$before floor_end_ns=$after rep=$rep"
        done
    done
done
