#!/usr/bin/env bash
# pcapng against pcap: the same packets read by `flowaudit flows` as pcap and as pcapng, runs
# alternating (pcap, pcapng, pcap, ...) so that both see the same machine load; prints each
# run's wall time, the medians and their ratio (pcapng / pcap). The target is 1.1 or below.
#
#   scripts/bench-pcapng.sh              # the 1 GiB IMIX capture (3.6 M packets, 200k flows)
#   SCALE=0.1 RUNS=3 scripts/bench-pcapng.sh
#
# Needs editcap (Debian: wireshark-common or tshark) to write the pcapng copy.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-1}
RUNS=${RUNS:-5}
DATA=${DATA:-bench-data}

die() { echo "bench-pcapng.sh: $*" >&2; exit 2; }
command -v editcap >/dev/null || die "editcap is missing (Debian: apt-get install tshark)"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got $RUNS"

cargo build --release --quiet
mkdir -p "$DATA"
BIN="$DATA/flowaudit-pcapng-bench"
cp target/release/flowaudit "$BIN"
packets=$(awk -v s="$SCALE" 'BEGIN { print int(3600000 * s) }')
flows=$(awk -v s="$SCALE" 'BEGIN { print int(200000 * s) }')
PCAP="$DATA/imix-$packets.pcap"
PCAPNG="$DATA/imix-$packets.pcapng"
[ -f "$PCAP" ] || "$BIN" synth --packets "$packets" --flows "$flows" -o "$PCAP"
[ -f "$PCAPNG" ] || editcap -F pcapng "$PCAP" "$PCAPNG"

# wall FILE: seconds for one run, output to stdout (not /dev/null: see scripts/bench.sh).
wall() {
    local t0=$EPOCHREALTIME
    "$BIN" flows -q "$1" -o - >/dev/null
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# One untimed pass each, so both files start equally warm in the page cache.
wall "$PCAP" >/dev/null
wall "$PCAPNG" >/dev/null
: >"$DATA/pcap.times"
: >"$DATA/pcapng.times"
for i in $(seq "$RUNS"); do
    a=$(wall "$PCAP")
    b=$(wall "$PCAPNG")
    echo "run $i: pcap $a s, pcapng $b s" >&2
    echo "$a" >>"$DATA/pcap.times"
    echo "$b" >>"$DATA/pcapng.times"
done
mp=$(median <"$DATA/pcap.times")
mn=$(median <"$DATA/pcapng.times")
echo "| file | bytes | median wall (s) |"
echo "|---|---|---|"
echo "| pcap | $(stat -c %s "$PCAP") | $mp |"
echo "| pcapng | $(stat -c %s "$PCAPNG") | $mn |"
awk -v a="$mp" -v b="$mn" 'BEGIN { printf "pcapng / pcap: %.2f (%d runs each, alternating)\n", b / a, '"$RUNS"' }'
