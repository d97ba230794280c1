//! Bidirectional flows: the key, the client/server decision, TCP state in Zeek's vocabulary, and
//! one shard's flow table with idle expiry and bounded size.

pub mod map;
pub mod store;

use std::fmt;

use crate::decode::{proto, tcp_flags as F, Addr, Packet, NO_VLAN};
use crate::flow::map::{hash_key, map_hash, FlowMap};

/// A flow's identity: the outer VLAN, the protocol and the two endpoints, in canonical order
/// (`a` <= `b`) so both directions of a conversation find the same key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct FlowKey {
    pub vlan: u16,
    pub proto: u8,
    pub a: Addr,
    pub a_port: u16,
    pub b: Addr,
    pub b_port: u16,
}

impl FlowKey {
    /// The key of `p`'s flow, and whether `p` was sent by endpoint `a`.
    pub fn of(
        vlan: u16,
        proto_num: u8,
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
    ) -> (Self, bool) {
        let (sport, dport) = if proto::has_ports(proto_num) {
            (sport, dport)
        } else {
            (0, 0)
        };
        if (src, sport) <= (dst, dport) {
            (
                FlowKey {
                    vlan,
                    proto: proto_num,
                    a: src,
                    a_port: sport,
                    b: dst,
                    b_port: dport,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    vlan,
                    proto: proto_num,
                    a: dst,
                    a_port: dport,
                    b: src,
                    b_port: sport,
                },
                false,
            )
        }
    }

    pub fn of_packet(p: &Packet) -> (Self, bool) {
        Self::of(p.vlan, p.proto, p.src, p.sport, p.dst, p.dport)
    }
}

/// How a flow's client and server were decided.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, Hash)]
pub enum Basis {
    /// The client sent a SYN without ACK.
    Syn,
    /// The client received a SYN-ACK (its SYN was not captured).
    SynAck,
    /// The first packet came from a likely server port to a port that is not one, or to one
    /// ranked lower ([`ServerPorts`]).
    Port,
    /// The sender of the first packet is the client.
    FirstPacket,
    /// The roles of the hosts and the catalogs say which end serves (set by the audit).
    Catalog,
}

impl Basis {
    pub fn as_str(&self) -> &'static str {
        match self {
            Basis::Syn => "syn",
            Basis::SynAck => "synack",
            Basis::Port => "port",
            Basis::FirstPacket => "first-packet",
            Basis::Catalog => "catalog",
        }
    }

    /// Weak bases can be overruled by what the catalogs know.
    pub fn is_heuristic(&self) -> bool {
        matches!(self, Basis::Port | Basis::FirstPacket)
    }
}

/// Zeek's conn_state vocabulary.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord, Hash)]
pub enum ConnState {
    S0,
    S1,
    SF,
    REJ,
    S2,
    S3,
    RSTO,
    RSTR,
    RSTOS0,
    RSTRH,
    SH,
    SHR,
    OTH,
}

impl ConnState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::SF => "SF",
            ConnState::REJ => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::RSTO => "RSTO",
            ConnState::RSTR => "RSTR",
            ConnState::RSTOS0 => "RSTOS0",
            ConnState::RSTRH => "RSTRH",
            ConnState::SH => "SH",
            ConnState::SHR => "SHR",
            ConnState::OTH => "OTH",
        }
    }

    pub fn parse(s: &str) -> Option<ConnState> {
        use ConnState::*;
        [
            S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Index of a direction in per-side arrays.
pub const CLIENT: usize = 0;
pub const SERVER: usize = 1;

/// Per-side facts for the TCP state machine.
pub(crate) mod hist {
    pub const SYN: u8 = 0x01;
    pub const SYNACK: u8 = 0x02;
    pub const FIN: u8 = 0x04;
    pub const RST: u8 = 0x08;
    pub const ANY: u8 = 0x10;
    pub const DATA: u8 = 0x20;
    /// ICMP/ICMPv6: the side sent an error message answering other traffic (unreachable,
    /// time exceeded...), and, below, a message that is not one (echo...).
    pub const ICMP_ERROR: u8 = 0x40;
    pub const ICMP_OTHER: u8 = 0x80;
}

/// One flow. Per-side arrays are indexed by [`CLIENT`] and [`SERVER`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub first_ts: i64,
    pub last_ts: i64,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    /// OR of the TCP flags each side sent.
    pub flags: [u8; 2],
    pub(crate) hist: [u8; 2],
    /// True when endpoint `a` of the key is the client.
    pub client_is_a: bool,
    pub basis: Basis,
    /// An ICMP destination-unreachable answered this flow.
    pub icmp_unreachable: bool,
    /// Ended because the table was full, not by the traffic.
    pub evicted: bool,
}

impl Flow {
    fn start(p: &Packet, from_a: bool, ports: &ServerPorts) -> Flow {
        let syn = p.tcp_flags & (F::SYN | F::ACK);
        let (sender_is_client, basis) = if p.proto == proto::TCP && syn == F::SYN {
            (true, Basis::Syn)
        } else if p.proto == proto::TCP && syn == F::SYN | F::ACK {
            (false, Basis::SynAck)
        } else if ports.rank(p.proto, p.sport) > ports.rank(p.proto, p.dport) {
            (false, Basis::Port)
        } else {
            (true, Basis::FirstPacket)
        };
        Flow {
            first_ts: p.ts_ns,
            last_ts: p.ts_ns,
            packets: [0; 2],
            bytes: [0; 2],
            flags: [0; 2],
            hist: [0; 2],
            client_is_a: sender_is_client == from_a,
            basis,
            icmp_unreachable: false,
            evicted: false,
        }
    }

    fn add(&mut self, p: &Packet, from_a: bool) {
        let side = if from_a == self.client_is_a {
            CLIENT
        } else {
            SERVER
        };
        self.first_ts = self.first_ts.min(p.ts_ns);
        self.last_ts = self.last_ts.max(p.ts_ns);
        self.packets[side] += 1;
        self.bytes[side] += p.wire_len as u64;
        let h = &mut self.hist[side];
        *h |= hist::ANY;
        if p.payload_len > 0 {
            *h |= hist::DATA;
        }
        if matches!(p.proto, proto::ICMP | proto::ICMPV6) {
            *h |= if p.is_icmp_error() {
                hist::ICMP_ERROR
            } else {
                hist::ICMP_OTHER
            };
        }
        if p.proto == proto::TCP {
            self.flags[side] |= p.tcp_flags;
            let f = p.tcp_flags;
            if f & F::RST != 0 {
                *h |= hist::RST;
            }
            if f & F::FIN != 0 {
                *h |= hist::FIN;
            }
            if f & (F::SYN | F::ACK) == F::SYN {
                *h |= hist::SYN;
            }
            if f & (F::SYN | F::ACK) == F::SYN | F::ACK {
                *h |= hist::SYNACK;
            }
        }
    }

    /// FIN from both sides, or a RST: a new SYN on this key starts a new connection.
    pub fn is_closed(&self) -> bool {
        let h = self.hist[CLIENT] | self.hist[SERVER];
        h & hist::RST != 0 || (self.hist[CLIENT] & self.hist[SERVER] & hist::FIN) != 0
    }

    /// The server answered: a SYN-ACK for TCP, any packet for other protocols.
    pub fn answered(&self) -> bool {
        self.hist[SERVER] & (hist::SYNACK | hist::ANY) != 0
            && (self.hist[SERVER] & hist::RST == 0 || self.hist[SERVER] & hist::SYNACK != 0)
    }

    /// Every packet was an ICMP error answering other traffic: the answer belongs to the flow
    /// it quotes (refused, for an unreachable), it is no service of its own.
    pub fn icmp_errors_only(&self) -> bool {
        let h = self.hist[CLIENT] | self.hist[SERVER];
        h & hist::ICMP_ERROR != 0 && h & hist::ICMP_OTHER == 0
    }

    /// The TCP three-way handshake was seen from both sides.
    pub fn established(&self) -> bool {
        self.hist[CLIENT] & hist::SYN != 0 && self.hist[SERVER] & hist::SYNACK != 0
    }

    /// Zeek's conn_state, from the endpoint states (see Zeek's base/protocols/conn/main.zeek).
    pub fn conn_state(&self, proto_num: u8) -> ConnState {
        use ConnState::*;
        let o = self.hist[CLIENT];
        let r = self.hist[SERVER];
        if proto_num != proto::TCP {
            return match (o & hist::ANY != 0, r & hist::ANY != 0) {
                (true, true) => SF,
                (true, false) => S0,
                (false, true) => SHR,
                (false, false) => OTH,
            };
        }
        let est = self.established();
        let os = Endpoint::of(o, est);
        let rs = Endpoint::of(r, est);
        use Endpoint::*;
        let o_inactive = matches!(os, Inactive | Partial);
        let r_inactive = matches!(rs, Inactive | Partial);
        if rs == Reset {
            if matches!(os, SynSent | SynAckSent)
                || (os == Reset
                    && (self.hist[CLIENT] | self.hist[SERVER]) & hist::DATA == 0
                    && !est)
            {
                REJ
            } else if o_inactive {
                RSTRH
            } else {
                RSTR
            }
        } else if os == Reset {
            if r_inactive {
                RSTOS0
            } else {
                RSTO
            }
        } else if rs == Closed && os == Closed {
            SF
        } else if os == Closed {
            if r_inactive {
                SH
            } else {
                S2
            }
        } else if rs == Closed {
            if o_inactive {
                SHR
            } else {
                S3
            }
        } else if os == SynSent && rs == Inactive {
            S0
        } else if os == Established && rs == Established {
            S1
        } else {
            OTH
        }
    }
}

/// Zeek's TCP endpoint states, derived from what a side sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Endpoint {
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

impl Endpoint {
    fn of(h: u8, established: bool) -> Endpoint {
        if h & hist::RST != 0 {
            Endpoint::Reset
        } else if h & hist::FIN != 0 {
            Endpoint::Closed
        } else if h & hist::ANY == 0 {
            Endpoint::Inactive
        } else if established {
            Endpoint::Established
        } else if h & hist::SYN != 0 {
            Endpoint::SynSent
        } else if h & hist::SYNACK != 0 {
            Endpoint::SynAckSent
        } else {
            Endpoint::Partial
        }
    }
}

/// A finished flow as it goes to reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub key: FlowKey,
    pub flow: Flow,
}

impl FlowRecord {
    pub fn client(&self) -> (Addr, u16) {
        if self.flow.client_is_a {
            (self.key.a, self.key.a_port)
        } else {
            (self.key.b, self.key.b_port)
        }
    }

    pub fn server(&self) -> (Addr, u16) {
        if self.flow.client_is_a {
            (self.key.b, self.key.b_port)
        } else {
            (self.key.a, self.key.a_port)
        }
    }

    pub fn conn_state(&self) -> ConnState {
        self.flow.conn_state(self.key.proto)
    }

    /// Swaps client and server (used when the catalogs know better than a heuristic).
    pub fn flip(&mut self, basis: Basis) {
        let f = &mut self.flow;
        f.client_is_a = !f.client_is_a;
        f.packets.swap(0, 1);
        f.bytes.swap(0, 1);
        f.flags.swap(0, 1);
        f.hist.swap(0, 1);
        f.basis = basis;
    }

    /// The deterministic report order: by first packet, then by key.
    pub fn sort_key(&self) -> (i64, FlowKey, i64) {
        (self.flow.first_ts, self.key, self.flow.last_ts)
    }

    pub fn vlan(&self) -> Option<u16> {
        (self.key.vlan != NO_VLAN).then_some(self.key.vlan)
    }
}

/// Ports that usually identify the server side, per protocol (like Zeek's likely_server_ports),
/// ranked so that when both ports of a flow are listed the higher-ranked one is the server:
/// - 3: system ports (below 1024) of the list;
/// - 2: registered ports (1024 and up) of the list;
/// - 1: the client halves of protocols with a fixed client port (DHCP 68, DHCPv6 546);
/// - 0: not listed.
///
/// So DHCP's 67 beats 68, DHCPv6's 547 beats 546, and a service on a system port beats one on a
/// registered port that happens to be the other side's source port. Equal ranks (53 to 53,
/// 123 to 123) leave the decision to the first packet. What the catalogs know about the hosts'
/// roles still overrules this (`Basis::Catalog`).
#[derive(Clone)]
pub struct ServerPorts {
    tcp: Box<[u8]>,
    udp: Box<[u8]>,
}

/// Defaults: well-known services seen on enterprise, backup and industrial networks, and the
/// server ports of Zeek's analyzers (`likely_server_ports`) and IANA's registry for them.
const DEFAULT_TCP: &[u16] = &[
    20, 21, 22, 23, 25, 53, 80, 88, 102, 110, 111, 135, 139, 143, 179, 389, 443, 445, 464, 465,
    502, 514, 587, 593, 636, 873, 902, 993, 995, 1080, 1194, 1433, 1521, 1723, 1883, 2049, 2375,
    2376, 2404, 3000, 3128, 3260, 3268, 3269, 3306, 3389, 5060, 5061, 5432, 5900, 5985, 5986, 6379,
    6633, 6653, 8000, 8006, 8080, 8443, 8883, 9000, 9200, 10000, 20000, 27017, 44818,
];
const DEFAULT_UDP: &[u16] = &[
    53, 67, 69, 88, 111, 123, 137, 138, 161, 162, 389, 443, 500, 514, 520, 547, 1194, 1812, 1813,
    1900, 2049, 2055, 2222, 3478, 4500, 4739, 4789, 5060, 5246, 5247, 5353, 5355, 6081, 6343,
    20000, 44818, 47808,
];
/// X11 displays :0 to :63 (TCP).
const X11: std::ops::RangeInclusive<u16> = 6000..=6063;
/// Fixed client ports: listed below every server port.
const CLIENT_UDP: &[u16] = &[68, 546];

impl Default for ServerPorts {
    fn default() -> Self {
        let mut s = ServerPorts {
            tcp: vec![0; 65536].into_boxed_slice(),
            udp: vec![0; 65536].into_boxed_slice(),
        };
        for p in DEFAULT_TCP.iter().copied().chain(X11) {
            s.add(proto::TCP, p);
        }
        for &p in DEFAULT_UDP {
            s.add(proto::UDP, p);
        }
        for &p in CLIENT_UDP {
            s.udp[p as usize] = 1;
        }
        s
    }
}

impl ServerPorts {
    /// Lists `port` as a server port (rank 3 below 1024, else 2).
    pub fn add(&mut self, proto_num: u8, port: u16) {
        let ranks = match proto_num {
            proto::UDP => &mut self.udp,
            _ => &mut self.tcp,
        };
        let r = if port < 1024 { 3 } else { 2 };
        ranks[port as usize] = ranks[port as usize].max(r);
    }

    /// How strongly `port` suggests a server (0: not at all).
    pub fn rank(&self, proto_num: u8, port: u16) -> u8 {
        match proto_num {
            proto::TCP | proto::SCTP => self.tcp[port as usize],
            proto::UDP => self.udp[port as usize],
            _ => 0,
        }
    }

    pub fn is_server(&self, proto_num: u8, port: u16) -> bool {
        self.rank(proto_num, port) > 1
    }
}

/// Idle timeouts in nanoseconds (Zeek's defaults: TCP 5 min, UDP 1 min, others 1 min).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub tcp_ns: i64,
    pub udp_ns: i64,
    pub other_ns: i64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_ns: 300 * 1_000_000_000,
            udp_ns: 60 * 1_000_000_000,
            other_ns: 60 * 1_000_000_000,
        }
    }
}

impl Timeouts {
    pub fn for_proto(&self, p: u8) -> i64 {
        match p {
            proto::TCP => self.tcp_ns,
            proto::UDP => self.udp_ns,
            _ => self.other_ns,
        }
    }
}

#[derive(Clone)]
pub struct FlowConfig {
    pub timeouts: Timeouts,
    pub ports: ServerPorts,
    /// Most live flows one shard holds before evicting the longest idle.
    pub max_flows_per_shard: usize,
}

/// How often (in packets a shard handles) it sweeps idle flows out of its table. Sweeping only
/// frees memory: an idle flow would be split by the next packet anyway, so results do not depend
/// on when sweeps happen.
const SWEEP_EVERY: u64 = 1 << 16;

/// One shard's flow table. A flow lives in exactly one shard, chosen by its key's hash, so each
/// shard sees its flows' packets in capture order no matter how many threads run.
pub struct FlowTable {
    live: FlowMap,
    pub done: Vec<FlowRecord>,
    now: i64,
    handled: u64,
    pub evicted: u64,
    pub peak_live: usize,
}

impl Default for FlowTable {
    fn default() -> Self {
        FlowTable {
            live: FlowMap::default(),
            done: Vec::new(),
            now: i64::MIN,
            handled: 0,
            evicted: 0,
            peak_live: 0,
        }
    }
}

impl FlowTable {
    pub fn live_len(&self) -> usize {
        self.live.len()
    }

    /// Counts `p` in its flow (hashing its key here; the engine passes the hash it has).
    pub fn update(&mut self, p: &Packet, cfg: &FlowConfig) {
        let (key, _) = FlowKey::of_packet(p);
        self.update_hashed(p, map_hash(hash_key(&key)), cfg);
    }

    /// Starts fetching what updating a packet of hash `h` will read, a few packets ahead.
    #[inline]
    pub fn prefetch(&self, h: u32, stage: Prefetch) {
        match stage {
            Prefetch::Slot => self.live.prefetch_slot(h),
            Prefetch::Entry => self.live.prefetch_entry(h),
        }
    }

    /// [`FlowTable::update`] for a packet whose key has map hash `h`.
    pub fn update_hashed(&mut self, p: &Packet, h: u32, cfg: &FlowConfig) {
        self.now = self.now.max(p.clock);
        self.handled += 1;
        if self.handled.is_multiple_of(SWEEP_EVERY) {
            self.sweep(cfg);
        }
        let (key, from_a) = FlowKey::of_packet(p);
        let timeout = cfg.timeouts.for_proto(p.proto);
        if let Some(flow) = self.live.get_mut(&key, h) {
            // Against the capture clock, as the sweep is: sweeping then cannot change results.
            let idle = p.clock.saturating_sub(flow.last_ts) > timeout;
            let new_syn = p.proto == proto::TCP
                && p.tcp_flags & (F::SYN | F::ACK) == F::SYN
                && flow.is_closed();
            if !idle && !new_syn {
                flow.add(p, from_a);
                return;
            }
            let old = *flow;
            let mut fresh = Flow::start(p, from_a, &cfg.ports);
            fresh.add(p, from_a);
            *flow = fresh;
            self.done.push(FlowRecord { key, flow: old });
            return;
        }
        if self.live.len() >= cfg.max_flows_per_shard {
            self.evict(cfg.max_flows_per_shard);
        }
        let mut flow = Flow::start(p, from_a, &cfg.ports);
        flow.add(p, from_a);
        self.live.insert_new(key, h, flow);
        self.peak_live = self.peak_live.max(self.live.len());
    }

    /// An ICMP unreachable quoted a packet of this (maybe existing) flow, whose key has map hash
    /// `h`: the attempt was refused.
    pub fn notice_unreachable(&mut self, key: &FlowKey, h: u32) {
        if let Some(f) = self.live.get_mut(key, h) {
            f.icmp_unreachable = true;
        }
    }

    /// Moves flows idle past their timeout out of the live table.
    fn sweep(&mut self, cfg: &FlowConfig) {
        let now = self.now;
        let done = &mut self.done;
        self.live.retain(|k, f| {
            let keep = now.saturating_sub(f.last_ts) <= cfg.timeouts.for_proto(k.proto);
            if !keep {
                done.push(FlowRecord { key: *k, flow: *f });
            }
            keep
        });
    }

    /// Ends the longest-idle eighth of the table (at least one flow) to make room: the flows
    /// with the smallest (last packet, key), so the choice never depends on the map's layout.
    fn evict(&mut self, cap: usize) {
        let mut ages: Vec<(i64, FlowKey)> =
            self.live.iter().map(|(k, f)| (f.last_ts, *k)).collect();
        let n = (cap / 8).max(1).min(ages.len());
        if n == 0 {
            return;
        }
        let (_, &mut cutoff, _) = ages.select_nth_unstable(n - 1);
        drop(ages);
        let done = &mut self.done;
        let mut evicted = 0;
        self.live.retain(|k, f| {
            if (f.last_ts, *k) > cutoff {
                return true;
            }
            let mut f = *f;
            f.evicted = true;
            done.push(FlowRecord { key: *k, flow: f });
            evicted += 1;
            false
        });
        self.evicted += evicted;
    }

    /// Ends every flow and moves all of them into `out`, freeing this table's memory as it goes
    /// (so the end of a run does not hold the tables and the report's copy at once).
    pub fn drain_into(&mut self, out: &mut Vec<FlowRecord>) {
        out.append(&mut self.done);
        self.done = Vec::new();
        out.extend(
            self.live
                .drain()
                .map(|(key, flow)| FlowRecord { key, flow }),
        );
    }

    /// Ends flows idle at `now` (live capture: time passes without packets).
    pub fn expire(&mut self, now: i64, cfg: &FlowConfig) {
        self.now = self.now.max(now);
        self.sweep(cfg);
    }

    /// The flows still open, as records (for reports written while a capture runs).
    pub fn live_records(&self) -> impl Iterator<Item = FlowRecord> + '_ {
        self.live
            .iter()
            .map(|(k, f)| FlowRecord { key: *k, flow: *f })
    }
}

/// Which stage of [`FlowTable::prefetch`]: the index slot first, the entry once the slot is near.
#[derive(Clone, Copy)]
pub enum Prefetch {
    Slot,
    Entry,
}

/// Length of a [`FlowRecord`] written to a spill file by [`FlowRecord::encode`].
pub const RECORD_LEN: usize = 95;

impl FlowRecord {
    /// A fixed-size little-endian encoding, for spilling finished flows to disk.
    pub fn encode(&self, out: &mut [u8; RECORD_LEN]) {
        let k = &self.key;
        let f = &self.flow;
        let mut w = Cursor { buf: out, at: 0 };
        w.put(&k.vlan.to_le_bytes());
        w.put(&[k.proto]);
        w.put(&k.a.0);
        w.put(&k.a_port.to_le_bytes());
        w.put(&k.b.0);
        w.put(&k.b_port.to_le_bytes());
        w.put(&f.first_ts.to_le_bytes());
        w.put(&f.last_ts.to_le_bytes());
        for side in [CLIENT, SERVER] {
            w.put(&f.packets[side].to_le_bytes());
            w.put(&f.bytes[side].to_le_bytes());
        }
        w.put(&[
            f.flags[CLIENT],
            f.flags[SERVER],
            f.hist[CLIENT],
            f.hist[SERVER],
            f.client_is_a as u8,
            f.basis as u8,
            f.icmp_unreachable as u8,
            f.evicted as u8,
        ]);
        debug_assert_eq!(w.at, RECORD_LEN);
    }

    /// The inverse of [`FlowRecord::encode`]; `None` for bytes it cannot have written.
    pub fn decode(b: &[u8; RECORD_LEN]) -> Option<FlowRecord> {
        let mut r = Reader { buf: b, at: 0 };
        let key = FlowKey {
            vlan: u16::from_le_bytes(r.take()),
            proto: r.take::<1>()[0],
            a: Addr(r.take()),
            a_port: u16::from_le_bytes(r.take()),
            b: Addr(r.take()),
            b_port: u16::from_le_bytes(r.take()),
        };
        let first_ts = i64::from_le_bytes(r.take());
        let last_ts = i64::from_le_bytes(r.take());
        let mut packets = [0; 2];
        let mut bytes = [0; 2];
        for side in [CLIENT, SERVER] {
            packets[side] = u64::from_le_bytes(r.take());
            bytes[side] = u64::from_le_bytes(r.take());
        }
        let t: [u8; 8] = r.take();
        let flag = |v: u8| (v <= 1).then_some(v == 1);
        let basis = [
            Basis::Syn,
            Basis::SynAck,
            Basis::Port,
            Basis::FirstPacket,
            Basis::Catalog,
        ]
        .into_iter()
        .find(|b| *b as u8 == t[5])?;
        Some(FlowRecord {
            key,
            flow: Flow {
                first_ts,
                last_ts,
                packets,
                bytes,
                flags: [t[0], t[1]],
                hist: [t[2], t[3]],
                client_is_a: flag(t[4])?,
                basis,
                icmp_unreachable: flag(t[6])?,
                evicted: flag(t[7])?,
            },
        })
    }

    /// The report order, total: by first packet, then key, then last packet, then everything
    /// else (so that two flows equal on the sort key still come out the same way every run).
    pub fn report_cmp(&self, other: &FlowRecord) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key()).then_with(|| {
            let (mut x, mut y) = ([0; RECORD_LEN], [0; RECORD_LEN]);
            self.encode(&mut x);
            other.encode(&mut y);
            x.cmp(&y)
        })
    }
}

struct Cursor<'a> {
    buf: &'a mut [u8; RECORD_LEN],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, b: &[u8]) {
        self.buf[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }
}

struct Reader<'a> {
    buf: &'a [u8; RECORD_LEN],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.buf[self.at..self.at + N]);
        self.at += N;
        out
    }
}
