#!/usr/bin/env bash
# Builds Tyk Gateway VERSION from its Go module (conformance/gateway/VERSION) into the cache
# (~/.cache/tyk-inspector/gateway/VERSION/tyk), reused when present. When the Go module proxy
# will not serve a module, says which module and version, records it in the cache as
# `unavailable` (the conformance suite names it when it skips) and exits 2.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:?usage: scripts/build-gateway.sh VERSION}"
module_dir="conformance/gateway/$version"
cache="${TYK_GATEWAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tyk-inspector/gateway}/$version"
binary="$cache/tyk"
[ -d "$module_dir" ] || { echo "no module for Tyk $version in $module_dir" >&2; exit 1; }
if [ -x "$binary" ]; then
    echo "Tyk Gateway $version: $binary (cached)"
    exit 0
fi
command -v go >/dev/null || { echo "Tyk Gateway $version: Go is not installed (https://go.dev/dl/); or run the suite with TYK_GATEWAY_BIN=/path/to/tyk" >&2; exit 1; }
mkdir -p "$cache"
rm -f "$cache/unavailable"
required="$(awk '$1 == "require" && $2 == "github.com/TykTechnologies/tyk" { print $2 "@" $3 }' "$module_dir/go.mod")"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "Tyk Gateway $version: building $required (first build takes minutes)"
# -mod=mod: go.sum is completed from the proxy (checked against sum.golang.org) on the first build.
# The version is stamped as Tyk's release builds do (it is the default User-Agent sent upstream).
if (cd "$module_dir" && GOFLAGS=-mod=mod go build -trimpath \
        -ldflags "-X github.com/TykTechnologies/tyk/internal/build.Version=$version" -o "$binary.tmp" .) >"$log" 2>&1; then
    mv "$binary.tmp" "$binary"
    echo "Tyk Gateway $version: $binary"
    exit 0
fi
rm -f "$binary.tmp"
# Go says "reading https://proxy.golang.org/<escaped module>/@v/<version>.info: 403 Forbidden".
refused="$(grep -oE '[^ :]+@v[^ :]+: (reading [^ ]+: )?(403|404|410)[^\n]*' "$log" | head -n 1 || true)"
if [ -n "$refused" ]; then
    module="${refused%%:*}"
    reason="$(grep -oE 'server response: .*' "$log" | head -n 1 | sed 's/^server response: //' || true)"
    note="$module refused by the Go module proxy (${reason:-$(echo "$refused" | grep -oE '(403|404|410)[^:]*' | head -n 1)})"
    echo "$note" >"$cache/unavailable"
    echo "Tyk Gateway $version cannot be built: $note; run the suite with TYK_GATEWAY_BIN=/path/to/tyk" >&2
    exit 2
fi
cat "$log" >&2
echo "Tyk Gateway $version: go build failed (above)" >&2
exit 1
