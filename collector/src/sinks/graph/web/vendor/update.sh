#!/usr/bin/env bash
# Rebuilds the vendored graph library of the service-map page from the npm registry: Cytoscape.js and the
# fCoSE layout (with the two layout packages it is built on), pinned below, each minified, and their
# licences gathered into LICENSE. The output is committed; nothing runs this at build or test time. Run it
# after changing a version, then check the page (tests/tests/service_map_browser.rs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

cytoscape=3.35.0
fcose=2.2.0
cose_base=2.2.0
layout_base=2.0.1
terser=5.51.4

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --silent "cytoscape@$cytoscape" "cytoscape-fcose@$fcose" \
    "cose-base@$cose_base" "layout-base@$layout_base" "terser@$terser"
m=node_modules

cp "$m/cytoscape/dist/cytoscape.min.js" "$here/cytoscape.min.js"
for p in layout-base cose-base cytoscape-fcose; do
    # Keep the licence comment at the top of each file.
    npx --no-install terser "$m/$p/$p.js" --compress --mangle --comments '/^!|@license|@preserve/' \
        --output "$here/$p.min.js"
done

{
    echo "Licences of the vendored graph library of podflow's service-map page (all MIT)."
    for p in cytoscape:$cytoscape cytoscape-fcose:$fcose cose-base:$cose_base layout-base:$layout_base; do
        name="${p%%:*}"
        echo
        echo "==== $name $(node -p "require('./$m/$name/package.json').version") ($(node -p "require('./$m/$name/package.json').homepage || ''"))"
        echo
        cat "$m/$name/LICENSE"
    done
} >"$here/LICENSE"
ls -l "$here"
