#!/usr/bin/env bash
# The send path of two builds, interleaved (BENCHMARKS.md, "the send path after the tooling work"):
# OLD and NEW are release bin directories, say OLD=/tmp/old/.build/release after
# `git worktree add /tmp/old 1066305 && (cd /tmp/old && swift build -c release)`. REPS runs of each.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${OLD:?set OLD to the release bin directory of the older tree}
new=${NEW:-$(swift build -c release --show-bin-path)}
floor=tools/out/peers/floor  # built by tools/bench.sh
for i in $(seq "${REPS:-5}"); do
    for v in old new; do
        bin=${!v}
        dir=$(mktemp -d /tmp/ringport-ab-XXXXXX)
        "$bin/ringportd" --adapter ab0 --dir "$dir" --driver null --cpu 1 >/dev/null 2>&1 &
        pid=$!
        sleep 0.7
        f=$([ -x "$floor" ] && "$floor" 2>/dev/null | grep -oE "floor_ns=[0-9.]+" | head -1 || true)
        for batch in 1 32; do
            r=$("$bin/ringport" bench --adapter ab0 --dir "$dir" --transport ring --size 64 --batch "$batch" \
                --packets 5000000 | grep -oE "mps=[0-9]+")
            echo "$v batch=$batch $r $f"
        done
        kill -INT "$pid"
        wait "$pid" 2>/dev/null || true
        rm -rf "$dir"
    done
done
