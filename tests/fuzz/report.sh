#!/bin/bash
# The figures of a fuzzing run, for RELIABILITY.md: runs each target for
# SECONDS from its committed corpus (into a scratch copy: the committed
# corpus is not touched) and prints one row per target: executions,
# executions per second, libFuzzer's coverage at the end (cov: edges, ft:
# features), the corpus it ended with, and the crashes found with their
# reproducers.
#   tests/fuzz/report.sh [--build DIR] SECONDS [TARGET...]
# DIR (default build-fuzz) must hold the targets (`make fuzz` builds them,
# or cmake --build DIR --target fuzz). Rows are a Markdown table; the
# logs and reproducers stay in DIR/fuzz-report/.
set -euo pipefail

build=build-fuzz
if [[ ${1:-} == --build ]]; then
        build=$2
        shift 2
fi
seconds=${1:?usage: report.sh [--build DIR] SECONDS [TARGET...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
((${#targets[@]})) || targets=(desired minisign unpack state config api etcd)

out=$build/fuzz-report
rm -rf "$out"
mkdir -p "$out"
scratch=$(mktemp -d "${LII_FUZZ_TMPDIR:-/dev/shm}/lii-fuzz-report.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "| target | seconds | executions | exec/s | cov | ft | corpus (inputs, bytes) | crashes |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for t in "${targets[@]}"; do
        bin=$build/tests/fuzz/fuzz_$t
        [[ -x $bin ]] || { echo "report: $bin is not built" >&2; exit 1; }
        mkdir -p "$out/$t/corpus"
        cp "$here/$t/corpus/"* "$out/$t/corpus/"
        dict=()
        [[ -f $here/$t/$t.dict ]] && dict=(-dict="$here/$t/$t.dict")
        log=$out/$t.log
        LII_FUZZ_TMPDIR=$scratch nice -n 19 "$bin" -max_total_time="$seconds" -timeout=10 \
                -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/$t/" \
                "${dict[@]}" "$out/$t/corpus" >"$log" 2>&1 || true
        # The last status line: "#N DONE cov: C ft: F corp: I/S ... exec/s: E".
        last=$(grep -aE '^#[0-9]+[[:space:]]' "$log" | tail -1 || true)
        field() { sed -nE "s/.*[[:space:]]$1:? ([^[:space:]]+).*/\1/p" <<<"$last"; }
        runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
        rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log" | tail -1)
        [[ -n $runs ]] || runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
        [[ -n $rate ]] || rate=$(field exec/s)
        files=$(find "$out/$t/corpus" -type f | wc -l)
        bytes=$(du -sb "$out/$t/corpus" | cut -f1)
        crashes=$(find "$out/$t" -maxdepth 1 -type f \
                \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) \
                -printf '%f ' | sed 's/ $//')
        echo "| $t | $seconds | ${runs:-?} | ${rate:-?} | $(field cov) | $(field ft) | $files, $bytes | ${crashes:-0} |"
done
