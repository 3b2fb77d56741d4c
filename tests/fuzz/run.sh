#!/bin/bash
# Runs fuzz targets one after the other, each for SECONDS seconds, as
# `make fuzz` does:
#   tests/fuzz/run.sh BUILD SECONDS TARGET...
# Each starts from its committed corpus (tests/fuzz/TARGET/corpus) and its
# dictionary; what it finds goes to BUILD/fuzz/TARGET/corpus (new inputs)
# and BUILD/fuzz/TARGET/ (crash-*, leak-*, timeout-* reproducers), never
# into the committed corpus. The log of each run is BUILD/fuzz/TARGET.log.
# Exits non-zero when a target found a crash.
set -euo pipefail

build=$1 seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d "${LII_FUZZ_TMPDIR:-/dev/shm}/lii-fuzz-run.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "$@"; do
        bin=$build/tests/fuzz/fuzz_$t
        out=$build/fuzz/$t
        mkdir -p "$out/corpus"
        dict=()
        [[ -f $here/$t/$t.dict ]] && dict=(-dict="$here/$t/$t.dict")
        echo "fuzz: $t for ${seconds}s (log: $out.log)"
        # -timeout: an input that takes a second is a hang for these
        # parsers; -rss_limit_mb keeps a memory blow-up a finding.
        if ! LII_FUZZ_TMPDIR=$scratch nice -n 19 "$bin" -max_total_time="$seconds" \
                -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
                -artifact_prefix="$out/" "${dict[@]}" "$out/corpus" "$here/$t/corpus" \
                >"$out.log" 2>&1; then
                failed+=("$t")
                grep -E '^(==[0-9]+==ERROR|SUMMARY|.*broken:)' "$out.log" | head -5 || true
        fi
        grep -E '#[0-9]+[[:space:]]+DONE' "$out.log" | tail -1 || true
done
if ((${#failed[@]})); then
        echo "fuzz: crashes in: ${failed[*]} (reproducers in $build/fuzz/TARGET/)" >&2
        exit 1
fi
