#!/usr/bin/env bash
# Rebuilds fuzz/corpus/ from testdata/captures/ and the encoder (see examples/make_corpus.rs).
# The corpus is wiped and written anew, so it always matches the captures; run this after they change.
set -euo pipefail
cd "$(dirname "$0")"
cargo run --quiet --example make_corpus
