//! `flows.csv` / `flows.jsonl`: one row per flow (schema in docs/reports.md).

use rayon::prelude::*;
use serde::Serialize;
use std::io::{self, Write};

use super::{
    format_flags, format_iso, format_ts, push_addr, push_flags, push_int, push_iso, push_ts,
};
use crate::decode::proto;
use crate::flow::FlowRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

/// One row of the flows report. Field order is the column order.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct FlowRow {
    pub first_seen: String,
    pub last_seen: String,
    pub vlan: String,
    pub proto: String,
    pub client_addr: String,
    pub client_port: String,
    pub server_addr: String,
    pub server_port: String,
    pub basis: &'static str,
    pub conn_state: &'static str,
    pub client_packets: u64,
    pub client_bytes: u64,
    pub server_packets: u64,
    pub server_bytes: u64,
    pub client_flags: String,
    pub server_flags: String,
    pub icmp_unreachable: bool,
    pub evicted: bool,
    /// first_seen and last_seen as epoch seconds with all nine decimals: what `audit --flows`
    /// reads back, so that no precision is lost on the way through a file.
    pub first_seen_epoch: String,
    pub last_seen_epoch: String,
}

impl FlowRow {
    pub fn from_record(r: &FlowRecord) -> FlowRow {
        let (c, cp) = r.client();
        let (s, sp) = r.server();
        let ported = proto::has_ports(r.key.proto);
        let port = |p: u16| if ported { p.to_string() } else { String::new() };
        FlowRow {
            first_seen: format_iso(r.flow.first_ts),
            last_seen: format_iso(r.flow.last_ts),
            vlan: r.vlan().map(|v| v.to_string()).unwrap_or_default(),
            proto: proto::name(r.key.proto).into_owned(),
            client_addr: c.to_string(),
            client_port: port(cp),
            server_addr: s.to_string(),
            server_port: port(sp),
            basis: r.flow.basis.as_str(),
            conn_state: r.conn_state().as_str(),
            client_packets: r.flow.packets[0],
            client_bytes: r.flow.bytes[0],
            server_packets: r.flow.packets[1],
            server_bytes: r.flow.bytes[1],
            client_flags: format_flags(r.flow.flags[0]),
            server_flags: format_flags(r.flow.flags[1]),
            icmp_unreachable: r.flow.icmp_unreachable,
            evicted: r.flow.evicted,
            first_seen_epoch: format_ts(r.flow.first_ts),
            last_seen_epoch: format_ts(r.flow.last_ts),
        }
    }
}

/// Writes `flows` (in report order) as CSV or JSON lines. Streams: memory holds one chunk.
pub fn write_flows(
    out: &mut dyn Write,
    mut flows: impl Iterator<Item = io::Result<FlowRecord>>,
    format: Format,
) -> io::Result<()> {
    match format {
        Format::Csv => {
            // Every cell is a number, an address, a fixed word or flag letters: nothing needs CSV
            // quoting, so rows are formatted directly, in parallel pieces of a chunk, and written
            // in order (with a million flows the csv crate's per-field serde path dominated).
            out.write_all(FLOW_COLUMNS.join(",").as_bytes())?;
            out.write_all(b"\n")?;
            let mut chunk = Vec::with_capacity(CHUNK);
            loop {
                chunk.clear();
                for f in flows.by_ref().take(CHUNK) {
                    chunk.push(f?);
                }
                if chunk.is_empty() {
                    break;
                }
                let pieces: Vec<Vec<u8>> = chunk
                    .par_chunks(8192)
                    .map(|piece| {
                        let mut buf = Vec::with_capacity(piece.len() * 128);
                        for r in piece {
                            csv_row(&mut buf, r);
                        }
                        buf
                    })
                    .collect();
                for p in pieces {
                    out.write_all(&p)?;
                }
            }
        }
        Format::Jsonl => {
            for r in flows {
                super::flows_jsonl::write_row(out, &r?)?;
            }
        }
    }
    Ok(())
}

/// Flows formatted per round: enough to keep both cores busy, small next to the flow table.
const CHUNK: usize = 64 * 1024;

pub const FLOW_COLUMNS: &[&str] = &[
    "first_seen",
    "last_seen",
    "vlan",
    "proto",
    "client_addr",
    "client_port",
    "server_addr",
    "server_port",
    "basis",
    "conn_state",
    "client_packets",
    "client_bytes",
    "server_packets",
    "server_bytes",
    "client_flags",
    "server_flags",
    "icmp_unreachable",
    "evicted",
    "first_seen_epoch",
    "last_seen_epoch",
];

/// flows.csv of report schema 2 had no `*_epoch` columns: its first_seen and last_seen were
/// epoch seconds. Still read by `audit --flows`.
pub const FLOW_COLUMNS_SCHEMA_2: usize = 18;

/// One flows.csv row, in [`FLOW_COLUMNS`] order.
fn csv_row(buf: &mut Vec<u8>, r: &FlowRecord) {
    let (c, cp) = r.client();
    let (s, sp) = r.server();
    let ported = proto::has_ports(r.key.proto);
    let f = &r.flow;
    push_iso(buf, f.first_ts);
    buf.push(b',');
    push_iso(buf, f.last_ts);
    buf.push(b',');
    if let Some(v) = r.vlan() {
        push_int(buf, v);
    }
    buf.push(b',');
    buf.extend_from_slice(proto::name(r.key.proto).as_bytes());
    for (addr, port) in [(c, cp), (s, sp)] {
        buf.push(b',');
        push_addr(buf, addr);
        buf.push(b',');
        if ported {
            push_int(buf, port);
        }
    }
    for word in [f.basis.as_str(), r.conn_state().as_str()] {
        buf.push(b',');
        buf.extend_from_slice(word.as_bytes());
    }
    for n in [f.packets[0], f.bytes[0], f.packets[1], f.bytes[1]] {
        buf.push(b',');
        push_int(buf, n);
    }
    for flags in f.flags {
        buf.push(b',');
        push_flags(buf, flags);
    }
    for yes in [f.icmp_unreachable, f.evicted] {
        buf.push(b',');
        buf.extend_from_slice(if yes { b"true" } else { b"false" });
    }
    for ts in [f.first_ts, f.last_ts] {
        buf.push(b',');
        push_ts(buf, ts);
    }
    buf.push(b'\n');
}
