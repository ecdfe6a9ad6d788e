#!/usr/bin/env bash
# The library against a hostile miniport for many rounds, outside the test suite (RELIABILITY.md):
#   tools/hostile-miniport-soak.sh RULE BINDINGS ROUNDS_PER_BINDING [PRODUCTS_DIR]
# RULE is scribble or flip (or any hostile-miniport rule); TARGETS=status,tx (say) limits what flip flips. One `ringport stress --chaos-child --tolerant`
# protocol binds again each time its binding closes; the script reports the rounds played, the bindings,
# how each closed (the reason, numbers masked), and whether the protocol survived (not killed by a signal).
set -euo pipefail
rule=${1:?rule}
bindings=${2:?bindings}
rounds=${3:?rounds per binding}
products=${4:-$(cd "$(dirname "$0")/.." && pwd)/.build/release}
dir=$(mktemp -d /tmp/ringport-soak-XXXXXX)
adapter=soak$$
trap 'kill $hostile 2>/dev/null || true; rm -rf "$dir"' EXIT
start=$(date +%s.%N)
"$products/hostile-miniport" --dir "$dir" --adapter "$adapter" --rule "$rule" --bindings "$bindings" \
    --rounds "$rounds" --seed "$RANDOM" --lifetime 3600 ${TARGETS:+--targets "$TARGETS"} >"$dir/hostile.out" 2>"$dir/hostile.err" &
hostile=$!
for _ in $(seq 200); do grep -q "is up" "$dir/hostile.out" 2>/dev/null && break; sleep 0.05; done
set +e
"$products/ringport" stress --chaos-child --tolerant --adapter "$adapter" --dir "$dir" --timeout 3 \
    --parent $$ >"$dir/protocol.out" 2>"$dir/protocol.err"
status=$?
set -e
wait $hostile || true
end=$(date +%s.%N)
echo "rule=$rule${TARGETS:+ targets=$TARGETS} checked=${RINGPORT_CHECKED:-default} $(tail -1 "$dir/hostile.out")"
echo "protocol exit status=$status $(grep '^done' "$dir/protocol.out" || echo 'no summary')"
if [ $status -ge 128 ]; then echo "PROTOCOL KILLED BY SIGNAL $((status - 128))"; cat "$dir/protocol.err"; fi
echo "seconds=$(echo "$end - $start" | bc)"
echo "closed with:"
grep '^gone' "$dir/protocol.out" | cut -d' ' -f3- | sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn
echo "opens refused with:"
grep '^refused' "$dir/protocol.out" | cut -d' ' -f2- | sed -E 's/[0-9a-f]{8,}/X/g; s/[0-9]+/N/g' | sort | uniq -c | sort -rn
grep '^error' "$dir/protocol.out" | head -20 || true
