#!/usr/bin/env bash
# A single OpenSearch node for tests, run from Maven Central's jars (tests/opensearch/), no security plugin.
#
#   scripts/opensearch.sh start --port PORT --data DIR [--setting KEY=VALUE]...
#       Starts a node with HTTP on 127.0.0.1:PORT (transport on a free port) keeping its indices under DIR,
#       and returns once cluster health is at least yellow. Writes DIR/pid (the Java process) and DIR/log
#       (its output). Fails with the log's tail if the node exits or is not up within
#       PODFLOW_OPENSEARCH_TIMEOUT seconds (120). A node stopped or killed and started again on the same
#       DIR keeps its indices and data streams.
#   scripts/opensearch.sh stop --data DIR
#       SIGTERM, up to 30 s for the node to close, then SIGKILL. Nothing running is not an error.
#   scripts/opensearch.sh build
#       Only builds the cache (what the first start does) and prints the classpath file.
#
# The first use builds tests/opensearch/ with Maven into ~/.cache/podflow/opensearch-<version>/ (the
# jars in m2/, the compiled class and the classpath in build-<hash of the Maven project>/), under a lock
# so that concurrent starts build it once. Later starts use the cache and need neither Maven nor network.
# Needs Java 17 (PODFLOW_JAVA, else `java` on PATH if it is 17, else /usr/lib/jvm/java-17-*) and Maven.
# PODFLOW_OPENSEARCH_HEAP sets the heap (512m). With PODFLOW_OPENSEARCH_WATCH_PID=PID the node stops by itself
# once process PID is gone (tests set their own pid, so a test program killed outright leaves no node).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
project=$root/tests/opensearch
main_class=org.podflow.opensearch.TestNode
timeout=${PODFLOW_OPENSEARCH_TIMEOUT:-120}
heap=${PODFLOW_OPENSEARCH_HEAP:-512m}

die() {
  echo "opensearch.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start --port PORT --data DIR [--setting KEY=VALUE]... | stop --data DIR | build" >&2
  exit 2
}

version=$(sed -n 's|.*<opensearch.version>\(.*\)</opensearch.version>.*|\1|p' "$project/pom.xml")
[ -n "$version" ] || die "no <opensearch.version> in $project/pom.xml"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/podflow/opensearch-$version

# A Java 17 runtime: the jars are built for it and it is what the project tests with.
find_java() {
  local candidates=()
  [ -n "${PODFLOW_JAVA:-}" ] && candidates+=("$PODFLOW_JAVA")
  command -v java >/dev/null && candidates+=("$(command -v java)")
  candidates+=(/usr/lib/jvm/java-17-*/bin/java /usr/lib/jvm/temurin-17*/bin/java)
  local j
  for j in "${candidates[@]}"; do
    [ -x "$j" ] || continue
    if "$j" -XshowSettings:properties -version 2>&1 | grep -qE '^ +java\.specification\.version = 17$'; then
      echo "$j"
      return
    fi
  done
  die "Java 17 not found (PODFLOW_JAVA, java on PATH, /usr/lib/jvm/java-17-*): install openjdk-17-jdk-headless"
}

# The cache key: the Maven project's files, so that any change to them builds again.
project_hash() {
  (cd "$project" && find pom.xml src -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
    sha256sum | cut -c1-16
}

# Prints the file holding the node's classpath, building it first if needed.
ensure_built() {
  local build=$cache/build-$(project_hash)
  if [ -s "$build/classpath" ]; then
    echo "$build/classpath"
    return
  fi
  command -v mvn >/dev/null || die "Maven (mvn) not found: install maven"
  mkdir -p "$cache"
  exec 9>"$cache/build.lock"
  flock -w 600 9 || die "timed out waiting for another build to release $cache/build.lock"
  # Someone else may have built it while this one waited.
  if [ ! -s "$build/classpath" ]; then
    rm -rf "$build"
    mkdir -p "$build"
    local started=$SECONDS
    echo "opensearch.sh: building the OpenSearch $version test node into $build" >&2
    local mvn_args=(-q -B -f "$project/pom.xml" "-Dmaven.repo.local=$cache/m2" "-Dpodflow.build.dir=$build/target"
      compile dependency:build-classpath "-Dmdep.outputFile=$build/deps")
    # Offline when the jars are already there (a changed Java file, say); online otherwise.
    if ! { [ -d "$cache/m2" ] && nice mvn -o "${mvn_args[@]}" >"$build/mvn.log" 2>&1; }; then
      nice mvn "${mvn_args[@]}" >"$build/mvn.log" 2>&1 || {
        tail -n 40 "$build/mvn.log" >&2
        die "Maven build failed (log: $build/mvn.log)"
      }
    fi
    printf '%s:%s\n' "$build/target/classes" "$(cat "$build/deps")" >"$build/classpath.tmp"
    mv "$build/classpath.tmp" "$build/classpath"
    echo "opensearch.sh: built in $((SECONDS - started)) s" >&2
  fi
  exec 9>&-
  echo "$build/classpath"
}

# True while process $1 exists and is not a zombie (an exited child nobody has reaped yet).
alive() {
  local state
  state=$(sed -n 's/^[0-9]* (.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# The pid in DIR/pid if that process is alive and is this script's node, else nothing.
node_pid() {
  local pid
  pid=$(cat "$1/pid" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$main_class" && echo "$pid"
  return 0
}

# Waits up to $2 seconds for process $1 to go.
wait_gone() {
  local deadline=$((SECONDS + $2))
  while alive "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

stop_node() {
  local dir=$1 pid
  pid=$(node_pid "$dir")
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 30; then
      echo "opensearch.sh: node $pid did not stop within 30 s of SIGTERM: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || die "node $pid still there 10 s after SIGKILL"
    fi
  fi
  rm -f "$dir/pid"
}

start_node() {
  local port=$1 dir=$2
  shift 2
  [ -z "$(node_pid "$dir")" ] || die "a node is already running on $dir (pid $(cat "$dir/pid"))"
  local java classpath
  java=$(find_java)
  classpath=$(ensure_built)
  mkdir -p "$dir/home/config" "$dir/data" "$dir/tmp"
  : >"$dir/home/config/opensearch.yml"
  local settings=(
    "path.home=$dir/home" "path.data=$dir/data" "path.logs=$dir/home/logs"
    "cluster.name=podflow-test" "node.name=podflow-test" "discovery.type=single-node"
    "network.host=127.0.0.1" "http.port=$port" "transport.port=0"
    "node.store.allow_mmap=false" "cluster.routing.allocation.disk.threshold_enabled=false"
    "action.auto_create_index=true"
    "$@"
  )
  "$java" "-Xms$heap" "-Xmx$heap" -XX:+UseSerialGC -XX:-HeapDumpOnOutOfMemoryError \
    -Dfile.encoding=UTF-8 "-Djava.io.tmpdir=$dir/tmp" -Dlog4j2.disable.jmx=true \
    -Dlog4j.shutdownHookEnabled=false -Dio.netty.allocator.numDirectArenas=0 \
    "-Dpodflow.watch.pid=${PODFLOW_OPENSEARCH_WATCH_PID:-}" \
    -cp "$(cat "$classpath")" "$main_class" "${settings[@]}" </dev/null >"$dir/log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/pid"

  local deadline=$((SECONDS + timeout)) health
  while :; do
    if ! alive "$pid"; then
      tail -n 40 "$dir/log" >&2
      rm -f "$dir/pid"
      die "the node exited before it answered on 127.0.0.1:$port (log: $dir/log)"
    fi
    health=$(curl -s -m 5 "http://127.0.0.1:$port/_cluster/health?wait_for_status=yellow&timeout=2s" || true)
    if [[ $health == *'"cluster_name":"podflow-test"'* && $health =~ \"status\":\"(green|yellow)\" ]]; then
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 40 "$dir/log" >&2
      stop_node "$dir"
      die "the node did not reach yellow health on 127.0.0.1:$port within $timeout s (log: $dir/log)"
    fi
    sleep 0.2
  done
}

cmd=${1:-}
[ $# -gt 0 ] && shift
port="" dir="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port=${2:-}; shift 2 || usage ;;
    --data) dir=${2:-}; shift 2 || usage ;;
    --setting)
      [[ ${2:-} == ?*=* ]] || die "--setting wants KEY=VALUE, got '${2:-}'"
      extra+=("$2"); shift 2 ;;
    *) usage ;;
  esac
done

case "$cmd" in
  start)
    [[ $port =~ ^[0-9]+$ ]] && [ -n "$dir" ] || usage
    mkdir -p "$dir"
    start_node "$port" "$(cd "$dir" && pwd)" "${extra[@]}"
    ;;
  stop)
    [ -n "$dir" ] || usage
    [ -d "$dir" ] || exit 0
    stop_node "$dir"
    ;;
  build)
    find_java >/dev/null
    ensure_built
    ;;
  *) usage ;;
esac
