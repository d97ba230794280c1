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
    let mut sep = "\t".to_string();
    let mut set_sep = ",".to_string();
    let mut fields: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut header_kind = Path::Other;
    let mut source = None;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("#separator ") {
            sep = unescape(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("#set_separator") {
            set_sep = unescape(rest.trim_start_matches(sep.as_str()));
            continue;
        }
        if let Some(rest) = line.strip_prefix("#fields") {
            fields = rest
                .trim_start_matches(sep.as_str())
                .split(sep.as_str())
                .map(String::from)
                .collect();
            index = fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.clone(), i))
                .collect();
            header_kind = path_of_fields(&fields);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (kind, row) = if line.starts_with('{') {
            let v: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => {
                    st.skip("malformed row", || {
                        format!("{name}: line {lineno}: not JSON: {e}")
                    });
                    continue;
                }
            };
            let keys: Vec<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            (path_of_fields(&keys), Row::Json(v))
        } else {
            if fields.is_empty() {
                st.skip("malformed row", || {
                    format!("{name}: line {lineno}: a data line before any #fields header")
                });
                continue;
            }
            let cells: Vec<&str> = line.split(sep.as_str()).collect();
            if cells.len() != fields.len() {
                st.skip("malformed row", || {
                    format!(
                        "{name}: line {lineno}: {} cells, the #fields header names {}",
                        cells.len(),
                        fields.len()
                    )
                });
                continue;
            }
            (
                header_kind,
                Row::Tsv {
                    index: &index,
                    cells,
                    set_sep: &set_sep,
                },
            )
        };
        match kind {
            Path::Conn => {
                let src = *source.get_or_insert_with(|| st.source(name.to_string(), "zeek-conn"));
                // Zeek logs the connections inside tunnels too; the packet engine keys on the
                // outer packet unless --decap: the same view either way.
                if !decap && row.field("tunnel_parents").is_some() {
                    st.skip("inside a tunnel (give --decap to audit inner flows)", || {
                        format!("{name}: line {lineno}: a connection inside a tunnel (tunnel_parents set); skipped as the packet engine does without --decap")
                    });
                    continue;
                }
                match conn_row(&row, ports, src, st) {
                    Ok(r) => {
                        st.records += 1;
                        st.sources[src as usize].records += 1;
                        out.push(r);
                    }
                    Err(e) => st.skip("malformed row", || format!("{name}: line {lineno}: {e}")),
                }
            }
            Path::Dns => dns_row(&row, names),
            Path::Ssl => {
                if let (Some(a), Some(n)) = (row.field("id.resp_h"), row.field("server_name")) {
                    if let Ok(ip) = a.parse::<std::net::IpAddr>() {
                        names.entry(Addr::from(ip)).or_default().insert(n);
                    }
                }
            }
            Path::Other => st.skip("not a conn, dns or ssl log row", || {
                format!("{name}: line {lineno}: neither a conn.log, dns.log nor ssl.log row")
            }),
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
    let need = |k: &str| row.field(k).ok_or_else(|| format!("{k} is missing"));
    let addr = |k: &str| -> Result<Addr, String> {
        let v = need(k)?;
        v.parse::<std::net::IpAddr>()
            .map(Addr::from)
            .map_err(|_| format!("{k}: not an address: {v:?}"))
    };
    let port = |k: &str| -> Result<u16, String> {
        let v = need(k)?;
        v.parse().map_err(|_| format!("{k}: not a port: {v:?}"))
    };
    let count = |k: &str| -> Result<u64, String> {
        match row.field(k) {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| format!("{k}: not a number: {v:?}")),
        }
    };
    let (o, op, r, rp) = (
        addr("id.orig_h")?,
        port("id.orig_p")?,
        addr("id.resp_h")?,
        port("id.resp_p")?,
    );
    let p = match need("proto")?.as_str() {
        "tcp" => proto::TCP,
        "udp" => proto::UDP,
        "icmp" if o.to_string().contains(':') => proto::ICMPV6,
        "icmp" => proto::ICMP,
        other => match row.field("ip_proto").and_then(|v| v.parse::<u8>().ok()) {
            Some(n) => n,
            None => return Err(format!("proto: unknown {other:?}")),
        },
    };
    // btest baselines replace the first timestamp with XXXXXXXXXX.XXXXXX: the flow keeps
    // time 0 and the summary says so.
    let ts = match row.field("ts") {
        Some(t) => match parse_ts(&t) {
            Some(ns) => ns,
            None => {
                st.no_time_records += 1;
                0
            }
        },
        None => {
            st.no_time_records += 1;
            0
        }
    };
    let dur = row
        .field("duration")
        .and_then(|d| d.parse::<f64>().ok())
        .map(|d| (d * 1e9).round() as i64)
        .unwrap_or(0);
    let vlan = row
        .field("vlan")
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(NO_VLAN);
    let history = row.field("history").unwrap_or_default();
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
    let packets = [count("orig_pkts")?, count("resp_pkts")?];
    let bytes = [count("orig_ip_bytes")?, count("resp_ip_bytes")?];
    // Client: Zeek's handshake evidence, else the packet engine's first-packet/port rule.
    let (orig_is_client, basis) = if oh & hist::SYN != 0 {
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
    };
    if let Some(svc) = row.field("service") {
        let (srv, srv_port) = if orig_is_client { (r, rp) } else { (o, op) };
        let port = if proto::has_ports(p) { srv_port } else { 0 };
        st.services
            .entry((srv, p, port))
            .or_default()
            .extend(svc.split('\u{1}').map(String::from));
    }
    let (key, orig_is_a) = FlowKey::of(vlan, p, o, op, r, rp);
    let ab = |v: [u64; 2]| if orig_is_a { v } else { [v[1], v[0]] };
    let ab8 = |v: [u8; 2]| if orig_is_a { v } else { [v[1], v[0]] };
    let mut h = [oh, rh];
    // Zeek keys ICMP by type (id.orig_p) and code: an error's record holds errors only.
    let icmp_bit = match u8::try_from(op) {
        Ok(ty) if matches!(p, proto::ICMP | proto::ICMPV6) => {
            if crate::decode::icmp::is_error(p, ty) {
                hist::ICMP_ERROR
            } else {
                hist::ICMP_OTHER
            }
        }
        _ => 0,
    };
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
        flags: ab8([of, rf]),
        hist: ab8(h),
        orient: Some((orig_is_client == orig_is_a, basis)),
        icmp_unreachable: false,
        source,
    })
}
