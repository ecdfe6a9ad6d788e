#!/bin/bash
# Re-runs every check reported in README.md (except the long N=8 / K=4 runs,
# listed at the end as comments).  Needs spin and gcc.  ~6 minutes, <4 GB.
# CI runs the faster selection in verify.sh, which also checks the expected outcome of each run.
cd "$(dirname "$0")"
echo "== ring.pml: one binding, both directions, K=2N+1 items"
for v in "" FLAG_FIRST WAKER_CLEARS WAKER_CLEARS_STORE BOTH_CLEAR NOFLAG SPURIOUS WORDFLAG \
         NOINC NORECHECK NOFENCE_SLEEPER NOFENCE_WAKER SEEN_LATE WAKER_CLEARS_LATE \
         "WORDFLAG -DNOINC" "WORDFLAG -DNORECHECK" BUG_FULL BUG_LATEWRITE; do
  for N in 2 4; do ./run.sh ring.pml "-DN=$N${v:+ -D$v}"; done
done
./run.sh ring.pml "-DN=8 -DWORDFLAG"
./run.sh ring.pml "-DN=4 -DBUG_FULL" -E      # -E: ignore deadlocks, show the assertion
echo "== ring.pml liveness (LTL, weak fairness)"
for v in "" WORDFLAG NOINC NORECHECK; do for c in live nolost; do
  for N in 2 4; do ./runltl.sh ring.pml "-DN=$N${v:+ -D$v}" $c; done; done; done
echo "== ring2.pml: one driver, two bindings, one wait"
for v in "" "-DDOORBELL" "-DDOORBELL -DBFLAGS" "-DINTERLEAVED" "-DWORDFLAG" "-DWORDFLAG -DDOORBELL" \
         "-DDOORBELL -DNONATOMIC_INC" "-DWAIT_ONE" "-DSKIP_RECHECK1" "-DDOORBELL -DSKIP_RECHECK1" "-DDOORBELL -DBFLAGS -DSKIP_RECHECK1" \
         "-DWORDFLAG -DSKIP_RECHECK1"; do
  ./run.sh ring2.pml "-DN=2 -DK=3 $v"
done
for v in "-DWORDFLAG" "-DWORDFLAG -DDOORBELL"; do
  ./run.sh ring2.pml "-DN=2 -DK=4 $v"; ./run.sh ring2.pml "-DN=4 -DK=8 $v"
done
for v in "-DWORDFLAG" "-DWORDFLAG -DDOORBELL" "-DDOORBELL" "-DWORDFLAG -DSKIP_RECHECK1"; do
  ./runltl.sh ring2.pml "-DN=2 -DK=3 $v" live
done
echo "== ownership.pml: a descriptor's owners across send, complete, return, close and death"
for v in "-DND=2" "-DND=3" "-DBUG_D1" "-DBUG_D6" "-DBUG_D6 -DNOMONITOR" "-DBUG_D1 -DBUG_D6" "-DBUG_REPLY_TIMEOUT" "-DBUG_NO_EOF"; do
  ./run.sh ownership.pml "$v"
done
for v in "-DND=2" "-DND=3" "-DBUG_NO_EOF"; do ./runltl.sh ownership.pml "$v" live; done
# long runs (see README for the results):
#   ./run.sh ring.pml "-DN=8"                      # 284M states, ~6 min, 13 GB
#   ./run.sh ring2.pml "-DN=2 -DK=4 -DDOORBELL"
#   ./run.sh ring2.pml "-DN=2 -DK=4"              # exceeds 16 GB exhaustively; bitstate:
#   spin -a -DN=2 -DK=4 ring2.pml; gcc -O2 -DSAFETY -DBITSTATE -o pan pan.c; ./pan -w34 -k3 -m1000000
