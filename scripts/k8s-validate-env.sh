#!/usr/bin/env bash
# Installs kubernetes-validate (PyPI; it ships the Kubernetes JSON schemas) into a virtual environment under
# ~/.cache/podflow/kubernetes-validate-<version>/ from charts/tools/requirements.txt, and prints the
# environment's bin directory. A venv, so nothing is installed into the system's Python (which Debian
# refuses anyway, PEP 668). Idempotent; concurrent runs wait for one another (flock).
set -euo pipefail
cd "$(dirname "$0")/.."

req=charts/tools/requirements.txt
version=$(sed -n 's/^kubernetes-validate==//p' "$req")
stamp=$(sha256sum "$req" | cut -c1-12)
root="${XDG_CACHE_HOME:-$HOME/.cache}/podflow/kubernetes-validate-$version"
bin="$root/venv/bin"

ready() { [ -x "$bin/kubernetes-validate" ] && [ "$(cat "$root/stamp" 2>/dev/null)" = "$stamp" ]; }

if ! ready; then
  mkdir -p "$root"
  exec 9>"$root.lock"
  flock 9
  if ! ready; then
    echo "k8s-validate-env: installing kubernetes-validate $version into $root/venv" >&2
    rm -rf "$root/venv"
    python3 -m venv "$root/venv" >&2
    "$bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
    echo "$stamp" >"$root/stamp"
  fi
fi
echo "$bin"
