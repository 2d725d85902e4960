#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang++-14 into build-fuzz/ and runs each for a bounded time from its seed
# corpus (tests/fuzz/corpus/<harness>/): `tests/fuzz/run.sh [seconds per harness, default 20] [harness...]`.
# What they find goes to a scratch directory; a crash fails the run and leaves its input in build-fuzz/crashes/.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-20}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=(message_decoder startup_auth scram config sql_request)

CXX=clang++-14 cmake -S "$top" -B "$top/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGMUX_FUZZ=ON \
  -DBUILD_TESTING=OFF >/dev/null
cmake --build "$top/build-fuzz" -j"$(nproc)"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/pgmux-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
crashes="$top/build-fuzz/crashes"
mkdir -p "$crashes"
status=0
for harness in "${harnesses[@]}"; do
  mkdir -p "$scratch/$harness"
  # New inputs go to the scratch corpus (first directory); the seeds are only read.
  if "$top/build-fuzz/tests/fuzz/${harness}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$crashes/$harness-" "$scratch/$harness" \
       "$top/tests/fuzz/corpus/$harness" >"$scratch/$harness.log" 2>&1; then
    echo "$harness: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$scratch/$harness.log" | tail -1)"
  else
    echo "$harness: FAILED (input in $crashes)" >&2
    tail -60 "$scratch/$harness.log" >&2
    status=1
  fi
done
exit "$status"
