#!/usr/bin/env bash
# Installs playwright-core (the version pinned in tests/browser/package-lock.json) for the service-map
# browser test and prints the directory whose node_modules holds it. It drives Debian's chromium (apt);
# playwright-core downloads no browser of its own. Installed with `npm ci` into
# ~/.cache/podflow/playwright-core-<version>/ once; later runs only print that directory. Concurrent runs
# wait for one another (flock).
#   PODFLOW_PLAYWRIGHT="$(scripts/playwright.sh)" node tests/browser/service_map.cjs URL OUT.png
set -euo pipefail
src="$(cd "$(dirname "$0")/../tests/browser" && pwd)"
version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packages"]["node_modules/playwright-core"]["version"])' \
  "$src/package-lock.json")
root="${XDG_CACHE_HOME:-$HOME/.cache}/podflow/playwright-core-$version"

ready() { [ -f "$root/node_modules/playwright-core/package.json" ] && cmp -s "$src/package-lock.json" "$root/package-lock.json"; }

if ! ready; then
  mkdir -p "$(dirname "$root")"
  exec 9>"$root.lock"
  flock 9
  if ! ready; then
    command -v npm >/dev/null || { echo "playwright: npm is needed (apt-get install npm)" >&2; exit 1; }
    echo "playwright: installing playwright-core $version" >&2
    tmp=$(mktemp -d "$root.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    cp "$src/package.json" "$src/package-lock.json" "$tmp/"
    # No browser download: the test runs the system's chromium.
    (cd "$tmp" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --silent --no-audit --no-fund >&2)
    rm -rf "$root"
    mv "$tmp" "$root"
  fi
fi
echo "$root"
