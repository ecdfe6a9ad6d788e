#!/usr/bin/env bash
# CI model check: the ring and wake-up protocols (ring.pml, ring2.pml) and the descriptor ownership protocol
# (ownership.pml). Correct protocols must verify exhaustively; each broken variant must be refuted (the
# script fails if one verifies clean). One PASS/FAIL line per run; exits non-zero on any unexpected result.
# Needs spin and gcc. About a minute on 2 vCPUs. The long runs are in verify_all.sh and README.md.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for tool in spin gcc; do
    command -v $tool >/dev/null || { echo "verify: $tool is not installed (apt-get install spin gcc)" >&2; exit 2; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/ringport-model.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
started=$SECONDS

# check EXPECT MODEL "DEFINES" [cc "PAN COMPILE FLAGS"] [ltl CLAIM] [-- PAN ARGS]
#   EXPECT: verified | refuted | refuted:PATTERN (the first error must match PATTERN, grep -E)
check() {
    local expect=$1 model=$2 defs=$3
    shift 3
    local claim="" panargs=() cflags=""
    if [ "${1:-}" = cc ]; then cflags=$2; shift 2; fi
    if [ "${1:-}" = ltl ]; then claim=$2; shift 2; fi
    if [ "${1:-}" = -- ]; then shift; panargs=("$@"); fi
    local d="$work/run"
    rm -rf "$d" && mkdir -p "$d" && cp "$here/$model" "$d/"
    local label="$model $defs${claim:+ [ltl $claim]}${cflags:+ [$cflags]}"
    local verdict detail
    (
        cd "$d" || exit 3
        if [ -n "$claim" ]; then
            spin -a -DLIVE $defs "$model" >spin.out 2>&1 || exit 3
            gcc -w -O2 -DNFAIR=5 -DVECTORSZ=4096 $cflags -o pan pan.c 2>gcc.out || exit 4
            ./pan -m2000000 -w24 -a -f -N "$claim" "${panargs[@]}" >pan.out 2>&1
        else
            spin -a $defs "$model" >spin.out 2>&1 || exit 3
            gcc -w -O2 -DSAFETY -DCOLLAPSE -DVECTORSZ=4096 $cflags -o pan pan.c 2>gcc.out || exit 4
            ./pan -m1000000 -w24 "${panargs[@]}" >pan.out 2>&1
        fi
        exit 0
    )
    case $? in
        3) echo "FAIL  $label: spin -a failed"; sed 's/^/      /' "$d/spin.out" | head -5; failures=$((failures + 1)); return ;;
        4) echo "FAIL  $label: gcc failed"; head -5 "$d/gcc.out"; failures=$((failures + 1)); return ;;
    esac
    local out="$d/pan.out"
    local errors states t first
    errors=$(grep -o "errors: [0-9]*" "$out" | awk '{print $2}')
    states=$(grep "states, stored" "$out" | awk '{print $1}')
    t=$(grep "elapsed time" "$out" | awk '{print $4}')
    first=$(grep -m1 "pan:1:" "$out" | sed 's/^pan:1: //')
    if [ -z "$errors" ]; then
        verdict=FAIL; detail="pan did not finish: $(tail -1 "$out")"
    elif [ "$errors" = 0 ]; then
        if grep -q "Search not completed" "$out"; then
            verdict=FAIL; detail="incomplete search (memory/depth limit), states=$states"
        elif [ "$expect" = verified ]; then
            verdict=PASS; detail="verified, 0 errors, states=$states, ${t}s"
        else
            verdict=FAIL; detail="a broken variant verified clean (expected a violation), states=$states"
        fi
    else
        if [ "$expect" = verified ]; then
            verdict=FAIL; detail="violation: $first"
        elif [[ $expect == refuted:* ]] && ! grep -m1 "pan:1:" "$out" | grep -Eq -- "${expect#refuted:}"; then
            verdict=FAIL; detail="refuted, but not by the expected check /${expect#refuted:}/: $first"
        else
            verdict=PASS; detail="refuted as expected: ${first:0:110}"
        fi
    fi
    [ "$verdict" = FAIL ] && failures=$((failures + 1))
    printf '%s  %-58s %s\n' "$verdict" "$label" "$detail"
}

echo "== ring.pml: one binding, NET_RING + sleep/wake in both directions (K = 2N+1 items)"
for N in 2 4; do
    check verified ring.pml "-DN=$N"                   # the library's protocol (WakeChannel.swift)
    check verified ring.pml "-DN=$N -DSPURIOUS"        # with EINTR / timed-out waits
done
check verified ring.pml "-DN=8 -DWORDFLAG"
for v in NOINC NORECHECK NOFENCE_SLEEPER NOFENCE_WAKER SEEN_LATE WAKER_CLEARS_LATE; do
    check "refuted:invalid end state" ring.pml "-DN=2 -D$v"    # lost wake-up: both asleep with work pending
done
check "refuted:assertion violated" ring.pml "-DN=2 -DBUG_LATEWRITE"
check "refuted:assertion violated" ring.pml "-DN=4 -DBUG_FULL" -- -E
# The miniport may die at any step: the hang-up watcher must wake the sleeping protocol (no timer needed).
check verified ring.pml "-DN=2 -DHANGUP"
check verified ring.pml "-DN=2 -DHANGUP -DSPURIOUS"
for v in HANGUP_NOWAKE HANGUP_NOINC; do
    check "refuted:invalid end state" ring.pml "-DN=2 -DHANGUP -D$v"
done
check verified ring.pml "-DN=2" ltl live
check verified ring.pml "-DN=2" ltl nolost
check "refuted:acceptance cycle" ring.pml "-DN=2 -DNOINC" ltl nolost

echo "== ring2.pml: one miniport, two bindings, one futex_waitv"
check verified ring2.pml "-DN=2 -DK=2"                 # the library's form (MultiWait.sleep)
check verified ring2.pml "-DN=2 -DK=3 -DWORDFLAG"
check verified ring2.pml "-DN=2 -DK=3 -DWORDFLAG -DDOORBELL"
for v in "-DSKIP_RECHECK1" "-DWAIT_ONE" "-DDOORBELL -DNONATOMIC_INC"; do
    check "refuted:invalid end state" ring2.pml "-DN=2 -DK=3 $v"
done

echo "== ownership.pml: a packet descriptor's owners across send, complete, return, close and death"
check verified ownership.pml "-DND=2"
check verified ownership.pml "-DND=3"
check verified ownership.pml "-DND=2" ltl live
# D1: a packet completed SUCCESS and returned is reported CLOSING when the miniport exits right after
check "refuted:stage\[cursor\]==4.*given\[cursor\]==1" ownership.pml "-DND=2 -DBUG_D1"
# D6: close() returns while the miniport still holds the binding: two owners, then the late CLOSING write
check "refuted:powner|closeReturned" ownership.pml "-DND=2 -DBUG_D6"
# (breadth-first: the shortest run, which ends in the miniport's CLOSING write into a freed descriptor)
check "refuted:powner\[j\]==1|closeReturned==0" ownership.pml "-DND=2 -DBUG_D6 -DNOMONITOR" cc -DBFS
check "refuted:powner|closeReturned" ownership.pml "-DND=2 -DBUG_D1 -DBUG_D6"     # both, as the code had them
# close() must not give up on the answer, and must also end on EOF (miniport death)
check "refuted:powner|closeReturned" ownership.pml "-DND=2 -DBUG_REPLY_TIMEOUT"
check "refuted:invalid end state" ownership.pml "-DND=2 -DBUG_NO_EOF"
check "refuted:acceptance cycle" ownership.pml "-DND=2 -DBUG_NO_EOF" ltl live

echo "== model: $failures unexpected result(s), $((SECONDS - started)) s"
[ "$failures" = 0 ]
