#!/usr/bin/env bash
# Builds Helm 4 from the Go module proxy into a cache inside the project (.stack/tools by default),
# so `make test` (helm lint, helm template: tests/unit/deploy) needs nothing installed by hand and
# never writes to ~/go. Safe to run again: a helm of the pinned version already there is kept.
#   HELM_TOOLS_DIR  where bin/, the module cache and the build cache go (default .stack/tools)
#   GO              the go command (default: go on PATH, else /usr/local/go/bin/go)
# --background: build at the lowest CPU priority behind the caller's back (`make test` starts it
# before the checks and the integration tests, which leave most of the CPU idle while they wait on
# the brokers); the chart's tests run this script again and wait on its lock for that build.
set -euo pipefail

HELM_VERSION=v4.3.2
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${HELM_TOOLS_DIR:-$root/.stack/tools}"
helm="$tools/bin/helm"

cached() {
  [ -x "$helm" ] && [ "$("$helm" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]
}
if cached; then
  exit 0
fi
mkdir -p "$tools/bin"
if [ "${1:-}" = "--background" ]; then
  echo "install-helm: building helm $HELM_VERSION in the background (log: $tools/build.log)"
  nohup nice -n 19 "$0" >"$tools/build.log" 2>&1 </dev/null &
  exit 0
fi
exec 9>"$tools/build.lock"
flock 9  # one build at a time: a second caller waits for the first, then finds helm cached
if cached; then
  exit 0
fi

go="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
if [ ! -x "$go" ] && ! command -v "$go" >/dev/null 2>&1; then
  echo "install-helm: no Go toolchain (looked for go on PATH and /usr/local/go/bin/go); install Go >= 1.26 (helm v4.3.2 needs it) or set GO=/path/to/go" >&2
  exit 1
fi

echo "install-helm: building helm $HELM_VERSION with $("$go" version) into $tools/bin (once; cached)"
export GOPATH="$tools/go" GOMODCACHE="$tools/go/pkg/mod" GOCACHE="$tools/go-build" GOBIN="$tools/bin"
export GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
# -trimpath and the version stamp as Helm's own Makefile builds it (without it `helm version` says v4.3).
"$go" install -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
  "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
"$helm" version --template '{{.Version}}' | grep -qx "$HELM_VERSION" || {
  echo "install-helm: $helm does not report $HELM_VERSION: $("$helm" version 2>&1)" >&2
  exit 1
}
