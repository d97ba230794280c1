//! NetFlow v5, v9 and IPFIX export packets, from a capture of the export stream (pcap/pcapng of
//! the UDP datagrams, read with flowaudit's own capture readers), a raw IPFIX file (RFC 5655)
//! or a live socket (`flowaudit collect`).
//!
//! Decoding is `netflow_parser`'s `AutoScopedParser`: templates are kept per exporter and
//! observation domain (IPFIX) or source id (v9), as RFC 7011 and RFC 3954 scope them; IPFIX
//! template withdrawal removes a template; options templates and records are decoded; fields of
//! other enterprises are parsed past and ignored here. This module adds what an audit needs on
//! top: sequence-number gaps (lost export packets), sampling announced by headers, fields or
//! options records, counts of data sets whose template is missing, and the conversion of each
//! data record into a unidirectional [`Rec`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use netflow_parser::scoped_parser::AutoScopedParser;
use netflow_parser::static_versions::v5::V5;
use netflow_parser::variable_versions::field_value::FieldValue;
use netflow_parser::variable_versions::ipfix::lookup::{IANAIPFixField, IPFixField};
use netflow_parser::variable_versions::ipfix::{FlowSetBody as IpfixBody, IPFix};
use netflow_parser::variable_versions::v9::{FlowSetBody as V9Body, V9};
use netflow_parser::NetflowPacket;

use crate::capture::{source::open_capture_with, Batch};
use crate::decode::{proto, tcp_flags as F, Addr, NO_VLAN};
use crate::flow::{hist, FlowKey};

use super::{FlowInputStats, InputError, Rec, A, B};

/// Sequence state of one export stream.
#[derive(Clone, Copy)]
struct Seq {
    /// The sequence number the next message should carry.
    next: u32,
}

/// Decoding state shared by every input of a run (an exporter seen in two captures keeps its
/// templates).
pub struct Decoder {
    parser: AutoScopedParser,
    seqs: HashMap<(SocketAddr, u16, u32), Seq>,
    /// Sampling rate per (exporter, domain), from options records.
    sampling: HashMap<(SocketAddr, u32), u32>,
    /// IPFIX systemInitTimeMilliseconds per (exporter, domain), from options records.
    init_ms: HashMap<(SocketAddr, u32), u64>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            parser: AutoScopedParser::new(),
            seqs: HashMap::new(),
            sampling: HashMap::new(),
            init_ms: HashMap::new(),
        }
    }
}

/// Export-stream identity and header facts of one message.
struct Msg {
    exporter: SocketAddr,
    label: String,
    version: u16,
    domain: u32,
    /// Export time in milliseconds since the epoch.
    export_ms: i64,
    /// v5/v9: the exporter's uptime at export, for the records' relative times.
    uptime_ms: Option<i64>,
}

impl Decoder {
    /// Decodes one export datagram (or IPFIX message) from `exporter`; `label` names the
    /// exporter in reports (its address, or the file it came from).
    pub fn decode(
        &mut self,
        exporter: SocketAddr,
        label: &str,
        payload: &[u8],
        where_: &dyn Fn() -> String,
        st: &mut FlowInputStats,
        out: &mut Vec<Rec>,
    ) {
        let be16 = |i: usize| {
            payload
                .get(i..i + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let be32 = |i: usize| {
            payload
                .get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let Some(version) = be16(0).filter(|v| matches!(v, 5 | 9 | 10)) else {
            st.skip("not a NetFlow v5/v9/IPFIX packet", || {
                format!(
                    "{}: not NetFlow v5, v9 or IPFIX (version field {:?})",
                    where_(),
                    be16(0)
                )
            });
            return;
        };
        let result = self.parser.parse_from_source(exporter, payload);
        if let Some(e) = &result.error {
            st.skip("undecodable export packet", || format!("{}: {e}", where_()));
        }
        for pkt in result.packets {
            match pkt {
                NetflowPacket::V5(v5) => self.v5(&v5, exporter, label, st, out),
                NetflowPacket::V9(v9) => self.v9(&v9, exporter, label, st, out),
                NetflowPacket::IPFix(ipfix) => self.ipfix(&ipfix, exporter, label, st, out),
                _ => {}
            }
        }
        let _ = (be32(0), version);
    }

    /// Compares a message's sequence number with the one expected; `advance` is what this
    /// message adds (records for v5 and IPFIX, 1 for v9).
    fn sequence(
        &mut self,
        key: (SocketAddr, u16, u32),
        seq: u32,
        advance: u32,
        st: &mut FlowInputStats,
    ) {
        if let Some(s) = self.seqs.get(&key) {
            let ahead = seq.wrapping_sub(s.next);
            // Behind: a restarted exporter (or, rarely on UDP, a reordered message): start
            // counting again from here rather than calling everything until then lost.
            if ahead != 0 && ahead < 1 << 31 {
                st.sequence_gaps += 1;
                st.lost_exports += ahead as u64;
            }
        }
        self.seqs.insert(
            key,
            Seq {
                next: seq.wrapping_add(advance),
            },
        );
    }

    fn v5(
        &mut self,
        p: &V5,
        exporter: SocketAddr,
        label: &str,
        st: &mut FlowInputStats,
        out: &mut Vec<Rec>,
    ) {
        let h = &p.header;
        let domain = (h.engine_type as u32) << 8 | h.engine_id as u32;
        self.sequence((exporter, 5, domain), h.flow_sequence, h.count as u32, st);
        let src = st.source(
            format!(
                "{label} (NetFlow v5, engine {}/{})",
                h.engine_type, h.engine_id
            ),
            "netflow-v5",
        );
        // Top two bits: the sampling mode; the rest: the interval.
        let interval = (h.sampling_interval & 0x3fff) as u32;
        if interval > 1 {
            st.sources[src as usize].sampling = Some(interval);
        }
        let export_ms = h.unix_secs as i64 * 1000 + h.unix_nsecs as i64 / 1_000_000;
        for f in &p.flowsets {
            let rel = |t: u32| export_ms - (h.sys_up_time as i64 - t as i64);
            let r = unidirectional(
                IpAddr::V4(f.src_addr),
                f.src_port,
                IpAddr::V4(f.dst_addr),
                f.dst_port,
                f.protocol_number,
                f.tcp_flags,
                f.d_pkts as u64,
                f.d_octets as u64,
                rel(f.first) * 1_000_000,
                rel(f.last) * 1_000_000,
                src,
            );
            count(st, src, out, r);
        }
    }

    fn v9(
        &mut self,
        p: &V9,
        exporter: SocketAddr,
        label: &str,
        st: &mut FlowInputStats,
        out: &mut Vec<Rec>,
    ) {
        let h = &p.header;
        self.sequence((exporter, 9, h.source_id), h.sequence_number, 1, st);
        let msg = Msg {
            exporter,
            label: format!("{label} (NetFlow v9, source id {})", h.source_id),
            version: 9,
            domain: h.source_id,
            export_ms: h.unix_secs as i64 * 1000,
            uptime_ms: Some(h.sys_up_time as i64),
        };
        let src = st.source(msg.label.clone(), "netflow-v9");
        for fs in &p.flowsets {
            match &fs.body {
                V9Body::Template(t) => st.templates += t.templates.len() as u64,
                V9Body::OptionsTemplate(t) => st.templates += t.templates.len() as u64,
                V9Body::NoTemplate(_) => st.missing_template_sets += 1,
                V9Body::OptionsData(d) => {
                    for rec in &d.fields {
                        st.options_records += 1;
                        let fields = v9_fields(&rec.options_fields);
                        self.options(&msg, &fields, src, st);
                    }
                }
                V9Body::Data(d) => {
                    for rec in &d.fields {
                        let fields = v9_fields(rec);
                        self.data(&msg, &fields, src, st, out);
                    }
                }
                V9Body::Empty => {}
            }
        }
    }

    fn ipfix(
        &mut self,
        p: &IPFix,
        exporter: SocketAddr,
        label: &str,
        st: &mut FlowInputStats,
        out: &mut Vec<Rec>,
    ) {
        let h = &p.header;
        let msg = Msg {
            exporter,
            label: format!(
                "{label} (IPFIX, observation domain {})",
                h.observation_domain_id
            ),
            version: 10,
            domain: h.observation_domain_id,
            export_ms: h.export_time as i64 * 1000,
            uptime_ms: None,
        };
        let src = st.source(msg.label.clone(), "ipfix");
        let mut data_records = 0u32;
        for fs in &p.flowsets {
            match &fs.body {
                IpfixBody::Template(_) | IpfixBody::V9Template(_) => st.templates += 1,
                IpfixBody::Templates(t) => st.templates += t.len() as u64,
                IpfixBody::V9Templates(t) => st.templates += t.len() as u64,
                IpfixBody::OptionsTemplate(_) | IpfixBody::V9OptionsTemplate(_) => {
                    st.templates += 1
                }
                IpfixBody::OptionsTemplates(t) => st.templates += t.len() as u64,
                IpfixBody::V9OptionsTemplates(t) => st.templates += t.len() as u64,
                IpfixBody::NoTemplate(_) => st.missing_template_sets += 1,
                IpfixBody::OptionsData(d) => {
                    for rec in &d.fields {
                        data_records += 1;
                        st.options_records += 1;
                        let fields = ipfix_fields(rec);
                        self.options(&msg, &fields, src, st);
                    }
                }
                IpfixBody::V9OptionsData(d) => {
                    for rec in &d.fields {
                        data_records += 1;
                        st.options_records += 1;
                        let fields = v9_fields(&rec.options_fields);
                        self.options(&msg, &fields, src, st);
                    }
                }
                IpfixBody::Data(d) => {
                    for rec in &d.fields {
                        data_records += 1;
                        let fields = ipfix_fields(rec);
                        self.data(&msg, &fields, src, st, out);
                    }
                }
                IpfixBody::V9Data(d) => {
                    for rec in &d.fields {
                        data_records += 1;
                        let fields = v9_fields(rec);
                        self.data(&msg, &fields, src, st, out);
                    }
                }
                IpfixBody::Empty => {}
            }
        }
        self.sequence(
            (exporter, 10, h.observation_domain_id),
            h.sequence_number,
            data_records,
            st,
        );
    }

    /// Options records: sampling rates and the exporter's boot time.
    fn options(&mut self, msg: &Msg, f: &Fields, src: u32, st: &mut FlowInputStats) {
        if let Some(rate) = sampling_rate(f) {
            self.sampling.insert((msg.exporter, msg.domain), rate);
            if rate > 1 {
                st.sources[src as usize].sampling = Some(rate);
            }
        }
        if let Some(ms) = f.num(id::SYSTEM_INIT_MS) {
            self.init_ms.insert((msg.exporter, msg.domain), ms);
        }
    }

    fn data(
        &mut self,
        msg: &Msg,
        f: &Fields,
        src: u32,
        st: &mut FlowInputStats,
        out: &mut Vec<Rec>,
    ) {
        if let Some(rate) = sampling_rate(f).filter(|r| *r > 1) {
            st.sources[src as usize].sampling = Some(rate);
        }
        let (Some(s), Some(d)) = (
            f.addr(id::SRC4).or_else(|| f.addr(id::SRC6)),
            f.addr(id::DST4).or_else(|| f.addr(id::DST6)),
        ) else {
            st.skip("record without addresses", || {
                format!(
                    "{}: a data record has no source/destination address (not a flow record)",
                    msg.label
                )
            });
            return;
        };
        let p = f.get(id::PROTO).and_then(|v| v.as_u8()).unwrap_or(0);
        let flags = match f.get(id::TCP_FLAGS) {
            Some(FieldValue::TcpControlBits(b, _)) => u16::from(*b) as u8,
            Some(v) => v.as_u64().unwrap_or(0) as u8,
            None => 0,
        };
        let packets = f
            .num(id::PACKETS)
            .or_else(|| f.num(id::PACKETS_TOTAL))
            .unwrap_or(0);
        let bytes = f
            .num(id::BYTES)
            .or_else(|| f.num(id::BYTES_TOTAL))
            .unwrap_or(0);
        let (start, end) = self.times(msg, f);
        let r = unidirectional(
            s,
            f.num(id::SPORT).unwrap_or(0) as u16,
            d,
            f.num(id::DPORT).unwrap_or(0) as u16,
            p,
            flags,
            packets,
            bytes,
            start * 1_000_000,
            end * 1_000_000,
            src,
        );
        count(st, src, out, r);
    }

    /// A record's start and end in milliseconds since the epoch, from whichever time fields
    /// its template has; the export time when it has none.
    fn times(&self, msg: &Msg, f: &Fields) -> (i64, i64) {
        const NTP_TO_UNIX_MS: i64 = 2_208_988_800_000;
        let abs = |a: u16| f.num(a).map(|v| v as i64);
        let ntp = |a: u16| f.num(a).map(|v| v as i64 - NTP_TO_UNIX_MS);
        let pick = |secs, ms, us, ns| abs(ms).or(abs(secs)).or(ntp(us)).or(ntp(ns));
        let start = pick(id::START_S, id::START_MS, id::START_US, id::START_NS);
        let end = pick(id::END_S, id::END_MS, id::END_US, id::END_NS);
        // Uptime-relative (v9 FIRST/LAST_SWITCHED, IPFIX flowStart/EndSysUpTime).
        let rel = |a: u16| {
            let t = f.num(a)? as i64;
            match msg.uptime_ms {
                Some(up) => Some(msg.export_ms - (up - t)),
                None => {
                    let init = f
                        .num(id::SYSTEM_INIT_MS)
                        .or_else(|| self.init_ms.get(&(msg.exporter, msg.domain)).copied())?;
                    Some(init as i64 + t)
                }
            }
        };
        let start = start
            .or_else(|| rel(id::FIRST_SWITCHED))
            .unwrap_or(msg.export_ms);
        let end = end
            .or_else(|| rel(id::LAST_SWITCHED))
            .unwrap_or(start)
            .max(start);
        let _ = msg.version;
        (start, end)
    }

    /// Nothing to flush: every record is emitted as it is decoded. Kept so that callers end a
    /// run the same way whatever state the decoder grows.
    pub fn finish(&mut self, _st: &mut FlowInputStats) {}
}

fn count(st: &mut FlowInputStats, src: u32, out: &mut Vec<Rec>, r: Rec) {
    st.records += 1;
    st.sources[src as usize].records += 1;
    out.push(r);
}

/// The sampling rate (1 in N) a record states, if any.
fn sampling_rate(f: &Fields) -> Option<u32> {
    if let Some(n) = f
        .num(id::SAMPLING_INTERVAL)
        .or_else(|| f.num(id::SAMPLER_RANDOM))
    {
        return Some(n.min(u32::MAX as u64) as u32);
    }
    // Random n-out-of-N (RFC 5477): n = samplingSize, N = samplingPopulation.
    if let (Some(n), Some(pop)) = (f.num(id::SAMPLING_SIZE), f.num(id::SAMPLING_POPULATION)) {
        if let Some(rate) = pop.checked_div(n) {
            return Some(rate.min(u32::MAX as u64) as u32);
        }
    }
    let interval = f.num(id::PKT_INTERVAL)?;
    let space = f.num(id::PKT_SPACE).unwrap_or(0);
    (interval > 0).then(|| ((interval + space) / interval).min(u32::MAX as u64) as u32)
}

#[allow(clippy::too_many_arguments)]
fn unidirectional(
    s: IpAddr,
    sport: u16,
    d: IpAddr,
    dport: u16,
    p: u8,
    flags: u8,
    packets: u64,
    bytes: u64,
    first_ns: i64,
    last_ns: i64,
    source: u32,
) -> Rec {
    let (key, src_is_a) = FlowKey::of(NO_VLAN, p, Addr::from(s), sport, Addr::from(d), dport);
    let side = if src_is_a { A } else { B };
    let mut r = Rec {
        key,
        first_ts: first_ns,
        last_ts: last_ns,
        packets: [0; 2],
        bytes: [0; 2],
        flags: [0; 2],
        hist: [0; 2],
        orient: None,
        icmp_unreachable: false,
        source,
    };
    r.packets[side] = packets.max(1);
    r.bytes[side] = bytes;
    let tcp = p == proto::TCP;
    if tcp {
        r.flags[side] = flags;
    }
    let mut h = hist::ANY;
    if tcp && flags & F::FIN != 0 {
        h |= hist::FIN;
    }
    if tcp && flags & F::RST != 0 {
        h |= hist::RST;
    }
    // More than headers on average: the side sent payload.
    if bytes > packets.max(1) * 60 {
        h |= hist::DATA;
    }
    r.hist[side] = h;
    r
}

/// IANA information element ids this module reads (v9 uses the same numbers).
mod id {
    pub const BYTES: u16 = 1;
    pub const PACKETS: u16 = 2;
    pub const PROTO: u16 = 4;
    pub const TCP_FLAGS: u16 = 6;
    pub const SPORT: u16 = 7;
    pub const SRC4: u16 = 8;
    pub const DPORT: u16 = 11;
    pub const DST4: u16 = 12;
    pub const LAST_SWITCHED: u16 = 21;
    pub const FIRST_SWITCHED: u16 = 22;
    pub const SRC6: u16 = 27;
    pub const DST6: u16 = 28;
    pub const SAMPLING_INTERVAL: u16 = 34;
    pub const SAMPLER_RANDOM: u16 = 50;
    pub const BYTES_TOTAL: u16 = 85;
    pub const PACKETS_TOTAL: u16 = 86;
    pub const START_S: u16 = 150;
    pub const END_S: u16 = 151;
    pub const START_MS: u16 = 152;
    pub const END_MS: u16 = 153;
    pub const START_US: u16 = 154;
    pub const END_US: u16 = 155;
    pub const START_NS: u16 = 156;
    pub const END_NS: u16 = 157;
    pub const SYSTEM_INIT_MS: u16 = 160;
    pub const PKT_INTERVAL: u16 = 305;
    pub const PKT_SPACE: u16 = 306;
    pub const SAMPLING_SIZE: u16 = 309;
    pub const SAMPLING_POPULATION: u16 = 310;
}

/// A record's fields by IANA id (the first occurrence of each).
struct Fields<'a> {
    by_id: Vec<(u16, &'a FieldValue)>,
}

impl<'a> Fields<'a> {
    fn get(&self, id: u16) -> Option<&'a FieldValue> {
        self.by_id.iter().find(|(i, _)| *i == id).map(|(_, v)| *v)
    }

    fn num(&self, id: u16) -> Option<u64> {
        self.get(id).and_then(|v| v.as_u64())
    }

    fn addr(&self, id: u16) -> Option<IpAddr> {
        match self.get(id)? {
            FieldValue::Ip4Addr(a) => Some(IpAddr::V4(*a)),
            FieldValue::Ip6Addr(a) => Some(IpAddr::V6(*a)),
            _ => None,
        }
    }
}

fn v9_fields(
    rec: &[(
        netflow_parser::variable_versions::v9::lookup::V9Field,
        FieldValue,
    )],
) -> Fields<'_> {
    Fields {
        by_id: rec.iter().map(|(f, v)| (u16::from(*f), v)).collect(),
    }
}

/// IANA fields only: enterprise-specific ones (Cisco, VMware, ...) are skipped.
fn ipfix_fields(rec: &[(IPFixField, FieldValue)]) -> Fields<'_> {
    Fields {
        by_id: rec
            .iter()
            .filter_map(|(f, v)| match f {
                IPFixField::IANA(i) => iana_id(i).map(|id| (id, v)),
                _ => None,
            })
            .collect(),
    }
}

fn iana_id(f: &IANAIPFixField) -> Option<u16> {
    use IANAIPFixField as I;
    Some(match f {
        I::OctetDeltaCount => id::BYTES,
        I::PacketDeltaCount => id::PACKETS,
        I::ProtocolIdentifier => id::PROTO,
        I::TcpControlBits => id::TCP_FLAGS,
        I::SourceTransportPort => id::SPORT,
        I::SourceIpv4address => id::SRC4,
        I::DestinationTransportPort => id::DPORT,
        I::DestinationIpv4address => id::DST4,
        I::FlowEndSysUpTime => id::LAST_SWITCHED,
        I::FlowStartSysUpTime => id::FIRST_SWITCHED,
        I::SourceIpv6address => id::SRC6,
        I::DestinationIpv6address => id::DST6,
        I::SamplingInterval => id::SAMPLING_INTERVAL,
        I::SamplerRandomInterval => id::SAMPLER_RANDOM,
        I::OctetTotalCount => id::BYTES_TOTAL,
        I::PacketTotalCount => id::PACKETS_TOTAL,
        I::FlowStartSeconds => id::START_S,
        I::FlowEndSeconds => id::END_S,
        I::FlowStartMilliseconds => id::START_MS,
        I::FlowEndMilliseconds => id::END_MS,
        I::FlowStartMicroseconds => id::START_US,
        I::FlowEndMicroseconds => id::END_US,
        I::FlowStartNanoseconds => id::START_NS,
        I::FlowEndNanoseconds => id::END_NS,
        I::SystemInitTimeMilliseconds => id::SYSTEM_INIT_MS,
        I::SamplingPacketInterval => id::PKT_INTERVAL,
        I::SamplingPacketSpace => id::PKT_SPACE,
        I::SamplingSize => id::SAMPLING_SIZE,
        I::SamplingPopulation => id::SAMPLING_POPULATION,
        _ => return None,
    })
}

/// The UDP datagram in a captured frame: (source address and port, payload).
fn udp_payload(link: u16, frame: &[u8]) -> Option<(SocketAddr, &[u8])> {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let sliced = match link {
        1 => SlicedPacket::from_ethernet(frame),
        101 | 12 | 14 | 228 | 229 => SlicedPacket::from_ip(frame),
        113 => SlicedPacket::from_linux_sll(frame),
        0 | 108 => SlicedPacket::from_ip(frame.get(4..)?),
        _ => return None,
    }
    .ok()?;
    let src: IpAddr = match sliced.net? {
        NetSlice::Ipv4(v4) => {
            if v4.header().is_fragmenting_payload() {
                return None;
            }
            IpAddr::V4(v4.header().source_addr())
        }
        NetSlice::Ipv6(v6) => IpAddr::V6(v6.header().source_addr()),
    };
    match sliced.transport? {
        TransportSlice::Udp(u) => Some((SocketAddr::new(src, u.source_port()), u.payload())),
        _ => None,
    }
}

/// Every UDP datagram of a capture goes to the decoder; other frames are counted as skipped.
pub fn read_capture(
    path: &Path,
    dec: &mut Decoder,
    st: &mut FlowInputStats,
    out: &mut Vec<Rec>,
) -> Result<(), InputError> {
    let name = path.display().to_string();
    let mut reader = open_capture_with(path, false).map_err(|e| InputError(e.to_string()))?;
    let mut batch = Batch::default();
    let mut frame_no = 0u64;
    loop {
        batch.clear();
        let more = match reader.fill(&mut batch, 4096, 8 << 20) {
            Ok(m) => m,
            Err(e) => {
                // Damage: the export packets before it are kept.
                st.skip("damaged capture", || e.to_string());
                false
            }
        };
        for i in 0..batch.len() {
            frame_no += 1;
            let link = batch.records[i].link;
            let Some((exporter, payload)) = udp_payload(link, batch.packet(i)) else {
                st.skip("frame without a UDP datagram", || {
                    format!("{name}: frame {frame_no}: not a UDP datagram (NetFlow/IPFIX travel over UDP)")
                });
                continue;
            };
            let label = exporter.ip().to_string();
            dec.decode(
                exporter,
                &label,
                payload,
                &|| format!("{name}: frame {frame_no}"),
                st,
                out,
            );
        }
        if !more {
            break;
        }
    }
    for w in reader.take_warnings() {
        st.skip("damaged capture", || {
            format!("{name}: byte {}: {}", w.offset, w.detail)
        });
    }
    Ok(())
}

/// An RFC 5655 IPFIX file: messages one after another, each with its length in its header.
pub fn read_ipfix_file(
    name: &str,
    data: &[u8],
    dec: &mut Decoder,
    st: &mut FlowInputStats,
    out: &mut Vec<Rec>,
) {
    // One pseudo-exporter per file: its domains keep their own templates.
    let exporter = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    let mut at = 0usize;
    while at < data.len() {
        let len = data
            .get(at + 2..at + 4)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .unwrap_or(0);
        if data.get(at..at + 2) != Some(&[0, 10][..]) || len < 16 || at + len > data.len() {
            st.skip("damaged IPFIX file", || {
                format!("{name}: byte {at}: not an IPFIX message header (version 10 and a length that fits the file); the rest of the file is skipped")
            });
            break;
        }
        let msg = &data[at..at + len];
        dec.decode(
            exporter,
            name,
            msg,
            &|| format!("{name}: byte {at}"),
            st,
            out,
        );
        at += len;
    }
}
