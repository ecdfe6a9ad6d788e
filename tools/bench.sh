#!/usr/bin/env bash
# Benchmarks of BENCHMARKS.md, each beside its baseline in the same run, with the cache-line floor of
# shared/peers (floor.c) probed before and after every figure. Busy-polling: run nothing else meanwhile.
#   bare ring:  descriptors/s through the NET_RING (batch 1 and 32), beside the same records through a pipe
#   send path:  packets/s from one protocol to ringportd's null driver (64 and 1500 B, batch 1 and 32),
#               beside the same payloads through a Unix domain socket
#   tools/bench.sh            REPS=5 tools/bench.sh        ONLY=send tools/bench.sh      ONLY=ring tools/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-3}
packets=${PACKETS:-20000000}
pipe_packets=${PIPE_PACKETS:-2000000}   # batch 1; batch 32 sends ten times as many
peers=${PEERS:-../shared/peers}
mkdir -p tools/out
swift build -c release >/dev/null
peer=.build/release/ringport-peer
tool=.build/release/ringport
only=${ONLY:-}
if [ -f "$peers/floor.c" ]; then
    gcc -O2 -std=gnu11 -I"$peers" -o tools/out/floor "$peers/floor.c"
fi
floor() {
    # one-way cache-line transfer in ns (PAUSE spin, mean, no timer): ~25 near placement, ~200 far
    [ -x tools/out/floor ] || { echo nan; return; }
    tools/out/floor 2000000 1 | awk '/mode=batch/ { for (i = 1; i <= NF; i++) if ($i ~ /^mean=/) print substr($i, 6) }'
}
echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if [ "$only" != send ]; then
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
fi

if [ "$only" != ring ]; then
    dir=$(mktemp -d /tmp/ringport-bench-XXXXXX)
    .build/release/ringportd --adapter bench0 --dir "$dir" --driver null --cpu 1 --log-level warning >/dev/null &
    daemon=$!
    trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$dir"' EXIT
    for _ in $(seq 100); do [ -S "$dir/bench0.sock" ] && break; sleep 0.05; done
    send_packets=${SEND_PACKETS:-5000000}
    uds_packets=${UDS_PACKETS:-1000000}
    for rep in $(seq "$reps"); do
        for size in 64 1500; do
            for batch in 1 32; do
                before=$(floor)
                line=$($tool bench --adapter bench0 --dir "$dir" --transport ring --size "$size" --batch "$batch" --packets "$send_packets")
                after=$(floor)
                echo "$line floor_ns=$before floor_end_ns=$after rep=$rep"
                before=$(floor)
                line=$($tool bench --transport uds --size "$size" --batch "$batch" --packets "$uds_packets")
                after=$(floor)
                echo "$line floor_ns=$before floor_end_ns=$after rep=$rep"
            done
        done
    done
fi
