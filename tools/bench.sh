#!/usr/bin/env bash
# Benchmarks of BENCHMARKS.md, every figure beside the anchors it compares to (the peers harness in $PEERS:
# ck_ring, iceoryx with its own iox-roudi, futex ring, Unix socket), measured in the same run. Before each
# figure the script waits for an idle machine and for the near vCPU placement (cache-line floor <= FAR_NS),
# probes the floor right before and right after it, and retries a far or noisy figure, as the peers' run.sh
# does. Every row is a `RESULT peer=... mode=stream|pingpong ...` line; the peers' table.sh tabulates them.
#
# Sections (ONLY=a,b,...; default all; `receive` = hub,loopback):
#   ring      bare NET_RING between two processes (ringport-peer), batch 1 and 32, beside a pipe
#   send      one protocol to ringportd's null driver (ringport bench), 64/1500 B, batch 1/32, beside a
#             Unix socket
#   hub       hub stream, one `ringport send` -> one `ringport recv` through `ringportd --driver hub`
#             (64 and 1500 B; frames/s, CPU ns per frame over all three processes); hub ping,
#             `ringport ping` <-> `ringport recv --echo` (one-way = RTT/2)
#   loopback  `ringport ping` through `ringportd --driver loopback`
#   blocking  loopback ping, hub ping and hub stream (64 B) with `--wait blocking` everywhere
#   idle      IDLE_COUNTS (default 64) idle `ringport recv` on a hub: CPU of them all and ringportd over
#             IDLE_SECONDS (10), as % of one core
#   anchors   are run for whichever sections are selected (ANCHORS=0: none); ONLY=anchors: all of them alone
#
#   tools/bench.sh         REPS=5 tools/bench.sh         ONLY=hub,blocking tools/bench.sh
#   DIV=100 REPS=1 tools/bench.sh     every count divided by 100 (a smoke test, figures meaningless)
#   WAIT=busyPoll tools/bench.sh      pass --wait busyPoll to ringportd and the ringport commands of the
#                                     default rows (their peer names get _busyPoll)
#   QUIET_WAIT=0 (don't wait for an idle machine), PLACE_WAIT=s, TRIES=n, FAR_NS=100, DAEMON_CPU= (unpinned
#   ringportd), SKIP_BUILD=1, PEERS=dir; the counts: PACKETS, SEND_PACKETS, HUB_PACKETS, PING_COUNT, ...
# A default run (REPS=3) counts about 2-3 min a repetition on an idle machine in the near placement, more
# while it waits for one.
# Output: the RESULT lines (also OUT/raw.txt, default tools/out/bench), then table.sh's tables.
set -uo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-3}
only=${ONLY:-ring,send,hub,loopback,blocking,idle}
only=${only//receive/hub,loopback}
div=${DIV:-1}
peers=${PEERS:?set PEERS to the anchor harness directory (BENCHMARKS.md, "Anchors")}
out=${OUT:-tools/out/bench}
far_ns=${FAR_NS:-100}
quiet_max=${QUIET_MAX:-0.05}
quiet_wait=${QUIET_WAIT:-30}   # seconds to wait for an idle machine (0: don't)
place_wait=${PLACE_WAIT:-60}   # seconds to wait for the near placement
tries=${TRIES:-4}
wait_policy=${WAIT:-}
daemon_cpu=${DAEMON_CPU-1}     # ringportd's data thread; empty: not pinned
n() { echo $(( $1 / div > 0 ? $1 / div : 1 )); }
packets=$(n "${PACKETS:-20000000}")
pipe_packets=$(n "${PIPE_PACKETS:-2000000}")   # batch 1; batch 32 sends ten times as many
send_packets=$(n "${SEND_PACKETS:-5000000}")
uds_packets=$(n "${UDS_PACKETS:-1000000}")
hub_packets=$(n "${HUB_PACKETS:-2000000}")
hub_ping_count=$(n "${HUB_PING_COUNT:-20000}")
ping_count=$(n "${PING_COUNT:-100000}")
block_packets=$(n "${BLOCK_PACKETS:-1000000}")
block_ping_count=$(n "${BLOCK_PING_COUNT:-20000}")
idle_counts=${IDLE_COUNTS:-64}
idle_seconds=${IDLE_SECONDS:-10}
idle_settle=${IDLE_SETTLE:-5}
sel() { [[ ",$only," == *",$1,"* ]]; }

mkdir -p "$out" tools/out/peers
raw=$out/raw.txt
log=$out/log.txt
: >"$raw"
: >"$log"
rel=.build/release
tool=$rel/ringport
pb=tools/out/peers
clk=$(getconf CLK_TCK)
adapter=bench0

if [ -z "${SKIP_BUILD:-}" ]; then
    swift build -c release >>"$log" 2>&1 || { echo "swift build failed (see $log)" >&2; exit 1; }
fi

# The anchors, compiled from $PEERS as its build.sh does (that folder may be read-only), into tools/out.
build_peers() {
    local missing="" p
    for p in gcc g++ libc6-dev libck-dev iceoryx libiceoryx-posh-dev libiceoryx-hoofs-dev; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "installing:$missing" >&2
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
    fi
    local cflags="-O2 -g -Wall -Wextra -std=gnu11" c
    for c in floor sock ckring futexring; do
        [ "$pb/$c" -nt "$peers/$c.c" ] || gcc $cflags -I"$peers" -o "$pb/$c" "$peers/$c.c" || return 1
    done
    if [ ! "$pb/iox" -nt "$peers/iox.cpp" ]; then
        local inc
        inc=$(dirname "$(find /usr/include/iceoryx -name iceoryx_versions.hpp | head -n 1)")
        g++ -O2 -g -Wall -std=gnu++17 -I"$inc" -o "$pb/iox" "$peers/iox.cpp" \
            -liceoryx_posh -liceoryx_hoofs -liceoryx_platform -lpthread || return 1
    fi
    [ tools/out/cpurun -nt tools/cpurun.c ] || gcc -O2 -Wall -o tools/out/cpurun tools/cpurun.c
}
build_peers || { echo "building the anchors failed" >&2; exit 1; }
cpurun=tools/out/cpurun

# --- placement and load, as the peers' run.sh ----------------------------------------------------------------------
probe() { # one-way cache-line transfer in ns (PAUSE spin, mean, no timer): ~25 near placement, ~200 far
    "$pb/floor" "${1:-2000000}" 1 2>/dev/null | sed -n 's/.*mode=batch.* mean=\([0-9.]*\).*/\1/p'
}
busy_frac() { # busy share of all CPUs over 0.5 s
    local a b
    a=($(head -n 1 /proc/stat)); sleep 0.5; b=($(head -n 1 /proc/stat))
    local bu=$(( (b[1]+b[2]+b[3]+b[6]+b[7]) - (a[1]+a[2]+a[3]+a[6]+a[7]) ))
    local to=$(( (b[1]+b[2]+b[3]+b[4]+b[5]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[4]+a[5]+a[6]+a[7]+a[8]) ))
    [ "$to" -gt 0 ] || to=1
    awk -v b="$bu" -v t="$to" 'BEGIN{printf "%.3f", b/t}'
}
wait_quiet() {
    [ "$quiet_wait" = 0 ] && return 0
    local t0=$SECONDS f
    while :; do
        f=$(busy_frac)
        awk -v f="$f" -v m="$quiet_max" 'BEGIN{exit !(f<=m)}' && return 0
        [ $((SECONDS - t0)) -ge "$quiet_wait" ] && { echo "  (machine still busy: $f)" >>"$log"; return 1; }
        sleep 1
    done
}
wait_near() {
    local t0=$SECONDS m
    while :; do
        m=$(probe 200000)
        awk -v m="${m:-999}" -v f="$far_ns" 'BEGIN{exit !(m<=f)}' && return 0
        [ $((SECONDS - t0)) -ge "$place_wait" ] && { echo "  (placement still far: $m ns)" >>"$log"; return 1; }
        sleep 5
    done
}
# measure LABEL CMD...: CMD prints RESULT line(s) carrying floor_ns/floor_end_ns (and foreign= if it knows);
# retried while the placement was far or the machine noisy; appends rep/tries/noisy/far and keeps the line.
measure() {
    local label=$1 try result p f noisy far
    shift
    for try in $(seq "$tries"); do
        wait_quiet
        wait_near
        result=$("$@" 2>>"$log" | grep '^RESULT')
        if [ -z "$result" ]; then
            echo "FAILED: $label ($*), see $log" | tee -a "$log" >&2
            return 1
        fi
        p=$(echo "$result" | grep -o 'floor_[a-z_]*=[0-9.]*' | cut -d= -f2 | sort -g | tail -n 1)
        f=$(echo "$result" | grep -o 'foreign=[0-9.]*' | cut -d= -f2 | sort -g | tail -n 1)
        noisy=$(awk -v f="${f:-0}" -v m="$quiet_max" 'BEGIN{print (f>m)?1:0}')
        far=$(awk -v p="${p:-0}" -v m="$far_ns" 'BEGIN{print (p>m)?1:0}')
        [ "$noisy" = 0 ] && [ "$far" = 0 ] && break
        echo "retry ($label rep $rep try $try, foreign=${f:-?} floor_ns=$p)" >>"$log"
    done
    echo "$result" | sed "s/\$/ rep=$rep tries=$try noisy=$noisy far=$far/" | tee -a "$raw"
}

# --- processes ------------------------------------------------------------------------------------------------
daemon=""
dir=""
roudi=""
children=()
cleanup() {
    local p
    for p in "${children[@]}"; do kill -TERM "$p" 2>/dev/null; done
    [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    [ -n "$roudi" ] && kill -TERM "$roudi" 2>/dev/null && wait "$roudi" 2>/dev/null
    [ -n "$dir" ] && rm -rf "$dir"
    [ -n "$tmp" ] && rm -rf "$tmp"
}
tmp=""
trap cleanup EXIT
trap 'exit 130' INT TERM
# A row runs in a subshell (measure's command substitution): it cleans up its own processes.
row_start() {
    roudi=""
    tmp=""
    trap cleanup EXIT
}

has_wait=0
if "$tool" ping --help 2>&1 | grep -q -- '--wait' && "$rel/ringportd" --help 2>&1 | grep -q -- '--wait'; then
    has_wait=1
fi
wait_args() { # --wait POLICY, when the commands take it
    [ -n "$1" ] && [ "$has_wait" = 1 ] && echo "--wait $1"
    return 0
}
suffix() { [ -n "$1" ] && echo "_$1"; return 0; }

proc_cpu_ns() { # user+system CPU of a live process (all its threads), ns; 0 once it is gone
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    set -- $s
    echo $(( (${12} + ${13}) * 1000000000 / clk ))
}
start_daemon() { # DRIVER WAIT [ringportd options...]
    local driver=$1 policy=$2
    shift 2
    dir=$(mktemp -d /tmp/ringport-bench-XXXXXX)
    "$rel/ringportd" --adapter "$adapter" --dir "$dir" --driver "$driver" ${daemon_cpu:+--cpu "$daemon_cpu"} \
        --log-level warning $(wait_args "$policy") "$@" >/dev/null 2>>"$log" &
    daemon=$!
    local i
    for i in $(seq 200); do [ -S "$dir/$adapter.sock" ] && return 0; sleep 0.05; done
    echo "ringportd did not start" >>"$log"
    return 1
}
stop_daemon() {
    [ -n "$daemon" ] && { kill -TERM "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; }
    daemon=""
    [ -n "$dir" ] && rm -rf "$dir"
    dir=""
}
wait_bindings() { # COUNT [SECONDS]: until the adapter has COUNT bindings
    local deadline=$((SECONDS + ${2:-30})) b
    while [ $SECONDS -lt "$deadline" ]; do
        b=$("$tool" stat --adapter "$adapter" --dir "$dir" 2>/dev/null | sed -n 's/^bindings=\([0-9]*\).*/\1/p')
        [ "${b:-0}" -ge "$1" ] && return 0
        sleep 0.1
    done
    echo "only ${b:-0} of $1 bindings came up" >>"$log"
    return 1
}
# cpurun FILE: the command's CPU ns goes to FILE; its pid (cpurun's child) is read from /proc
child_of() { # the first child of a process, waiting briefly for it to exist
    local i c
    for i in $(seq 100); do
        c=$(cat "/proc/$1/task/$1/children" 2>/dev/null | awk '{print $1}')
        [ -n "$c" ] && { echo "$c"; return 0; }
        sleep 0.01
    done
    return 1
}
cpu_ticks() { # busy and total ticks of all CPUs so far, from /proc/stat
    local a
    a=($(head -n 1 /proc/stat))
    echo "$((a[1] + a[2] + a[3] + a[6] + a[7])) $((a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7] + a[8]))"
}
foreign() { # "BUSY0 TOTAL0" "BUSY1 TOTAL1" OURS_NS: the share of all CPUs used by anything but our processes
    awk -v a="$1" -v b="$2" -v ours="$3" -v clk="$clk" 'BEGIN {
        split(a, x, " "); split(b, y, " "); t = (y[2] - x[2]) * 1e9 / clk
        f = t > 0 ? ((y[1] - x[1]) * 1e9 / clk - ours) / t : 0
        printf "%.3f", (f > 0 ? f : 0) }'
}
value() { sed -n "s/.*[ ]$1=\([0-9.]*\).*/\1/p" "$2" | head -n 1; }

# --- our rows -------------------------------------------------------------------------------------------------
# hub_stream PEER SIZE COUNT WAIT: frames/s at the receiver (first frame to last) and CPU of all three
# processes from the moment the sender starts to the receiver's exit.
hub_stream() {
    local peer=$1 size=$2 count=$3 policy=$4 before after
    row_start
    tmp=$(mktemp -d /tmp/ringport-bench-run-XXXXXX)
    before=$(probe)
    start_daemon hub "$policy" || return 1
    $cpurun "$tmp/recv.cpu" "$tool" recv --adapter "$adapter" --dir "$dir" --count "$count" --idle-timeout 20 \
        $(wait_args "$policy") >"$tmp/recv.out" 2>/dev/null &
    local wrapper=$! receiver
    children+=("$wrapper")
    receiver=$(child_of "$wrapper")
    children+=("$receiver")
    wait_bindings 1 || { stop_daemon; return 1; }
    local d0 r0 d1 k0 k1
    k0=$(cpu_ticks)
    d0=$(proc_cpu_ns "$daemon")
    r0=$(proc_cpu_ns "$receiver")
    $cpurun "$tmp/send.cpu" "$tool" send --adapter "$adapter" --dir "$dir" --count "$count" --size "$size" \
        $(wait_args "$policy") >/dev/null 2>&1
    wait "$wrapper"
    children=()
    d1=$(proc_cpu_ns "$daemon")
    k1=$(cpu_ticks)
    stop_daemon
    after=$(probe)
    local rate got r s
    rate=$(value rate "$tmp/recv.out")
    got=$(sed -n 's/^received \([0-9]*\).*/\1/p' "$tmp/recv.out")
    r=$(( $(cat "$tmp/recv.cpu" 2>/dev/null || echo 0) - r0 ))
    s=$(cat "$tmp/send.cpu" 2>/dev/null || echo 0)
    awk -v peer="$peer" -v size="$size" -v n="$count" -v mps="${rate:-0}" -v got="${got:-0}" \
        -v d=$((d1 - d0)) -v r="$r" -v s="$s" -v b="$before" -v a="$after" \
        -v f="$(foreign "$k0" "$k1" $((d1 - d0 + r + s)))" 'BEGIN {
        printf "RESULT peer=%s mode=stream size=%s n=%s mps=%.0f cpu_ns_per_msg=%.1f wall_s=%.3f errors=%d ",
            peer, size, n, mps, (d + r + s) / n, (mps > 0 ? n / mps : 0), n - got
        printf "cpu_ns_sender=%.1f cpu_ns_receiver=%.1f cpu_ns_miniport=%.1f foreign=%s floor_ns=%s floor_end_ns=%s\n",
            s / n, r / n, d / n, f, b, a }'
    rm -rf "$tmp"
}

# ping_row PEER DRIVER COUNT WAIT: `ringport ping` through loopback, or to a `ringport recv --echo` on a hub.
# p50/p99/p999/mean/max are one-way (RTT/2) in ns, as the anchors' pingpong lines; CPU per round trip is
# every process's over the ping's life (its own start-up included).
ping_row() {
    local peer=$1 driver=$2 count=$3 policy=$4 before after wrapper="" echo_pid="" e0=0
    row_start
    tmp=$(mktemp -d /tmp/ringport-bench-run-XXXXXX)
    before=$(probe)
    start_daemon "$driver" "$policy" || return 1
    if [ "$driver" = hub ]; then
        $cpurun "$tmp/echo.cpu" "$tool" recv --adapter "$adapter" --dir "$dir" --echo --count "$count" \
            --idle-timeout 10 $(wait_args "$policy") >/dev/null 2>&1 &
        wrapper=$!
        children+=("$wrapper")
        echo_pid=$(child_of "$wrapper")
        children+=("$echo_pid")
        wait_bindings 1 || { stop_daemon; return 1; }
        e0=$(proc_cpu_ns "$echo_pid")
    fi
    local d0 d1 k0 k1
    k0=$(cpu_ticks)
    d0=$(proc_cpu_ns "$daemon")
    $cpurun "$tmp/ping.cpu" "$tool" ping --adapter "$adapter" --dir "$dir" --count "$count" --size 64 --quiet \
        $(wait_args "$policy") >"$tmp/ping.out" 2>>"$log"
    d1=$(proc_cpu_ns "$daemon")
    k1=$(cpu_ticks)
    if [ -n "$wrapper" ]; then
        # the echo side has seen every ping it will see: end it if it still waits for lost ones
        sleep 0.2
        kill -TERM "$echo_pid" 2>/dev/null
        wait "$wrapper"
        children=()
    fi
    stop_daemon
    after=$(probe)
    local e=0 p
    [ -n "$wrapper" ] && e=$(( $(cat "$tmp/echo.cpu" 2>/dev/null || echo 0) - e0 ))
    p=$(cat "$tmp/ping.cpu" 2>/dev/null || echo 0)
    awk -v peer="$peer" -v n="$count" -v d=$((d1 - d0)) -v e="$e" -v p="$p" -v b="$before" -v a="$after" \
        -v f="$(foreign "$k0" "$k1" $((d1 - d0 + e + p)))" '
        / received, / { got = $3 }
        /^rtt/ { for (i = 2; i < NF; i++) v[$i] = $(i + 1) * 500; ok = 1 }  # µs RTT -> ns one-way
        END {
            if (!ok) exit 1
            printf "RESULT peer=%s mode=pingpong size=64 n=%s p50=%.1f p99=%.1f p999=%.1f mean=%.1f max=%.1f ",
                peer, n, v["p50"], v["p99"], v["p99.9"], v["avg"], v["max"]
            printf "cpu_ns_per_rtt=%.1f errors=%d foreign=%s floor_ns=%s floor_end_ns=%s\n", (d + e + p) / n, n - got, f, b,
                a
        }' "$tmp/ping.out"
    rm -rf "$tmp"
}

# idle_row COUNT WAIT: COUNT `ringport recv` bound to a hub and given nothing; their CPU and ringportd's over
# idle_seconds, as % of one core (from /proc/<pid>/stat utime+stime, 1/CLK_TCK resolution).
idle_row() {
    local count=$1 policy=$2 before after pids=() p i
    row_start
    before=$(probe)
    start_daemon hub "$policy" --max-bindings-per-user $((count + 16)) --max-memory-per-user 64G \
        --max-memory 64G || return 1
    for i in $(seq "$count"); do
        "$tool" recv --adapter "$adapter" --dir "$dir" $(wait_args "$policy") >/dev/null 2>&1 &
        pids+=($!)
        children+=($!)
    done
    wait_bindings "$count" 120 || { kill -TERM "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; stop_daemon; return 1; }
    sleep "$idle_settle"
    local c0=0 c1=0 t0 t1 alive=0 k0 k1
    k0=$(cpu_ticks)
    for p in "${pids[@]}" "$daemon"; do c0=$((c0 + $(proc_cpu_ns "$p"))); done
    t0=$(date +%s%N)
    sleep "$idle_seconds"
    for p in "${pids[@]}" "$daemon"; do
        [ -d "/proc/$p" ] && alive=$((alive + 1))
        c1=$((c1 + $(proc_cpu_ns "$p")))
    done
    t1=$(date +%s%N)
    k1=$(cpu_ticks)
    kill -TERM "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
    children=()
    stop_daemon
    after=$(probe)
    awk -v peer="ringport_idle$(suffix "$policy")" -v n="$count" -v c=$((c1 - c0)) -v t=$((t1 - t0)) \
        -v alive="$alive" -v b="$before" -v a="$after" -v f="$(foreign "$k0" "$k1" $((c1 - c0)))" 'BEGIN {
        printf "RESULT peer=%s mode=idle size=0 n=%s cpu_pct_of_one_core=%.2f seconds=%.1f errors=%d ",
            peer, n, 100 * c / t, t / 1e9, n + 1 - alive
        printf "foreign=%s floor_ns=%s floor_end_ns=%s\n", f, b, a }'
}

ring_row() { # TRANSPORT BATCH COUNT
    local before after line
    before=$(probe)
    line=$("$rel/ringport-peer" bench --transport "$1" --batch "$2" --packets "$3") || return 1
    after=$(probe)
    echo "$line floor_ns=$before floor_end_ns=$after"
}
send_row() { # TRANSPORT SIZE BATCH COUNT [WAIT]
    local before after line w=${5:-$wait_policy}
    row_start
    before=$(probe)
    if [ "$1" = ring ]; then
        start_daemon null "$w" || return 1
        line=$("$tool" bench --adapter "$adapter" --dir "$dir" --transport ring --size "$2" --batch "$3" \
            --packets "$4" ${w:+--wait "$w"})
        [ -n "${5:-}" ] && line=$(echo "$line" | sed -E "s/peer=ringport_send([_a-z0-9]*)/peer=ringport_send\\1_$5/")
        stop_daemon
    else
        line=$("$tool" bench --transport uds --size "$2" --batch "$3" --packets "$4")
    fi
    after=$(probe)
    [ -n "$line" ] && echo "$line floor_ns=$before floor_end_ns=$after"
}

# --- anchors --------------------------------------------------------------------------------------------------
declare -A anchor=()
want() { local a; for a in "$@"; do anchor[$a]=1; done; }
if [ "${ANCHORS:-1}" != 0 ]; then
    sel ring && want ckring_stream_64
    sel send && want ckring_stream_64 iox_stream_64
    sel hub && want iox_stream_64 iox_stream_1500 uds_stream_64 uds_stream_1500 iox_pingpong_64
    sel loopback && want iox_pingpong_64
    sel blocking && want futex_pingpong_64 futex_stream_64
    sel anchors && want ckring_stream_64 iox_stream_64 iox_stream_1500 uds_stream_64 uds_stream_1500 \
        iox_pingpong_64 futex_pingpong_64 futex_stream_64
fi
roudi_alive() {
    local d
    for d in /proc/[0-9]*; do
        [ "$(cat "$d/comm" 2>/dev/null)" = iox-roudi ] || continue
        [ "$(awk '{print $3}' "$d/stat" 2>/dev/null)" != Z ] && return 0
    done
    return 1
}
run_anchors() {
    [ -n "${anchor[ckring_stream_64]:-}" ] && measure ck_ring "$pb/ckring" stream 64 "$(n 50000000)"
    [ -n "${anchor[futex_stream_64]:-}" ] && measure futex_ring "$pb/futexring" stream 64 "$(n 5000000)"
    [ -n "${anchor[futex_pingpong_64]:-}" ] && measure futex_ring "$pb/futexring" pingpong 64 "$(n 100000)"
    [ -n "${anchor[uds_stream_64]:-}" ] && measure uds_seqpacket "$pb/sock" uds stream 64 "$(n 1000000)"
    [ -n "${anchor[uds_stream_1500]:-}" ] && measure uds_seqpacket "$pb/sock" uds stream 1500 "$(n 1000000)"
    if [ -n "${anchor[iox_stream_64]:-}${anchor[iox_stream_1500]:-}${anchor[iox_pingpong_64]:-}" ]; then
        # iceoryx needs its RouDi: our own, started for these runs and stopped after them
        if roudi_alive; then
            echo "NOTE: an iox-roudi was already running; the iceoryx runs used it" | tee -a "$raw"
        else
            iox-roudi -c "$peers/roudi.toml" -l warning >>"$log" 2>&1 &
            roudi=$!
            sleep 1
        fi
        [ -n "${anchor[iox_stream_64]:-}" ] && measure iceoryx "$pb/iox" stream 64 "$(n 2000000)" poll
        [ -n "${anchor[iox_stream_1500]:-}" ] && measure iceoryx "$pb/iox" stream 1500 "$(n 2000000)" poll
        [ -n "${anchor[iox_pingpong_64]:-}" ] && measure iceoryx "$pb/iox" pingpong 64 "$(n 1000000)" poll
        if [ -n "$roudi" ]; then kill -TERM "$roudi"; wait "$roudi" 2>/dev/null; roudi=""; fi
    fi
    return 0
}

# --- the run --------------------------------------------------------------------------------------------------
echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
    "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo +changes) REPS=$reps DIV=$div" \
    "WAIT=${wait_policy:-default}" | tee -a "$raw"
if [ "$has_wait" = 0 ]; then
    echo "NOTE: ringport/ringportd take no --wait yet: the default wait policy everywhere, no blocking rows" |
        tee -a "$raw"
fi
w=$wait_policy
for rep in $(seq "$reps"); do
    if sel ring; then
        for batch in 1 32; do
            measure ring ring_row ring "$batch" "$packets"
            pn=$pipe_packets
            [ "$batch" = 32 ] && pn=$((pipe_packets * 10))
            measure pipe ring_row pipe "$batch" "$pn"
        done
    fi
    if sel send; then
        for size in 64 1500; do
            for batch in 1 32; do
                measure send send_row ring "$size" "$batch" "$send_packets"
                measure uds send_row uds "$size" "$batch" "$uds_packets"
            done
        done
    fi
    if sel hub; then
        for size in 64 1500; do
            measure hub_stream hub_stream "ringport_hub$(suffix "$w")" "$size" "$hub_packets" "$w"
        done
        measure hub_ping ping_row "ringport_hub$(suffix "$w")" hub "$hub_ping_count" "$w"
    fi
    if sel loopback; then
        measure loopback_ping ping_row "ringport_loopback$(suffix "$w")" loopback "$ping_count" "$w"
    fi
    if sel blocking && [ "$has_wait" = 1 ]; then
        measure loopback_ping_blocking ping_row ringport_loopback_blocking loopback "$block_ping_count" blocking
        measure hub_ping_blocking ping_row ringport_hub_blocking hub "$block_ping_count" blocking
        measure hub_stream_blocking hub_stream ringport_hub_blocking 64 "$block_packets" blocking
        measure send_blocking send_row ring 64 32 "$send_packets" blocking
    fi
    if sel idle; then
        for count in $idle_counts; do measure idle idle_row "$count" "$w"; done
    fi
    run_anchors
done

# idle rows are no stream or pingpong: their summary goes in NOTE lines, which table.sh prints
awk '/^RESULT peer=ringport_idle/ {
    for (i = 2; i <= NF; i++) { p = index($i, "="); kv[substr($i, 1, p - 1)] = substr($i, p + 1) }
    printf "NOTE: %s: %s idle ringport recv + ringportd: %s %% of one core over %s s (rep %s, far=%s, errors=%s)\n",
        kv["peer"], kv["n"], kv["cpu_pct_of_one_core"], kv["seconds"], kv["rep"], kv["far"], kv["errors"] }' \
    "$raw" >>"$raw"
echo
"$peers/table.sh" "$raw" | tee "$out/table.md"
