#!/usr/bin/env bash
# A real Kubernetes API server (kube-apiserver backed by etcd) on 127.0.0.1, for podflow's tests.
#
#   scripts/kube-apiserver.sh build                    builds kube-apiserver and etcd if needed, prints the bin dir
#   scripts/kube-apiserver.sh start --dir DIR          certificates, etcd, kube-apiserver; waits for /readyz
#   scripts/kube-apiserver.sh stop --dir DIR           stops both (nothing running is not an error)
#   scripts/kube-apiserver.sh restart-apiserver --dir DIR
#                                                      stops and starts only kube-apiserver, on the same port,
#                                                      so every client watch breaks
#   scripts/kube-apiserver.sh compact-etcd --dir DIR   compacts etcd at its current revision (physically), so
#                                                      a watch from an older resourceVersion gets 410 Gone
#
# Both programs are built from the Go module proxy out of the wrapper modules in tests/kube/ (upstream
# code, pinned by their go.mod and go.sum) into ~/.cache/podflow/kube-<version>/bin/, rebuilt when the
# wrapper files change. A cold build downloads the modules and compiles for many minutes; concurrent starts
# wait for one build (flock).
#
# After start, DIR holds: kubeconfig (https://127.0.0.1:PORT, the CA, an admin token in system:masters),
# etcd-endpoint (http://127.0.0.1:PORT, etcd's JSON gateway answers there), ca.crt, token, ports.env,
# etcd.pid, kube-apiserver.pid, etcd.log, kube-apiserver.log, and etcd's data in DIR/etcd.
#
# There is no controller manager, scheduler or kubelet: objects are stored and served, nothing acts on
# them (pods stay Pending). The ServiceAccount admission plugin is off, because without the controller
# that creates each namespace's "default" account it would refuse every pod. The "kubernetes" Service's
# endpoints are not kept (--endpoint-reconciler-type none): 127.0.0.1 is not a valid endpoint address.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
wrappers=$root/tests/kube
cache_root=${PODFLOW_CACHE:-$HOME/.cache/podflow}
ready_timeout=${PODFLOW_KUBE_READY_TIMEOUT:-120}
# Part of the build key: a change of how the binaries are built rebuilds them.
build_recipe="v1 CGO_ENABLED=0 -trimpath -ldflags=-s,-w"

die() {
  echo "kube-apiserver.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 build | start|stop|restart-apiserver|compact-etcd --dir DIR" >&2
  exit 2
}

k8s_version() {
  awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/ { print $2; exit }' "$wrappers/apiserver/go.mod"
}

find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [ -x /usr/local/go/bin/go ]; then
    echo /usr/local/go/bin/go
  else
    die "go is missing: building kube-apiserver and etcd needs Go (1.25 or later) on PATH or in /usr/local/go"
  fi
}

# Prints the directory holding kube-apiserver and etcd, building them first if they are missing or were
# built from other wrapper files.
build() {
  local version hash cache bin go tmp started
  version=$(k8s_version)
  [ -n "$version" ] || die "no k8s.io/kubernetes version in $wrappers/apiserver/go.mod"
  hash=$({
    echo "$build_recipe"
    cd "$wrappers" && cat apiserver/go.mod apiserver/go.sum apiserver/main.go etcd/go.mod etcd/go.sum etcd/main.go
  } | sha256sum | cut -c1-16)
  cache=$cache_root/kube-${version#v}
  bin=$cache/bin
  if [ "$(cat "$bin/.wrapper-hash" 2>/dev/null)" = "$hash" ] && [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ]; then
    echo "$bin"
    return
  fi
  mkdir -p "$cache"
  exec 9>"$cache/build.lock"
  flock -w 7200 9 || die "timed out waiting for another build of $cache"
  if [ "$(cat "$bin/.wrapper-hash" 2>/dev/null)" = "$hash" ] && [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ]; then
    exec 9>&-
    echo "$bin"
    return
  fi
  go=$(find_go)
  "$go" version | awk '{ split($3, v, "."); sub("go", "", v[1]); if (v[1] + 0 < 1 || (v[1] == 1 && v[2] + 0 < 25)) exit 1 }' ||
    die "$("$go" version) is too old: Kubernetes $version needs Go 1.25 or later"
  echo "kube-apiserver.sh: building kube-apiserver $version and etcd into $bin (a cold build takes long)" >&2
  started=$(date +%s)
  tmp=$cache/bin.new
  rm -rf "$tmp"
  mkdir -p "$tmp"
  local -a goenv=(env CGO_ENABLED=0 GOCACHE="$cache/go-build" GOFLAGS="${GOFLAGS:-} -mod=mod -buildvcs=false")
  (cd "$wrappers/etcd" && "${goenv[@]}" nice -n 10 "$go" build -trimpath -ldflags "-s -w" -o "$tmp/etcd" .) ||
    die "building etcd failed (see above)"
  local minor=${version#v1.}
  minor=${minor%%.*}
  local pkg=k8s.io/component-base/version
  (cd "$wrappers/apiserver" && "${goenv[@]}" nice -n 10 "$go" build -trimpath -ldflags "-s -w \
      -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor \
      -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z" -o "$tmp/kube-apiserver" .) ||
    die "building kube-apiserver failed (see above)"
  echo "$hash" >"$tmp/.wrapper-hash"
  rm -rf "$bin.old"
  if [ -d "$bin" ]; then mv "$bin" "$bin.old"; fi
  mv "$tmp" "$bin"
  rm -rf "$bin.old"
  exec 9>&-
  echo "kube-apiserver.sh: built in $(($(date +%s) - started)) s" >&2
  echo "$bin"
}

# N free TCP ports on 127.0.0.1, all different.
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

# Whether the process in pid file $1 is alive and is one this script started for $dir.
running() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/"
}

# Stops the process of pid file $1: SIGTERM, then SIGKILL after 20 s.
stop_one() {
  local pidfile=$1 pid i
  if running "$pidfile"; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
      [ -e "/proc/$pid" ] || break
      # A zombie (its parent has not reaped it yet) is as good as gone.
      [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ] || break
      sleep 0.1
    done
    if [ -e "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

log_tail() {
  echo "--- last lines of $1:" >&2
  tail -n 30 "$1" >&2 || true
}

# Waits (bounded) until command "$@" succeeds while the process of pid file $pidfile lives.
wait_for() {
  local what=$1 pidfile=$2 log=$3 timeout=$4 deadline
  shift 4
  deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! running "$pidfile"; then
      log_tail "$log"
      die "$what exited before it was ready"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log_tail "$log"
      die "$what was not ready within $timeout s"
    fi
    sleep 0.2
  done
}

etcd_healthy() {
  curl -sf --max-time 2 "http://127.0.0.1:$etcd_port/health" | grep -q '"health":"true"'
}

apiserver_ready() {
  [ "$(curl -s --max-time 2 --cacert "$dir/ca.crt" -H "Authorization: Bearer $(cat "$dir/token")" \
    "https://127.0.0.1:$apiserver_port/readyz")" = ok ]
}

make_certs() {
  [ -s "$dir/ca.crt" ] && [ -s "$dir/apiserver.crt" ] && [ -s "$dir/sa.key" ] && [ -s "$dir/token" ] && return
  (
    cd "$dir"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj /CN=podflow-test-ca -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=kube-apiserver \
      -keyout apiserver.key -out apiserver.csr 2>/dev/null
    printf '%s\n' \
      "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1" \
      basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    openssl rand -hex 24 >token
    printf '%s,admin,admin,"system:masters"\n' "$(cat token)" >tokens.csv
    rm -f apiserver.csr apiserver.ext ca.srl
  ) || die "making certificates in $dir failed (is openssl installed?)"
}

write_kubeconfig() {
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: podflow-test
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority-data: $(base64 -w0 <"$dir/ca.crt")
users:
- name: admin
  user:
    token: $(cat "$dir/token")
contexts:
- name: podflow-test
  context:
    cluster: podflow-test
    user: admin
current-context: podflow-test
EOF
  chmod 600 "$dir/kubeconfig"
}

start_etcd() {
  : >"$dir/etcd.log"
  nohup "$bin/etcd" --name podflow --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "podflow=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level warn </dev/null >>"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"
  wait_for etcd "$dir/etcd.pid" "$dir/etcd.log" 60 etcd_healthy
}

start_apiserver() {
  : >"$dir/kube-apiserver.log"
  nohup "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$apiserver_port" \
    --tls-cert-file "$dir/apiserver.crt" --tls-private-key-file "$dir/apiserver.key" \
    --client-ca-file "$dir/ca.crt" \
    --authorization-mode RBAC --token-auth-file "$dir/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
    --service-cluster-ip-range 10.96.0.0/12 \
    --enable-admission-plugins MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --disable-admission-plugins ServiceAccount \
    --allow-privileged=true --profiling=false \
    --endpoint-reconciler-type none \
    </dev/null >>"$dir/kube-apiserver.log" 2>&1 &
  echo $! >"$dir/kube-apiserver.pid"
  wait_for kube-apiserver "$dir/kube-apiserver.pid" "$dir/kube-apiserver.log" "$ready_timeout" apiserver_ready
}

load_ports() {
  [ -s "$dir/ports.env" ] || die "$dir/ports.env is missing: start it first"
  # shellcheck source=/dev/null
  . "$dir/ports.env"
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) [ $# -ge 2 ] || usage; dir=$2; shift 2 ;;
    *) usage ;;
  esac
done
if [ "$cmd" != build ]; then
  [ -n "$dir" ] || usage
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
fi

case "$cmd" in
  build)
    build
    ;;
  start)
    if running "$dir/etcd.pid" || running "$dir/kube-apiserver.pid"; then
      die "already running in $dir (stop it first)"
    fi
    bin=$(build)
    command -v openssl >/dev/null || die "openssl is missing (scripts/install-deps.sh test installs it)"
    command -v curl >/dev/null || die "curl is missing (scripts/install-deps.sh test installs it)"
    make_certs
    read -r etcd_port etcd_peer_port apiserver_port < <(free_ports 3)
    printf 'etcd_port=%s\netcd_peer_port=%s\napiserver_port=%s\n' "$etcd_port" "$etcd_peer_port" \
      "$apiserver_port" >"$dir/ports.env"
    echo "$bin" >"$dir/bin"
    # Whatever fails (or an interrupt) from here on leaves nothing running.
    trap 'stop_one "$dir/kube-apiserver.pid"; stop_one "$dir/etcd.pid"' EXIT
    trap 'exit 1' INT TERM
    start_etcd
    echo "http://127.0.0.1:$etcd_port" >"$dir/etcd-endpoint"
    write_kubeconfig
    start_apiserver
    trap - EXIT
    echo "kube-apiserver.sh: ready at https://127.0.0.1:$apiserver_port (kubeconfig $dir/kubeconfig)"
    ;;
  stop)
    stop_one "$dir/kube-apiserver.pid"
    stop_one "$dir/etcd.pid"
    ;;
  restart-apiserver)
    load_ports
    bin=$(cat "$dir/bin")
    stop_one "$dir/kube-apiserver.pid"
    trap 'stop_one "$dir/kube-apiserver.pid"' EXIT
    trap 'exit 1' INT TERM
    start_apiserver
    trap - EXIT
    ;;
  compact-etcd)
    load_ports
    etcd="http://127.0.0.1:$etcd_port"
    revision=$(curl -sf --max-time 10 -X POST "$etcd/v3/kv/range" -d '{"key":"AA=="}' |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["header"]["revision"])') ||
      die "reading etcd's revision from $etcd failed"
    curl -sf --max-time 30 -X POST "$etcd/v3/kv/compaction" \
      -d "{\"revision\": \"$revision\", \"physical\": true}" >/dev/null ||
      die "compacting etcd at $etcd to revision $revision failed"
    echo "$revision"
    ;;
  *)
    usage
    ;;
esac
