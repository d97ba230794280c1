#!/bin/sh
# Throughput of flow-record input: records per second for a Zeek conn.log and an IPFIX file,
# next to `flowaudit flows` on the capture they describe (the same traffic).
#
# 1. `flowaudit synth` writes a capture; `flowaudit flows` reads it (packets/s, the baseline).
# 2. Its flows.csv is turned into a conn.log (one TSV row per flow) and an IPFIX file (one
#    unidirectional record per direction that sent packets) by the Python below.
# 3. `flowaudit flows --flows` reads each (records/s).
#
# Usage: scripts/flowinput-bench.sh [FLOWS] [PACKETS]   (default 200000 flows, 2000000 packets)
# Needs: cargo, python3. Runs in a temporary directory, removed at the end.
#
# Measured (2 cores shared with other builds, release build, 100000 flows / 1000000 packets):
#   capture     1000000 packets   1.58 s    634325 /s
#   conn.log      99999 records   1.67 s     59886 /s
#   ipfix        199998 records   1.71 s    117185 /s
set -eu
flows=${1:-200000}
packets=${2:-2000000}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --manifest-path "$root/Cargo.toml" >/dev/null 2>&1
bin="$root/target/release/flowaudit"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" synth --packets "$packets" --flows "$flows" -o "$tmp/cap.pcap" 2>/dev/null
"$bin" flows -q "$tmp/cap.pcap" -o "$tmp/flows.csv"
python3 - "$tmp/flows.csv" "$tmp/conn.log" "$tmp/flows.ipfix" <<'PY'
import csv, ipaddress, struct, sys
src, conn, ipfix = sys.argv[1:4]
rows = list(csv.DictReader(open(src)))
with open(conn, "w") as z:
    z.write("#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\tconn_state\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\n")
    for i, r in enumerate(rows):
        dur = float(r["last_seen"]) - float(r["first_seen"])
        hist = "ShADadFf" if r["proto"] == "tcp" else "Dd"
        z.write("\t".join([r["first_seen"][:-3], "C%d" % i, r["client_addr"], r["client_port"] or "0",
                           r["server_addr"], r["server_port"] or "0", r["proto"], "-", "%.6f" % dur,
                           r["conn_state"], hist, r["client_packets"], r["client_bytes"],
                           r["server_packets"], r["server_bytes"]]) + "\n")
# IPFIX: template 256 (src4, dst4, sport, dport, proto, flags, packets, bytes, start ms, end ms).
fields = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (2, 8), (1, 8), (152, 8), (153, 8)]
tmpl = struct.pack("!HH", 256, len(fields)) + b"".join(struct.pack("!HH", *f) for f in fields)
protos = {"tcp": 6, "udp": 17, "icmp": 1}
recs = []
for r in rows:
    if ":" in r["client_addr"] or r["proto"] not in protos:
        continue
    s, e = int(float(r["first_seen"]) * 1000), int(float(r["last_seen"]) * 1000)
    for a, ap, b, bp, n, by in [(r["client_addr"], r["client_port"], r["server_addr"], r["server_port"], r["client_packets"], r["client_bytes"]),
                                (r["server_addr"], r["server_port"], r["client_addr"], r["client_port"], r["server_packets"], r["server_bytes"])]:
        if int(n) == 0:
            continue
        recs.append(ipaddress.IPv4Address(a).packed + ipaddress.IPv4Address(b).packed +
                    struct.pack("!HHBBQQQQ", int(ap or 0), int(bp or 0), protos[r["proto"]], 0x1b if r["proto"] == "tcp" else 0,
                                int(n), int(by), s, e))
with open(ipfix, "wb") as f:
    seq = 0
    for i in range(0, len(recs), 20):
        chunk = recs[i:i + 20]
        sets = struct.pack("!HH", 2, 4 + len(tmpl)) + tmpl if i == 0 else b""
        data = b"".join(chunk)
        sets += struct.pack("!HH", 256, 4 + len(data)) + data
        f.write(struct.pack("!HHIII", 10, 16 + len(sets), 1700000000, seq, 1) + sets)
        seq += len(chunk)
open(ipfix + ".count", "w").write("%d\n" % len(recs))
PY
run() {
    label=$1
    shift
    start=$(date +%s.%N)
    "$bin" flows -q "$@" -o /dev/null
    end=$(date +%s.%N)
    echo "$label $start $end"
}
{
    run capture "$tmp/cap.pcap"
    run conn.log --flows "$tmp/conn.log"
    run ipfix --flows "$tmp/flows.ipfix"
} | while read -r label start end; do
    case $label in
    capture) n=$packets unit="packets" ;;
    conn.log) n=$(grep -vc '^#' "$tmp/conn.log") unit="records" ;;
    ipfix) n=$(cat "$tmp/flows.ipfix.count") unit="records" ;;
    esac
    python3 -c "s=$end-$start; print('%-9s %9d %-18s %7.2f s  %10.0f /s' % ('$label', $n, '$unit', s, $n/s))"
done
