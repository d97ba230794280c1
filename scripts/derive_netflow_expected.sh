#!/bin/sh
# Derives tests/data/netflow_expected.csv's tshark columns from ../shared/flowlogs/netflow with
# tshark (4.0.17 here): records = occurrences of cflow.protocol (every flow record has one,
# options records do not), tcp = those equal to 6. Non-standard collector ports are decoded as
# cflow like the MANIFEST says. Usage: scripts/derive_netflow_expected.sh [DIR]
set -eu
dir=${1:-../shared/flowlogs/netflow}
echo "file,tshark_records,tshark_tcp"
for path in "$dir"/*; do
    f=$(basename "$path")
    case $f in
    pmacct-100* | pmacct-101*) d="-d udp.port==9991,cflow" ;;
    pmacct-104*) d="-d udp.port==9992,cflow" ;;
    ndpi-netflowv9*) d="-d udp.port==2057,cflow" ;;
    *) d="" ;;
    esac
    # shellcheck disable=SC2086
    protos=$(tshark -r "$path" $d -T fields -e cflow.protocol 2>/dev/null | tr ',' '\n' | grep . || true)
    n=$(printf '%s\n' "$protos" | grep -c . || true)
    t=$(printf '%s\n' "$protos" | grep -cx 6 || true)
    echo "$f,$n,$t"
done
