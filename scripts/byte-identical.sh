#!/usr/bin/env bash
# Prove that two flowaudit binaries give byte-identical output (for refactors and file moves).
#
# Usage: scripts/byte-identical.sh OLD_BINARY NEW_BINARY [PCAP_DIR] [FLOWLOG_DIR]
#   PCAP_DIR    default ../shared/pcaps (every *.pcap / *.pcapng in it)
#   FLOWLOG_DIR default ../shared/flowlogs (zeek/*.conn.log, netflow/*)
#
# Runs the same commands with both binaries in scratch directories and compares every output
# file (cmp), every exit code and every stderr (with the scratch directory name replaced):
#   flows CAPTURE (also with --decap, --no-mmap and gzipped) for each capture and the demo;
#   audit CAPTURE -I fixtures/demo/hosts.csv for each capture (all report files);
#   the demo audit with --waivers (a waivers file written here) and --format jsonl;
#   flows --flows and audit --flows for each Zeek conn.log and NetFlow/IPFIX file;
#   policy for every --format from the demo report; firewall (and audit --firewall) with an
#   iptables-save ruleset and an ipset file written here, with and without --firewall-iface;
#   catalog list, roles, lint and show for every built-in rule id.
# No report file holds the tool version or run time, so no output file is excluded; on stderr the
# run time of the packet summary line ("in 0.012 s (...)") is masked.
# Prints one line per difference and a count; exits 1 if any differ.
set -u
old=${1:?usage: $0 OLD_BINARY NEW_BINARY [PCAP_DIR] [FLOWLOG_DIR]}
new=${2:?usage: $0 OLD_BINARY NEW_BINARY [PCAP_DIR] [FLOWLOG_DIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
pcaps=${3:-$root/../shared/pcaps}
flowlogs=${4:-$root/../shared/flowlogs}
demo=$root/fixtures/demo
scratch=$(mktemp -d)
# KEEP=1 keeps the outputs (and says where) to look at them.
if [ -n "${KEEP:-}" ]; then echo "outputs in $scratch"; else trap 'rm -rf "$scratch"' EXIT; fi

cat >"$scratch/waivers.csv" <<'W'
client,server,proto,ports,reason,owner,expires
role:backup-proxy,role:backup-repository,tcp,3306,catalog replica,alice,2026-02-01
10.1.0.10,10.1.0.20/32,tcp,6160-6161,installer port closed,bob,2099-01-10
role:backup-server,*,tcp,445,push installs,carol,2099-12-31
W

# An iptables-save ruleset and ipset save file using most of the syntax the firewall check reads.
cat >"$scratch/rules.v4" <<'R'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:BACKUP - [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i eth+ -j BACKUP
-A BACKUP -s 10.1.0.10/32 -d 10.1.0.0/24 -p tcp -m multiport --dports 445,6160:6162,2500:3300 -m comment --comment "veeam" -j ACCEPT
-A BACKUP -m set --match-set repos dst -p tcp --dport 10006 -j ACCEPT
-A BACKUP -m iprange --src-range 10.1.0.1-10.1.0.50 -p udp --dport 53 -j ACCEPT
-A BACKUP -p tcp --syn -m limit --limit 5/s -j LOG --log-prefix "x "
-A BACKUP ! -s 10.1.0.0/16 -p icmp -j DROP
-A BACKUP -m set --match-set pairs src,dst -j DROP
-A BACKUP -p tcp -m tcp --sport 1024:65535 --dport 3306 -c 10 2000 -j REJECT --reject-with tcp-reset
-A BACKUP -p tcp -d 10.1.0.20,10.1.0.30 -g ALLOWED
-A BACKUP -p tcp -j ACCEPT
COMMIT
R
cat >"$scratch/ipsets.save" <<'R'
create repos hash:ip family inet hashsize 1024 maxelem 65536
add repos 10.1.0.30
R

mkdir "$scratch/gz"
for c in "$pcaps"/*.pcap "$pcaps"/*.pcapng "$demo/backup-window.pcap"; do
    [ -f "$c" ] && gzip -c "$c" >"$scratch/gz/$(basename "$c").gz"
done

# run NAME ARGS...: run the binary ($bin) with ARGS (OUT in them is the case's output path),
# keeping the exit code and the stderr beside the output.
run() {
    local name=$1
    shift
    local out=$dir/$name
    mkdir -p "$out"
    local args=()
    for a in "$@"; do args+=("${a//OUT/$out}"); done
    "$bin" "${args[@]}" >"$out/stdout" 2>"$out/stderr.raw"
    echo $? >"$out/exit"
    # stderr names the scratch directory, which differs between the two runs, and the summary
    # line that capture errors print holds the run time
    sed -e "s#$dir#DIR#g" -e 's/ in [0-9.]* s ([^)]*)/ in TIME/' "$out/stderr.raw" >"$out/stderr"
    rm "$out/stderr.raw"
}

cases() {
    local captures=("$pcaps"/*.pcap "$pcaps"/*.pcapng "$demo/backup-window.pcap")
    for c in "${captures[@]}"; do
        [ -f "$c" ] || continue
        local b
        b=$(basename "$c")
        run "flows-$b" flows "$c" -o OUT/flows.csv -q
        run "flows-decap-$b" flows "$c" --decap -o OUT/flows.csv -q
        # the streaming readers (read calls, gzip) rather than the mapped ones
        run "flows-nommap-$b" flows "$c" --no-mmap -o OUT/flows.csv -q
        run "flows-gz-$b" flows "$scratch/gz/$b.gz" -o OUT/flows.csv -q
        run "audit-$b" audit "$c" -I "$demo/hosts.csv" -o OUT/report -q
    done
    run demo-waivers audit "$demo/backup-window.pcap" -I "$demo/hosts.csv" \
        --waivers "$scratch/waivers.csv" --format jsonl --write-flows -o OUT/report -q
    run demo-by-role audit "$demo/backup-window.pcap" -I "$demo/hosts.csv" --group-by role \
        -o OUT/report -q
    for f in "$flowlogs"/zeek/*.conn.log "$flowlogs"/netflow/*; do
        [ -f "$f" ] || continue
        local b
        b=$(basename "$f")
        run "flowin-$b" flows --flows "$f" -o OUT/flows.csv -q
        run "flowin-audit-$b" audit --flows "$f" -I "$demo/hosts.csv" -o OUT/report -q
    done
    local rep=$dir/audit-backup-window.pcap/report
    for fmt in nftables iptables windows asa csv; do
        run "policy-$fmt" policy "$rep" --format "$fmt" -o OUT/policy
        run "policy-drop-$fmt" policy "$rep" --format "$fmt" --default-drop --include-unused \
            -o OUT/policy
    done
    # firewall writes into the report directory: check copies
    cp -r "$rep" "$dir/fw-report"
    run firewall firewall "$scratch/rules.v4" "$scratch/ipsets.save" "$dir/fw-report"
    cp -r "$rep" "$dir/fw-report-iface"
    run firewall-iface firewall "$scratch/rules.v4" "$scratch/ipsets.save" "$dir/fw-report-iface" \
        --firewall-iface eth0=10.0.0.0/8
    run audit-firewall audit "$demo/backup-window.pcap" -I "$demo/hosts.csv" \
        --firewall "$scratch/rules.v4" --firewall "$scratch/ipsets.save" \
        --firewall-iface eth0=10.0.0.0/8 -o OUT/report -q
    run catalog-list catalog list
    run catalog-roles catalog roles
    run catalog-lint catalog lint
    for id in $("$bin" catalog list | tail -n +2 | cut -d, -f1); do
        run "catalog-show-$id" catalog show "$id"
    done
}

bin=$old dir=$scratch/old cases
bin=$new dir=$scratch/new cases

differ=0
same=0
while IFS= read -r f; do
    if [ ! -f "$scratch/new/$f" ] || ! cmp -s "$scratch/old/$f" "$scratch/new/$f"; then
        echo "DIFFERS: $f"
        differ=$((differ + 1))
    else
        same=$((same + 1))
    fi
done < <(cd "$scratch/old" && find . -type f | sort)
extra=$(comm -13 <(cd "$scratch/old" && find . -type f | sort) <(cd "$scratch/new" && find . -type f | sort))
[ -n "$extra" ] && { echo "only in new: $extra"; differ=$((differ + 1)); }
echo "byte-identical: $same files identical, $differ differ"
[ "$differ" -eq 0 ]
