#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets/<name>.rs) for a number of
# executions and reports libFuzzer's figures.
#
#   scripts/fuzz.sh [RUNS] [TARGET...]    RUNS defaults to 10000000; no
#                                         TARGET means every target.
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Crashes are written to fuzz/artifacts/<target>/ and fail the script.
# FUZZ_SANITIZER=none builds without AddressSanitizer (cargo fuzz's
# default is address): ripcord-core has no unsafe code, so a panic is what
# a target finds, and the runs go faster.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs="${1:-10000000}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    max_len=4096
    if [ "$target" = policy_load ]; then
        # Start from real policies (the largest is over 4 KiB), so that the
        # mutations reach the lowering of every section, not only the YAML.
        for policy in ../examples/*/policy.yaml; do
            cp "$policy" "corpus/$target/$(basename "$(dirname "$policy")").yaml"
        done
        max_len=16384
    fi
    echo "== $target: $runs runs"
    start=$(date +%s)
    if ! cargo +nightly fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" \
        "$target" "corpus/$target" -- \
        -runs="$runs" -max_len="$max_len" -print_final_stats=1 2>"$target.log"; then
        status=1
        echo "   CRASH: see fuzz/$target.log and fuzz/artifacts/$target/"
    fi
    end=$(date +%s)
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs" "$target.log" | sed 's/^/   /' || true
    echo "   wall time: $((end - start)) s"
done
exit "$status"
