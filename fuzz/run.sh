#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on the stable toolchain and
# runs each for FUZZ_SECONDS (default 1800) on its corpus (fuzz/corpus/<target>, committed),
# then minimises the corpus. One line per run is appended to fuzz/runs.csv: date, target,
# seconds (wall), executions, coverage (libFuzzer's `cov`, edges reached), corpus files, crash
# files, and the CPU seconds the fuzzer used (user + system; less than the wall time when the
# run shares its core, e.g. under `nice`).
# A crash input is left in fuzz/artifacts/<target>/ and the script exits non-zero.
#
#     make fuzz                                   # every target, 30 minutes each
#     FUZZ_SECONDS=60 FUZZ_TARGETS="jws config" make fuzz
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-1800}
targets=${FUZZ_TARGETS:-$(ls fuzz_targets | sed 's/\.rs$//')}
triple=$(rustc -vV | sed -n 's/^host: //p')
# What cargo-fuzz passes, minus the sanitizer (nightly only). With --target, build scripts
# are built without these flags.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
cargo build --release --target "$triple" --bins
failed=0
for target in $targets; do
    mkdir -p "corpus/$target" "artifacts/$target"
    log=$(mktemp)
    binary="target/$triple/release/$target"
    cpu_log=$(mktemp)
    TIMEFORMAT='%3U %3S'
    { time "$binary" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$target/" "corpus/$target" </dev/null >"$log" 2>&1 || failed=1; } 2>"$cpu_log"
    cpu=$(awk '{ printf "%.0f", $1 + $2 }' "$cpu_log")
    grep -E "Done [0-9]+ runs|ERROR|panicked" "$log" || true
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    minimised=$(mktemp -d)
    "$binary" -merge=1 "$minimised" "corpus/$target" </dev/null >/dev/null 2>&1
    rm -rf "corpus/$target" && mv "$minimised" "corpus/$target"
    crashes=$(find "artifacts/$target" -type f | wc -l)
    line="$(date -u +%FT%TZ),$target,$seconds,${runs:-0},${coverage:-0},$(ls "corpus/$target" | wc -l),$crashes,${cpu:-0}"
    echo "$line" | tee -a runs.csv
    rm -f "$log" "$cpu_log"
done
exit $failed
