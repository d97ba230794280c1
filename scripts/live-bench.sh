#!/usr/bin/env bash
# Live-capture benchmark: replay a capture as fast as possible, or at a series of rates, onto one
# end of a veth pair (in its own network namespaces, made here) and measure what `flowaudit sniff`
# on the other end received, processed and dropped, against the rate the sender achieved in the
# same run. One Markdown table row per rate (and per repetition) on stdout.
#
# Usage (root; flowaudit built with --features live, and the blast example built):
#   cargo build --release --features live --examples --bin flowaudit
#   scripts/live-bench.sh CAPTURE [RATE|topspeed]...
#   scripts/live-bench.sh bench-data/small.pcap topspeed 200000 400000 600000 800000 1000000
#
# RATE is packets/s with SENDER=blast (the default: examples/blast.rs, a PACKET_TX_RING sender)
# and Mbit/s with SENDER=tcpreplay (one tcpreplay process; tops out near 200k packets/s here).
#
# Environment:
#   BIN         flowaudit binary (target/release/flowaudit)
#   BLAST       blast binary (the examples directory next to BIN)
#   BLAST_OPTS  extra blast options, e.g. "--mode sendmmsg" or "--batch 2048"
#   SNIFF_OPTS  extra flowaudit sniff options, e.g. "--threads 1"
#   SENDER      blast | tcpreplay (blast)
#   DURATION    blast: send for this many seconds per rate, looping the file (20). Long enough
#               that the capture buffer cannot hide a deficit for long: -B 256M holds about 2 M
#               minimum-size frames at -s 128, two seconds at 1 M packets/s.
#   LOOPS       tcpreplay: --loop value (1)
#   BUFFER      flowaudit -B (256M)
#   REPEAT      rows per rate (1)
#   SETTLE      seconds between the end of the sender and stopping flowaudit (3)
#   PIN         1: pin flowaudit to SNIFF_CPU (0) and the sender to SEND_CPU (1) (default 1)
#   RPS         1: steer vA's receive processing to SNIFF_CPU (receive packet steering; off)
#   NAPI        1: vA receives through a threaded NAPI poller pinned to SNIFF_CPU (off; needs
#               ethtool). veth then queues frames in a ring and refuses new ones while it is
#               full: the sender is slowed down (its retries) instead of frames being dropped.
#   KEEP        1: keep each run's flowaudit output directory (flows.csv, capture.txt)
#
# Where the work runs. On a veth pair the frame crosses the pair inside the sender's send(2), and
# the softirq that takes it from the receive backlog to flowaudit's packet socket (the copy into
# libpcap's ring) runs on the CPU that sent it. By default, then, the sender's CPU carries the
# sender and the kernel's capture work, and flowaudit's own threads (libpcap reader, engine) run
# alone on the other core. Pinning keeps it that way: on 2 cores, unpinned flowaudit threads would
# take time from the sender (lowering the offered rate instead of showing up as drops), and runs
# would vary with the scheduler's placement. PIN=0 lets the scheduler mix them.
# RPS=1 moves the receiving half of the kernel work onto flowaudit's CPU instead, as on a real
# capture host, where the NIC's receive processing runs on the capturing machine: the sender's CPU
# then only sends (so it offers more), and flowaudit shares its core with the kernel's capture
# work, so that core can saturate and drops can be seen.
#
# Columns: "sent" and "achieved" are the sender's own figures (frames the kernel accepted, over
# the sender's run time); "received" and the drop counts are libpcap's (pcap_stats: received
# includes what the kernel dropped); "processed" is what flowaudit's engine counted (the
# summary's packets) when it was stopped SETTLE seconds after the sender finished: below
# received minus dropped, flowaudit was still working through its buffer. "sender retries": sends
# the kernel refused for lack of room (with RPS: the receiving CPU's backlog was full), sent again.
# "flowaudit CPU µs/packet": user + system time of all flowaudit threads over processed packets
# (with RPS this includes softirq work that interrupted flowaudit). "busy %": each CPU while the
# sender ran, whoever used it.
set -euo pipefail
cap=${1:?capture file}; shift
rates=("${@:-topspeed}")
bin=${BIN:-target/release/flowaudit}
blast=${BLAST:-$(dirname "$bin")/examples/blast}
sender=${SENDER:-blast}
duration=${DURATION:-20}
loops=${LOOPS:-1}
buffer=${BUFFER:-256M}
repeat=${REPEAT:-1}
settle=${SETTLE:-3}
pin=${PIN:-1}
sniff_cpu=${SNIFF_CPU:-0}
send_cpu=${SEND_CPU:-1}
case $sender in
  blast) [ -x "$blast" ] || { echo "no blast binary at $blast (cargo build --release --examples)" >&2; exit 1; } ;;
  tcpreplay) command -v tcpreplay >/dev/null || { echo "tcpreplay is not installed" >&2; exit 1; } ;;
  *) echo "SENDER must be blast or tcpreplay" >&2; exit 1 ;;
esac
if [ "${NAPI:-0}" = 1 ] && ! command -v ethtool >/dev/null; then
  echo "NAPI=1 needs ethtool (apt-get install -y ethtool)" >&2; exit 1
fi
sniff_pin=(); send_pin=()
if [ "$pin" = 1 ]; then sniff_pin=(taskset -c "$sniff_cpu"); send_pin=(taskset -c "$send_cpu"); fi

# Two runs at once would share (and delete) each other's namespaces and CPUs.
exec 9>/run/flowaudit-live-bench.lock
flock -n 9 || { echo "another live-bench.sh is running" >&2; exit 1; }
a=fabench-a; b=fabench-b
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add "$a"; ip netns add "$b"
# No IPv6 on the pair: otherwise neighbour discovery adds a few frames nobody sent.
for ns in "$a" "$b"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
# One queue each way: with the default (one per CPU) every frame is hashed to pick a queue.
ip link add vA netns "$a" numtxqueues 1 numrxqueues 1 type veth peer name vB netns "$b" numtxqueues 1 numrxqueues 1
ip -n "$a" link set vA up; ip -n "$b" link set vB up
if [ "${NAPI:-0}" = 1 ]; then
  # GRO on makes veth receive through NAPI; threaded NAPI runs that in a kernel thread of its own,
  # which is then pinned to flowaudit's CPU.
  # veth takes the NAPI path only for frames from a peer without TSO, and only once GRO has been
  # switched on explicitly (it is on by default, but without NAPI).
  ip netns exec "$b" ethtool -K vB tso off >/dev/null
  ip netns exec "$a" ethtool -K vA gro off >/dev/null
  ip netns exec "$a" ethtool -K vA gro on >/dev/null
  ip netns exec "$a" sh -c 'echo 1 > /sys/class/net/vA/threaded'
  for t in $(pgrep '^napi/vA'); do taskset -pc "$sniff_cpu" "$t" >/dev/null; done
fi
if [ "${RPS:-0}" = 1 ]; then
  ip netns exec "$a" sh -c "printf %x $((1 << sniff_cpu)) > /sys/class/net/vA/queues/rx-0/rps_cpus"
fi

# Busy and total jiffies per CPU ("cpu0 busy total cpu1 busy total ..."), from /proc/stat.
cpu_ticks() { awk '/^cpu[0-9]/ {t = 0; for (i = 2; i <= NF; i++) t += $i; printf "%s %d %d ", $1, t - $5 - $6, t}' /proc/stat; }
# Busy share of each CPU between two cpu_ticks snapshots, e.g. "97/64".
cpu_busy() {
  awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " ");
    for (i = 1; i <= n; i += 3) { t = y[i+2] - x[i+2]; printf "%s%.0f", (i > 1 ? "/" : ""), t ? 100 * (y[i+1] - x[i+1]) / t : 0 } }'
}
echo "$(date -u '+%F %T UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, sender $sender, PIN=$pin RPS=${RPS:-0}, capture $cap" >&2
echo "| sender | rate asked | sent | achieved (packets/s) | flowaudit received | processed | dropped (kernel) | dropped (interface) | sender retries | flowaudit CPU µs/packet | busy % per CPU |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for r in "${rates[@]}"; do
  for _ in $(seq "$repeat"); do
    out=$(mktemp -d)
    # shellcheck disable=SC2086 # SNIFF_OPTS is split into words on purpose
    ip netns exec "$a" "${sniff_pin[@]}" "$bin" sniff -i vA -o "$out" -q -s 128 -B "$buffer" ${SNIFF_OPTS:-} 2>"$out/err" &
    pid=$!
    for _ in $(seq 50); do grep -q 'listening on' "$out/err" 2>/dev/null && break; sleep 0.1; done
    before=$(cpu_ticks)
    if [ "$sender" = blast ]; then
      # shellcheck disable=SC2206 # BLAST_OPTS is split into words on purpose
      opt=(--loops 0 --seconds "$duration" ${BLAST_OPTS:-})
      [ "$r" = topspeed ] || opt+=(--pps "$r")
      res=$(ip netns exec "$b" "${send_pin[@]}" "$blast" -i vB "${opt[@]}" "$cap" 2>"$out/send-err")
      read -r sent achieved < <(awk '/^sent / {print $2, $7}' <<<"$res")
      retries=$(awk '/^retries / {print $2}' <<<"$res")
    else
      if [ "$r" = topspeed ]; then opt=(--topspeed); else opt=(--mbps="$r"); fi
      res=$(ip netns exec "$b" "${send_pin[@]}" tcpreplay "${opt[@]}" --loop="$loops" -i vB "$cap" 2>&1)
      sent=$(awk '/Successful packets:/ {print $3; exit}' <<<"$res")
      achieved=$(awk '/Rated:/ {print $(NF-1); exit}' <<<"$res")
      retries=$(awk '/Retried packets \(ENOBUFS\):/ {print $4; exit}' <<<"$res")
    fi
    busy=$(cpu_busy "$before" "$(cpu_ticks)")
    sleep "$settle"
    # utime + stime of the whole flowaudit process (all threads), in clock ticks.
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill -TERM "$pid"; wait "$pid" || true
    stats=$(grep -o 'received [0-9]* dropped [0-9]* interface-dropped [0-9]*' "$out/capture.txt")
    read -r _ rec _ drop _ ifdrop <<<"$stats"
    processed=$(awk '/^packets:/ {print $2; exit}' "$out/capture.txt")
    us=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$processed" 'BEGIN { printf "%.2f", n ? t / hz * 1e6 / n : 0 }')
    echo "| $sender | $r | ${sent:-?} | ${achieved:-?} | $rec | $processed | $drop | $ifdrop | ${retries:-?} | $us | $busy |"
    if [ "${KEEP:-0}" = 1 ]; then echo "flowaudit output of rate $r kept in $out" >&2; else rm -rf "$out"; fi
  done
done
