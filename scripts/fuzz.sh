#!/usr/bin/env bash
# Coverage-guided fuzzing of Gyre's parsers with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh [--short|--long|--runs N] [target...]
#
# --short (default): 100k executions per target; --long: 1M; --runs N: N. Targets: see
# fuzz/fuzz_targets/ (default: all). cargo-fuzz is installed into .deps/cargo on first use;
# the stable toolchain runs it with RUSTC_BOOTSTRAP=1. Each target starts from a scratch copy
# of its seed corpus (fuzz/corpus/<target>, kept in git) in fuzz/work/<target>; crashes land
# in fuzz/artifacts/<target>/. Prints one line per target: executions, crashes, seconds,
# and appends it to fuzz/work/results.tsv. Exits non-zero when any target crashed.
# The test command runs the same target bodies without libFuzzer: crates/fuzzing/tests/corpus.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=100000
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --short) runs=100000 ;;
    --long) runs=1000000 ;;
    --runs) runs="$2"; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

export PATH="$PWD/.deps/cargo/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked --root .deps/cargo
fi
export RUSTC_BOOTSTRAP=1
fuzz_target_dir="${GYRE_FUZZ_TARGET_DIR:-$PWD/fuzz/target}"

(cd fuzz && nice -n 19 cargo fuzz build -O --target-dir "$fuzz_target_dir" 2>&1 | tail -3) \
  || { echo "cargo fuzz build failed" >&2; exit 1; }

mkdir -p fuzz/work
failed=0
printf '%-20s %12s %8s %8s\n' target executions crashes seconds
for t in "${targets[@]}"; do
  work="fuzz/work/$t"
  artifacts="fuzz/artifacts/$t"
  rm -rf "$work"
  mkdir -p "$work" "$artifacts"
  cp fuzz/corpus/"$t"/* "$work"/
  before=$(find "$artifacts" -type f | wc -l)
  start=$(date +%s)
  log="fuzz/work/$t.log"
  set +e
  (cd fuzz && nice -n 19 cargo fuzz run -O --target-dir "$fuzz_target_dir" "$t" "../$work" -- \
    -runs="$runs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="../$artifacts/" -print_final_stats=1) >"$log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(( $(find "$artifacts" -type f | wc -l) - before ))
  if [[ $rc -ne 0 && $crashes -eq 0 ]]; then crashes=1; fi
  [[ $crashes -eq 0 ]] || failed=1
  line=$(printf '%-20s %12s %8s %8s' "$t" "${execs:-?}" "$crashes" "$secs")
  echo "$line"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "${execs:-?}" "$crashes" "$secs" "runs=$runs" >> fuzz/work/results.tsv
done
exit $failed
