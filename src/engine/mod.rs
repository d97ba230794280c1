//! The pipeline: batches of records -> parallel decode -> fragment resolution (in order) ->
//! sharded flow tables updated in parallel -> sorted flow records.
//!
//! Determinism: decoding is a pure function of each record; fragment resolution runs in capture
//! order; and every flow lives in one of a fixed number of shards, each fed its packets in capture
//! order. Thread count and batch size therefore cannot change the result.

pub mod run;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};

use crate::capture::{Batch, ReadWarning};
use crate::decode::{
    decode_with_mirror, outer_first_fragment, Addr, DecodeOptions, Frag, Kept, MirrorSource, Note,
    Packet, Skip,
};
use crate::flow::map::{hash_key, map_hash};
use crate::flow::store::{Flows, Spill};
use crate::flow::{FlowConfig, FlowKey, FlowTable, Prefetch, ServerPorts, Timeouts};

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

/// Names the capture gave addresses: DNS answers and TLS server names (bounded). They are part
/// of the run's output (`RunOutput::names`), not of its counts.
pub type Names = BTreeMap<Addr, BTreeSet<String>>;

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
    /// Names not kept because the bounds were reached (the names are in [`Names`]).
    pub names_dropped: u64,
    /// Finished flows written to the spill directory during the run.
    pub spilled_flows: u64,
    /// Why spilling stopped (the flows it could not write stayed in memory).
    pub spill_error: Option<String>,
    /// Packets that arrived in a mirror transport, per source (at most [`MAX_MIRROR_SOURCES`]).
    pub mirrors: BTreeMap<MirrorSource, u64>,
    /// Mirrored packets from sources beyond that bound.
    pub mirrors_other: u64,
    /// `--decap` packets left in their outer flow because the tunnel payload could not be
    /// decoded, per reason. They are in `flow_packets`, not skipped.
    pub decap_kept: BTreeMap<Kept, u64>,
    /// 5-tuples whose two directions were seen only on different VLANs (see `--vlan-key`).
    pub vlan_split_tuples: u64,
    /// Records whose original length exceeded [`MAX_WIRE_LEN`]: counted as that many bytes.
    pub capped_wire_len: u64,
    /// Set when the flows came from flow records (`audit --flows`, `collect`), not packets:
    /// sources, sampling, duplicates, sequence gaps and skipped records, for the caveats.
    pub flow_input: Option<Box<crate::flowinput::FlowInputStats>>,
}

/// The largest original length believed: libpcap's largest snaplen (262,144 bytes), above any
/// frame a NIC delivers, 64 KiB offload super-packets included. A record claiming more (one
/// damaged file claimed 808,464,432 bytes for one packet) counts as this many bytes, and as
/// `capped_wire_len` in the summary.
pub const MAX_WIRE_LEN: u32 = 262_144;

/// A record's original length as counted: capped at [`MAX_WIRE_LEN`] (never below what was
/// captured).
fn wire_len(r: &crate::capture::RecordMeta) -> u32 {
    r.orig_len.min(MAX_WIRE_LEN.max(r.caplen))
}

/// Distinct mirror sources counted one by one (a hostile capture could forge millions).
pub const MAX_MIRROR_SOURCES: usize = 1000;

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
        crate::decode::proto::UDP if p.sport == 53 => crate::decode::names::dns_answers(payload),
        crate::decode::proto::TCP if payload.first() == Some(&22) => {
            crate::decode::names::tls_sni(payload)
                .map(|n| vec![(p.dst, n)])
                .unwrap_or_default()
        }
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
    /// For an outer datagram `--decap` decapsulated: the inner packet's flow, which the outer
    /// datagram's trailing fragments join.
    inner: Option<Inner>,
}

/// The flow key of a tunnel's inner packet, apart from the ports.
#[derive(Clone, Copy)]
struct Inner {
    src: Addr,
    dst: Addr,
    proto: u8,
    vlan: u16,
}

impl DatagramId {
    /// The datagram fragment `p` (with IP id `id`) belongs to.
    fn of(p: &Packet, id: u32) -> DatagramId {
        DatagramId {
            src: p.src,
            dst: p.dst,
            proto: p.proto,
            id,
        }
    }
}

impl Reassembly {
    /// The state a first fragment `p` carrying `len` datagram bytes starts.
    fn first(p: &Packet, len: u32) -> Reassembly {
        Reassembly {
            sport: p.sport,
            dport: p.dport,
            ts: p.ts_ns,
            received: len,
            total: None,
            inner: None,
        }
    }

    /// Gives a later fragment its first fragment's ports (and inner flow, for a tunnel).
    fn apply(&self, p: &mut Packet) {
        p.sport = self.sport;
        p.dport = self.dport;
        if let Some(i) = self.inner {
            p.src = i.src;
            p.dst = i.dst;
            p.proto = i.proto;
            p.vlan = i.vlan;
        }
    }
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
/// Both tables are bounded by `max` (the engine's `max_pending_fragments`).
struct Fragments {
    max: usize,
    ports: FxHashMap<DatagramId, Reassembly>,
    pending: FxHashMap<DatagramId, Vec<Packet>>,
    /// Packets in `pending`, kept with it by `hold` and `release`.
    pending_count: usize,
    /// When (in packets handled) the ports table may next be scanned for stale entries.
    next_scan: u64,
}

/// What became of a later fragment.
#[derive(Debug, PartialEq)]
enum Later {
    /// Its first fragment was seen: it now has that fragment's ports (and inner flow).
    Resolved,
    /// Held until its first fragment arrives.
    Held,
    /// Not held: the table of held fragments is full.
    Full,
}

impl Fragments {
    fn new(max: usize) -> Fragments {
        Fragments {
            max,
            ports: FxHashMap::default(),
            pending: FxHashMap::default(),
            pending_count: 0,
            next_scan: 0,
        }
    }

    /// A later fragment of datagram `d`: given its first fragment's ports, or held.
    fn later(&mut self, d: DatagramId, p: &mut Packet, offset: u32, len: u32, last: bool) -> Later {
        if let Some(r) = self.ports.get_mut(&d) {
            r.apply(p);
            if r.add(offset, len, last) {
                self.ports.remove(&d);
            }
            return Later::Resolved;
        }
        if self.pending_count >= self.max {
            return Later::Full;
        }
        self.pending.entry(d).or_default().push(*p);
        self.pending_count += 1;
        Later::Held
    }

    /// Datagram `d`'s first fragment `r` arrived: returns the later fragments that waited for
    /// it, given its ports, and remembers the ports for those still to come. False in the
    /// second place when the ports table is full (a flood of first fragments): this datagram's
    /// later fragments will then wait as pending and end as orphans, counted, instead of memory
    /// growing.
    fn first(&mut self, d: DatagramId, mut r: Reassembly) -> (Vec<Packet>, bool) {
        let mut released = self.pending.remove(&d).unwrap_or_default();
        self.pending_count -= released.len();
        let mut complete = false;
        for h in &mut released {
            r.apply(h);
            if let Frag::Later {
                offset, len, last, ..
            } = h.frag
            {
                complete |= r.add(offset, len, last);
            }
        }
        let mut kept = true;
        if complete {
            self.ports.remove(&d);
        } else if self.ports.len() < self.max || self.ports.contains_key(&d) {
            self.ports.insert(d, r);
        } else {
            kept = false;
        }
        (released, kept)
    }

    /// Forgets first fragments older than [`FRAGMENT_MEMORY_NS`] at capture time `now`. A full
    /// scan at most once per table-size calls (`ops` counts them) keeps the cost linear even
    /// under a flood of fragmented datagrams.
    fn forget_old(&mut self, now: i64, ops: u64) {
        if self.ports.len() < 4096 || ops < self.next_scan {
            return;
        }
        self.next_scan = ops + self.ports.len() as u64;
        self.ports
            .retain(|_, r| now.saturating_sub(r.ts) <= FRAGMENT_MEMORY_NS);
    }

    /// Later fragments still waiting for a first fragment that never came.
    fn orphans(&self) -> u64 {
        self.pending_count as u64
    }
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
    /// Names from a DNS answer or TLS hello and the mirror transport: usually neither, so
    /// boxed to keep this record small (the engine moves millions of them per second).
    extra: Option<Box<Extra>>,
}

/// The rare parts of a decoded record.
struct Extra {
    names: Vec<(Addr, String)>,
    mirror: Option<MirrorSource>,
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

/// Where [`Engine::dispatch`] sends one decoded packet.
enum Route {
    /// Skipped (counted), or a later fragment held until its first fragment arrives.
    Drop,
    /// A first fragment: into its flow, and its ports remembered for the later fragments.
    FirstFragment {
        p: Packet,
        hash: u64,
        d: DatagramId,
        r: Reassembly,
    },
    /// Into the flow its key (`hash`) names.
    Flow { p: Packet, hash: u64 },
}

/// The first read of each frame was a cache miss that stalled the decoder (81 % of decode's
/// time on an IMIX file): ask for a frame a few records ahead of record `i` now.
#[inline]
fn prefetch_frame_ahead(batch: &Batch, i: usize) {
    // A zero-length last record starts at the end of the bytes: hence get.
    let ahead = batch.records.get(i + DECODE_PREFETCH_AHEAD);
    if let Some(b) = ahead.and_then(|n| batch.bytes().get(n.start as usize)) {
        crate::flow::map::prefetch(b);
    }
}

/// Decodes one record: its packet, its flow key's hash and its rare parts (names, mirror).
#[inline]
fn decode_record(batch: &Batch, r: &crate::capture::RecordMeta, opts: DecodeOptions) -> Decoded {
    let data = batch.record_bytes(r);
    let (packet, mirror) = decode_with_mirror(r.link, data, r.ts_ns, wire_len(r), opts);
    let hash = match &packet {
        Ok(p) => hash_key(&FlowKey::of_packet(p).0),
        Err(_) => 0,
    };
    let names = names_in(r, &packet, batch.bytes());
    let extra = (!names.is_empty() || mirror.is_some()).then(|| Box::new(Extra { names, mirror }));
    Decoded {
        packet,
        hash,
        extra,
    }
}

/// Prefetches the index slot and the entry of flows a few work items ahead of item `j`.
#[inline]
fn prefetch_flows_ahead(table: &FlowTable, work: &[Work], j: usize) {
    if let Some(w) = work.get(j + PREFETCH_SLOT_AHEAD) {
        table.prefetch(w.hash, Prefetch::Slot);
    }
    if let Some(w) = work.get(j + PREFETCH_ENTRY_AHEAD) {
        table.prefetch(w.hash, Prefetch::Entry);
    }
}

/// Counts one unit of work into its shard's flow table.
#[inline]
fn apply_work(
    table: &mut FlowTable,
    w: Work,
    batch: &Batch,
    decoded: &[Decoded],
    released: &[Packet],
    cfg: &FlowConfig,
) {
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
                    let (key, _) = FlowKey::of(p.vlan, q.proto, q.src, q.sport, q.dst, q.dport);
                    table.notice_unreachable(&key, w.hash);
                }
            }
        }
    }
}

pub struct Engine {
    cfg: EngineConfig,
    flow_cfg: FlowConfig,
    shards: Vec<FlowTable>,
    frags: Fragments,
    decoded: Vec<Decoded>,
    released: Vec<Packet>,
    work: Vec<Vec<Work>>,
    pub stats: Stats,
    names: Names,
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
        let max_fragments = cfg.max_pending_fragments;
        let flow_cfg = FlowConfig {
            timeouts: cfg.timeouts,
            ports: cfg.ports.clone(),
            max_flows_per_shard: (cfg.max_flows / SHARDS).max(1),
        };
        Engine {
            cfg,
            flow_cfg,
            shards: (0..SHARDS).map(|_| FlowTable::default()).collect(),
            frags: Fragments::new(max_fragments),
            decoded: Vec::new(),
            released: Vec::new(),
            work: vec![Vec::new(); SHARDS],
            stats: Stats::default(),
            names: Names::new(),
            spill,
            ops: 0,
            clock: i64::MIN,
        }
    }

    /// Feeds one batch. Call inside the rayon pool that should do the work.
    pub fn process(&mut self, batch: &Batch) {
        self.decode_batch(batch);
        self.take_extras();
        self.dispatch(batch);
        self.update_shards(batch);
        self.spill_if_full();
    }

    /// Everything that depends on one record alone happens here, in parallel: decoding, the
    /// flow key's hash, and the names in DNS answers and TLS hellos.
    fn decode_batch(&mut self, batch: &Batch) {
        let opts = self.cfg.decode;
        batch
            .records
            .par_iter()
            .enumerate()
            .with_min_len(512)
            .map(|(i, r)| {
                prefetch_frame_ahead(batch, i);
                decode_record(batch, r, opts)
            })
            .collect_into_vec(&mut self.decoded);
    }

    /// Moves the rare parts of the decoded records (mirror sources, names) into the counts.
    fn take_extras(&mut self) {
        let extras: Vec<Box<Extra>> = self
            .decoded
            .iter_mut()
            .filter_map(|d| d.extra.take())
            .collect();
        let mut names = Vec::new();
        for x in extras {
            names.extend(x.names);
            if let Some(m) = x.mirror {
                self.count_mirror(m);
            }
        }
        for (addr, name) in names {
            self.remember_name(addr, name);
        }
    }

    /// Keeps a name an address was given, within the bounds on names.
    fn remember_name(&mut self, addr: Addr, name: String) {
        let known = self.names.len();
        match self.names.get_mut(&addr) {
            Some(set) if set.len() < MAX_NAMES_PER_ADDR || set.contains(&name) => {
                set.insert(name);
            }
            None if known < MAX_NAMED_ADDRS => {
                self.names.insert(addr, BTreeSet::from([name]));
            }
            _ => self.stats.names_dropped += 1,
        }
    }

    /// Each shard counts its queued work into its flows, in capture order; shards in parallel.
    fn update_shards(&mut self, batch: &Batch) {
        let cfg = &self.flow_cfg;
        let decoded = &self.decoded;
        let released = &self.released;
        self.shards
            .par_iter_mut()
            .zip(self.work.par_iter_mut())
            .for_each(|(table, work)| {
                for j in 0..work.len() {
                    prefetch_flows_ahead(table, work, j);
                    apply_work(table, work[j], batch, decoded, released, cfg);
                }
                work.clear();
            });
    }

    fn count_mirror(&mut self, m: MirrorSource) {
        let known = self.stats.mirrors.len();
        match self.stats.mirrors.get_mut(&m) {
            Some(n) => *n += 1,
            None if known < MAX_MIRROR_SOURCES => {
                self.stats.mirrors.insert(m, 1);
            }
            None => self.stats.mirrors_other += 1,
        }
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
            self.dispatch_one(batch, i);
        }
    }

    /// Counts record `i`, resolves its fragment state and queues it (and the flow an ICMP
    /// unreachable refuses) for its shard.
    #[inline]
    fn dispatch_one(&mut self, batch: &Batch, i: usize) {
        self.ops += 1;
        let rec = &batch.records[i];
        self.count_record(rec);
        let tunnel_first = self.count_note(i);
        match self.route(i) {
            Route::Drop => {}
            Route::FirstFragment { p, hash, d, r } => {
                self.assign(WorkKind::Packet, i as u32, hash);
                if tunnel_first {
                    self.remember_tunnel_fragment(&p, rec.link, batch.record_bytes(rec));
                }
                self.first_fragment(d, r);
                self.frags.forget_old(p.ts_ns, self.ops);
            }
            Route::Flow { p, hash } => {
                self.assign(WorkKind::Packet, i as u32, hash);
                if tunnel_first {
                    self.remember_tunnel_fragment(&p, rec.link, batch.record_bytes(rec));
                }
                self.queue_unreachable(&p, i, batch.record_bytes(rec));
            }
        }
    }

    /// Counts a record's packet and bytes and advances the capture clock.
    #[inline]
    fn count_record(&mut self, rec: &crate::capture::RecordMeta) {
        self.stats.packets += 1;
        self.stats.wire_bytes += wire_len(rec) as u64;
        if wire_len(rec) < rec.orig_len {
            self.stats.capped_wire_len += 1;
        }
        self.clock = self.clock.max(rec.ts_ns);
    }

    /// Counts what the decoder noted on packet `i`; true if it is a tunnel's first fragment.
    #[inline]
    fn count_note(&mut self, i: usize) -> bool {
        let Ok(p) = &self.decoded[i].packet else {
            return false;
        };
        match p.note {
            Note::None => false,
            Note::Kept(why) => {
                *self.stats.decap_kept.entry(why).or_default() += 1;
                false
            }
            Note::TunnelFirstFragment => true,
        }
    }

    /// Where packet `i` goes: counted as skipped, held as a fragment, or into a flow (a later
    /// fragment with its first fragment's ports, hence a new hash).
    #[inline]
    fn route(&mut self, i: usize) -> Route {
        let hash = self.decoded[i].hash;
        let p = match &mut self.decoded[i].packet {
            Err(skip) => {
                *self.stats.skipped.entry(*skip).or_default() += 1;
                return Route::Drop;
            }
            Ok(p) => p,
        };
        p.clock = self.clock;
        self.stats.first_ts = Some(self.stats.first_ts.map_or(p.ts_ns, |t| t.min(p.ts_ns)));
        self.stats.last_ts = Some(self.stats.last_ts.map_or(p.ts_ns, |t| t.max(p.ts_ns)));
        match p.frag {
            Frag::Whole => Route::Flow { p: *p, hash },
            Frag::First { id, len } => Route::FirstFragment {
                p: *p,
                hash,
                d: DatagramId::of(p, id),
                r: Reassembly::first(p, len),
            },
            Frag::Later {
                id,
                offset,
                len,
                last,
            } => match self
                .frags
                .later(DatagramId::of(p, id), p, offset, len, last)
            {
                Later::Resolved => Route::Flow {
                    p: *p,
                    hash: hash_key(&FlowKey::of_packet(p).0),
                },
                Later::Held => Route::Drop,
                Later::Full => {
                    *self
                        .stats
                        .skipped
                        .entry(Skip::FragmentTableFull)
                        .or_default() += 1;
                    Route::Drop
                }
            },
        }
    }

    /// An ICMP unreachable refuses the flow it quotes: queue that for the flow's shard.
    #[inline]
    fn queue_unreachable(&mut self, p: &Packet, i: usize, frame: &[u8]) {
        if let Some(q) = p.unreach(frame) {
            let (key, _) = FlowKey::of(p.vlan, q.proto, q.src, q.sport, q.dst, q.dport);
            let (shard, hash) = shard_of(hash_key(&key));
            self.work[shard].push(Work {
                kind: WorkKind::Unreachable,
                index: i as u32,
                hash,
            });
        }
    }

    /// Remembers datagram `d`'s first fragment `r`, releasing the later fragments that waited
    /// for it.
    fn first_fragment(&mut self, d: DatagramId, r: Reassembly) {
        let (released, kept) = self.frags.first(d, r);
        for mut h in released {
            h.clock = self.clock;
            let idx = self.released.len() as u32;
            self.released.push(h);
            self.assign(WorkKind::Released, idx, hash_key(&FlowKey::of_packet(&h).0));
        }
        if !kept {
            self.stats.fragment_table_full += 1;
        }
    }

    /// `p` was decapsulated from an outer first fragment: the outer datagram's later fragments
    /// (which carry no inner headers) must join `p`'s flow, not the outer one.
    fn remember_tunnel_fragment(&mut self, p: &Packet, link: u16, frame: &[u8]) {
        let Some((src, dst, proto, id, len)) = outer_first_fragment(link, frame) else {
            return;
        };
        let d = DatagramId {
            src,
            dst,
            proto,
            id,
        };
        let r = Reassembly {
            sport: p.sport,
            dport: p.dport,
            ts: p.ts_ns,
            received: len,
            total: None,
            inner: Some(Inner {
                src: p.src,
                dst: p.dst,
                proto: p.proto,
                vlan: p.vlan,
            }),
        };
        self.first_fragment(d, r);
    }

    /// Queues a packet whose flow key hashes to `key_hash` for its shard.
    fn assign(&mut self, kind: WorkKind, index: u32, key_hash: u64) {
        self.stats.flow_packets += 1;
        let (shard, hash) = shard_of(key_hash);
        self.work[shard].push(Work { kind, index, hash });
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

    /// Ends everything and returns all flows in report order, the counts and the names.
    pub fn finish(mut self) -> (Flows, Stats, Names) {
        let orphans = self.frags.orphans();
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
        let flows = self.spill.finish(all);
        self.stats.vlan_split_tuples = vlan_split_tuples(&flows);
        (flows, self.stats, self.names)
    }

    /// A copy of everything so far, as if the capture ended now (without ending it).
    pub fn snapshot(&self) -> (Flows, Stats, Names) {
        let mut all = Vec::new();
        for t in &self.shards {
            all.extend_from_slice(&t.done);
            all.extend(t.live_records());
        }
        let all = self.spill.finish(all);
        let mut stats = self.stats.clone();
        stats.evicted_flows = self.shards.iter().map(|t| t.evicted).sum();
        (all, stats, self.names.clone())
    }
}

/// Counts 5-tuples seen one direction per VLAN: one-sided flows whose opposite direction is a
/// one-sided flow of the same 5-tuple on another VLAN. On a routed trunk that is one connection
/// split in two by the VLAN in the flow key (`--vlan-key none` joins them).
fn vlan_split_tuples(flows: &Flows) -> u64 {
    use crate::flow::{CLIENT, SERVER};
    type Tuple = (u8, Addr, u16, Addr, u16);
    // Per 5-tuple: a VLAN that carried only a -> b, one that carried only b -> a.
    let mut seen: FxHashMap<Tuple, [Option<u16>; 2]> = FxHashMap::default();
    for r in flows.iter().flatten() {
        let (k, f) = (r.key, r.flow);
        if k.vlan == crate::decode::NO_VLAN {
            continue;
        }
        let from_a = match (f.packets[CLIENT] > 0, f.packets[SERVER] > 0) {
            (true, false) => f.client_is_a,
            (false, true) => !f.client_is_a,
            _ => continue,
        };
        let e = seen
            .entry((k.proto, k.a, k.a_port, k.b, k.b_port))
            .or_default();
        e[usize::from(!from_a)].get_or_insert(k.vlan);
    }
    seen.values()
        .filter(|[a, b]| matches!((a, b), (Some(x), Some(y)) if x != y))
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    /// A fragment of UDP datagram 7 from A to B, as the decoder gives it: a later fragment has
    /// no ports.
    fn fragment(frag: Frag) -> Packet {
        let first = matches!(frag, Frag::First { .. });
        Packet {
            ts_ns: 1_000,
            clock: 0,
            wire_len: 100,
            payload_len: 80,
            vlan: crate::decode::NO_VLAN,
            proto: crate::decode::proto::UDP,
            tcp_flags: 0,
            src: Addr::v4(A),
            dst: Addr::v4(B),
            sport: if first { 5000 } else { 0 },
            dport: if first { 2049 } else { 0 },
            frag,
            quote_at: 0,
            payload_at: 0,
            note: Note::None,
        }
    }

    fn id() -> DatagramId {
        DatagramId {
            src: Addr::v4(A),
            dst: Addr::v4(B),
            proto: crate::decode::proto::UDP,
            id: 7,
        }
    }

    /// The first fragment's ports, as the engine records them: 1480 of 3000 bytes received.
    fn first() -> Reassembly {
        Reassembly {
            sport: 5000,
            dport: 2049,
            ts: 1_000,
            received: 1480,
            total: None,
            inner: None,
        }
    }

    fn later(offset: u32, len: u32, last: bool) -> Packet {
        fragment(Frag::Later {
            id: 7,
            offset,
            len,
            last,
        })
    }

    #[test]
    fn later_fragments_after_the_first_get_its_ports_until_the_datagram_is_whole() {
        let mut f = Fragments::new(10);
        let (released, kept) = f.first(id(), first());
        assert!(released.is_empty() && kept);
        let mut p = later(1480, 1000, false);
        assert_eq!(f.later(id(), &mut p, 1480, 1000, false), Later::Resolved);
        assert_eq!((p.sport, p.dport), (5000, 2049));
        // 1480 + 1000 + 520 = 3000 bytes: the datagram is whole and its ports forgotten, so a
        // new datagram reusing the id cannot inherit them.
        let mut q = later(2480, 520, true);
        assert_eq!(f.later(id(), &mut q, 2480, 520, true), Later::Resolved);
        assert_eq!((q.sport, q.dport), (5000, 2049));
        let mut r = later(1480, 8, true);
        assert_eq!(f.later(id(), &mut r, 1480, 8, true), Later::Held);
        assert_eq!(f.orphans(), 1);
    }

    #[test]
    fn fragments_before_the_first_wait_for_it_and_are_released_with_its_ports() {
        let mut f = Fragments::new(10);
        let mut tail = later(2480, 520, true);
        let mut middle = later(1480, 1000, false);
        assert_eq!(f.later(id(), &mut tail, 2480, 520, true), Later::Held);
        assert_eq!(f.later(id(), &mut middle, 1480, 1000, false), Later::Held);
        assert_eq!(f.orphans(), 2);
        let (released, kept) = f.first(id(), first());
        assert!(kept);
        assert_eq!(f.orphans(), 0);
        // In arrival order, with the first fragment's ports.
        let got: Vec<(u32, u16, u16)> = released
            .iter()
            .map(|p| match p.frag {
                Frag::Later { offset, .. } => (offset, p.sport, p.dport),
                _ => panic!("not a later fragment"),
            })
            .collect();
        assert_eq!(got, [(2480, 5000, 2049), (1480, 5000, 2049)]);
        // The datagram was whole with them: nothing is remembered for its id.
        assert!(f.ports.is_empty());
    }

    #[test]
    fn full_tables_count_instead_of_growing() {
        let mut f = Fragments::new(1);
        let mut a = later(1480, 8, false);
        assert_eq!(f.later(id(), &mut a, 1480, 8, false), Later::Held);
        let other = DatagramId { id: 8, ..id() };
        let mut b = later(1480, 8, false);
        assert_eq!(f.later(other, &mut b, 1480, 8, false), Later::Full);
        // One first fragment's ports fill the ports table: the next is not kept.
        let (released, kept) = f.first(id(), first());
        assert_eq!((released.len(), kept), (1, true));
        let (_, kept) = f.first(other, first());
        assert!(!kept);
    }
}
