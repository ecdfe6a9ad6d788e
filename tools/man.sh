#!/usr/bin/env bash
# The man pages of ringportd and ringport, generated from their argument parsers by swift-argument-parser's
# GenerateManual plugin into Docs/man/ (committed, so a reader needs no build). --install also copies them to
# /usr/local/share/man/man1 (or $MANDIR).
set -euo pipefail
cd "$(dirname "$0")/.."
# A fixed date, so that regenerating unchanged pages changes nothing.
swift package --disable-sandbox plugin generate-manual --date 2026-12-01 --authors "The Ringport authors" >/dev/null
mkdir -p Docs/man
for page in ringportd ringport; do
    find .build/plugins/GenerateManual/outputs -name "$page.1" -exec cp {} Docs/man/ \;
    [ -f "Docs/man/$page.1" ] || { echo "man: no page for $page" >&2; exit 1; }
done
if [ "${1:-}" = --install ]; then
    dir=${MANDIR:-/usr/local/share/man}/man1
    mkdir -p "$dir" && cp Docs/man/*.1 "$dir/"
    echo "installed in $dir"
fi
ls Docs/man
