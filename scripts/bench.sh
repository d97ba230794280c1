#!/usr/bin/env bash
# Whole-run benchmark of `flowaudit flows` against `cat` (and `tcpdump -r -w` when installed), and of
# `flowaudit audit` with a CIDR inventory (scripts/bench-inventory.csv) against `flows`, on two synthetic
# captures; prints Markdown tables on stdout, progress on stderr.
# See docs/performance.md for the targets and the figures measured so far.
#
#   scripts/bench.sh                 # full size: 1 GiB IMIX file + 10M small packets in 1M flows
#   SCALE=0.1 scripts/bench.sh       # a tenth of the packets and flows (quick check)
#
# Environment:
#   SCALE   fraction of the full size, 0 < SCALE <= 1 (default 1)
#   RUNS    timed runs of each command; the median wall time is reported (default 3)
#   DATA    where the captures go (default bench-data/, git-ignored)
#   KEEP=1  reuse captures already generated with the same size instead of writing them anew
#
# Needs /usr/bin/time (Debian: time). Wall times come from bash's EPOCHREALTIME around each
# command, max RSS from `/usr/bin/time -v`.
#
# Output never goes to `-o /dev/null`: as root, flowaudit's atomic replace-by-rename would swap the
# /dev/null device for a regular file, and tcpdump chowns a -w file to its unprivileged user. Both
# write to stdout instead (`-o -`, `-w -`), which is redirected to /dev/null.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${SCALE:-1}
RUNS=${RUNS:-3}
DATA=${DATA:-bench-data}
KEEP=${KEEP:-0}

die() { echo "bench.sh: $*" >&2; exit 2; }
log() { echo "bench.sh: $*" >&2; }

[ -c /dev/null ] || die "/dev/null is not a character device (something replaced it); as root: mknod -m 666 /dev/null.new c 1 3 && mv -f /dev/null.new /dev/null"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian: apt-get install time)"
awk -v s="$SCALE" 'BEGIN { exit !(s > 0 && s <= 1) }' || die "SCALE must be in (0, 1], got $SCALE"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got $RUNS"

scaled() { awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s + 0.5); if (v < 1) v = 1; print v }'; }

log "building release"
cargo build --release --quiet
mkdir -p "$DATA"
# A private copy: other builds may replace target/release/flowaudit while this runs.
BIN="$DATA/flowaudit"
cp target/release/flowaudit "$BIN.tmp" && mv -f "$BIN.tmp" "$BIN"
# Which code was measured: the source tree changes under a shared checkout, so name it by content.
SRC_ID=$(find src Cargo.toml Cargo.lock -type f | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)

HAVE_TCPDUMP=0
if command -v tcpdump >/dev/null 2>&1; then HAVE_TCPDUMP=1; fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# run_once LABEL CMD...: runs CMD once with stdout to /dev/null; sets WALL (seconds) and RSS_KB.
run_once() {
    local label=$1
    shift
    local t0 t1
    t0=$EPOCHREALTIME
    if ! /usr/bin/time -v -o "$TMP/time" "$@" >/dev/null 2>"$TMP/stderr"; then
        cat "$TMP/stderr" "$TMP/time" >&2
        die "$label failed: $*"
    fi
    t1=$EPOCHREALTIME
    # Something else on a shared machine may replace /dev/null; then every figure is wrong.
    [ -c /dev/null ] || die "/dev/null stopped being a character device during '$label'; results discarded"
    WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    RSS_KB=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TMP/time")
    log "  $label: $WALL s, max RSS $((RSS_KB / 1024)) MiB"
}

med() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
max() { printf '%s\n' "$@" | sort -g | tail -n 1; }

# Rows of the result table, printed at the end.
ROWS=()
AROWS=()
row() { ROWS+=("$(printf '| %s | %s | %s | %s | %s | %s | %s |' "$@")"); }

count() { awk -v n="$1" 'BEGIN { if (n >= 1e6) printf "%gM", n / 1e6; else if (n >= 1e3) printf "%gk", n / 1e3; else print n }'; }
fmt_rate() { awk -v p="$1" -v w="$2" 'BEGIN { printf "%.2f M", p / w / 1e6 }'; }
fmt_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }
fmt_mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
fmt_perflow() { awk -v k="$1" -v f="$2" 'BEGIN { printf "%.0f", k * 1024 / f }'; }

bench_shape() {
    local name=$1 packets=$2 flows=$3
    shift 3
    local file="$DATA/$name-${packets}p-${flows}f.pcap"
    if [ "$KEEP" = 1 ] && [ -s "$file" ]; then
        log "$name: reusing $file"
    else
        log "$name: generating $packets packets in $flows flows ($*) into $file"
        "$BIN" synth --packets "$packets" --flows "$flows" "$@" -o "$file.tmp" 2>"$TMP/synth"
        mv -f "$file.tmp" "$file"
    fi
    local size
    size=$(stat -c %s "$file")
    log "$name: $(awk -v s="$size" 'BEGIN { printf "%.2f GiB", s / 2^30 }'), warming the page cache"
    cat "$file" >/dev/null
    cat "$file" >/dev/null

    # Interleave the commands run by run, so that load from other jobs on the machine spreads
    # over all of them alike; each command's median wall time and largest RSS are reported.
    local c_w=() c_r=() f_w=() f_r=() j_w=() j_r=() t_w=() t_r=() a_w=() a_r=() k
    for ((k = 1; k <= RUNS; k++)); do
        run_once "cat, run $k" cat "$file"
        c_w+=("$WALL") c_r+=("$RSS_KB")
        run_once "flowaudit, run $k" "$BIN" flows "$file" -o - -q
        f_w+=("$WALL") f_r+=("$RSS_KB")
        run_once "flowaudit -j1, run $k" "$BIN" flows "$file" -o - -q --threads 1
        j_w+=("$WALL") j_r+=("$RSS_KB")
        if [ "$HAVE_TCPDUMP" = 1 ]; then
            run_once "tcpdump, run $k" tcpdump -r "$file" -w -
            t_w+=("$WALL") t_r+=("$RSS_KB")
        fi
        rm -rf "$TMP/audit"
        run_once "flowaudit audit, run $k" "$BIN" audit "$file" -I scripts/bench-inventory.csv -o "$TMP/audit" -q
        a_w+=("$WALL") a_r+=("$RSS_KB")
    done
    local au_w au_r rep_kb findings
    au_w=$(med "${a_w[@]}")
    au_r=$(max "${a_r[@]}")
    rep_kb=$(du -sk "$TMP/audit" | cut -f1)
    findings=$(($(wc -l <"$TMP/audit/findings.csv") - 1))
    local cat_w fa_w fa_r fa1_w fa1_r td_w td_r
    cat_w=$(med "${c_w[@]}")
    fa_w=$(med "${f_w[@]}")
    fa_r=$(max "${f_r[@]}")
    fa1_w=$(med "${j_w[@]}")
    fa1_r=$(max "${j_r[@]}")

    local shape
    shape="$name: $(count "$packets") pkts, $(count "$flows") flows, $(awk -v s="$size" 'BEGIN { printf "%.2f GiB", s / 2^30 }')"
    row "$shape" "cat" "$cat_w" "$(fmt_rate "$packets" "$cat_w")" "1.0x" "$(fmt_mib "$(max "${c_r[@]}")")" "-"
    if [ "$HAVE_TCPDUMP" = 1 ]; then
        td_w=$(med "${t_w[@]}")
        td_r=$(max "${t_r[@]}")
        row "$shape" "tcpdump -r -w" "$td_w" "$(fmt_rate "$packets" "$td_w")" "$(fmt_ratio "$td_w" "$cat_w")" "$(fmt_mib "$td_r")" "-"
    fi
    row "$shape" "flowaudit flows" "$fa_w" "$(fmt_rate "$packets" "$fa_w")" "$(fmt_ratio "$fa_w" "$cat_w")" "$(fmt_mib "$fa_r")" "$(fmt_perflow "$fa_r" "$flows")"
    row "$shape" "flowaudit flows -j1" "$fa1_w" "$(fmt_rate "$packets" "$fa1_w")" "$(fmt_ratio "$fa1_w" "$cat_w")" "$(fmt_mib "$fa1_r")" "$(fmt_perflow "$fa1_r" "$flows")"
    row "$shape" "flowaudit audit" "$au_w" "$(fmt_rate "$packets" "$au_w")" "$(fmt_ratio "$au_w" "$cat_w")" "$(fmt_mib "$au_r")" "$(fmt_perflow "$au_r" "$flows")"
    AROWS+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$shape" \
        "$(fmt_ratio "$au_w" "$fa_w")" "$(fmt_ratio "$au_r" "$fa_r")" \
        "$(awk -v k="$rep_kb" 'BEGIN { printf "%.1f MiB", k / 1024 }')" \
        "$(awk -v k="$rep_kb" -v s="$size" 'BEGIN { printf "%.3f", k * 1024 / s }')" \
        "$findings" "$au_w" "$fa_w" "$(fmt_mib "$au_r") / $(fmt_mib "$fa_r")")")
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')

bench_shape imix "$(scaled 3600000)" "$(scaled 200000)"
bench_shape small "$(scaled 10000000)" "$(scaled 1000000)" --small

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)

echo "flowaudit scripts/bench.sh, $STARTED; SCALE=$SCALE, RUNS=$RUNS (median wall time);"
echo "$(nproc) cores ($CPU), load average before $LOAD_BEFORE, after $LOAD_AFTER;"
echo "source fingerprint $SRC_ID (sha256 of src/, Cargo.toml, Cargo.lock), tcpdump: $([ "$HAVE_TCPDUMP" = 1 ] && echo yes || echo no)."
echo
echo "| capture | command | wall s | packets/s | ratio to cat | max RSS | bytes/flow |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Audit with the CIDR inventory (scripts/bench-inventory.csv) against flows on the same file, same runs:"
echo
echo "| capture | audit/flows wall | audit/flows max RSS | report dir | report/capture | findings rows | audit s | flows s | RSS audit / flows |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${AROWS[@]}"
