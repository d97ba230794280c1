//! The pipeline: batches of records -> parallel decode -> fragment resolution (in order) ->
//! sharded flow tables updated in parallel -> sorted flow records.
//!
//! Determinism: decoding is a pure function of each record; fragment resolution runs in capture
//! order; and every flow lives in one of a fixed number of shards, each fed its packets in capture
//! order. Thread count and batch size therefore cannot change the result.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};

use crate::capture::{Batch, ReadWarning};
use crate::decode::{decode, Addr, DecodeOptions, Frag, Packet, Skip};
use crate::flow::{FlowConfig, FlowKey, FlowTable, Prefetch, ServerPorts, Timeouts};
use crate::flowmap::{hash_key, map_hash};
use crate::flowstore::{Flows, Spill};

/// Fixed, so that results never depend on the thread count.
pub const SHARDS: usize = 64;

#[derive(Clone)]
pub struct EngineConfig {
    pub decode: DecodeOptions,
    pub timeouts: Timeouts,
    pub ports: ServerPorts,
    /// Most live flows before the longest idle are evicted (spread evenly over the shards).
    pub max_flows: usize,
    /// Most fragments waiting for their first fragment.
    pub max_pending_fragments: usize,
    /// Finished flows held in memory before they are written, sorted, to the spill directory.
    pub spill_after: usize,
    pub spill_dir: std::path::PathBuf,
}

impl EngineConfig {
    /// The default for `spill_after`: a quarter of the live-flow limit, kept between 65,536
    /// (small runs are slow to merge) and 1,000,000 (about 100 MB of finished flows).
    pub fn default_spill_after(max_flows: usize) -> usize {
        (max_flows / 4).clamp(65_536, 1_000_000)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            decode: DecodeOptions::default(),
            timeouts: Timeouts::default(),
            ports: ServerPorts::default(),
            max_flows: 4_000_000,
            max_pending_fragments: 100_000,
            spill_after: EngineConfig::default_spill_after(4_000_000),
            spill_dir: std::env::temp_dir(),
        }
    }
}

/// What the engine counted, for the summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub packets: u64,
    /// Sum of original frame lengths.
    pub wire_bytes: u64,
    /// Packets that went into a flow.
    pub flow_packets: u64,
    pub skipped: BTreeMap<Skip, u64>,
    pub evicted_flows: u64,
    /// First fragments whose ports could not be remembered because the table was full.
    pub fragment_table_full: u64,
    pub peak_live_flows: u64,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// Records a reader skipped (e.g. undefined pcapng interface).
    pub reader_skipped: u64,
    pub warnings: Vec<(String, ReadWarning)>,
    /// Names the capture gave addresses: DNS answers and TLS server names (bounded).
    pub names: BTreeMap<Addr, BTreeSet<String>>,
    /// Names not kept because the bounds were reached.
    pub names_dropped: u64,
    /// Finished flows written to the spill directory during the run.
    pub spilled_flows: u64,
    /// Why spilling stopped (the flows it could not write stayed in memory).
    pub spill_error: Option<String>,
    /// Set when the flows came from flow records (`audit --flows`, `collect`), not packets:
    /// sources, sampling, duplicates, sequence gaps and skipped records, for the caveats.
    pub flow_input: Option<Box<crate::flowinput::FlowInputStats>>,
}

/// Bounds on remembered names, so hostile DNS traffic cannot grow memory without limit.
const MAX_NAMED_ADDRS: usize = 100_000;
const MAX_NAMES_PER_ADDR: usize = 16;

/// DNS answers in UDP packets from port 53, and TLS server names in TCP payloads.
fn names_in(
    r: &crate::capture::RecordMeta,
    p: &Result<Packet, Skip>,
    data: &[u8],
) -> Vec<(Addr, String)> {
    let Ok(p) = p else { return Vec::new() };
    if p.payload_at == 0 {
        return Vec::new();
    }
    let frame = &data[r.start as usize..(r.start + r.caplen) as usize];
    let Some(payload) = frame.get(p.payload_at as usize..) else {
        return Vec::new();
    };
    match p.proto {
        crate::decode::proto::UDP if p.sport == 53 => crate::names::dns_answers(payload),
        crate::decode::proto::TCP if payload.first() == Some(&22) => crate::names::tls_sni(payload)
            .map(|n| vec![(p.dst, n)])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

impl Stats {
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum::<u64>() + self.reader_skipped
    }
}

/// The key of a datagram being fragmented.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct DatagramId {
    src: Addr,
    dst: Addr,
    proto: u8,
    id: u32,
}

/// A datagram whose first fragment has been seen.
#[derive(Clone, Copy)]
struct Reassembly {
    sport: u16,
    dport: u16,
    ts: i64,
    /// Datagram bytes seen so far.
    received: u32,
    /// The datagram's length, known once its last fragment arrives.
    total: Option<u32>,
}

impl Reassembly {
    /// Counts a later fragment; true when the whole datagram has now been seen, so that a new
    /// datagram reusing the (16-bit, wrapping) IPv4 id cannot inherit these ports.
    fn add(&mut self, offset: u32, len: u32, last: bool) -> bool {
        self.received = self.received.saturating_add(len);
        if last {
            self.total = Some(offset.saturating_add(len));
        }
        self.total.is_some_and(|t| self.received >= t)
    }
}

/// Remembers the ports of first fragments and holds later fragments that arrive before them.
#[derive(Default)]
struct Fragments {
    ports: FxHashMap<DatagramId, Reassembly>,
    pending: FxHashMap<DatagramId, Vec<Packet>>,
    pending_count: usize,
    /// When (in packets handled) the ports table may next be scanned for stale entries.
    next_scan: u64,
}

/// A first fragment's ports are forgotten after this long (Linux keeps fragments 30 s).
const FRAGMENT_MEMORY_NS: i64 = 60 * 1_000_000_000;

/// How many records ahead the decode stage prefetches a frame's first bytes.
const DECODE_PREFETCH_AHEAD: usize = 4;

/// One record after the parallel stage.
struct Decoded {
    packet: Result<Packet, Skip>,
    /// The flow key's hash ([`hash_key`]) as decoded; a later fragment's changes with its ports.
    hash: u64,
    /// Names from a DNS answer or TLS hello: usually none, so boxed to keep this record small
    /// (the engine moves millions of them per second). A boxed Vec is one word; a boxed
    /// slice would be two.
    #[allow(clippy::box_collection)]
    names: Option<Box<Vec<(Addr, String)>>>,
}

/// What a unit of work for one shard is.
#[derive(Clone, Copy)]
enum WorkKind {
    /// Index into the batch's decoded packets.
    Packet,
    /// Index into `released`: a held fragment whose first fragment just arrived.
    Released,
    /// An ICMP unreachable (index into decoded) refusing a flow of this shard.
    Unreachable,
}

/// A unit of work for one shard, in capture order, with its flow key's map hash (computed once,
/// here, and used to prefetch the flow a few packets ahead).
#[derive(Clone, Copy)]
struct Work {
    kind: WorkKind,
    index: u32,
    hash: u32,
}

/// How far ahead of the packet being counted the shard prefetches its index slot and its entry.
/// Measured on 10 M packets in 1 M flows (2026-11-24, three alternating runs): 8/4 took 4.23 s
/// of user CPU on average, 12/6 4.57 s; farther (24/12, 32/16) was slower still, probably
/// because more misses in flight than the core can track stall the prefetches themselves.
const PREFETCH_SLOT_AHEAD: usize = 8;
const PREFETCH_ENTRY_AHEAD: usize = 4;

pub struct Engine {
    cfg: EngineConfig,
    flow_cfg: FlowConfig,
    shards: Vec<FlowTable>,
    frags: Fragments,
    decoded: Vec<Decoded>,
    released: Vec<Packet>,
    work: Vec<Vec<Work>>,
    pub stats: Stats,
    spill: Spill,
    ops: u64,
    /// The capture clock: the latest timestamp seen, in capture order.
    clock: i64,
}

/// The shard of a key's 64-bit hash and the hash its shard's map uses.
fn shard_of(h: u64) -> (usize, u32) {
    // Fx mixes poorly into the low bits; take the high ones.
    ((h >> 58) as usize % SHARDS, map_hash(h))
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        let spill = Spill::new(cfg.spill_dir.clone());
        let flow_cfg = FlowConfig {
            timeouts: cfg.timeouts,
            ports: cfg.ports.clone(),
            max_flows_per_shard: (cfg.max_flows / SHARDS).max(1),
        };
        Engine {
            cfg,
            flow_cfg,
            shards: (0..SHARDS).map(|_| FlowTable::default()).collect(),
            frags: Fragments::default(),
            decoded: Vec::new(),
            released: Vec::new(),
            work: vec![Vec::new(); SHARDS],
            stats: Stats::default(),
            spill,
            ops: 0,
            clock: i64::MIN,
        }
    }

    /// Feeds one batch. Call inside the rayon pool that should do the work.
    pub fn process(&mut self, batch: &Batch) {
        let opts = self.cfg.decode;
        // Everything that depends on one record alone happens here, in parallel: decoding, the
        // flow key's hash, and the names in DNS answers and TLS hellos.
        let records = &batch.records;
        records
            .par_iter()
            .enumerate()
            .with_min_len(512)
            .map(|(i, r)| {
                // The first read of each frame was a cache miss that stalled the decoder (81 %
                // of decode's time on an IMIX file): ask for a frame a few records ahead now.
                // (A zero-length last record starts at the end of the bytes: hence get.)
                let ahead = records.get(i + DECODE_PREFETCH_AHEAD);
                if let Some(b) = ahead.and_then(|n| batch.bytes().get(n.start as usize)) {
                    crate::flowmap::prefetch(b);
                }
                let data = batch.record_bytes(r);
                let packet = decode(r.link, data, r.ts_ns, r.orig_len, opts);
                let hash = match &packet {
                    Ok(p) => hash_key(&FlowKey::of_packet(p).0),
                    Err(_) => 0,
                };
                let names = names_in(r, &packet, batch.bytes());
                let names = (!names.is_empty()).then(|| Box::new(names));
                Decoded {
                    packet,
                    hash,
                    names,
                }
            })
            .collect_into_vec(&mut self.decoded);
        let names: Vec<(Addr, String)> = self
            .decoded
            .iter_mut()
            .filter_map(|d| d.names.take())
            .flat_map(|n| *n)
            .collect();
        for (addr, name) in names {
            let known = self.stats.names.len();
            match self.stats.names.get_mut(&addr) {
                Some(set) if set.len() < MAX_NAMES_PER_ADDR || set.contains(&name) => {
                    set.insert(name);
                }
                None if known < MAX_NAMED_ADDRS => {
                    self.stats.names.insert(addr, BTreeSet::from([name]));
                }
                _ => self.stats.names_dropped += 1,
            }
        }
        self.dispatch(batch);
        let cfg = &self.flow_cfg;
        let decoded = &self.decoded;
        let released = &self.released;
        self.shards
            .par_iter_mut()
            .zip(self.work.par_iter_mut())
            .for_each(|(table, work)| {
                for j in 0..work.len() {
                    if let Some(w) = work.get(j + PREFETCH_SLOT_AHEAD) {
                        table.prefetch(w.hash, Prefetch::Slot);
                    }
                    if let Some(w) = work.get(j + PREFETCH_ENTRY_AHEAD) {
                        table.prefetch(w.hash, Prefetch::Entry);
                    }
                    let w = work[j];
                    let i = w.index as usize;
                    match w.kind {
                        WorkKind::Packet => {
                            if let Ok(p) = &decoded[i].packet {
                                table.update_hashed(p, w.hash, cfg);
                            }
                        }
                        WorkKind::Released => table.update_hashed(&released[i], w.hash, cfg),
                        WorkKind::Unreachable => {
                            let frame = batch.record_bytes(&batch.records[i]);
                            if let Ok(p) = &decoded[i].packet {
                                if let Some(q) = p.unreach(frame) {
                                    let (key, _) = FlowKey::of(
                                        p.vlan, q.proto, q.src, q.sport, q.dst, q.dport,
                                    );
                                    table.notice_unreachable(&key, w.hash);
                                }
                            }
                        }
                    }
                }
                work.clear();
            });
        self.spill_if_full();
    }

    /// Writes the finished flows to disk once memory holds `spill_after` of them.
    fn spill_if_full(&mut self) {
        let done: usize = self.shards.iter().map(|t| t.done.len()).sum();
        if done < self.cfg.spill_after || self.stats.spill_error.is_some() {
            return;
        }
        let mut all = Vec::with_capacity(done);
        for t in &mut self.shards {
            all.extend(std::mem::take(&mut t.done));
        }
        if let Err((e, back)) = self.spill.write(all) {
            // Keep going in memory: a full disk must not lose flows.
            self.stats.spill_error = Some(format!(
                "could not write finished flows to {} ({e}); the rest of the run kept them in memory",
                self.spill.dir().display()
            ));
            self.shards[0].done = back;
        }
        self.stats.spilled_flows = self.spill.spilled;
    }

    /// In capture order: counts, resolves fragments, and assigns each packet to its shard.
    fn dispatch(&mut self, batch: &Batch) {
        self.released.clear();
        for i in 0..self.decoded.len() {
            self.ops += 1;
            let rec = &batch.records[i];
            self.stats.packets += 1;
            self.stats.wire_bytes += rec.orig_len as u64;
            self.clock = self.clock.max(rec.ts_ns);
            let mut hash = self.decoded[i].hash;
            let p = match &mut self.decoded[i].packet {
                Err(skip) => {
                    *self.stats.skipped.entry(*skip).or_default() += 1;
                    continue;
                }
                Ok(p) => p,
            };
            p.clock = self.clock;
            self.stats.first_ts = Some(self.stats.first_ts.map_or(p.ts_ns, |t| t.min(p.ts_ns)));
            self.stats.last_ts = Some(self.stats.last_ts.map_or(p.ts_ns, |t| t.max(p.ts_ns)));
            match p.frag {
                Frag::Whole => {}
                Frag::First { id, len } => {
                    let d = DatagramId {
                        src: p.src,
                        dst: p.dst,
                        proto: p.proto,
                        id,
                    };
                    let mut r = Reassembly {
                        sport: p.sport,
                        dport: p.dport,
                        ts: p.ts_ns,
                        received: len,
                        total: None,
                    };
                    let p = *p;
                    self.assign(WorkKind::Packet, i as u32, hash);
                    let mut complete = false;
                    if let Some(held) = self.frags.pending.remove(&d) {
                        self.frags.pending_count -= held.len();
                        for mut h in held {
                            h.sport = p.sport;
                            h.dport = p.dport;
                            h.clock = self.clock;
                            if let Frag::Later {
                                offset, len, last, ..
                            } = h.frag
                            {
                                complete |= r.add(offset, len, last);
                            }
                            let idx = self.released.len() as u32;
                            self.released.push(h);
                            self.assign(
                                WorkKind::Released,
                                idx,
                                hash_key(&FlowKey::of_packet(&h).0),
                            );
                        }
                    }
                    if complete {
                        self.frags.ports.remove(&d);
                    } else if self.frags.ports.len() < self.cfg.max_pending_fragments
                        || self.frags.ports.contains_key(&d)
                    {
                        self.frags.ports.insert(d, r);
                    } else {
                        // Full (a flood of first fragments): this datagram's later fragments will
                        // wait as pending and end as orphans, counted, instead of memory growing.
                        self.stats.fragment_table_full += 1;
                    }
                    self.forget_old_fragments(p.ts_ns);
                    continue;
                }
                Frag::Later {
                    id,
                    offset,
                    len,
                    last,
                } => {
                    let d = DatagramId {
                        src: p.src,
                        dst: p.dst,
                        proto: p.proto,
                        id,
                    };
                    if let Some(r) = self.frags.ports.get_mut(&d) {
                        p.sport = r.sport;
                        p.dport = r.dport;
                        hash = hash_key(&FlowKey::of_packet(p).0);
                        if r.add(offset, len, last) {
                            self.frags.ports.remove(&d);
                        }
                    } else if self.frags.pending_count < self.cfg.max_pending_fragments {
                        self.frags.pending.entry(d).or_default().push(*p);
                        self.frags.pending_count += 1;
                        continue;
                    } else {
                        *self
                            .stats
                            .skipped
                            .entry(Skip::FragmentTableFull)
                            .or_default() += 1;
                        continue;
                    }
                }
            }
            let p = *p;
            self.assign(WorkKind::Packet, i as u32, hash);
            if let Some(q) = p.unreach(batch.record_bytes(rec)) {
                let (key, _) = FlowKey::of(p.vlan, q.proto, q.src, q.sport, q.dst, q.dport);
                let (shard, hash) = shard_of(hash_key(&key));
                self.work[shard].push(Work {
                    kind: WorkKind::Unreachable,
                    index: i as u32,
                    hash,
                });
            }
        }
    }

    /// Queues a packet whose flow key hashes to `key_hash` for its shard.
    fn assign(&mut self, kind: WorkKind, index: u32, key_hash: u64) {
        self.stats.flow_packets += 1;
        let (shard, hash) = shard_of(key_hash);
        self.work[shard].push(Work { kind, index, hash });
    }

    fn forget_old_fragments(&mut self, now: i64) {
        // A full scan at most once per table-size first fragments keeps the cost linear even
        // under a flood of fragmented datagrams.
        if self.frags.ports.len() < 4096 || self.ops < self.frags.next_scan {
            return;
        }
        self.frags.next_scan = self.ops + self.frags.ports.len() as u64;
        self.frags
            .ports
            .retain(|_, r| now.saturating_sub(r.ts) <= FRAGMENT_MEMORY_NS);
    }

    /// Ends flows idle at wall-clock `now_ns` (live capture).
    pub fn expire_idle(&mut self, now_ns: i64) {
        let cfg = &self.flow_cfg;
        self.shards
            .par_iter_mut()
            .for_each(|t| t.expire(now_ns, cfg));
    }

    pub fn live_flows(&self) -> usize {
        self.shards.iter().map(|s| s.live_len()).sum()
    }

    /// Ends everything and returns all flows in report order.
    pub fn finish(mut self) -> (Flows, Stats) {
        let orphans = self.frags.pending_count as u64;
        if orphans > 0 {
            *self.stats.skipped.entry(Skip::OrphanFragment).or_default() += orphans;
        }
        let total = self
            .shards
            .iter()
            .map(|t| t.done.len() + t.live_len())
            .sum();
        let mut all = Vec::with_capacity(total);
        for t in &mut self.shards {
            t.drain_into(&mut all);
            self.stats.evicted_flows += t.evicted;
            self.stats.peak_live_flows += t.peak_live as u64;
        }
        self.stats.spilled_flows = self.spill.spilled;
        (self.spill.finish(all), self.stats)
    }

    /// A copy of everything so far, as if the capture ended now (without ending it).
    pub fn snapshot(&self) -> (Flows, Stats) {
        let mut all = Vec::new();
        for t in &self.shards {
            all.extend_from_slice(&t.done);
            all.extend(t.live_records());
        }
        let all = self.spill.finish(all);
        let mut stats = self.stats.clone();
        stats.evicted_flows = self.shards.iter().map(|t| t.evicted).sum();
        (all, stats)
    }
}
