//! Records to bidirectional flows, by the packet engine's own rules:
//!
//! - records of one key (the canonical 5-tuple plus VLAN) belong to one flow while each starts
//!   within the idle timeout of the flow's last activity, as packets do; a record that starts a
//!   new TCP connection (a SYN) after the flow was closed (RST, or FIN both ways) starts a new
//!   flow. So the two directions of a NetFlow conversation pair up, an exporter's active-timeout
//!   splits join again, and a flow cut by two `flows` runs over consecutive files is one flow;
//! - records from different sources that overlap in time are the same packets seen twice (two
//!   routers on the path, two sensors): counted once, with the larger source's counts;
//! - client and server come from the source when it decided them (a SYN seen by the sensor wins
//!   over a guess); for NetFlow, an endpoint that sent SYN is the client (the one that started
//!   first if both did), else the port rule and then the first record, as for packets.

use crate::decode::{proto, tcp_flags as F};
use crate::flow::{hist, Basis, Flow, FlowRecord, ServerPorts, Timeouts, CLIENT, SERVER};

use super::{FlowInputStats, Rec, A, B};

/// Most duplicate examples kept for the report.
const MAX_DUP_EXAMPLES: usize = 100;

pub fn pair(
    mut recs: Vec<Rec>,
    timeouts: &Timeouts,
    ports: &ServerPorts,
    st: &mut FlowInputStats,
) -> Vec<FlowRecord> {
    recs.sort_unstable_by(|x, y| {
        (x.key, x.first_ts, x.last_ts, x.source, x.packets, x.bytes)
            .cmp(&(y.key, y.first_ts, y.last_ts, y.source, y.packets, y.bytes))
    });
    let mut out = Vec::new();
    let mut group: Vec<Rec> = Vec::new();
    let mut last = i64::MIN;
    for r in recs {
        let same = group.first().is_some_and(|g| g.key == r.key)
            && r.first_ts.saturating_sub(last) <= timeouts.for_proto(r.key.proto)
            && !(r.key.proto == proto::TCP && starts_connection(&r) && closed(&group));
        if !same && !group.is_empty() {
            out.push(finish(&group, ports, st));
            group.clear();
        }
        if same {
            st.merged_records += 1;
            last = last.max(r.last_ts);
        } else {
            last = r.last_ts;
        }
        group.push(r);
    }
    if !group.is_empty() {
        out.push(finish(&group, ports, st));
    }
    out
}

/// The record carries a SYN without answer bits: a client opening a connection.
fn starts_connection(r: &Rec) -> bool {
    (0..2).any(|e| r.hist[e] & hist::SYN != 0 || (r.orient.is_none() && r.flags[e] & F::SYN != 0))
}

/// FIN from both endpoints, or a RST, in what the group has seen so far.
fn closed(group: &[Rec]) -> bool {
    let mut h = [0u8; 2];
    let mut f = [0u8; 2];
    for r in group {
        for e in [A, B] {
            h[e] |= r.hist[e];
            f[e] |= r.flags[e];
        }
    }
    (h[A] | h[B]) & hist::RST != 0
        || (f[A] | f[B]) & F::RST != 0
        || (h[A] & h[B] & hist::FIN != 0)
        || (f[A] & f[B] & F::FIN != 0)
}

/// Per-source sums for one flow.
#[derive(Clone, Copy)]
struct Part {
    source: u32,
    first: i64,
    last: i64,
    packets: [u64; 2],
    bytes: [u64; 2],
}

fn finish(group: &[Rec], ports: &ServerPorts, st: &mut FlowInputStats) -> FlowRecord {
    let key = group[0].key;
    // 1. Counts: per source, then sources that overlap in time are the same packets.
    let (acc, dup_sources) = merge_sources(per_source(group));
    let (flags, mut h, unreachable) = ored_bits(group);
    // 2. Client and server.
    let (client_is_a, basis) = orientation(group, &flags, ports);
    let (c, s) = if client_is_a { (A, B) } else { (B, A) };
    // NetFlow's ORed flags: the client's SYN is a SYN, the server's SYN+ACK a SYN-ACK.
    if group.iter().any(|r| r.orient.is_none()) && key.proto == proto::TCP {
        if flags[c] & F::SYN != 0 {
            h[c] |= hist::SYN;
        }
        if flags[s] & (F::SYN | F::ACK) == F::SYN | F::ACK {
            h[s] |= hist::SYNACK;
        }
    }
    if dup_sources.len() > 1 {
        note_duplicate(st, group, &dup_sources);
    }
    let mut flow = Flow {
        first_ts: acc.first,
        last_ts: acc.last,
        packets: [acc.packets[c], acc.packets[s]],
        bytes: [acc.bytes[c], acc.bytes[s]],
        flags: [flags[c], flags[s]],
        hist: [h[c], h[s]],
        client_is_a,
        basis,
        icmp_unreachable: unreachable,
        evicted: false,
    };
    for side in [CLIENT, SERVER] {
        if flow.packets[side] > 0 {
            flow.hist[side] |= hist::ANY;
        }
    }
    FlowRecord { key, flow }
}

/// The group's records summed per source (time span, packets, bytes), in order of appearance.
fn per_source(group: &[Rec]) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    for r in group {
        match parts.iter_mut().find(|p| p.source == r.source) {
            Some(p) => {
                p.first = p.first.min(r.first_ts);
                p.last = p.last.max(r.last_ts);
                for e in [A, B] {
                    p.packets[e] += r.packets[e];
                    p.bytes[e] += r.bytes[e];
                }
            }
            None => parts.push(Part {
                source: r.source,
                first: r.first_ts,
                last: r.last_ts,
                packets: r.packets,
                bytes: r.bytes,
            }),
        }
    }
    parts
}

/// One total from the per-source sums, in time order: a source overlapping the total so far
/// saw the same packets (the larger count is kept), one that does not saw others (added).
/// Also the sources counted as duplicates (the first included).
fn merge_sources(mut parts: Vec<Part>) -> (Part, Vec<u32>) {
    parts.sort_by_key(|p| (p.first, p.last, p.source));
    let mut acc = parts[0];
    let mut dup_sources = vec![acc.source];
    for p in &parts[1..] {
        if p.first <= acc.last && p.last >= acc.first {
            for e in [A, B] {
                acc.packets[e] = acc.packets[e].max(p.packets[e]);
                acc.bytes[e] = acc.bytes[e].max(p.bytes[e]);
            }
            dup_sources.push(p.source);
        } else {
            for e in [A, B] {
                acc.packets[e] += p.packets[e];
                acc.bytes[e] += p.bytes[e];
            }
        }
        acc.first = acc.first.min(p.first);
        acc.last = acc.last.max(p.last);
    }
    (acc, dup_sources)
}

/// The TCP flags and history bits of every record ORed per endpoint, and whether any record
/// saw an ICMP unreachable.
fn ored_bits(group: &[Rec]) -> ([u8; 2], [u8; 2], bool) {
    let mut flags = [0u8; 2];
    let mut h = [0u8; 2];
    let mut unreachable = false;
    for r in group {
        for e in [A, B] {
            flags[e] |= r.flags[e];
            h[e] |= r.hist[e];
        }
        unreachable |= r.icmp_unreachable;
    }
    (flags, h, unreachable)
}

/// Whether endpoint A is the client, and why: a source that saw the handshake wins, then any
/// source's decision, then the rules for unidirectional records.
fn orientation(group: &[Rec], flags: &[u8; 2], ports: &ServerPorts) -> (bool, Basis) {
    let strong = group
        .iter()
        .filter_map(|r| r.orient)
        .find(|(_, b)| matches!(b, Basis::Syn | Basis::SynAck));
    strong
        .or_else(|| group.iter().find_map(|r| r.orient))
        .unwrap_or_else(|| orient_unidirectional(group, flags, ports))
}

/// Counts a flow several sources saw, keeping the first few as examples for the report.
fn note_duplicate(st: &mut FlowInputStats, group: &[Rec], dup_sources: &[u32]) {
    let key = group[0].key;
    st.duplicate_flows += 1;
    if st.duplicate_examples.len() < MAX_DUP_EXAMPLES {
        let label = format!(
            "{} {}:{} <-> {}:{}",
            proto::name(key.proto),
            key.a,
            key.a_port,
            key.b,
            key.b_port
        );
        let names = dup_sources
            .iter()
            .map(|&i| st.sources[i as usize].name.clone())
            .collect();
        st.duplicate_examples.push((label, names));
    }
}

/// Client and server of unidirectional records: TCP flags first, then ports, then who sent
/// the first record (the packet engine's order of rules).
fn orient_unidirectional(group: &[Rec], flags: &[u8; 2], ports: &ServerPorts) -> (bool, Basis) {
    let key = group[0].key;
    let sender = |r: &Rec| if r.packets[A] > 0 { A } else { B };
    let first = sender(&group[0]);
    if key.proto == proto::TCP {
        let syn = |e: usize| flags[e] & F::SYN != 0;
        let syn_only = |e: usize| syn(e) && flags[e] & F::ACK == 0;
        match (syn(A), syn(B)) {
            (true, false) => return (true, Basis::Syn),
            (false, true) => return (false, Basis::Syn),
            // Both opened: a side that never acknowledged only sent SYNs (the client of a
            // refused or unanswered attempt); otherwise the side that started first.
            (true, true) => {
                return match (syn_only(A), syn_only(B)) {
                    (true, false) => (true, Basis::Syn),
                    (false, true) => (false, Basis::Syn),
                    _ => (first == A, Basis::Syn),
                }
            }
            (false, false) => {}
        }
    }
    let (sp, dp) = if first == A {
        (key.a_port, key.b_port)
    } else {
        (key.b_port, key.a_port)
    };
    if proto::has_ports(key.proto)
        && ports.is_server(key.proto, sp)
        && !ports.is_server(key.proto, dp)
    {
        (first != A, Basis::Port)
    } else {
        (first == A, Basis::FirstPacket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(source: u32, first: i64, last: i64, packets: [u64; 2], bytes: [u64; 2]) -> Part {
        Part {
            source,
            first,
            last,
            packets,
            bytes,
        }
    }

    /// Sources 0 (t 0..10) and 1 (t 5..12) overlap: the same packets, the larger counts kept
    /// (packets max(5,6)=6 and max(3,2)=3). Source 2 (t 20..30) comes after: added (6+1, 3+1).
    #[test]
    fn overlapping_sources_count_once_and_later_ones_add() {
        let parts = vec![
            part(2, 20, 30, [1, 1], [100, 100]),
            part(0, 0, 10, [5, 3], [500, 300]),
            part(1, 5, 12, [6, 2], [600, 200]),
        ];
        let (acc, dups) = merge_sources(parts);
        assert_eq!((acc.first, acc.last), (0, 30));
        assert_eq!(acc.packets, [7, 4]);
        assert_eq!(acc.bytes, [700, 400]);
        assert_eq!(dups, vec![0, 1]);
    }
}
