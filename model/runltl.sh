#!/bin/bash
# Liveness run under weak fairness: ./runltl.sh model.pml "SPIN-DEFINES" claim
# claims: ring.pml: live, nolost     ring2.pml: live
here=$(cd "$(dirname "$0")" && pwd)
m=$1; defs=$2; claim=$3
d=$(mktemp -d "${TMPDIR:-/tmp}/spin.XXXX"); cp "$here/$m" "$d/"; cd "$d"
spin -a -DLIVE $defs "$m" >spin.out 2>&1 || { cat spin.out; exit 1; }
gcc -O2 -DCOLLAPSE -DNFAIR=4 -DVECTORSZ=4096 -DMEMLIM=16000 -o pan pan.c 2>gcc.err || { cat gcc.err; exit 1; }
./pan -m2000000 -w26 -a -f -N "$claim" > pan.out 2>&1
err=$(grep -o "errors: [0-9]*" pan.out); st=$(grep "states, stored" pan.out | awk '{print $1}')
vio=$(grep -m1 "pan:1:" pan.out); t=$(grep "elapsed time" pan.out | awk '{print $4}')
# pan stops at the first error; without an error an unfinished search is a failure to verify
if [ -z "$vio" ] && grep -q "Search not completed" pan.out; then vio="INCOMPLETE SEARCH (memory/depth limit)"; fi
[ -n "${KEEP:-}" ] || { rm -rf "$d"; d="(removed; KEEP=1 keeps it)"; }
echo "$m $defs [ltl $claim, -a -f] | $err | states=$st | t=${t}s | $vio | dir=$d"
