#!/usr/bin/env bash
# Builds the cargo-fuzz targets (nightly) and runs each for a while, one after the other.
#
#   tests/fuzz/run.sh [--merge] [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; no TARGET means all of tests/fuzz/fuzz_targets/.
# New inputs go to a scratch corpus (tests/fuzz/scratch/TARGET, not in git); the committed seeds
# in tests/fuzz/corpus/TARGET are only read. With --merge, the scratch inputs that add coverage
# are merged into the committed corpus afterwards (review the size before committing).
# Crashes land in tests/fuzz/artifacts/TARGET/ (not in git). Exits non-zero if any target
# crashed, hung (-timeout) or ran out of memory (-rss_limit_mb / -malloc_limit_mb).
# Environment: FUZZ_TARGET_DIR (default tests/fuzz/target), FUZZ_TIMEOUT (seconds per input,
# default 10), FUZZ_RSS_MB (default 512).
set -u
cd "$(dirname "$0")/../.."
fuzz_dir=tests/fuzz
merge=0
if [ "${1:-}" = "--merge" ]; then
    merge=1
    shift
fi
secs=${1:-60}
[ $# -gt 0 ] && shift
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in "$fuzz_dir"/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi
tgt=${FUZZ_TARGET_DIR:-$fuzz_dir/target}
timeout=${FUZZ_TIMEOUT:-10}
rss=${FUZZ_RSS_MB:-512}

echo "building ${#targets[@]} fuzz targets (nightly, target dir $tgt)" >&2
cargo +nightly fuzz build --sanitizer none --fuzz-dir "$fuzz_dir" --target-dir "$tgt" >&2 || exit 2
bin_dir=$tgt/$(rustc +nightly -vV | sed -n 's/^host: //p')/release

status=0
rows=()
for t in "${targets[@]}"; do
    bin=$bin_dir/$t
    if [ ! -x "$bin" ]; then
        echo "no such fuzz target: $t" >&2
        status=1
        rows+=("$t|-|-|-|-|missing")
        continue
    fi
    scratch=$fuzz_dir/scratch/$t
    artifacts=$fuzz_dir/artifacts/$t/
    mkdir -p "$scratch" "$artifacts" "$fuzz_dir/logs"
    log=$fuzz_dir/logs/$t.log
    echo "== $t: ${secs}s" >&2
    "$bin" "$scratch" "$fuzz_dir/corpus/$t" \
        -max_total_time="$secs" -timeout="$timeout" -rss_limit_mb="$rss" \
        -malloc_limit_mb="$rss" -max_len=8192 -artifact_prefix="$artifacts" \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    if [ "$rc" -eq 0 ]; then
        result=ok
    else
        status=1
        what=$(grep -m1 -oE 'deadly signal|panicked at[^,]*|ERROR: libFuzzer: [a-z-]+|out-of-memory[^)]*\)|timeout after [0-9]+ seconds' "$log")
        art=$(grep -m1 -oE "Test unit written to [^ ]+" "$log" | sed 's/Test unit written to //')
        result="FAIL (${what:-exit $rc}) ${art}"
    fi
    rows+=("$t|${runs:-?}|${cov:-?}|${ft:-?}|${corp:-?}|$result")
    if [ "$merge" -eq 1 ] && [ "$rc" -eq 0 ]; then
        "$bin" -merge=1 "$fuzz_dir/corpus/$t" "$scratch" -max_len=8192 \
            -timeout="$timeout" -rss_limit_mb="$rss" >>"$log" 2>&1 || status=1
    fi
done

printf '\n%-15s %12s %7s %8s %12s  %s\n' target runs cov features corpus result
for r in "${rows[@]}"; do
    IFS='|' read -r t runs cov ft corp result <<<"$r"
    printf '%-15s %12s %7s %8s %12s  %s\n' "$t" "$runs" "$cov" "$ft" "$corp" "$result"
done
echo "logs: $fuzz_dir/logs/" >&2
exit $status
