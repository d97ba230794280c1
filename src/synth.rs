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
            (c.step.is_multiple_of(2), 0, size.max(18))
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

/// The inventory of the demo site (fixtures/demo/hosts.csv is this text).
pub const DEMO_INVENTORY: &str = "address,roles,name
10.1.0.5,backup-console,admin01
10.1.0.10,backup-server;windows-backup-server,vbr01
10.1.0.11,enterprise-manager,em01
10.1.0.20,backup-proxy;windows-server,proxy01
10.1.0.30,backup-repository;linux-server,repo01
10.1.0.40,agent-computer-windows,ws-fin-01
10.1.0.50,proxmox-ve-server,pve01
10.1.0.51,proxmox-worker,pvew01
10.1.0.60,be-server,bemedia01
10.1.0.61,be-remote-agent,files01
";

/// How a generated TCP conversation goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Session {
    /// Handshake, data both ways, FIN both ways (Zeek SF).
    Complete,
    /// SYN answered by RST-ACK (REJ).
    Refused,
    /// SYN and one retransmission, no answer (S0).
    Unanswered,
}

/// Appends the frames of one TCP conversation; returns the time after it.
pub fn tcp_session<W: Write>(
    w: &mut PcapWriter<W>,
    mut ts: i64,
    client: (Ipv4Addr, u16),
    server: (Ipv4Addr, u16),
    kind: Session,
) -> io::Result<i64> {
    let (c, cp) = client;
    let (s, sp) = server;
    let c2s = |flags, len| Frame::tcp(c.into(), cp, s.into(), sp, flags, len);
    let s2c = |flags, len| Frame::tcp(s.into(), sp, c.into(), cp, flags, len);
    let frames: Vec<Frame> = match kind {
        Session::Complete => vec![
            c2s(F::SYN, 0),
            s2c(F::SYN | F::ACK, 0),
            c2s(F::ACK, 0),
            c2s(F::ACK | F::PSH, 200),
            s2c(F::ACK | F::PSH, 1000),
            c2s(F::FIN | F::ACK, 0),
            s2c(F::FIN | F::ACK, 0),
            c2s(F::ACK, 0),
        ],
        Session::Refused => vec![c2s(F::SYN, 0), s2c(F::RST | F::ACK, 0)],
        Session::Unanswered => vec![c2s(F::SYN, 0), c2s(F::SYN, 0)],
    };
    for f in frames {
        let bytes = f.ethernet();
        let len = bytes.len().max(60) as u32;
        w.write(ts, &bytes, len)?;
        ts += 1_000_000; // 1 ms between packets
    }
    Ok(ts)
}

/// The demo backup window: documented jobs of every product, plus a refused, an unanswered,
/// an undocumented, a wrong-role, a reversed and an unknown-host service (docs/demo.md).
pub fn demo(out: impl Write) -> io::Result<()> {
    use Session::*;
    let ip = |last: u8| Ipv4Addr::new(10, 1, 0, last);
    let mut w = PcapWriter::new(out, link::ETHERNET, false)?;
    let mut ts: i64 = 1_767_225_600 * 1_000_000_000; // 2026-01-01 00:00:00 UTC
    let mut port = 50_000u16;
    let mut next_port = || {
        port += 1;
        port
    };
    let plan: &[(u8, u8, u16, Session)] = &[
        (10, 20, 6162, Complete), // backup server -> Windows proxy Data Mover
        (10, 30, 22, Complete),   // backup server -> Linux repository SSH
        (20, 30, 2500, Complete), // proxy -> repository data channels
        (20, 30, 2501, Complete),
        (20, 30, 2502, Complete),
        (20, 30, 2505, Complete),
        (5, 10, 9392, Complete),   // console -> backup server
        (11, 10, 9392, Complete),  // Enterprise Manager -> backup server
        (51, 50, 8006, Complete),  // Proxmox worker -> Proxmox VE API
        (10, 40, 6184, Complete),  // backup server -> Veeam Agent for Windows service
        (60, 61, 10000, Complete), // Backup Exec control connection
        (61, 60, 6101, Complete),  // Backup Exec agent advertising
        (60, 61, 40000, Complete), // Backup Exec data in the dynamic range
        (60, 61, 40001, Complete),
        (60, 61, 40003, Complete),
        (10, 20, 6160, Refused), // installer service port closed on the proxy
        (10, 30, 6162, Unanswered), // Data Mover on the repository filtered
        (20, 30, 3306, Complete), // undocumented: MySQL from the proxy
        (40, 30, 8006, Complete), // role mismatch: agent to the repository on the PVE API port
        (30, 10, 22, Complete),  // reverse: repository opens SSH to the backup server
        (99, 10, 443, Complete), // unknown host
    ];
    for &(c, s, sp, kind) in plan {
        ts = tcp_session(&mut w, ts, (ip(c), next_port()), (ip(s), sp), kind)?;
        ts += 500_000_000;
    }
    // A DNS lookup to a resolver that is not in the inventory.
    let q = Frame::udp(ip(10).into(), next_port(), ip(2).into(), 53, 40);
    let r = Frame::udp(ip(2).into(), 53, ip(10).into(), port, 80);
    for f in [q, r] {
        let b = f.ethernet();
        w.write(ts, &b, b.len().max(60) as u32)?;
        ts += 2_000_000;
    }
    w.into_inner().flush()
}
