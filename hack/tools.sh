#!/usr/bin/env bash
# Builds the real tools the integration tests use, pinned, from their Go modules, into a
# git-ignored cache folder (default .cache/tools). Idempotent: a tool whose binary and version
# stamp match is not rebuilt. Usage: hack/tools.sh [tool...]   (default: all)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${VOUCH_TOOLS_DIR:-$root/.cache/tools}
mkdir -p "$dir/bin" "$dir/log"

# name  module/package@version
declare -A tools=(
  [cosign]="github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5"
  [cosign3]="github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3"
  [registry]="github.com/distribution/distribution/v3/cmd/registry@v3.1.2"
)

build() {
  local name=$1 spec=${tools[$1]}
  local stamp="$dir/bin/.$name.version"
  if [[ -x "$dir/bin/$name" && "$(cat "$stamp" 2>/dev/null)" == "$spec" ]]; then
    echo "tools: $name ${spec##*@} (cached)"
    return 0
  fi
  local start=$SECONDS tmp
  tmp=$(mktemp -d)
  if ! GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath "$spec" >"$dir/log/$name.log" 2>&1; then
    echo "tools: building $name failed:" >&2
    cat "$dir/log/$name.log" >&2
    rm -rf "$tmp"
    return 1
  fi
  local bin=${spec%@*}
  mv "$tmp/$(basename "$bin")" "$dir/bin/$name"
  rm -rf "$tmp"
  echo "$spec" >"$stamp"
  echo "tools: $name ${spec##*@} built in $((SECONDS - start))s"
}

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(registry cosign cosign3)
pids=()
for t in "${want[@]}"; do
  [[ -n ${tools[$t]+x} ]] || { echo "tools: unknown tool $t" >&2; exit 2; }
  build "$t" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
