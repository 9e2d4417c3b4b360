#!/usr/bin/env bash
# The upstream CustomResourceDefinitions the chart's optional objects need, for tests against a real API
# server: cert-manager's Certificate and Issuer, prometheus-operator's ServiceMonitor. Prints the
# directory that holds them (one YAML file per CRD).
#
# Both projects publish their CRDs in their Go modules (deploy/crds/ and example/prometheus-operator-crd/),
# so they come from the Go module proxy through `go mod download`, checked against the pinned go.sum
# hashes below, into ~/.cache/podflow/k8s-crds-<versions>/ once; later runs only print that directory.
# Concurrent runs wait for one another (flock).
#   kubectl apply -f "$(scripts/k8s-crds.sh)"
set -euo pipefail

cert_manager=github.com/cert-manager/cert-manager@v1.21.2
cert_manager_sum=h1:UWgoYM+KLNtRlqmoWOKjKBOBUPVHeepQ6/ac3ERJW68=
prometheus_operator=github.com/prometheus-operator/prometheus-operator@v0.85.0
prometheus_operator_sum=h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s=

cache_root=${PODFLOW_CACHE:-$HOME/.cache/podflow}
root=$cache_root/k8s-crds-cert-manager-${cert_manager#*@v}-prometheus-operator-${prometheus_operator#*@v}
crds=$root/crds

ready() { [ -s "$crds/.done" ]; }

find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [ -x /usr/local/go/bin/go ]; then
    echo /usr/local/go/bin/go
  else
    echo "k8s-crds: go is missing: the CRDs come from the Go module proxy through go mod download" >&2
    exit 1
  fi
}

# Downloads module@version $1 into the private module cache, checks its hash is $2, prints its directory.
download() {
  local json sum dir
  json=$(cd "$root" && env GOMODCACHE="$root/gomod" GOFLAGS=-mod=mod GO111MODULE=on "$go" mod download -json "$1") || {
    echo "k8s-crds: go mod download $1 failed" >&2
    exit 1
  }
  sum=$(printf '%s' "$json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Sum"])')
  dir=$(printf '%s' "$json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  if [ "$sum" != "$2" ]; then
    echo "k8s-crds: $1 has hash $sum, expected $2" >&2
    exit 1
  fi
  echo "$dir"
}

if ! ready; then
  mkdir -p "$root"
  exec 9>"$root.lock"
  flock 9
  if ! ready; then
    go=$(find_go)
    cm=$(download "$cert_manager" "$cert_manager_sum")
    po=$(download "$prometheus_operator" "$prometheus_operator_sum")
    rm -rf "$crds.new"
    mkdir -p "$crds.new"
    for f in cert-manager.io_certificates.yaml cert-manager.io_issuers.yaml cert-manager.io_clusterissuers.yaml; do
      install -m 0644 "$cm/deploy/crds/$f" "$crds.new/$f"
    done
    install -m 0644 "$po/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
      "$crds.new/monitoring.coreos.com_servicemonitors.yaml"
    printf '%s\n%s\n' "$cert_manager" "$prometheus_operator" >"$crds.new/.done"
    rm -rf "$crds"
    mv "$crds.new" "$crds"
    # The module cache is only a means: its files are read-only, so make them removable first.
    chmod -R u+w "$root/gomod" && rm -rf "$root/gomod"
  fi
fi
echo "$crds"
