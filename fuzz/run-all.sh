#!/usr/bin/env bash
# Runs every fuzz target one after another (never two at once), each for SECS seconds
# (default 660), at the lowest CPU priority. Crashes, timeouts and OOMs do not stop a run:
# libFuzzer's fork mode saves each to fuzz/artifacts/<target>/ and goes on. Logs go to
# fuzz/logs/<target>.log; the last "#N" status line of each gives executions and coverage.
#   fuzz/seed.sh && fuzz/run-all.sh              # all seven, 77 minutes
#   SECS=60 fuzz/run-all.sh decode waiver_parse  # some, shorter
set -euo pipefail
cd "$(dirname "$0")"
SECS=${SECS:-660}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(capture_reader gzip_reader decode catalog_parse inventory_parse waiver_parse names)
# Nightly if installed; otherwise stable told to accept nightly flags.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then CARGO=(cargo +nightly); else CARGO=(env RUSTC_BOOTSTRAP=1 cargo); fi
mkdir -p logs
nice -n 19 "${CARGO[@]}" fuzz build -O -a
for t in "${targets[@]}"; do
  mkdir -p "artifacts/$t" "corpus/$t"
  echo "== $t: $SECS s" >&2
  nice -n 19 "${CARGO[@]}" fuzz run -O -a "$t" -- \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=262144 \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -artifact_prefix="artifacts/$t/" > "logs/$t.log" 2>&1 || true
  grep -E '^#[0-9]+' "logs/$t.log" | tail -1 >&2 || true
  ls "artifacts/$t" | sed "s|^|   artifact: artifacts/$t/|" >&2 || true
done
