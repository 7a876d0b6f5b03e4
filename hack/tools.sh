#!/usr/bin/env bash
# Builds the real tools the integration tests use, pinned, from their Go modules, into a
# git-ignored cache folder (default .cache/tools). Idempotent: a tool whose binary and version
# stamp match is not rebuilt. Usage: hack/tools.sh [tool...]   (default: all)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${VOUCH_TOOLS_DIR:-$root/.cache/tools}
mkdir -p "$dir/bin" "$dir/log"

# Tools built with `go install`.   name  module/package@version
declare -A tools=(
  [cosign]="github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5"
  [cosign3]="github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3"
  [helm]="helm.sh/helm/v3/cmd/helm@v3.22.0"
  [registry]="github.com/distribution/distribution/v3/cmd/registry@v3.1.2"
)

# Tools whose module `go install` refuses (its go.mod has replace directives): each is built in a
# wrapper module generated in a temporary folder, which requires the module at its version.
#   name  "module@version main-package"
# Tools of one module@version are built by one `go build` (kube-apiserver and kubectl share most
# of their packages). The wrapper's go.sum is not committed: like `go install m@v`, its module
# graph follows from the pinned module's own go.mod and every sum is checked against the checksum
# database.
declare -A wrapped=(
  [etcd]="go.etcd.io/etcd/server/v3@v3.6.8 go.etcd.io/etcd/server/v3"
  [kube-apiserver]="k8s.io/kubernetes@v1.36.3 k8s.io/kubernetes/cmd/kube-apiserver"
  [kubectl]="k8s.io/kubernetes@v1.36.3 k8s.io/kubernetes/cmd/kubectl"
  # The module proxy refuses to list notation's versions (403), which `go install m@v` needs.
  [notation]="github.com/notaryproject/notation@v1.3.2 github.com/notaryproject/notation/cmd/notation"
  # An RFC 3161 timestamp authority: the REST API server of the module go.mod requires, with an
  # in-memory signer, run by a main of ours (mains below) that listens on loopback only — the
  # upstream command always serves metrics on :2112, every interface.
  [timestamp-server]="github.com/sigstore/timestamp-authority/v2@v2.1.2 github.com/sigstore/timestamp-authority/v2/pkg/server"
)

# Wrapped tools built from a main of this repository (build tag vouchtool) instead of the
# module's own command; its content is part of the tool's version stamp.
declare -A mains=(
  [timestamp-server]="hack/tools/timestamp-server/main.go"
)

all=(registry cosign cosign3 notation timestamp-server etcd kube-apiserver kubectl helm)

# ldflags prints the -ldflags of a wrapped module@version.
ldflags() {
  local mod=${1%@*} ver=${1#*@}
  case $mod in
  k8s.io/kubernetes) # what kubernetes' hack/lib/version.sh stamps; the binaries report it
    local minor=${ver#v1.}
    minor=${minor%%.*}
    echo "-X k8s.io/component-base/version.gitVersion=$ver -X k8s.io/component-base/version.gitMajor=1" \
      "-X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
    ;;
  esac
}

# recipe prints what a tool's version stamp records: a changed pin or changed flags rebuild it.
recipe() {
  if [[ -n ${tools[$1]+x} ]]; then
    echo "${tools[$1]}"
  else
    local spec=${wrapped[$1]} flags main=""
    flags=$(ldflags "${spec% *}")
    [[ -z ${mains[$1]+x} ]] || main=" main:$(sha256sum "$root/${mains[$1]}" | cut -c1-16)"
    echo "${spec% *} ${spec#* }${flags:+ $flags}$main"
  fi
}

cached() {
  [[ -x "$dir/bin/$1" && "$(cat "$dir/bin/.$1.version" 2>/dev/null)" == "$(recipe "$1")" ]]
}

# staging_replaces prints, for a k8s.io/kubernetes go.mod, the modules it replaces with its own
# staging/src/<module> folders (k8s.io/api, k8s.io/client-go, ...). They are published as
# k8s.io/X v0.N.P for kubernetes v1.N.P.
staging_replaces() {
  awk '
    /^replace[ \t]*\(/ { block = 1; next }
    block && /^\)/     { block = 0; next }
    {
      line = $0
      sub(/^replace[ \t]+/, "", line)
      if (!block && line == $0) next
      n = split(line, f, /[ \t]+/)
      i = (f[1] == "") ? 2 : 1
      if (f[i+1] == "=>" && f[i+2] == "./staging/src/" f[i]) print f[i]
    }' "$1"
}

# wrapper makes a wrapper module for module@version in folder $2.
wrapper() {
  local spec=$1 w=$2 mod=${1%@*} ver=${1#*@}
  local info gomod gover
  info=$(go mod download -json "$spec") || { echo "$info"; return 1; }
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
  [[ -f $gomod ]] || { echo "no go.mod for $spec:"; echo "$info"; return 1; }
  # The wrapper's go line is the module's, so GODEBUG defaults are those of an upstream build.
  gover=$(awk '$1 == "go" { print $2; exit }' "$gomod")
  (cd "$w" && go mod init vouch.tools/wrapper && go mod edit -go="$gover") || return 1
  if [[ $mod == k8s.io/kubernetes ]]; then
    local staging=v0.${ver#v1.} m n=0
    for m in $(staging_replaces "$gomod"); do
      (cd "$w" && go mod edit -replace="$m=$m@$staging") || return 1
      n=$((n + 1))
    done
    ((n > 0)) || { echo "found no staging replace directive in $gomod"; return 1; }
    echo "replaced $n staging modules with their $staging releases"
  fi
}

# build builds the named tools: one built with `go install`, or the tools of one wrapped
# module@version, one after the other in one wrapper (the later ones reuse the build cache).
build() {
  local names=("$@") start=$SECONDS tmp log n
  log="$dir/log/$(IFS=+; echo "${names[*]}").log"
  tmp=$(mktemp -d)
  if [[ -n ${tools[${names[0]}]+x} ]]; then
    local spec=${tools[${names[0]}]}
    if ! GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath "$spec" >"$log" 2>&1; then
      fail "$log" "$tmp" "${names[@]}"
      return 1
    fi
    local bin=${spec%@*}
    install_tool "${names[0]}" "$tmp/$(basename "$bin")" "$start"
  else
    local spec=${wrapped[${names[0]}]% *} pkgs=()
    for n in "${names[@]}"; do pkgs+=("${wrapped[$n]#* }@${spec#*@}"); done
    mkdir "$tmp/src"
    # `set -e` does not apply inside a tested subshell: every step is chained.
    if ! (export GOWORK=off && wrapper "$spec" "$tmp/src" && cd "$tmp/src" && go get "${pkgs[@]}") >"$log" 2>&1; then
      fail "$log" "$tmp" "${names[@]}"
      return 1
    fi
    for n in "${names[@]}"; do
      local target=${wrapped[$n]#* }
      if [[ -n ${mains[$n]+x} ]]; then
        # Our main joins the wrapper; tidy requires what it imports at the versions the pinned
        # module's graph selects.
        target=./cmd-$n
        if ! (mkdir "$tmp/src/cmd-$n" && cp "$root/${mains[$n]}" "$tmp/src/cmd-$n/main.go" &&
          cd "$tmp/src" && GOWORK=off GOFLAGS=-tags=vouchtool go mod tidy) >>"$log" 2>&1; then
          fail "$log" "$tmp" "$n"
          return 1
        fi
      fi
      if ! (cd "$tmp/src" && GOWORK=off CGO_ENABLED=0 go build -tags vouchtool -trimpath -ldflags "$(ldflags "$spec")" \
        -o "$tmp/$n" "$target") >>"$log" 2>&1; then
        fail "$log" "$tmp" "$n"
        return 1
      fi
      install_tool "$n" "$tmp/$n" "$start"
      start=$SECONDS
    done
  fi
  rm -rf "$tmp"
}

# install_tool moves a built binary into place, writes its stamp and says how long it took.
install_tool() {
  mv "$2" "$dir/bin/$1"
  recipe "$1" >"$dir/bin/.$1.version"
  echo "tools: $1 $(version "$1") built in $((SECONDS - $3))s"
}

version() {
  recipe "$1" | awk '{ sub(/.*@/, "", $1); print $1 }'
}

fail() {
  local log=$1 tmp=$2
  shift 2
  echo "tools: building $* failed:" >&2
  cat "$log" >&2
  rm -rf "$tmp"
}

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=("${all[@]}")
declare -A groups=() # wrapped module@version -> the stale tools built from it
order=()
for t in "${want[@]}"; do
  [[ -n ${tools[$t]+x} || -n ${wrapped[$t]+x} ]] || { echo "tools: unknown tool $t" >&2; exit 2; }
  if cached "$t"; then
    echo "tools: $t $(version "$t") (cached)"
    continue
  fi
  if [[ -n ${tools[$t]+x} ]]; then
    order+=("$t")
  else
    key=${wrapped[$t]% *}
    [[ -n ${groups[$key]+x} ]] || order+=("@$key")
    groups[$key]="${groups[$key]:-} $t"
  fi
done
pids=()
for job in "${order[@]}"; do
  if [[ $job == @* ]]; then
    # shellcheck disable=SC2086 # the group is a list of tool names
    build ${groups[${job#@}]} &
  else
    build "$job" &
  fi
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
