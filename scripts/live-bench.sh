#!/usr/bin/env bash
# Live-capture benchmark: replay a capture as fast as possible onto one end of a veth pair (in
# its own network namespaces, made here) and measure what `flowaudit sniff` on the other end
# received and dropped, against the rate the sender achieved in the same run.
# Usage (root, feature live built): scripts/live-bench.sh CAPTURE [MBPS|topspeed]...
set -euo pipefail
cap=${1:?capture file}; shift
rates=("${@:-topspeed}")
bin=${BIN:-target/release/flowaudit}
a=fabench-a; b=fabench-b
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add "$a"; ip netns add "$b"
ip link add vA netns "$a" type veth peer name vB netns "$b"
ip -n "$a" link set vA up; ip -n "$b" link set vB up
echo "| sender rate asked | sender achieved (pkt/s) | flowaudit received | dropped (kernel) | dropped (if) |"
echo "|---|---|---|---|---|"
for r in "${rates[@]}"; do
  out=$(mktemp -d)
  ip netns exec "$a" "$bin" sniff -i vA -o "$out" -q -s 128 -B 256M 2>"$out/err" &
  pid=$!
  sleep 1
  if [ "$r" = topspeed ]; then opt=(--topspeed); else opt=(--mbps="$r"); fi
  sent=$(ip netns exec "$b" tcpreplay "${opt[@]}" -i vB "$cap" 2>&1 | awk '/Rated:/ {print $(NF-1); exit}')
  sleep 2
  kill -TERM "$pid"; wait "$pid" || true
  stats=$(grep -o 'received [0-9]* dropped [0-9]* interface-dropped [0-9]*' "$out/capture.txt")
  read -r _ rec _ drop _ ifdrop <<<"$stats"
  echo "| $r | $sent | $rec | $drop | $ifdrop |"
  rm -rf "$out"
done
