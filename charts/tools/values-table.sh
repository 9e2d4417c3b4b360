#!/usr/bin/env bash
# Rewrites the values table of README.md and charts/podflow/README.md from charts/podflow/values.yaml
# (defaults) and values.schema.json (types, descriptions); charts/check.sh fails while either is stale.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=$(scripts/k8s-validate-env.sh)
"$venv/python3" charts/tools/chartcheck.py values-table --write charts/podflow/values.yaml \
  charts/podflow/values.schema.json README.md charts/podflow/README.md
