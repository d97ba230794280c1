#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds from ../shared/pcaps, fixtures/ and catalogs/ (and the
# waiver examples of docs/diff.md). Corpora are never committed (.gitignore): run this before
# fuzzing, on any machine. Idempotent; existing corpus files (what earlier runs found) are kept.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=..
PCAPS=${PCAPS:-$ROOT/../shared/pcaps}
C=corpus
mkdir -p $C/capture_reader $C/gzip_reader $C/decode $C/catalog_parse $C/inventory_parse $C/waiver_parse $C/names

captures=()
[ -d "$PCAPS" ] && for f in "$PCAPS"/*.pcap "$PCAPS"/*.pcapng; do [ -f "$f" ] && captures+=("$f"); done
for f in "$ROOT"/fixtures/demo/*.pcap; do [ -f "$f" ] && captures+=("$f"); done
[ ${#captures[@]} -gt 0 ] || { echo "seed.sh: no captures found (PCAPS=$PCAPS)" >&2; exit 1; }

python3 - "$C" "${captures[@]}" <<'PY'
import os, struct, sys, hashlib
out, files = sys.argv[1], sys.argv[2:]
# Inputs bigger than this only slow libFuzzer down: keep a prefix (the readers stop at a cut).
MAX = 64 * 1024
# decode seeds: byte 0 = index into the decode target's LINKS table, byte 1 = options.
LINK_INDEX = {1: 0, 101: 1, 228: 2, 229: 3, 12: 4, 14: 5, 0: 6, 108: 7, 113: 8, 276: 9, 239: 10}

def put(target, data):
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)

def pcap_frames(b):
    """(link, frame) of a classic pcap's records, either byte order, modified variant too."""
    magic = b[:4]
    for endian in "<>":
        m = struct.unpack(endian + "I", magic)[0]
        if m in (0xa1b2c3d4, 0xa1b23c4d, 0xa1b2cd34):
            break
    else:
        return
    hdr = 24 if m == 0xa1b2cd34 else 16
    link = struct.unpack(endian + "I", b[20:24])[0] & 0xffff
    off = 24
    while off + hdr <= len(b):
        caplen = struct.unpack(endian + "I", b[off + 8:off + 12])[0]
        off += hdr
        if caplen > len(b) - off:
            return
        yield link, b[off:off + caplen]
        off += caplen

def pcapng_frames(b):
    """(link, frame) of EPBs in a pcapng (first section's byte order is enough for seeds)."""
    off, links, endian = 0, [], "<"
    while off + 12 <= len(b):
        t = struct.unpack("<I", b[off:off + 4])[0]
        if t == 0x0a0d0d0a:
            endian = "<" if b[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        else:
            t = struct.unpack(endian + "I", b[off:off + 4])[0]
        ln = struct.unpack(endian + "I", b[off + 4:off + 8])[0]
        if ln < 12 or off + ln > len(b):
            return
        body = b[off + 8:off + ln - 4]
        if t == 1 and len(body) >= 2:
            links.append(struct.unpack(endian + "H", body[:2])[0])
        elif t == 6 and len(body) >= 20:
            iface, _, _, cap = struct.unpack(endian + "IIII", body[:16])
            if iface < len(links):
                yield links[iface], body[20:20 + cap]
        off += ln

def payloads(link, frame):
    """(proto, sport, payload) of an Ethernet (802.1Q too) or raw IPv4 frame, if any."""
    if link == 1:
        off, et = 14, frame[12:14]
        while et == b"\x81\x00" and len(frame) >= off + 4:
            et, off = frame[off + 2:off + 4], off + 4
        if et != b"\x08\x00":
            return None
        ip = frame[off:]
    elif link in (101, 228, 12, 14):
        ip = frame
    else:
        return None
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    ihl = (ip[0] & 15) * 4
    proto, t = ip[9], ip[ihl:]
    if proto == 17 and len(t) >= 8:
        return 17, struct.unpack(">H", t[:2])[0], t[8:]
    if proto == 6 and len(t) >= 20:
        return 6, struct.unpack(">H", t[:2])[0], t[(t[12] >> 4) * 4:]
    return None

for path in files:
    b = open(path, "rb").read()
    put("capture_reader", b[:MAX])
    put("gzip_reader", b"\x00\x00" + b[:MAX])  # mode 0: compressed by the target, not cut
    frames = pcapng_frames(b) if b[:4] == b"\x0a\x0d\x0d\x0a" else pcap_frames(b)
    seen = 0
    for link, frame in frames:
        pl = payloads(link, frame)
        if pl and pl[0] == 17 and pl[1] == 53 and pl[2]:
            put("names", b"\x00" + pl[2])  # DNS response
        if pl and pl[0] == 6 and pl[2][:2] == b"\x16\x03":
            put("names", b"\x01" + pl[2])  # TLS handshake (ClientHello)
        if link in LINK_INDEX and seen < 40:
            put("decode", bytes([LINK_INDEX[link], 0]) + frame)
            put("decode", bytes([LINK_INDEX[link], 1]) + frame)  # --decap
            seen += 1
PY

cp "$ROOT"/catalogs/*.csv $C/catalog_parse/
cp "$ROOT"/fixtures/demo/hosts.csv $C/inventory_parse/
printf 'address,roles,name\n10.0.0.0/8,backup-server,net\n::ffff:10.1.0.0/112,backup-proxy,mapped\n2001:db8::/32,backup-repository,v6\n' > $C/inventory_parse/blocks.csv
# The waiver example of docs/diff.md.
awk '/^client,server,proto,ports,reason,owner,expires/{on=1} on&&/^```/{exit} on' "$ROOT"/docs/diff.md > $C/waiver_parse/diff-md-example.csv
printf 'client,server,proto,ports,reason,owner,expires\n# comment\n*,*,*,*,all,me,2030-12-31\nrole:backup-proxy,::1,icmp,*,"multi\nline",x,2024-02-29\n' > $C/waiver_parse/mixed.csv
for t in $C/*; do echo "$(ls "$t" | wc -l) seeds in $t"; done
