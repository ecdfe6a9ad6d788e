#!/usr/bin/env bash
# Documentation checks, no build needed:
#  1. every public declaration of Ringport, RingportMiniport, RingportCore and RingportSystem has a `///`
#     doc comment (tools/check-docs.py lists those that do not);
#  2. comments and documents cite only what is in the repository: no paths or documents outside it
#     (`../shared/...`, DESIGN.md, REFERENCE.md, STYLE.md) and no issue numbers. Cite Docs/ instead
#     (for example "Docs/Design.md, invariant 3" or "Docs/Contract.md §1.10").
set -uo pipefail
cd "$(dirname "$0")/.."
status=0

python3 tools/check-docs.py Sources/Ringport Sources/RingportMiniport Sources/RingportCore Sources/RingportSystem || status=1

pattern='\.\./shared|/work/shared|shared/(peers|model|seeds)|[Ii]ssue [0-9]|DESIGN(\.md| I[0-9])|REFERENCE\.md|STYLE\.md'
citations=$(grep -rnE "$pattern" \
    --include='*.swift' --include='*.md' --include='*.sh' --include='*.pml' --include='*.c' --include='*.h' \
    --include='*.py' --exclude-dir=.build --exclude-dir=out --exclude=check-docs.sh \
    Sources Tests Examples Fuzz tools model Docs Benchmarks ./*.md 2>/dev/null)
if [ -n "$citations" ]; then
    echo "$citations"
    echo "check-docs: the lines above cite something outside the repository (an issue, ../shared, DESIGN.md," \
        "REFERENCE.md); cite Docs/ or state the fact" >&2
    status=1
fi
exit $status
