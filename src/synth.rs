//! A deterministic capture generator: the same arguments always give the same bytes. Used by the
//! benchmarks (large IMIX-like captures), the demo fixture and the tests (frame builders).

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};

use crate::capture::writer::PcapWriter;
use crate::decode::{link, proto, tcp_flags as F};

/// A small, fast, seeded PRNG (xorshift64*); good enough for traffic shapes, and stable forever.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }
}

/// What one frame carries. Build with [`Frame::tcp`] / [`Frame::udp`] and adjust fields.
#[derive(Clone, Debug)]
pub struct Frame {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub flags: u8,
    pub payload: usize,
    /// 802.1Q tags, outermost first.
    pub vlans: Vec<u16>,
}

impl Frame {
    pub fn tcp(
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u8,
        payload: usize,
    ) -> Frame {
        Frame {
            src,
            dst,
            proto: proto::TCP,
            sport,
            dport,
            flags,
            payload,
            vlans: Vec::new(),
        }
    }

    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: usize) -> Frame {
        Frame {
            src,
            dst,
            proto: proto::UDP,
            sport,
            dport,
            flags: 0,
            payload,
            vlans: Vec::new(),
        }
    }

    /// The transport header and payload (zero-filled payload).
    pub fn transport(&self) -> Vec<u8> {
        let mut t = Vec::with_capacity(20 + self.payload);
        match self.proto {
            proto::TCP => {
                t.extend_from_slice(&self.sport.to_be_bytes());
                t.extend_from_slice(&self.dport.to_be_bytes());
                t.extend_from_slice(&[
                    0, 0, 0, 1, 0, 0, 0, 0, 0x50, self.flags, 0xff, 0xff, 0, 0, 0, 0,
                ]);
            }
            proto::UDP => {
                t.extend_from_slice(&self.sport.to_be_bytes());
                t.extend_from_slice(&self.dport.to_be_bytes());
                t.extend_from_slice(&((8 + self.payload) as u16).to_be_bytes());
                t.extend_from_slice(&[0, 0]);
            }
            proto::ICMP | proto::ICMPV6 => {
                // Echo request (type 8 / 128) unless the caller builds its own payload.
                let ty = if self.proto == proto::ICMP { 8 } else { 128 };
                t.extend_from_slice(&[ty, 0, 0, 0, 0, 1, 0, 1]);
            }
            _ => {}
        }
        t.resize(t.len() + self.payload, 0);
        t
    }

    /// The IP packet (IPv4 or IPv6 by address family).
    pub fn ip(&self) -> Vec<u8> {
        ip_packet(self.src, self.dst, self.proto, &self.transport())
    }

    /// The Ethernet frame, with any VLAN tags.
    pub fn ethernet(&self) -> Vec<u8> {
        let ip = self.ip();
        let et: u16 = if self.src.is_ipv4() { 0x0800 } else { 0x86dd };
        ethernet(&self.vlans, et, &ip)
    }
}

/// An IPv4 or IPv6 packet around `payload`.
pub fn ip_packet(src: IpAddr, dst: IpAddr, proto_num: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + payload.len());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + payload.len()) as u16;
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0, 1, 0, 0, 64, proto_num, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let sum = checksum(&p);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            p.extend_from_slice(&[proto_num, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        _ => panic!("ip_packet: mixed address families"),
    }
    p.extend_from_slice(payload);
    p
}

/// An Ethernet II frame with optional 802.1Q tags (outermost first).
pub fn ethernet(vlans: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * vlans.len() + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]);
    for v in vlans {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Shape of a generated capture.
#[derive(Clone, Debug)]
pub struct SynthSpec {
    pub packets: u64,
    /// Flows in the whole capture.
    pub flows: u64,
    /// Flows open at the same time.
    pub concurrent: u64,
    pub seed: u64,
    /// Frame sizes: IMIX (64/594/1518 in 7:4:1) or all minimum-size.
    pub small: bool,
}

/// One generated TCP or UDP conversation in progress.
struct Conv {
    client: Ipv4Addr,
    server: Ipv4Addr,
    sport: u16,
    dport: u16,
    udp: bool,
    left: u64,
    step: u64,
}

const SERVICE_PORTS: &[u16] = &[443, 445, 22, 10000, 6162, 2500, 9392, 53, 80, 3389];

/// Writes a capture matching `spec` to `out`; returns the flows it generated.
pub fn generate(spec: &SynthSpec, out: impl Write) -> io::Result<u64> {
    let mut w = PcapWriter::new(out, link::ETHERNET, false)?;
    let mut rng = Rng::new(spec.seed);
    let per_flow = (spec.packets / spec.flows.max(1)).max(4);
    let concurrent = spec.concurrent.clamp(1, spec.flows.max(1));
    let mut started = 0u64;
    let mut convs: Vec<Conv> = Vec::with_capacity(concurrent as usize);
    let mut ts: i64 = 1_700_000_000 * 1_000_000_000;
    let new_conv = |rng: &mut Rng, n: u64| -> Conv {
        let c = n as u32;
        Conv {
            client: Ipv4Addr::from(0x0a00_0000 | (c % 65_000 + 1)),
            server: Ipv4Addr::from(0x0a80_0000 | (rng.below(200) as u32 + 1)),
            sport: 1024 + (c / 65_000 % 60_000) as u16 + (rng.below(4) as u16),
            dport: SERVICE_PORTS[rng.below(SERVICE_PORTS.len() as u64) as usize],
            udp: rng.below(8) == 0,
            left: per_flow,
            step: 0,
        }
    };
    let mut written = 0u64;
    while written < spec.packets {
        if (convs.len() as u64) < concurrent && started < spec.flows {
            convs.push(new_conv(&mut rng, started));
            started += 1;
            continue;
        }
        if convs.is_empty() {
            break;
        }
        let i = rng.below(convs.len() as u64) as usize;
        let c = &mut convs[i];
        let size = if spec.small {
            0
        } else {
            match rng.below(12) {
                0..=6 => 0,
                7..=10 => 594 - 54,
                _ => 1518 - 54,
            }
        };
        let (from_client, flags, payload) = if c.udp {
            (c.step % 2 == 0, 0, size.max(18))
        } else {
            match (c.step, c.left) {
                (0, _) => (true, F::SYN, 0),
                (1, _) => (false, F::SYN | F::ACK, 0),
                (2, _) => (true, F::ACK, 0),
                (_, 2) => (true, F::FIN | F::ACK, 0),
                (_, 1) => (false, F::FIN | F::ACK, 0),
                _ => (rng.below(2) == 0, F::ACK | F::PSH, size),
            }
        };
        let (src, sp, dst, dp) = if from_client {
            (c.client, c.sport, c.server, c.dport)
        } else {
            (c.server, c.dport, c.client, c.sport)
        };
        let f = if c.udp {
            Frame::udp(src.into(), sp, dst.into(), dp, payload)
        } else {
            Frame::tcp(src.into(), sp, dst.into(), dp, flags, payload)
        };
        let frame = f.ethernet();
        let len = frame.len().max(60);
        w.write(ts, &frame, len as u32)?;
        written += 1;
        ts += 1000 + rng.below(1000) as i64;
        c.step += 1;
        c.left -= 1;
        if c.left == 0 {
            convs.swap_remove(i);
        }
    }
    w.into_inner().flush()?;
    Ok(started)
}
