//! Zeek logs: conn.log as TSV (`#separator`, `#fields` headers; `-` unset, `(empty)` empty) or
//! JSON lines, and, when given, dns.log and ssl.log for names. Lines starting with `#` are
//! headers or comments (btest's `### BTest baseline` line included).
//!
//! A conn.log row is one bidirectional connection: `orig` is the client as Zeek decided. Where
//! Zeek saw the handshake (S/H in `history`) that stands; otherwise (UDP, mid-stream TCP, or a
//! row Zeek flipped, `^`) flowaudit decides again with the packet engine's rule: the sender of
//! the first packet is the client unless its port is a likely server port and the other's is not.
//! Bytes are Zeek's IP-level bytes (`orig_ip_bytes`), not frame lengths.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::decode::{proto, tcp_flags as F, Addr, NO_VLAN};
use crate::flow::{hist, Basis, FlowKey, ServerPorts};

use super::ownflows::parse_ts;
use super::{FlowInputStats, Rec};

/// One log row: TSV cells with the header's column index, or a JSON object. Column names are
/// Zeek's with `.`; the `_` variants (Log::default_scope_sep="_") are found too.
enum Row<'a> {
    Tsv {
        index: &'a HashMap<String, usize>,
        cells: Vec<&'a str>,
        set_sep: &'a str,
    },
    Json(serde_json::Value),
}

impl Row<'_> {
    fn raw(&self, name: &str) -> Option<String> {
        match self {
            Row::Tsv {
                index,
                cells,
                set_sep,
            } => {
                let i = *index.get(name)?;
                let c = cells[i];
                Some(if c.contains(*set_sep) {
                    c.replace(*set_sep, "\u{1}")
                } else {
                    c.to_string()
                })
            }
            Row::Json(v) => v.get(name).map(|x| match x {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|e| {
                        e.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| e.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("\u{1}"),
                other => other.to_string(),
            }),
        }
    }

    fn field(&self, name: &str) -> Option<String> {
        self.raw(name)
            .or_else(|| {
                name.contains('.')
                    .then(|| self.raw(&name.replace('.', "_")))
                    .flatten()
            })
            .filter(|v| v != "-" && v != "(empty)" && !v.is_empty())
    }
}

/// What kind of Zeek log a file is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    Conn,
    Dns,
    Ssl,
    Other,
}

fn path_of_fields(names: &[String]) -> Path {
    let has = |n: &str| names.iter().any(|x| x == n);
    if has("conn_state") || has("orig_pkts") || has("history") {
        Path::Conn
    } else if has("query") && has("answers") {
        Path::Dns
    } else if has("server_name") {
        Path::Ssl
    } else {
        Path::Other
    }
}

pub fn read(
    name: &str,
    data: &[u8],
    ports: &ServerPorts,
    decap: bool,
    st: &mut FlowInputStats,
    out: &mut Vec<Rec>,
    names: &mut BTreeMap<Addr, BTreeSet<String>>,
) {
    let text = String::from_utf8_lossy(data);
    let mut header = Header::new();
    let mut log = LogReader {
        name,
        ports,
        decap,
        st,
        out,
        names,
        source: None,
    };
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.is_empty() || header.take(line) {
            continue;
        }
        let parsed = if line.starts_with('{') {
            json_row(line)
        } else {
            header.tsv_row(line)
        };
        match parsed {
            Ok((kind, row)) => log.take_row(kind, &row, lineno),
            Err(e) => log
                .st
                .skip("malformed row", || format!("{name}: line {lineno}: {e}")),
        }
    }
}

/// What a TSV log's header lines (`#separator`, `#set_separator`, `#fields`) said so far.
struct Header {
    sep: String,
    set_sep: String,
    fields: Vec<String>,
    index: HashMap<String, usize>,
    kind: Path,
}

impl Header {
    fn new() -> Header {
        Header {
            sep: "\t".to_string(),
            set_sep: ",".to_string(),
            fields: Vec::new(),
            index: HashMap::new(),
            kind: Path::Other,
        }
    }

    /// Takes a line starting with `#`: a header is remembered, a comment ignored. False for a
    /// data line.
    fn take(&mut self, line: &str) -> bool {
        if let Some(rest) = line.strip_prefix("#separator ") {
            self.sep = unescape(rest);
            return true;
        }
        if let Some(rest) = line.strip_prefix("#set_separator") {
            self.set_sep = unescape(rest.trim_start_matches(self.sep.as_str()));
            return true;
        }
        if let Some(rest) = line.strip_prefix("#fields") {
            self.fields = rest
                .trim_start_matches(self.sep.as_str())
                .split(self.sep.as_str())
                .map(String::from)
                .collect();
            self.index = self
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.clone(), i))
                .collect();
            self.kind = path_of_fields(&self.fields);
            return true;
        }
        line.starts_with('#')
    }

    /// A TSV data line as a row of the log the `#fields` header names; Err says why it is not.
    fn tsv_row<'a>(&'a self, line: &'a str) -> Result<(Path, Row<'a>), String> {
        if self.fields.is_empty() {
            return Err("a data line before any #fields header".to_string());
        }
        let cells: Vec<&str> = line.split(self.sep.as_str()).collect();
        if cells.len() != self.fields.len() {
            return Err(format!(
                "{} cells, the #fields header names {}",
                cells.len(),
                self.fields.len()
            ));
        }
        let row = Row::Tsv {
            index: &self.index,
            cells,
            set_sep: &self.set_sep,
        };
        Ok((self.kind, row))
    }
}

/// A JSON line as a row of the log its keys say; Err says why it is not one.
fn json_row(line: &str) -> Result<(Path, Row<'static>), String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let keys: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    Ok((path_of_fields(&keys), Row::Json(v)))
}

/// Where the rows of one log go.
struct LogReader<'a> {
    name: &'a str,
    ports: &'a ServerPorts,
    decap: bool,
    st: &'a mut FlowInputStats,
    out: &'a mut Vec<Rec>,
    names: &'a mut BTreeMap<Addr, BTreeSet<String>>,
    /// The log's source number, given at its first conn.log row.
    source: Option<u32>,
}

impl LogReader<'_> {
    /// A conn.log row becomes a flow record, a dns.log or ssl.log row names.
    fn take_row(&mut self, kind: Path, row: &Row, lineno: usize) {
        let name = self.name;
        match kind {
            Path::Conn => self.conn(row, lineno),
            Path::Dns => dns_row(row, self.names),
            Path::Ssl => {
                if let (Some(a), Some(n)) = (row.field("id.resp_h"), row.field("server_name")) {
                    if let Ok(ip) = a.parse::<std::net::IpAddr>() {
                        self.names.entry(Addr::from(ip)).or_default().insert(n);
                    }
                }
            }
            Path::Other => self.st.skip("not a conn, dns or ssl log row", || {
                format!("{name}: line {lineno}: neither a conn.log, dns.log nor ssl.log row")
            }),
        }
    }

    fn conn(&mut self, row: &Row, lineno: usize) {
        let name = self.name;
        let st = &mut *self.st;
        let src = *self
            .source
            .get_or_insert_with(|| st.source(name.to_string(), "zeek-conn"));
        // Zeek logs the connections inside tunnels too; the packet engine keys on the
        // outer packet unless --decap: the same view either way.
        if !self.decap && row.field("tunnel_parents").is_some() {
            self.st.skip("inside a tunnel (give --decap to audit inner flows)", || {
                format!("{name}: line {lineno}: a connection inside a tunnel (tunnel_parents set); skipped as the packet engine does without --decap")
            });
            return;
        }
        match conn_row(row, self.ports, src, self.st) {
            Ok(r) => {
                self.st.records += 1;
                self.st.sources[src as usize].records += 1;
                self.out.push(r);
            }
            Err(e) => self
                .st
                .skip("malformed row", || format!("{name}: line {lineno}: {e}")),
        }
    }
}

/// `\x09` -> tab (Zeek writes the separator escaped in its header).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        match u8::from_str_radix(rest.get(i + 2..i + 4).unwrap_or(""), 16) {
            Ok(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            Err(_) => {
                out.push_str("\\x");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn dns_row(row: &Row, names: &mut BTreeMap<Addr, BTreeSet<String>>) {
    let Some(q) = row.field("query") else { return };
    let Some(answers) = row.field("answers") else {
        return;
    };
    for a in answers.split('\u{1}') {
        if let Ok(ip) = a.parse::<std::net::IpAddr>() {
            names.entry(Addr::from(ip)).or_default().insert(q.clone());
        }
    }
}

fn conn_row(
    row: &Row,
    ports: &ServerPorts,
    source: u32,
    st: &mut FlowInputStats,
) -> Result<Rec, String> {
    let (o, op, r, rp) = (
        addr_field(row, "id.orig_h")?,
        port_field(row, "id.orig_p")?,
        addr_field(row, "id.resp_h")?,
        port_field(row, "id.resp_p")?,
    );
    let p = conn_proto(row, o)?;
    let ts = conn_ts(row, st);
    let dur = duration_ns(row);
    let vlan = row
        .field("vlan")
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(NO_VLAN);
    let history = row.field("history").unwrap_or_default();
    let (mut h, flags) = history_bits(&history, p);
    let packets = [
        count_field(row, "orig_pkts")?,
        count_field(row, "resp_pkts")?,
    ];
    let bytes = [
        count_field(row, "orig_ip_bytes")?,
        count_field(row, "resp_ip_bytes")?,
    ];
    let (orig_is_client, basis) = orientation(h, &history, p, (op, rp), ports);
    let server = if orig_is_client { (r, rp) } else { (o, op) };
    note_services(row, p, server, st);
    let (key, orig_is_a) = FlowKey::of(vlan, p, o, op, r, rp);
    let ab = |v: [u64; 2]| if orig_is_a { v } else { [v[1], v[0]] };
    let ab8 = |v: [u8; 2]| if orig_is_a { v } else { [v[1], v[0]] };
    let icmp_bit = icmp_bit(p, op);
    for (side, n) in packets.iter().enumerate() {
        if *n > 0 {
            h[side] |= hist::ANY | icmp_bit;
        }
    }
    Ok(Rec {
        key,
        first_ts: ts,
        last_ts: ts + dur,
        packets: ab(packets),
        bytes: ab(bytes),
        flags: ab8(flags),
        hist: ab8(h),
        orient: Some((orig_is_client == orig_is_a, basis)),
        icmp_unreachable: false,
        source,
    })
}

/// The row's duration in ns (0 when unset).
fn duration_ns(row: &Row) -> i64 {
    row.field("duration")
        .and_then(|d| d.parse::<f64>().ok())
        .map(|d| (d * 1e9).round() as i64)
        .unwrap_or(0)
}

/// The services Zeek named (`service`) for the row's server (address, port) and protocol `p`.
fn note_services(row: &Row, p: u8, (srv, srv_port): (Addr, u16), st: &mut FlowInputStats) {
    if let Some(svc) = row.field("service") {
        let port = if proto::has_ports(p) { srv_port } else { 0 };
        st.services
            .entry((srv, p, port))
            .or_default()
            .extend(svc.split('\u{1}').map(String::from));
    }
}

fn need(row: &Row, k: &str) -> Result<String, String> {
    row.field(k).ok_or_else(|| format!("{k} is missing"))
}

fn addr_field(row: &Row, k: &str) -> Result<Addr, String> {
    let v = need(row, k)?;
    v.parse::<std::net::IpAddr>()
        .map(Addr::from)
        .map_err(|_| format!("{k}: not an address: {v:?}"))
}

fn port_field(row: &Row, k: &str) -> Result<u16, String> {
    let v = need(row, k)?;
    v.parse().map_err(|_| format!("{k}: not a port: {v:?}"))
}

/// A count; an unset one is 0.
fn count_field(row: &Row, k: &str) -> Result<u64, String> {
    match row.field(k) {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| format!("{k}: not a number: {v:?}")),
    }
}

/// The IP protocol of a row whose originator is `o`: Zeek's `proto` names only tcp, udp and
/// icmp (for ICMPv6 too); others need `ip_proto`.
fn conn_proto(row: &Row, o: Addr) -> Result<u8, String> {
    Ok(match need(row, "proto")?.as_str() {
        "tcp" => proto::TCP,
        "udp" => proto::UDP,
        "icmp" if o.to_string().contains(':') => proto::ICMPV6,
        "icmp" => proto::ICMP,
        other => match row.field("ip_proto").and_then(|v| v.parse::<u8>().ok()) {
            Some(n) => n,
            None => return Err(format!("proto: unknown {other:?}")),
        },
    })
}

/// The row's start time in ns. btest baselines replace the first timestamp with
/// XXXXXXXXXX.XXXXXX: the flow keeps time 0 and the summary says so.
fn conn_ts(row: &Row, st: &mut FlowInputStats) -> i64 {
    match row.field("ts").and_then(|t| parse_ts(&t)) {
        Some(ns) => ns,
        None => {
            st.no_time_records += 1;
            0
        }
    }
}

/// Zeek's `history` as the packet engine's history bits and TCP flags, per side
/// ([originator, responder]): upper case is the originator. Only TCP keeps flags and handshake
/// bits; other protocols keep whether data was seen.
fn history_bits(history: &str, p: u8) -> ([u8; 2], [u8; 2]) {
    let (mut oh, mut rh, mut of, mut rf) = (0u8, 0u8, 0u8, 0u8);
    for c in history.chars() {
        let (h, f) = if c.is_ascii_uppercase() {
            (&mut oh, &mut of)
        } else {
            (&mut rh, &mut rf)
        };
        match c.to_ascii_uppercase() {
            'S' => {
                *h |= hist::SYN;
                *f |= F::SYN;
            }
            'H' => {
                *h |= hist::SYNACK;
                *f |= F::SYN | F::ACK;
            }
            'A' => *f |= F::ACK,
            'D' => *h |= hist::DATA,
            'F' => {
                *h |= hist::FIN;
                *f |= F::FIN;
            }
            'R' => {
                *h |= hist::RST;
                *f |= F::RST;
            }
            _ => {}
        }
    }
    if p != proto::TCP {
        (of, rf) = (0, 0);
        oh &= hist::DATA;
        rh &= hist::DATA;
    }
    ([oh, rh], [of, rf])
}

/// Whether the originator is the client, and why: Zeek's handshake evidence (history bits
/// `h`), else the packet engine's first-packet/port rule (`^` in `history`: Zeek flipped the
/// row, so the responder sent first). `ports` are the originator's and the responder's.
fn orientation(
    h: [u8; 2],
    history: &str,
    p: u8,
    (op, rp): (u16, u16),
    ports: &ServerPorts,
) -> (bool, Basis) {
    let [oh, rh] = h;
    if oh & hist::SYN != 0 {
        (true, Basis::Syn)
    } else if rh & hist::SYNACK != 0 {
        (true, Basis::SynAck)
    } else if rh & hist::SYN != 0 {
        (false, Basis::Syn)
    } else if oh & hist::SYNACK != 0 {
        (false, Basis::SynAck)
    } else {
        let orig_first = !history.contains('^');
        let (sp, dp) = if orig_first { (op, rp) } else { (rp, op) };
        if proto::has_ports(p) && ports.is_server(p, sp) && !ports.is_server(p, dp) {
            (!orig_first, Basis::Port)
        } else {
            (orig_first, Basis::FirstPacket)
        }
    }
}

/// Zeek keys ICMP by type (id.orig_p) and code: an error's record holds errors only. The
/// history bit a side that sent packets gets (0 for other protocols).
fn icmp_bit(p: u8, op: u16) -> u8 {
    match u8::try_from(op) {
        Ok(ty) if matches!(p, proto::ICMP | proto::ICMPV6) => {
            if crate::decode::icmp::is_error(p, ty) {
                hist::ICMP_ERROR
            } else {
                hist::ICMP_OTHER
            }
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zeek's history letters (upper case: originator): S syn, h syn-ack, A/a ack, D/d data,
    /// F/f fin. Hand-worked bits: history SYN 0x01, SYNACK 0x02, FIN 0x04, DATA 0x20; TCP flags
    /// FIN 0x01, SYN 0x02, ACK 0x10.
    #[test]
    fn history_letters_become_history_bits_and_flags() {
        assert_eq!(
            history_bits("ShADadFf", proto::TCP),
            ([0x25, 0x26], [0x13, 0x13])
        );
        assert_eq!(history_bits("Sr", proto::TCP), ([0x01, 0x08], [0x02, 0x04]));
        // Not TCP: only "data seen" survives.
        assert_eq!(history_bits("ShADd", proto::UDP), ([0x20, 0x20], [0, 0]));
        assert_eq!(history_bits("", proto::UDP), ([0, 0], [0, 0]));
    }

    /// The handshake decides; without one the first sender is the client unless only the
    /// other's port is a server port (53/udp is one, 40000 and 53123 are not).
    #[test]
    fn the_client_is_decided_by_handshake_then_port_then_first_packet() {
        let ports = ServerPorts::default();
        let tcp = |h| {
            orientation(
                history_bits(h, proto::TCP).0,
                h,
                proto::TCP,
                (40000, 445),
                &ports,
            )
        };
        assert_eq!(tcp("ShAD"), (true, Basis::Syn));
        assert_eq!(tcp("hA"), (true, Basis::SynAck));
        assert_eq!(tcp("Ha"), (false, Basis::SynAck));
        assert_eq!(tcp("s"), (false, Basis::Syn));
        let udp = |h, p| orientation([0x20, 0x20], h, proto::UDP, p, &ports);
        assert_eq!(udp("Dd", (53123, 53)), (true, Basis::FirstPacket));
        assert_eq!(udp("Dd", (53, 40000)), (false, Basis::Port));
        // ^: Zeek flipped the row, the responder sent first.
        assert_eq!(udp("^dD", (53123, 40000)), (false, Basis::FirstPacket));
    }
}
