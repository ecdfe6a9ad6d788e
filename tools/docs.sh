#!/usr/bin/env bash
# Builds the DocC archives of the protocol library (Ringport) and the driver SDK (RingportMiniport) with
# every warning (an unresolved symbol link, a bad directive) an error, then compiles the Swift blocks of
# each article (one program per article, its blocks in order) against the modules just built, as a client
# would, so the examples cannot rot. The archives land in .build/plugins/Swift-DocC/outputs/. Extra
# arguments go to the plugin (for example --output-path DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
swift package --disable-sandbox generate-documentation \
    --target Ringport --target RingportMiniport --warnings-as-errors "$@"

swiftc=$(dirname "$(command -v swift)")/swiftc
products=$(realpath "$(swift build --show-bin-path)")
maps=()
for map in "$products"/*.build/module.modulemap .build/checkouts/*/Sources/*/include/module.modulemap; do
    [ -f "$map" ] && maps+=(-Xcc "-fmodule-map-file=$map")
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for article in Sources/Ringport/Ringport.docc/*.md Sources/RingportMiniport/RingportMiniport.docc/*.md; do
    program="$work/$(basename "$article" .md).swift"
    awk '/^```swift/ { on = 1; next } /^```/ { on = 0 } on' "$article" > "$program"
    [ -s "$program" ] || continue
    if ! "$swiftc" -emit-sil -o /dev/null -swift-version 6 -module-name Client -I "$products/Modules" \
        -module-cache-path "$products/ModuleCache" "${maps[@]}" "$program"; then
        echo "docs: the Swift blocks of $article do not compile" >&2
        failed=1
    fi
done
exit $failed
