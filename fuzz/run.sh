#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation on the stable toolchain and
# runs each on its corpus (fuzz/corpus/<target>, committed) until it has used FUZZ_CPU_SECONDS
# of CPU (user + system; default 1800), then minimises the corpus. The budget is CPU time, not
# wall time, so a run that shares its core with a build or a test takes longer but still gets
# its full budget; FUZZ_SECONDS (default three times the CPU budget) caps the wall time. A
# watchdog reads the fuzzer's CPU time from /proc every two seconds and asks it to stop with
# SIGUSR1 (libFuzzer finishes the current input, prints its final stats and exits 0).
# The hand-written seeds and the inputs of past findings (fuzz/seeds/<target>/seed-*,
# regression-*) are read as a second, read-only input directory: minimisation renames and
# drops corpus files, never these.
# One line per run is appended to fuzz/runs.csv: date, target, wall seconds, executions,
# coverage (libFuzzer's `cov`, edges reached), corpus files, crash files, CPU seconds.
# A crash input is left in fuzz/artifacts/<target>/ and the script exits non-zero.
#
#     make fuzz                                       # every target, 30 CPU-minutes each
#     FUZZ_CPU_SECONDS=60 FUZZ_TARGETS="jws config" make fuzz
set -euo pipefail
cd "$(dirname "$0")"
cpu_budget=${FUZZ_CPU_SECONDS:-1800}
wall_cap=${FUZZ_SECONDS:-$((3 * cpu_budget))}
targets=${FUZZ_TARGETS:-$(ls fuzz_targets | sed 's/\.rs$//')}
triple=$(rustc -vV | sed -n 's/^host: //p')
# What cargo-fuzz passes, minus the sanitizer (nightly only). With --target, build scripts
# are built without these flags.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
cargo build --release --target "$triple" --bins
failed=0
ticks_per_second=$(getconf CLK_TCK)

# The CPU seconds process $1 has used so far (utime + stime from /proc/<pid>/stat), or nothing
# once it has exited (a zombie, not yet reaped, counts as exited).
cpu_seconds_of() {
    awk -v hz="$ticks_per_second" '$3 != "Z" { printf "%d", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null
}

# Polls the fuzzer until it exits or reaches the CPU budget, then asks it to stop; prints the
# last CPU reading.
stop_at_cpu_budget() {
    local used=0 now
    while now=$(cpu_seconds_of "$1") && [ -n "$now" ]; do
        used=$now
        if [ "$used" -ge "$cpu_budget" ]; then
            kill -USR1 "$1"
            break
        fi
        sleep 2
    done
    echo "$used"
}

for target in $targets; do
    mkdir -p "corpus/$target" "seeds/$target" "artifacts/$target"
    log=$(mktemp)
    binary="target/$triple/release/$target"
    started=$(date +%s)
    "$binary" -max_total_time="$wall_cap" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$target/" "corpus/$target" "seeds/$target" </dev/null >"$log" 2>&1 &
    fuzzer=$!
    cpu=$(stop_at_cpu_budget "$fuzzer")
    wait "$fuzzer" || failed=1
    seconds=$(($(date +%s) - started))
    grep -E "Done [0-9]+ runs|ERROR|panicked" "$log" || true
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    minimised=$(mktemp -d)
    "$binary" -merge=1 "$minimised" "corpus/$target" </dev/null >/dev/null 2>&1
    rm -rf "corpus/$target" && mv "$minimised" "corpus/$target"
    crashes=$(find "artifacts/$target" -type f | wc -l)
    line="$(date -u +%FT%TZ),$target,$seconds,${runs:-0},${coverage:-0},$(ls "corpus/$target" | wc -l),$crashes,${cpu:-0}"
    echo "$line" | tee -a runs.csv
    rm -f "$log"
done
exit $failed
