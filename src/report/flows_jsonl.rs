//! `flows --format jsonl`: one JSON object per flow, with the fields of flows.csv typed the way
//! jq, Elasticsearch and Zeek's JSON logs expect: counts and ports are JSON numbers, times are
//! epoch seconds as JSON numbers, absent values (the port of an ICMP flow, no VLAN) are null.

use serde::Serialize;
use serde_json::value::RawValue;
use std::io::{self, Write};

use crate::decode::proto;
use crate::flow::FlowRecord;

use super::format_flags;

/// One line of flows.jsonl. Field order is flows.csv's column order.
#[derive(Serialize)]
struct JsonFlow {
    first_seen: Box<RawValue>,
    last_seen: Box<RawValue>,
    vlan: Option<u16>,
    proto: String,
    client_addr: String,
    client_port: Option<u16>,
    server_addr: String,
    server_port: Option<u16>,
    basis: &'static str,
    conn_state: &'static str,
    client_packets: u64,
    client_bytes: u64,
    server_packets: u64,
    server_bytes: u64,
    client_flags: String,
    server_flags: String,
    icmp_unreachable: bool,
    evicted: bool,
}

/// Nanoseconds since the epoch as a JSON number of seconds with all nine decimals (an f64
/// would round them away). Unlike the CSV's text, a time before the epoch is the number it
/// means: -1 ns is -0.000000001.
fn epoch_seconds(ts_ns: i64) -> Box<RawValue> {
    let abs = ts_ns.unsigned_abs();
    let sign = if ts_ns < 0 { "-" } else { "" };
    let text = format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000);
    RawValue::from_string(text).expect("digits, a dot and digits are a JSON number")
}

/// Writes `r` as one JSON line.
pub fn write_row(out: &mut dyn Write, r: &FlowRecord) -> io::Result<()> {
    let (c, cp) = r.client();
    let (s, sp) = r.server();
    let ported = proto::has_ports(r.key.proto);
    let f = &r.flow;
    let row = JsonFlow {
        first_seen: epoch_seconds(f.first_ts),
        last_seen: epoch_seconds(f.last_ts),
        vlan: r.vlan(),
        proto: proto::name(r.key.proto).into_owned(),
        client_addr: c.to_string(),
        client_port: ported.then_some(cp),
        server_addr: s.to_string(),
        server_port: ported.then_some(sp),
        basis: f.basis.as_str(),
        conn_state: r.conn_state().as_str(),
        client_packets: f.packets[0],
        client_bytes: f.bytes[0],
        server_packets: f.packets[1],
        server_bytes: f.bytes[1],
        client_flags: format_flags(f.flags[0]),
        server_flags: format_flags(f.flags[1]),
        icmp_unreachable: f.icmp_unreachable,
        evicted: f.evicted,
    };
    serde_json::to_writer(&mut *out, &row)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_their_nanoseconds_and_stay_positive_after_the_dot() {
        assert_eq!(
            epoch_seconds(1_700_000_000_000_000_007).get(),
            "1700000000.000000007"
        );
        assert_eq!(epoch_seconds(-1).get(), "-0.000000001");
        assert_eq!(epoch_seconds(i64::MIN).get(), "-9223372036.854775808");
    }
}
