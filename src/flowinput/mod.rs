//! Flow records instead of packets: flowaudit's own flows.csv/flows.jsonl, Zeek conn.log (TSV or
//! JSON lines, optionally gzip), and NetFlow v5/v9/IPFIX export traffic (pcap/pcapng of the UDP
//! stream, or a raw IPFIX file). Every reader turns its input into [`Rec`]s; [`pairing`] makes
//! them into the same bidirectional flows the packet engine produces, so the audit runs unchanged
//! on a [`RunOutput`].
//!
//! The format of each file is detected from its content, never from its name.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::decode::Addr;
use crate::engine::run::RunOutput;
use crate::engine::{EngineConfig, Stats};
use crate::flow::store::Flows;
use crate::flow::{Basis, FlowKey};

pub mod netflow;
pub mod ownflows;
pub mod pairing;
pub mod zeek;

/// One flow record, in the canonical orientation of its key: per-endpoint arrays are indexed
/// by [`A`] (endpoint `key.a`) and [`B`] (endpoint `key.b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rec {
    pub key: FlowKey,
    pub first_ts: i64,
    pub last_ts: i64,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    /// OR of the TCP flags each endpoint sent.
    pub flags: [u8; 2],
    /// What each endpoint did, in [`crate::flow::hist`] bits (SYN/SYN-ACK bits only when the
    /// source said which; NetFlow's ORed flags get them after orientation).
    pub hist: [u8; 2],
    /// Client and basis, when the source decided them (flows.csv, conn.log). `None` for
    /// unidirectional records (NetFlow/IPFIX): pairing decides.
    pub orient: Option<(bool, Basis)>,
    pub icmp_unreachable: bool,
    /// Index into [`FlowInputStats::sources`].
    pub source: u32,
}

pub const A: usize = 0;
pub const B: usize = 1;

/// A source of records: a file, or an exporter (address and observation domain).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    /// `flows.csv`, `flows.jsonl`, `zeek-conn`, `netflow-v5`, `netflow-v9`, `ipfix`.
    pub kind: String,
    pub records: u64,
    /// 1-in-N packet sampling announced by the source (v5 header, v9/IPFIX sampling fields or
    /// options records); `None` when nothing said the data was sampled.
    pub sampling: Option<u32>,
}

/// What reading flow records found, for the summary and the audit's caveats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowInputStats {
    pub sources: Vec<Source>,
    /// Data records read (all sources).
    pub records: u64,
    /// Records not used, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// The first problems found, each naming the file and line or byte offset.
    pub problems: Vec<String>,
    /// Records that continued a flow already started by another record (same connection
    /// within the idle timeout, or its other direction).
    pub merged_records: u64,
    /// Flows that several sources reported (counted once: the largest source's counts).
    pub duplicate_flows: u64,
    /// Some of those, with the names of the sources that saw them (bounded).
    pub duplicate_examples: Vec<(String, Vec<String>)>,
    /// v9/IPFIX: data sets that could not be decoded because their template was not (or no
    /// longer) known.
    pub missing_template_sets: u64,
    pub templates: u64,
    pub options_records: u64,
    /// Export packets lost on the way, from the sources' sequence numbers.
    pub sequence_gaps: u64,
    /// Records (v5, IPFIX) or export packets (v9) the sequence numbers say were lost.
    pub lost_exports: u64,
    /// Records whose start time was not a number (btest-canonified `XXXXXXXXXX.XXXXXX`, or
    /// missing): kept at time 0, so their times in the reports mean nothing.
    pub no_time_records: u64,
    /// Zeek's `service` column per server endpoint (address, protocol, port).
    pub services: BTreeMap<(Addr, u8, u16), BTreeSet<String>>,
}

/// Most problems kept verbatim; the rest are only counted.
const MAX_PROBLEMS: usize = 50;

impl FlowInputStats {
    /// Adds a source and returns its index.
    pub fn source(&mut self, name: String, kind: &str) -> u32 {
        if let Some(i) = self
            .sources
            .iter()
            .position(|s| s.name == name && s.kind == kind)
        {
            return i as u32;
        }
        self.sources.push(Source {
            name,
            kind: kind.into(),
            records: 0,
            sampling: None,
        });
        (self.sources.len() - 1) as u32
    }

    /// Counts a skipped record, keeping the message when there is room.
    pub fn skip(&mut self, reason: &str, problem: impl FnOnce() -> String) {
        *self.skipped.entry(reason.to_string()).or_default() += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(problem());
        }
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Some source announced packet sampling: flows may be missing entirely, so "never seen"
    /// and "unanswered" cannot be claimed.
    pub fn sampled(&self) -> bool {
        self.sources
            .iter()
            .any(|s| s.sampling.is_some_and(|n| n > 1))
    }

    /// The caveats an audit summary should print, one sentence each.
    pub fn caveats(&self) -> Vec<String> {
        let mut out = Vec::new();
        let sampled: Vec<String> = self
            .sources
            .iter()
            .filter_map(|s| {
                s.sampling
                    .filter(|n| *n > 1)
                    .map(|n| format!("{} (1 in {n})", s.name))
            })
            .collect();
        if !sampled.is_empty() {
            out.push(format!(
                "sampled flow data from {}: packet and byte counts are of sampled packets, and short connections may be missing entirely, so \"unanswered\" outcomes and \"unused\"/never-seen rules cannot be claimed",
                sampled.join(", ")
            ));
        }
        if self.sequence_gaps > 0 {
            out.push(format!(
                "{} sequence gaps in the export streams ({} lost): export packets were dropped on the way to the collector, so flows may be missing (treat as drops)",
                self.sequence_gaps, self.lost_exports
            ));
        }
        if self.missing_template_sets > 0 {
            out.push(format!(
                "{} v9/IPFIX data sets could not be decoded because their template was never received (or was withdrawn): their flows are missing",
                self.missing_template_sets
            ));
        }
        if self.duplicate_flows > 0 {
            out.push(format!(
                "{} flows were reported by more than one source and counted once",
                self.duplicate_flows
            ));
        }
        if self.no_time_records > 0 {
            out.push(format!(
                "{} records had no readable start time and were kept at time 0 (first/last seen of their flows mean nothing)",
                self.no_time_records
            ));
        }
        let skipped = self.skipped_total();
        if skipped > 0 {
            out.push(format!(
                "{skipped} flow records skipped ({})",
                self.skipped
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out
    }
}

/// The kinds of input [`detect`] recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    OwnCsv,
    OwnJsonl,
    ZeekTsv,
    ZeekJson,
    /// pcap or pcapng holding NetFlow/IPFIX export packets.
    ExportCapture,
    /// RFC 5655 IPFIX file: IPFIX messages one after another.
    IpfixFile,
}

/// Recognises a flow input from its first bytes (already decompressed).
pub fn detect(head: &[u8]) -> Option<Kind> {
    const PCAP_MAGICS: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    if head.len() >= 4 && PCAP_MAGICS.iter().any(|m| head[..4] == *m) {
        return Some(Kind::ExportCapture);
    }
    if head.len() >= 16 && head[..2] == [0, 10] && u16::from_be_bytes([head[2], head[3]]) >= 16 {
        return Some(Kind::IpfixFile);
    }
    let text = String::from_utf8_lossy(head);
    // Comment lines (Zeek's headers, btest's "### BTest baseline" line) say nothing about JSON.
    let mut zeek_header = false;
    for line in text.lines() {
        let line = line.trim_start_matches('\u{feff}');
        if line.starts_with("#separator") || line.starts_with("#fields") {
            zeek_header = true;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if zeek_header {
            return Some(Kind::ZeekTsv);
        }
        if line.starts_with('{') {
            if line.contains("\"id.orig_h\"") || line.contains("\"id_orig_h\"") {
                return Some(Kind::ZeekJson);
            }
            if line.contains("\"client_addr\"") {
                return Some(Kind::OwnJsonl);
            }
            return None;
        }
        if line.starts_with("first_seen,last_seen,") {
            return Some(Kind::OwnCsv);
        }
        return None;
    }
    zeek_header.then_some(Kind::ZeekTsv)
}

/// An input that cannot be read at all (exit 2), or whose damage stopped reading (the records
/// before it are kept).
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads a whole file, decompressing gzip (by content: the magic bytes).
pub fn read_all(path: &Path) -> Result<Vec<u8>, InputError> {
    let raw = std::fs::read(path)
        .map_err(|e| InputError(format!("{}: cannot read: {e}", path.display())))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                InputError(format!(
                    "{}: gzip data is damaged after {} decompressed bytes: {e}",
                    path.display(),
                    out.len()
                ))
            })?;
        return Ok(out);
    }
    Ok(raw)
}

/// Reads every flow input and makes flows of them, as [`crate::engine::run::run_files`] does for
/// captures. Fails before producing anything when a file cannot be read or is no flow input.
pub fn run_flow_files(paths: &[PathBuf], cfg: &EngineConfig) -> Result<RunOutput, InputError> {
    let started = Instant::now();
    let read = read_records(paths, cfg)?;
    Ok(make_output(
        read.recs,
        read.stats,
        read.names,
        cfg,
        started,
        read.input_bytes,
    ))
}

/// What the readers produced, before pairing.
pub struct Records {
    pub recs: Vec<Rec>,
    pub stats: FlowInputStats,
    /// Names from Zeek dns.log/ssl.log.
    pub names: BTreeMap<Addr, BTreeSet<String>>,
    pub input_bytes: u64,
}

/// Reads every input into records (unpaired).
pub fn read_records(paths: &[PathBuf], cfg: &EngineConfig) -> Result<Records, InputError> {
    let mut st = FlowInputStats::default();
    let mut recs = Vec::new();
    let mut nf = netflow::Decoder::default();
    let mut input_bytes = 0u64;
    let mut names: BTreeMap<Addr, BTreeSet<String>> = BTreeMap::new();
    for p in paths {
        let data = read_all(p)?;
        input_bytes += data.len() as u64;
        let name = p.display().to_string();
        let head = &data[..data.len().min(4096)];
        match detect(head) {
            Some(Kind::OwnCsv) => ownflows::read_csv(&name, &data, &mut st, &mut recs),
            Some(Kind::OwnJsonl) => ownflows::read_jsonl(&name, &data, &mut st, &mut recs),
            Some(Kind::ZeekTsv) | Some(Kind::ZeekJson) => zeek::read(
                &name,
                &data,
                &cfg.ports,
                cfg.decode.decap,
                &mut st,
                &mut recs,
                &mut names,
            ),
            Some(Kind::ExportCapture) => {
                netflow::read_capture(p, &mut nf, &mut st, &mut recs)?;
            }
            Some(Kind::IpfixFile) => {
                netflow::read_ipfix_file(&name, &data, &mut nf, &mut st, &mut recs)
            }
            None => {
                return Err(InputError(format!(
                    "{name}: not a flow input flowaudit knows (flows.csv/flows.jsonl from `flowaudit flows`, a Zeek conn.log, \
                     or a pcap/pcapng/IPFIX file of NetFlow/IPFIX export packets); captures of the traffic itself go to \
                     `flowaudit audit CAPTURE...` without --flows"
                )))
            }
        }
    }
    nf.finish(&mut st);
    Ok(Records {
        recs,
        stats: st,
        names,
        input_bytes,
    })
}

/// Pairs the records into flows and wraps them as a [`RunOutput`].
pub fn make_output(
    recs: Vec<Rec>,
    mut st: FlowInputStats,
    names: BTreeMap<Addr, BTreeSet<String>>,
    cfg: &EngineConfig,
    started: Instant,
    input_bytes: u64,
) -> RunOutput {
    let flows = pairing::pair(recs, &cfg.timeouts, &cfg.ports, &mut st);
    let mut stats = Stats {
        first_ts: flows.iter().map(|f| f.flow.first_ts).min(),
        last_ts: flows.iter().map(|f| f.flow.last_ts).max(),
        ..Stats::default()
    };
    // Packets and bytes as the flow records counted them (sampled packets where sampled).
    for f in &flows {
        stats.packets += f.flow.packets[0] + f.flow.packets[1];
        stats.wire_bytes += f.flow.bytes[0] + f.flow.bytes[1];
    }
    stats.flow_packets = stats.packets;
    stats.flow_input = Some(Box::new(st));
    RunOutput {
        flows: Flows::from_vec(flows),
        stats,
        names,
        errors: Vec::new(),
        elapsed: started.elapsed(),
        input_bytes,
    }
}

/// Lines for the run summary on stderr.
pub fn render(st: &FlowInputStats) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "flow records: {} from {} sources; {} merged into other records' flows; templates {}, options records {}",
        st.records,
        st.sources.len(),
        st.merged_records,
        st.templates,
        st.options_records
    );
    for s in &st.sources {
        let _ = writeln!(
            t,
            "  {:>10}  {} ({}{})",
            s.records,
            s.name,
            s.kind,
            s.sampling
                .map(|n| format!(", sampled 1 in {n}"))
                .unwrap_or_default()
        );
    }
    for c in st.caveats() {
        let _ = writeln!(t, "caveat: {c}");
    }
    for p in st.problems.iter().take(20) {
        let _ = writeln!(t, "warning: {p}");
    }
    if st.problems.len() > 20 {
        let _ = writeln!(t, "warning: ... and {} more", st.problems.len() - 20);
    }
    t
}
