#!/usr/bin/env bash
# Quick fuzzing pass for CI: builds every target with AddressSanitizer and runs each one for a short while
# (FUZZ_SMOKE_SECONDS, default 30 for the IPFIX codec targets and 20 for the collector's parsers) over the
# committed seed corpus. Exits non-zero when a target crashes,
# panics, times out or fails to build; the crashing input is left in fuzz/artifacts/<target>/.
#
# The committed corpus is only read: new inputs go to a scratch directory that is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")"

# The collector's parsers (inventory, NetFlow, graph queries, Elasticsearch answers, AdmissionReviews) get less time: their state is smaller and CI time is short.
codec_seconds="${FUZZ_SMOKE_SECONDS:-30}"
parser_seconds="${FUZZ_SMOKE_SECONDS:-20}"
# cargo-fuzz passes -Z flags to cargo and rustc; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz"
    cargo install --locked cargo-fuzz --version 0.13.2
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cargo fuzz build
failed=()
for target in $(cargo fuzz list); do
    mkdir -p "$scratch/$target"
    case "$target" in
        inventory | netflow_* | graph_query | es_response | admission_review) seconds="$parser_seconds" ;;
        *) seconds="$codec_seconds" ;;
    esac
    echo "smoke: $target for ${seconds}s"
    if ! cargo fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 >"$scratch/$target.log" 2>&1; then
        # Show the panic and the saved input, not the whole log (sanitizer stack traces are long).
        grep -E -A6 'panicked at|ERROR: |error(\[|:)' "$scratch/$target.log" | head -n 60 || true
        grep -E 'Test unit written' "$scratch/$target.log" || true
        failed+=("$target")
    fi
    grep -E '^Done|DONE' "$scratch/$target.log" | tail -n 2 || true
done

if ((${#failed[@]})); then
    echo "smoke: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "smoke: every target ran (${codec_seconds}s codec, ${parser_seconds}s parsers) without a crash"
