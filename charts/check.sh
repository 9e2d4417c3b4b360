#!/usr/bin/env bash
# Checks the Helm chart (charts/podflow) and the Dockerfile; scripts/test.sh runs it.
#
# For every values file in charts/podflow/ci/:
#   helm lint --strict, then helm template (with monitoring.coreos.com/v1 available, so the ServiceMonitor
#   renders) validated by kubernetes-validate --strict against Kubernetes $K8S_VERSION. The custom-resource
#   kinds it has no schema for (ServiceMonitor, cert-manager Certificate and Issuer) are validated instead
#   against the strict JSON schemas in charts/tools/crd-schemas/; any other kind it does not know fails.
#   Every --flag a podflow container passes must be in its binary's --help (or in
#   charts/tools/pending-flags.txt while the binary lacks it).
# Then: values.schema.json rejects bad values, describes every value, and the values tables of the READMEs
# are what charts/tools/values-table.sh makes of it; the Dockerfile builds and installs
# the workspace's binaries under the paths the chart runs; the chart's dashboards match grafana/.
# Prints one pass/fail line per check; exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.33.0
chart=charts/podflow
PATH="$(scripts/k8s-tools.sh):$PATH"
venv=$(scripts/k8s-validate-env.sh)
py="$venv/python3"
check="$py charts/tools/chartcheck.py"

# The binaries whose --help the flags are checked against (built already after cargo test).
cargo build --quiet -p podflow-exporter -p podflow-collector
bin_dir="$(cargo metadata --no-deps --format-version 1 | "$py" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
result() { # NAME STATUS LOG
  if [ "$2" -eq 0 ]; then
    echo "chart: pass $1"
    passed=$((passed + 1))
  else
    echo "chart: FAIL $1"
    sed 's/^/    /' "$3"
    failed=$((failed + 1))
  fi
}

for values in "$chart"/ci/*.yaml; do
  name=$(basename "$values" .yaml)
  log="$work/$name.log"
  rendered="$work/$name.rendered.yaml"
  status=0
  {
    helm lint --strict "$chart" -f "$values" --quiet &&
      helm template podflow "$chart" --namespace podflow -f "$values" \
        --api-versions monitoring.coreos.com/v1 >"$rendered" &&
      $check crds charts/tools/crd-schemas <"$rendered" >"$work/$name.core.yaml" &&
      "$venv/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$work/$name.core.yaml" \
        >"$work/$name.kv" 2>&1 &&
      ! grep -q . "$work/$name.kv" &&
      $check flags "$bin_dir" charts/tools/pending-flags.txt <"$rendered"
  } >"$log" 2>&1 || status=$?
  [ -s "$work/$name.kv" ] && cat "$work/$name.kv" >>"$log"
  kinds=$(grep -c '^kind:' "$rendered" 2>/dev/null || true)
  result "$name ($kinds objects: lint, template, kubernetes-validate $K8S_VERSION strict, flags)" "$status" "$log"
done

# The schema must refuse what the templates cannot render: each of these fails helm template.
status=0
log="$work/schema-rejects.log"
: >"$log"
for bad in probe.cni=weave probe.direction=sideways collector.mode=statefulset collector.ipfixPort=70000 \
  webhook.failurePolicy=Maybe collector.spool.full=drop-all probe.unknownKey=1; do
  if helm template podflow "$chart" --set "$bad" >"$work/bad.yaml" 2>"$work/bad.err"; then
    echo "accepted --set $bad" >>"$log"
    status=1
  elif ! grep -q "values don't meet the specifications of the schema" "$work/bad.err"; then
    echo "--set $bad failed, but not by the schema:" >>"$log"
    cat "$work/bad.err" >>"$log"
    status=1
  fi
done
if helm lint --strict "$chart" --set probe.cni=weave >>"$log" 2>&1; then
  echo "helm lint accepted probe.cni=weave" >>"$log"
  status=1
fi
result "values.schema.json rejects 7 bad values (probe.cni=weave, ...)" "$status" "$log"

status=0
$check schema "$chart/values.yaml" "$chart/values.schema.json" >"$work/schema.log" 2>&1 || status=$?
result "values.schema.json describes every value ($(grep -o '[0-9]* values described' "$work/schema.log" || echo '?'))" \
  "$status" "$work/schema.log"

status=0
$check values-table "$chart/values.yaml" "$chart/values.schema.json" README.md "$chart/README.md" \
  >"$work/table.log" 2>&1 || status=$?
result "values tables of README.md and the chart's README match the schema ($(grep -o '[0-9]* values' "$work/table.log" | head -1))" \
  "$status" "$work/table.log"

status=0
$check image Dockerfile "$work"/*.rendered.yaml >"$work/image.log" 2>&1 || status=$?
result "Dockerfile binaries = workspace binaries = chart commands ($(sed -n 's/^image: //p' "$work/image.log"))" \
  "$status" "$work/image.log"

status=0
$check dashboards grafana "$chart/dashboards" >"$work/dash.log" 2>&1 || status=$?
result "dashboards ($(sed -n 's/^dashboards: //p' "$work/dash.log"))" "$status" "$work/dash.log"

echo "chart: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
