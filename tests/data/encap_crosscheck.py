#!/usr/bin/env python3
# Cross-check of tests/encapsulations.rs against tshark, run by hand (not by CI):
#   python3 tests/data/encap_crosscheck.py OUTDIR
#   for f in OUTDIR/*.pcap; do
#     tshark -r $f -T fields -e frame.len -e ip.src -e ip.dst -e tcp.srcport -e tcp.dstport -e tcp.flags.str
#     flowaudit flows -q $f -o -
#   done
# Each capture holds the tests' SYN 10.0.0.9:50000 -> 10.0.0.2:443 and its SYN-ACK inside one
# wrapping (ERSPAN II, ERSPAN III, PPPoE in QinQ, Frame Relay SNAP, 802.11 behind radiotap,
# 802.1ah PBB, TZSP), built with the same bytes as the Rust tests. On 2026-11-30 (tshark 4.x,
# Debian) tshark decoded the inner addresses, ports and flags of all 14 frames as flowaudit did,
# and the frame lengths equal the tests' byte counts (108, 108, 70, 50, 80, 76, 101).
import os
import sys
import struct
def csum(b):
    s=0
    for i in range(0,len(b),2):
        s+= (b[i]<<8) + (b[i+1] if i+1<len(b) else 0)
    while s>0xffff: s=(s&0xffff)+(s>>16)
    return (~s)&0xffff
def ip4(src,dst,proto,payload):
    h=bytearray(struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(payload),1,0,64,proto,0,bytes(src),bytes(dst)))
    h[10:12]=struct.pack('!H',csum(h)); return bytes(h)+payload
def tcp(sp,dp,flags): return struct.pack('!HHIIBBHHH',sp,dp,0,0,0x50,flags,65535,0,0)
C=[10,0,0,9]; S=[10,0,0,2]
syn=ip4(C,S,6,tcp(50000,443,2)); synack=ip4(S,C,6,tcp(443,50000,0x12))
MACS=bytes([2,0,0,0,0,2,2,0,0,0,0,1])
def eth(ip,et=0x0800): return MACS+struct.pack('!H',et)+ip
def pcap(name,link,frames):
    with open(name,'wb') as f:
        f.write(struct.pack('<IHHiIII',0xa1b2c3d4,2,4,0,0,262144,link))
        for i,fr in enumerate(frames):
            f.write(struct.pack('<IIII',1700000000,i*1000,len(fr),len(fr))); f.write(fr)
def gre(sw,col,hdr,body): return MACS+b'\x81\x00\x03\xe7\x08\x00'+ip4(sw,col,47,hdr+body)
SW=[10,9,9,1]; CO=[10,9,9,2]
def erspan2(ip): return gre(SW,CO,bytes([0x10,0,0x88,0xbe,0,0,0,1]),bytes([0x10,0,0,7,0,0,0,0])+eth(ip))
def erspan3(ip): return gre(SW,CO,bytes([0,0,0x22,0xeb]),bytes([0x20,0,0,9,0,0,0,0,0,0,0,0])+eth(ip))
def pppoe(ip): return bytes([0x11,0,0,0x42])+struct.pack('!H',len(ip)+2)+b'\x00\x21'+ip
def qinq_pppoe(ip): return MACS+bytes([0x88,0xa8,0,100,0x81,0,0,7,0x88,0x64])+pppoe(ip)
def fr(ip): return bytes([0x18,0x41,0x03,0x00,0x80,0,0,0,0x08,0x00])+ip
def wlan(ip): return bytes([0,0,8,0,0,0,0,0, 0x08,0x01,0,0])+bytes([2,0,0,0,0,1,2,0,0,0,0,9,2,0,0,0,0,2,0x10,0])+bytes([0xaa,0xaa,3,0,0,0,8,0])+ip
def pbb(ip): return MACS+bytes([0x88,0xa8,0,200,0x88,0xe7,0,1,0,1])+MACS+b'\x08\x00'+ip
def tzsp(ip):
    body=bytes([1,0,0,1,1])+eth(ip)
    udp=struct.pack('!HHHH',40000,37008,8+len(body),0)+body
    return MACS+b'\x08\x00'+ip4(SW,CO,17,udp)
for name,link,w in [('erspan2',1,erspan2),('erspan3',1,erspan3),('qinq_pppoe',1,qinq_pppoe),('fr',107,fr),('radiotap',127,wlan),('pbb',1,pbb),('tzsp',1,tzsp)]:
    pcap(os.path.join(sys.argv[1], name+'.pcap'),link,[w(syn),w(synack)])
