#!/usr/bin/env bash
# Benchmarks of BENCHMARKS.md, each beside its baseline in the same run, with the cache-line floor of
# shared/peers (floor.c) probed before and after every figure. Busy-polling: run nothing else meanwhile.
#   bare ring:  descriptors/s through the NET_RING (batch 1 and 32), beside the same records through a pipe
#   send path:  packets/s from one protocol to ringportd's null driver (64 and 1500 B, batch 1 and 32),
#               beside the same payloads through a Unix domain socket
#   receive:    protocol to protocol through a hub (64 and 1500 B) beside shared/peers' uds stream, and
#               round trips through loopback (ringport ping) beside shared/peers' uds pingpong
#   tools/bench.sh      REPS=5 tools/bench.sh      ONLY=ring|send|receive tools/bench.sh
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
    gcc -O2 -std=gnu11 -I"$peers" -o tools/out/sock "$peers/sock.c"
fi
floor() {
    # one-way cache-line transfer in ns (PAUSE spin, mean, no timer): ~25 near placement, ~200 far
    [ -x tools/out/floor ] || { echo nan; return; }
    tools/out/floor 2000000 1 | awk '/mode=batch/ { for (i = 1; i <= NF; i++) if ($i ~ /^mean=/) print substr($i, 6) }'
}
echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if [ -z "$only" ] || [ "$only" = ring ]; then
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

if [ -z "$only" ] || [ "$only" = send ]; then
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
    kill -TERM $daemon; wait $daemon 2>/dev/null; trap - EXIT; rm -rf "$dir"
fi

if [ -z "$only" ] || [ "$only" = receive ]; then
    dir=$(mktemp -d /tmp/ringport-bench-XXXXXX)
    start_daemon() {
        .build/release/ringportd --adapter bench1 --dir "$dir" --driver "$1" --cpu 1 --log-level warning >/dev/null &
        daemon=$!
        for _ in $(seq 100); do [ -S "$dir/bench1.sock" ] && break; sleep 0.05; done
    }
    stop_daemon() { kill -TERM $daemon; wait $daemon 2>/dev/null; }
    trap 'kill -TERM $daemon 2>/dev/null; rm -rf "$dir"' EXIT
    hub_packets=${HUB_PACKETS:-2000000}
    ping_count=${PING_COUNT:-100000}
    for rep in $(seq "$reps"); do
        start_daemon hub
        for size in 64 1500; do
            before=$(floor)
            $tool recv --adapter bench1 --dir "$dir" --count "$hub_packets" --idle-timeout 20 >"$dir/recv.out" 2>/dev/null &
            receiver=$!
            sleep 0.3
            $tool send --adapter bench1 --dir "$dir" --count "$hub_packets" --size "$size" >/dev/null 2>&1
            wait $receiver
            after=$(floor)
            rate=$(sed -n 's/.*rate=\([0-9]*\).*/\1/p' "$dir/recv.out")
            echo "RESULT peer=ringport_hub mode=stream size=$size n=$hub_packets mps=$rate errors=0 floor_ns=$before floor_end_ns=$after rep=$rep"
            before=$(floor)
            line=$(tools/out/sock uds stream "$size" 1000000 | grep RESULT)
            after=$(floor)
            echo "$line floor_ns=$before floor_end_ns=$after rep=$rep"
        done
        stop_daemon
        start_daemon loopback
        before=$(floor)
        summary=$($tool ping --adapter bench1 --dir "$dir" --count "$ping_count" --size 64 --quiet | tail -1)
        after=$(floor)
        echo "PING peer=ringport_loopback size=64 n=$ping_count $summary floor_ns=$before floor_end_ns=$after rep=$rep"
        stop_daemon
        before=$(floor)
        line=$(tools/out/sock uds pingpong 64 100000 | grep RESULT)
        after=$(floor)
        echo "$line floor_ns=$before floor_end_ns=$after rep=$rep"
    done
    trap - EXIT
    rm -rf "$dir"
fi
