//! flowaudit's own `flows.csv` and `flows.jsonl` (docs/reports.md), read back so that `flows`
//! can run per capture file on many machines and one `audit --flows` merges the results.
//!
//! A row keeps client, server, basis, counts, ORed TCP flags and conn_state. The engine's
//! per-side history is rebuilt from the flags and made to give the row's conn_state again
//! ([`solve_hist`]), so outcomes do not change on the way through a file.

use std::collections::HashMap;

use crate::decode::{proto, tcp_flags as F, Addr, NO_VLAN};
use crate::flow::{hist, Basis, ConnState, Flow, FlowKey, CLIENT, SERVER};
use crate::report::flows::{FLOW_COLUMNS, FLOW_COLUMNS_SCHEMA_2};
use crate::report::time::parse_time;

pub use crate::report::time::parse_epoch as parse_ts;

use super::{FlowInputStats, Rec};

/// One row, as text cells in [`FLOW_COLUMNS`] order (schema 2's rows lack the last two).
fn row_to_rec(cells: &[&str], source: u32, solver: &mut Solver) -> Result<Rec, String> {
    let get = |i: usize| cells.get(i).copied().unwrap_or("");
    // The `*_epoch` column keeps the nanoseconds; without it (schema 2, flows.jsonl) the time
    // column itself is read: ISO 8601 or epoch seconds.
    let ts = |i: usize| {
        let epoch = get(i + FLOW_COLUMNS_SCHEMA_2);
        let (col, text) = if epoch.is_empty() {
            (i, get(i))
        } else {
            (i + FLOW_COLUMNS_SCHEMA_2, epoch)
        };
        parse_time(text)
            .ok_or_else(|| format!("{}: not a timestamp: {:?}", FLOW_COLUMNS[col], text))
    };
    let num = |i: usize| {
        get(i)
            .parse::<u64>()
            .map_err(|_| format!("{}: not a number: {:?}", FLOW_COLUMNS[i], get(i)))
    };
    let addr = |i: usize| {
        get(i)
            .parse::<std::net::IpAddr>()
            .map(Addr::from)
            .map_err(|_| format!("{}: not an address: {:?}", FLOW_COLUMNS[i], get(i)))
    };
    let port = |i: usize| -> Result<u16, String> {
        if get(i).is_empty() {
            return Ok(0);
        }
        get(i)
            .parse::<u16>()
            .map_err(|_| format!("{}: not a port: {:?}", FLOW_COLUMNS[i], get(i)))
    };
    let vlan = if get(2).is_empty() {
        NO_VLAN
    } else {
        get(2)
            .parse::<u16>()
            .map_err(|_| format!("vlan: {:?}", get(2)))?
    };
    let p = proto_number(get(3)).ok_or_else(|| format!("proto: unknown {:?}", get(3)))?;
    let (c, cp, s, sp) = (addr(4)?, port(5)?, addr(6)?, port(7)?);
    let basis = parse_basis(get(8)).ok_or_else(|| format!("basis: unknown {:?}", get(8)))?;
    let state =
        ConnState::parse(get(9)).ok_or_else(|| format!("conn_state: unknown {:?}", get(9)))?;
    let packets = [num(10)?, num(12)?];
    let bytes = [num(11)?, num(13)?];
    let flags = [parse_flags(get(14)), parse_flags(get(15))];
    let yes = |i: usize| get(i) == "true";
    let (key, client_is_a) = FlowKey::of(vlan, p, c, cp, s, sp);
    let h = solver.solve(p, state, flags, packets, bytes);
    let by_endpoint = |v: [u64; 2]| if client_is_a { v } else { [v[1], v[0]] };
    Ok(Rec {
        key,
        first_ts: ts(0)?,
        last_ts: ts(1)?,
        packets: by_endpoint(packets),
        bytes: by_endpoint(bytes),
        flags: if client_is_a {
            flags
        } else {
            [flags[1], flags[0]]
        },
        hist: if client_is_a { h } else { [h[1], h[0]] },
        orient: Some((client_is_a, basis)),
        icmp_unreachable: yes(16),
        source,
    })
}

pub fn read_csv(name: &str, data: &[u8], st: &mut FlowInputStats, out: &mut Vec<Rec>) {
    let source = st.source(name.to_string(), "flows.csv");
    let text = String::from_utf8_lossy(data);
    let mut solver = Solver::default();
    for (i, line) in text.lines().enumerate() {
        if i == 0 || line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != FLOW_COLUMNS.len() && cells.len() != FLOW_COLUMNS_SCHEMA_2 {
            st.skip("malformed row", || {
                format!(
                    "{name}: line {}: {} cells, a flows.csv row has {} ({} before report schema 3)",
                    i + 1,
                    cells.len(),
                    FLOW_COLUMNS.len(),
                    FLOW_COLUMNS_SCHEMA_2
                )
            });
            continue;
        }
        push(
            row_to_rec(&cells, source, &mut solver),
            name,
            i + 1,
            st,
            out,
        );
    }
}

pub fn read_jsonl(name: &str, data: &[u8], st: &mut FlowInputStats, out: &mut Vec<Rec>) {
    let source = st.source(name.to_string(), "flows.jsonl");
    let text = String::from_utf8_lossy(data);
    let mut solver = Solver::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                st.skip("malformed row", || {
                    format!("{name}: line {}: not JSON: {e}", i + 1)
                });
                continue;
            }
        };
        let cells: Vec<String> = FLOW_COLUMNS
            .iter()
            .map(|c| match v.get(*c) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            })
            .collect();
        let refs: Vec<&str> = cells.iter().map(|s| s.as_str()).collect();
        push(row_to_rec(&refs, source, &mut solver), name, i + 1, st, out);
    }
}

fn push(
    r: Result<Rec, String>,
    name: &str,
    line: usize,
    st: &mut FlowInputStats,
    out: &mut Vec<Rec>,
) {
    match r {
        Ok(rec) => {
            st.records += 1;
            st.sources[rec.source as usize].records += 1;
            out.push(rec);
        }
        Err(e) => st.skip("malformed row", || format!("{name}: line {line}: {e}")),
    }
}

pub fn parse_flags(s: &str) -> u8 {
    s.bytes()
        .map(|c| match c {
            b'S' => F::SYN,
            b'A' => F::ACK,
            b'P' => F::PSH,
            b'F' => F::FIN,
            b'R' => F::RST,
            b'U' => 0x20,
            _ => 0,
        })
        .fold(0, |a, b| a | b)
}

fn parse_basis(s: &str) -> Option<Basis> {
    [
        Basis::Syn,
        Basis::SynAck,
        Basis::Port,
        Basis::FirstPacket,
        Basis::Catalog,
    ]
    .into_iter()
    .find(|b| b.as_str() == s)
}

/// A protocol's number from the name `proto::name` gives it (or the number itself).
pub fn proto_number(s: &str) -> Option<u8> {
    s.parse::<proto::IpProto>().ok().map(u8::from)
}

/// Rebuilds per-side history bits that the ORed flags allow and that give the row's
/// conn_state. Cached: a file has few distinct (state, flags) combinations.
#[derive(Default)]
pub struct Solver {
    cache: HashMap<SolverKey, [u8; 2]>,
}

/// Protocol, conn_state, flags per side, sent per side, data per side.
type SolverKey = (u8, ConnState, [u8; 2], [bool; 2], [bool; 2]);

impl Solver {
    pub fn solve(
        &mut self,
        p: u8,
        state: ConnState,
        flags: [u8; 2],
        packets: [u64; 2],
        bytes: [u64; 2],
    ) -> [u8; 2] {
        let sent = [packets[0] > 0, packets[1] > 0];
        // More than headers on average: the side sent data (only REJ's test reads it).
        let data = [0, 1].map(|s| packets[s] > 0 && bytes[s] > packets[s] * 60);
        *self
            .cache
            .entry((p, state, flags, sent, data))
            .or_insert_with(|| solve_hist(p, state, flags, sent, data))
    }
}

/// Searches the SYN/SYN-ACK bits the flags leave open for ones that give `state`; fixed bits
/// (FIN, RST, any packet) come from the flags and counts. Falls back to the fixed bits.
pub fn solve_hist(
    p: u8,
    state: ConnState,
    flags: [u8; 2],
    sent: [bool; 2],
    data: [bool; 2],
) -> [u8; 2] {
    let fixed = |s: usize| {
        let mut h = 0;
        if sent[s] {
            h |= hist::ANY;
        }
        if data[s] {
            h |= hist::DATA;
        }
        if flags[s] & F::FIN != 0 {
            h |= hist::FIN;
        }
        if flags[s] & F::RST != 0 {
            h |= hist::RST;
        }
        h
    };
    let base = [fixed(CLIENT), fixed(SERVER)];
    let options = |s: usize| -> Vec<u8> {
        let mut v = vec![0];
        if flags[s] & F::SYN != 0 {
            v.push(hist::SYN);
            if flags[s] & F::ACK != 0 {
                v.push(hist::SYNACK);
                v.push(hist::SYN | hist::SYNACK);
            }
        }
        v
    };
    let try_state = |h: [u8; 2]| {
        let f = Flow {
            first_ts: 0,
            last_ts: 0,
            packets: [sent[0] as u64, sent[1] as u64],
            bytes: [0; 2],
            flags,
            hist: h,
            client_is_a: true,
            basis: Basis::Syn,
            icmp_unreachable: false,
            evicted: false,
        };
        f.conn_state(p) == state
    };
    // Prefer the natural reading: client SYN, server SYN-ACK; then the rest in order.
    let mut cands = vec![];
    for c in options(CLIENT).into_iter().rev() {
        for s in options(SERVER).into_iter().rev() {
            cands.push([base[0] | c, base[1] | s]);
        }
    }
    cands.sort_by_key(|h| {
        let natural = (h[0] & hist::SYN != 0) as u8 + (h[1] & hist::SYNACK != 0) as u8;
        std::cmp::Reverse(natural)
    });
    for h in cands {
        if try_state(h) {
            return h;
        }
    }
    // DATA is a guess from byte counts: try without it before giving up.
    let nodata = [base[0] & !hist::DATA, base[1] & !hist::DATA];
    for c in options(CLIENT) {
        for s in options(SERVER) {
            let h = [nodata[0] | c, nodata[1] | s];
            if try_state(h) {
                return h;
            }
        }
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_the_report_format() {
        assert_eq!(
            crate::report::format_ts(parse_ts("12.034000000").unwrap()),
            "12.034000000"
        );
        let times = |cells: &[&str]| {
            row_to_rec(cells, 0, &mut Solver::default()).map(|r| (r.first_ts, r.last_ts))
        };
        let mut row = vec![
            "2023-11-14T22:13:20.000Z",
            "2023-11-14T22:13:20.001Z",
            "",
            "udp",
            "10.0.0.1",
            "40000",
            "10.0.0.2",
            "53",
            "port",
            "SF",
            "1",
            "60",
            "1",
            "90",
            "",
            "",
            "false",
            "false",
            "1700000000.000123456",
            "1700000000.001999999",
        ];
        // Schema 3: the epoch columns win (they keep the nanoseconds).
        assert_eq!(
            times(&row),
            Ok((1_700_000_000_000_123_456, 1_700_000_000_001_999_999))
        );
        // flows.jsonl and hand-made files: the ISO column alone.
        row[18] = "";
        row[19] = "";
        assert_eq!(
            times(&row),
            Ok((1_700_000_000_000_000_000, 1_700_000_000_001_000_000))
        );
        // Schema 2: 18 columns, epoch seconds in first_seen and last_seen.
        row.truncate(18);
        row[0] = "1700000000.5";
        row[1] = "1700000001";
        assert_eq!(
            times(&row),
            Ok((1_700_000_000_500_000_000, 1_700_000_001_000_000_000))
        );
        row[0] = "yesterday";
        assert_eq!(
            times(&row),
            Err("first_seen: not a timestamp: \"yesterday\"".to_string())
        );
    }

    #[test]
    fn solver_gives_back_each_state() {
        let sa = F::SYN | F::ACK;
        for (state, flags, sent) in [
            (ConnState::SF, [sa | F::FIN, sa | F::FIN], [true, true]),
            (ConnState::S0, [F::SYN, 0], [true, false]),
            (ConnState::REJ, [F::SYN, F::RST | F::ACK], [true, true]),
            (ConnState::S1, [sa, sa], [true, true]),
            (ConnState::RSTO, [sa | F::RST, sa], [true, true]),
            (ConnState::OTH, [F::ACK, F::ACK], [true, true]),
        ] {
            let h = solve_hist(proto::TCP, state, flags, sent, [false; 2]);
            let f = Flow {
                first_ts: 0,
                last_ts: 0,
                packets: [1, sent[1] as u64],
                bytes: [0; 2],
                flags,
                hist: h,
                client_is_a: true,
                basis: Basis::Syn,
                icmp_unreachable: false,
                evicted: false,
            };
            assert_eq!(f.conn_state(proto::TCP), state, "{flags:?}");
        }
    }
}
