#!/usr/bin/env bash
# Installs what podflow needs on a fresh Debian machine that has only Rust.
#   scripts/install-deps.sh build   libpcap headers: enough to build and run the demo
#   scripts/install-deps.sh test    everything the tests talk to: peers (tshark, nfdump, softflowd, pmacct,
#                                   python3-ipfix, tcpreplay, conntrack, prometheus), network tools, cargo-fuzz,
#                                   Java 17 and Maven for the OpenSearch test node (scripts/opensearch.sh)
# Packages already present are not fetched again. Needs root (or sudo).
set -euo pipefail
mode=${1:-test}

build_pkgs=(libpcap-dev pkg-config curl python3)
test_pkgs=(tshark nfdump softflowd pmacct python3-ipfix tcpreplay conntrack iproute2 iptables
  prometheus valgrind g++ time openjdk-17-jdk-headless maven)

case "$mode" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

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
