#!/usr/bin/env python3
# Usage: scripts/synflood.py N OUT.pcap  (docs/performance.md, "Memory": N = 10,000,000 is a 760 MB file)
# 10M distinct TCP SYNs (one packet per flow): 10.a.b.c:(1024+i%60000) -> 192.0.2.1:443, 1 us apart.
import struct, sys
n = int(sys.argv[1]); out = open(sys.argv[2], 'wb', buffering=1 << 22)
out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
eth = bytes.fromhex('020000000002020000000001') + b'\x08\x00'
def csum(h):
    s = sum(struct.unpack('>10H', h)); s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
buf = []
for i in range(n):
    src = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 40, 0, 0, 64, 6, 0, src, b'\xc0\x00\x02\x01')
    ip = ip[:10] + struct.pack('>H', csum(ip)) + ip[12:]
    tcp = struct.pack('>HHIIBBHHH', 1024 + i % 60000, 443, 1, 0, 0x50, 0x02, 65535, 0, 0)
    fr = eth + ip + tcp + bytes(6)
    t = 1700000000 * 1000000 + i
    buf.append(struct.pack('<IIII', t // 1000000, t % 1000000, 60, 60) + fr)
    if len(buf) == 100000:
        out.write(b''.join(buf)); buf = []
out.write(b''.join(buf)); out.close()
