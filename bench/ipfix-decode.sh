#!/usr/bin/env bash
# IPFIX decode benchmark: proto-ipfix against netflow_parser on the same generated messages.
#
#   bench/ipfix-decode.sh [OPTIONS]              records/s of each decoder (thread CPU time) and the
#                                                ratios to netflow_parser
#   bench/ipfix-decode.sh --callgrind [OPTIONS]  instructions per record of each under valgrind, and the
#                                                ratios: slower, but repeatable on a busy machine
#
# OPTIONS go to the benchmark program (--exporters, --messages, --max-message-size, --template-refresh,
# --mixed-sets, --seed, --rounds, --min-round-ms); see bench/README.md.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

callgrind=0
args=()
for a in "$@"; do
    case "$a" in
        --callgrind) callgrind=1 ;;
        *) args+=("$a") ;;
    esac
done

cargo build --quiet --release -p podflow-bench --bin ipfix-decode
bin="${CARGO_TARGET_DIR:-$root/target}/release/ipfix-decode"

if [[ $callgrind == 0 ]]; then
    exec "$bin" "${args[@]}"
fi

if ! command -v valgrind >/dev/null; then
    echo "ipfix-decode.sh: valgrind is not installed; --callgrind needs it" >&2
    exit 1
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# The benchmark's name for each decoder, and the function holding its decode pass.
decoders=(proto-ipfix proto-ipfix-fields netflow_parser)
declare -A pass=([proto-ipfix]=located_pass [proto-ipfix-fields]=field_by_field_pass
    [netflow_parser]=netflow_parser_pass)
declare -A per_record
for decoder in "${decoders[@]}"; do
    # Collect only inside the decoder's pass function, so generating the workload is not counted.
    valgrind --tool=callgrind --callgrind-out-file="$out/$decoder.cg" --toggle-collect="*${pass[$decoder]}*" \
        "$bin" "${args[@]}" --only "$decoder" --passes 2 >"$out/$decoder.log" 2>&1 || {
        cat "$out/$decoder.log" >&2
        exit 1
    }
    records="$(awk '$1 == "records" { print $2 }' "$out/$decoder.log")"
    instructions="$(awk '$1 == "summary:" { print $2 }' "$out/$decoder.cg")"
    per_record[$decoder]="$(awk -v i="$instructions" -v r="$records" 'BEGIN { printf "%.0f", i / r }')"
    printf '%-20s %6s instructions per record (%s instructions, %s records)\n' \
        "$decoder" "${per_record[$decoder]}" "$instructions" "$records"
done
for decoder in proto-ipfix proto-ipfix-fields; do
    awk -v name="$decoder" -v a="${per_record[$decoder]}" -v b="${per_record[netflow_parser]}" \
        'BEGIN { printf "netflow_parser / %s instructions per record: %.1fx\n", name, b / a }'
done
